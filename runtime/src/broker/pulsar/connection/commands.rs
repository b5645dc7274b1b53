//! The small commands the connection sends from more than one place: keepalive pings and
//! pongs, permits for a consumer, and the closes of consumers and producers.

use crate::broker::pulsar::proto::{
    BaseCommand, CommandCloseConsumer, CommandCloseProducer, CommandFlow, CommandPing, CommandPong, CommandType,
};

pub(super) fn ping() -> BaseCommand {
    BaseCommand { r#type: CommandType::Ping as i32, ping: Some(CommandPing {}), ..Default::default() }
}

pub(super) fn pong() -> BaseCommand {
    BaseCommand { r#type: CommandType::Pong as i32, pong: Some(CommandPong {}), ..Default::default() }
}

/// `message_permits` more messages for the consumer.
pub(super) fn flow(consumer_id: u64, message_permits: u32) -> BaseCommand {
    let flow = CommandFlow { consumer_id, message_permits };
    BaseCommand { r#type: CommandType::Flow as i32, flow: Some(flow), ..Default::default() }
}

pub(super) fn close_consumer(consumer_id: u64, request_id: u64) -> BaseCommand {
    BaseCommand {
        r#type: CommandType::CloseConsumer as i32,
        close_consumer: Some(CommandCloseConsumer { consumer_id, request_id }),
        ..Default::default()
    }
}

pub(super) fn close_producer(producer_id: u64, request_id: u64) -> BaseCommand {
    BaseCommand {
        r#type: CommandType::CloseProducer as i32,
        close_producer: Some(CommandCloseProducer { producer_id, request_id }),
        ..Default::default()
    }
}
