//! The connection's task: it reads what the broker sends and acts on each frame (answers to
//! requests, send receipts, messages, the broker's pings, closes and authentication
//! challenges), pings the broker every keepalive, and closes on the broker what was dropped on
//! this side. When it stops, the connection has ended.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, ReadHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::handshake::auth_response;
use super::{BrokerStream, Closing, Shared, commands};
use crate::broker::pulsar::error::{PulsarError, server_error};
use crate::broker::pulsar::frame::{self, Frame, MessagePayload};
use crate::broker::pulsar::proto::{BaseCommand, CommandMessage, CommandType};

/// The connection's task: read and dispatch frames, close what guards ask to, keep alive.
pub(super) async fn read_loop(
    shared: Arc<Shared>,
    mut reader: ReadHalf<Box<dyn BrokerStream>>,
    mut buffer: BytesMut,
    mut closing: mpsc::UnboundedReceiver<Closing>,
) {
    let keepalive = shared.settings.keepalive;
    let mut ticks = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
    let mut heard = Instant::now();
    let error = loop {
        if let Err(e) = shared.dispatch_all(&mut buffer).await {
            break e;
        }
        tokio::select! {
            read = reader.read_buf(&mut buffer) => match read {
                Ok(0) => break PulsarError::Disconnected("closed by the broker".into()),
                Ok(_) => heard = Instant::now(),
                Err(e) => break PulsarError::Disconnected(format!("cannot read: {e}")),
            },
            Some(dropped) = closing.recv() => {
                if let Err(e) = shared.close_dropped(dropped).await {
                    break e;
                }
            }
            _ = ticks.tick() => {
                if let Err(e) = shared.keep_alive(heard).await {
                    break e;
                }
            }
        }
    };
    tracing::debug!("Pulsar connection ended: {error}");
    shared.end(error);
}

impl Shared {
    /// Act on every whole frame in `buffer`.
    async fn dispatch_all(&self, buffer: &mut BytesMut) -> Result<(), PulsarError> {
        while let Some(frame) = frame::decode(buffer, self.max_frame)? {
            self.dispatch(frame).await?;
        }
        Ok(())
    }

