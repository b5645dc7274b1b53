//! Where the RabbitMQ broker is and who we are to it, and the AMQP URI lapin connects with,
//! which also carries the connection's tuning. The lease connects with the same URI builder.

use std::fmt;

use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};

/// Where the broker is and who we are to it (upstream's `--rabbitmq-*` options).
#[derive(Clone, PartialEq, Eq)]
pub struct RabbitOptions {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub vhost: String,
}

// Written by hand so that logging the options never shows the password.
impl fmt::Debug for RabbitOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .field("vhost", &self.vhost)
            .finish()
    }
}

/// The largest AMQP frame the runtime's connections accept. lapin keeps 32 frames of send and
/// 32 of receive buffer per connection, resident: 8 MiB at RabbitMQ's default of 128 KiB, 1 MiB
/// at this. Bigger messages travel as several frames.
const FRAME_MAX: u32 = 16 * 1024;

/// The URI lapin connects with: where, as whom, and the connection's tuning (`heartbeat` in
/// seconds, `connect_timeout_ms`).
pub(crate) fn amqp_uri(options: &RabbitOptions, heartbeat: u16, connect_timeout_ms: u64) -> AMQPUri {
    AMQPUri {
        scheme: AMQPScheme::AMQP,
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo { username: options.username.clone(), password: options.password.clone() },
            host: options.host.clone(),
            port: options.port,
        },
        vhost: options.vhost.clone(),
        query: AMQPQueryString {
            frame_max: Some(FRAME_MAX),
            heartbeat: Some(heartbeat),
            connection_timeout: Some(connect_timeout_ms),
            ..AMQPQueryString::default()
        },
    }
}

/// `amqp://host:port/vhost`, no credentials; the default vhost `/` shows as `amqp://host:port/`.
pub(super) fn describe(options: &RabbitOptions) -> String {
    let vhost = if options.vhost == "/" { "" } else { options.vhost.as_str() };
    format!("amqp://{}:{}/{vhost}", options.host, options.port)
}
