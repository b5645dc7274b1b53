//! Opening a connection: CONNECT, with the token if there is one, then the broker's CONNECTED,
//! which says how large a message may be. The broker may challenge the token (to refresh it)
//! during the handshake and at any time after; [`auth_response`] answers both. TLS, if any, is
//! already on the stream: the client sets it up.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

use super::{BrokerStream, ConnectSettings, DEFAULT_MAX_MESSAGE_SIZE};
use crate::broker::pulsar::error::{PulsarError, server_error};
use crate::broker::pulsar::frame::{self, Frame};
use crate::broker::pulsar::proto::{AuthData, BaseCommand, CommandAuthResponse, CommandConnect, CommandType};

/// What the client calls itself in CONNECT.
const CLIENT_VERSION: &str = concat!("bootstrap-wasm-", env!("CARGO_PKG_VERSION"));

/// The protocol version spoken: 12 has everything used here (and is what the `pulsar` crate
/// and older Java clients send).
const PROTOCOL_VERSION: i32 = 12;

/// CONNECT, and wait for CONNECTED within the operation timeout; returns the largest message
/// the broker allows. What the broker sent after CONNECTED stays in `buffer`.
pub(super) async fn handshake(
    reader: &mut ReadHalf<Box<dyn BrokerStream>>,
    writer: &mut WriteHalf<Box<dyn BrokerStream>>,
    buffer: &mut BytesMut,
    settings: &ConnectSettings,
) -> Result<usize, PulsarError> {
    let handshake = async {
        writer.write_all(&frame::command(&connect(settings))).await?;
        loop {
            while let Some(Frame { command, .. }) = frame::decode(buffer, DEFAULT_MAX_MESSAGE_SIZE)? {
                match CommandType::try_from(command.r#type) {
                    Ok(CommandType::Connected) => return Ok(command.connected.and_then(|c| c.max_message_size)),
                    Ok(CommandType::Error) => {
                        return Err(server_error(command.error.map(|e| (e.error, e.message))));
                    }
                    Ok(CommandType::AuthChallenge) => writer.write_all(&auth_response(&settings.token)).await?,
                    _ => {}
                }
            }
            if reader.read_buf(buffer).await? == 0 {
                return Err(PulsarError::Disconnected("closed by the broker during the handshake".into()));
            }
        }
    };
    let max_message_size = tokio::time::timeout(settings.operation_timeout, handshake)
        .await
        .map_err(|_| PulsarError::Timeout(settings.operation_timeout))??;
    let announced = max_message_size.and_then(|size| usize::try_from(size).ok()).filter(|&size| size > 0);
    Ok(announced.unwrap_or(DEFAULT_MAX_MESSAGE_SIZE))
}

fn connect(settings: &ConnectSettings) -> BaseCommand {
    BaseCommand {
        r#type: CommandType::Connect as i32,
        connect: Some(CommandConnect {
            client_version: CLIENT_VERSION.to_owned(),
            auth_method_name: settings.token.as_ref().map(|_| "token".to_owned()),
            auth_data: settings.token.as_ref().map(|token| token.clone().into_bytes()),
            protocol_version: Some(PROTOCOL_VERSION),
            proxy_to_broker_url: settings.proxy_to_broker_url.clone(),
        }),
        ..Default::default()
    }
}

/// The frame answering the broker's authentication challenge: the token again.
pub(super) fn auth_response(token: &Option<String>) -> Vec<u8> {
    let response = CommandAuthResponse {
        client_version: Some(CLIENT_VERSION.to_owned()),
        response: Some(AuthData {
            auth_method_name: Some("token".to_owned()),
            auth_data: Some(token.clone().unwrap_or_default().into_bytes()),
        }),
        protocol_version: Some(PROTOCOL_VERSION),
    };
    frame::command(&BaseCommand {
        r#type: CommandType::AuthResponse as i32,
        auth_response: Some(response),
        ..Default::default()
    })
}