    /// Act on one frame from the broker.
    async fn dispatch(&self, frame: Frame) -> Result<(), PulsarError> {
        let Frame { command, message } = frame;
        let Ok(kind) = CommandType::try_from(command.r#type) else {
            tracing::trace!(r#type = command.r#type, "ignored a Pulsar command");
            return Ok(());
        };
        match kind {
            CommandType::Ping => self.write(&frame::command(&commands::pong())).await?,
            CommandType::Pong => self.pong(),
            CommandType::Message => {
                let (Some(delivered), Some(payload)) = (command.message, message) else {
                    return Err(PulsarError::Protocol("a message frame without a message".into()));
                };
                self.on_message(delivered, payload).await?;
            }
            CommandType::SendReceipt | CommandType::SendError => {
                if let Some((key, receipt)) = receipt(kind, command) {
                    self.receipts.answer(&key, receipt);
                }
            }
            CommandType::Success
            | CommandType::ProducerSuccess
            | CommandType::LookupResponse
            | CommandType::PartitionedMetadataResponse
            | CommandType::Error => {
                if let Some((request_id, answer)) = request_answer(kind, command)
                    && !self.requests.answer(&request_id, answer)
                {
                    self.close_answered(request_id);
                }
            }
            CommandType::CloseConsumer => {
                // The broker closed it (its topic is moving): the client subscribes again.
                if let Some(close) = command.close_consumer {
                    self.consumer_moved(close.consumer_id);
                }
            }
            CommandType::CloseProducer => {
                if let Some(close) = command.close_producer {
                    self.producer_closed(close.producer_id);
                }
            }
            CommandType::AuthChallenge => self.write(&auth_response(&self.settings.token)).await?,
            _ => tracing::trace!(?kind, "ignored a Pulsar command"),
        }
        Ok(())
    }

    /// Deliver a message, and send back what that calls for.
    async fn on_message(&self, delivered: CommandMessage, payload: MessagePayload) -> Result<(), PulsarError> {
        let replies = self.deliver(delivered, payload);
        if !replies.is_empty() {
            self.write(&replies).await?;
        }
        Ok(())
    }

    /// The broker closed a producer (its topic moved): its sends fail from now on, and its
    /// owner makes a new one, looking the topic up again.
    fn producer_closed(&self, producer_id: u64) {
        // Under the state's lock, under which a send checks its producer is open.
        let mut state = self.state.lock().unwrap();
        state.producers.remove(&producer_id);
        let failure = || Err(PulsarError::ProducerMoved);
        self.receipts.answer_where(|(producer, _)| *producer == producer_id, failure);
    }

    fn pong(&self) {
        let mut state = self.state.lock().unwrap();
        state.pongs_received += 1;
        let answered = state.pongs_received;
        self.pongs.answer_where(|ping| *ping <= answered, || ());
    }

    /// Ping the broker, with permits for consumers whose subscribers caught up; or give up on a
    /// broker last heard from two pings ago.
    async fn keep_alive(&self, heard: Instant) -> Result<(), PulsarError> {
        let keepalive = self.settings.keepalive;
        if heard.elapsed() > 2 * keepalive {
            return Err(PulsarError::Disconnected(format!("the broker answered no ping for {:?}", 2 * keepalive)));
        }
        self.state.lock().unwrap().pings_sent += 1;
        let mut frames = frame::command(&commands::ping());
        frames.extend(self.refills());
        self.write(&frames).await
    }

    /// Close what was dropped, without waiting for the broker's answer.
    async fn close_dropped(&self, dropped: Closing) -> Result<(), PulsarError> {
        let command = {
            let mut state = self.state.lock().unwrap();
            // Unless already gone with its connection or by the broker.
            match dropped {
                Closing::Consumer(id) if state.consumers.remove(&id).is_some() => {
                    state.closed.0 += 1;
                    self.close_consumer(&mut state, id)
                }
                Closing::Producer(id) if state.producers.remove(&id) => {
                    state.closed.1 += 1;
                    commands::close_producer(id, self.next_id())
                }
                _ => return Ok(()),
            }
        };
        self.write(&frame::command(&command)).await
    }
}

/// The receipt a SendReceipt or SendError carries, by producer and sequence id.
fn receipt(kind: CommandType, command: BaseCommand) -> Option<((u64, u64), Result<(), PulsarError>)> {
    match kind {
        CommandType::SendReceipt => command.send_receipt.map(|r| ((r.producer_id, r.sequence_id), Ok(()))),
        CommandType::SendError => command.send_error.map(|e| {
            let failure = server_error(Some((e.error, e.message)));
            ((e.producer_id, e.sequence_id), Err(failure))
        }),
        _ => None,
    }
}

/// The answer `command` carries to a request, by request id.
fn request_answer(kind: CommandType, command: BaseCommand) -> Option<(u64, Result<BaseCommand, PulsarError>)> {
    let request_id = match kind {
        CommandType::Success => command.success.as_ref().map(|s| s.request_id),
        // A producer not ready yet waits for exclusive access; its second answer counts.
        CommandType::ProducerSuccess => {
            command.producer_success.as_ref().filter(|s| s.producer_ready != Some(false)).map(|s| s.request_id)
        }
        CommandType::LookupResponse => command.lookup_topic_response.as_ref().map(|l| l.request_id),
        CommandType::PartitionedMetadataResponse => command.partition_metadata_response.as_ref().map(|m| m.request_id),
        CommandType::Error => {
            let error = command.error?;
            return Some((error.request_id, Err(server_error(Some((error.error, error.message))))));
        }
        _ => None,
    };
    Some((request_id?, Ok(command)))
}
