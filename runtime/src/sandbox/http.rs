//! Outgoing HTTP for guests, limited to the origins the operator granted.
//!
//! wasmtime-wasi-http asks these hooks to send every request; a request to any other origin is
//! refused with `HttpRequestDenied` (which the guest sees as `error-code::HTTP-request-denied`)
//! and logged. Origins are matched on scheme, host and port exactly: granting
//! `http://127.0.0.1:8080` does not grant `http://localhost:8080`.

use std::sync::Arc;

use std::future::Future;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::guest_text::{LOGGED_DENIALS, QUOTED_CHARS, abbreviate};
use crate::policy::{Grants, Origin};

pub(crate) struct HttpAllowList {
    initialiser: Arc<str>,
    grants: Arc<Grants>,
    /// Refusals so far in this run: past [`LOGGED_DENIALS`], they are logged at debug level only,
    /// so a guest retrying in a loop cannot flood the log.
    denials: usize,
}

impl HttpAllowList {
    pub fn new(initialiser: Arc<str>, grants: Arc<Grants>) -> Self {
        Self { initialiser, grants, denials: 0 }
    }

    fn allows(&self, uri: &http::Uri) -> Result<(), String> {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return Err(format!("'{uri}' has no scheme or host"));
        };
        // wasmtime-wasi-http would connect to the authority as written, userinfo and all: a
        // credential has no business in an origin, and would go to whatever that name resolves.
        if uri.authority().is_some_and(|authority| authority.as_str().contains('@')) {
            return Err("a URL with userinfo (user:password@) is never allowed".to_owned());
        }
        let origin = Origin::new(scheme, host, uri.port_u16())?;
        if self.grants.may_reach(&origin) { Ok(()) } else { Err(format!("{origin} is not granted")) }
    }
}

/// The most an outgoing body holds before the connection takes it: one chunk in flight and one
/// buffered (wasmtime-wasi-http's default chunk is 1 MiB). Within the run's budget for one HTTP
/// object (`HTTP_FIELDS_BYTES`); a large upload is sent in more, smaller writes.
const BODY_CHUNK_BYTES: usize = 8 << 10;

/// The future `send_request` hands back to wasmtime-wasi-http.
type SendFuture = Box<
    dyn Future<
            Output = Result<
                (http::Response<WasiBody>, Box<dyn Future<Output = Result<(), HttpError>> + Send>),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for HttpAllowList {
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        1
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_CHUNK_BYTES
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        if let Err(reason) = self.allows(request.uri()) {
            let (initialiser, function) = (&*self.initialiser, "wasi:http/outgoing-handler.handle");
            let target = abbreviate(&request.uri().to_string(), QUOTED_CHARS);
            self.denials += 1;
            if self.denials <= LOGGED_DENIALS {
                tracing::warn!(initialiser, function, target, "denied: {reason}");
            } else {
                tracing::debug!(initialiser, function, target, "denied: {reason}");
            }
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_granted_origins_pass() {
        let grants = Grants { http: vec![Origin::parse("http://127.0.0.1:8080").unwrap()], ..Grants::default() };
        let list = HttpAllowList::new("t".into(), Arc::new(grants));
        assert!(list.allows(&"http://127.0.0.1:8080/admin/v2/tenants".parse().unwrap()).is_ok());
        assert!(list.allows(&"http://localhost:8080/".parse().unwrap()).is_err());
        assert!(list.allows(&"https://127.0.0.1:8080/".parse().unwrap()).is_err());
        assert!(list.allows(&"http://127.0.0.1:8081/".parse().unwrap()).is_err());
        assert!(list.allows(&"http://user:secret@127.0.0.1:8080/".parse().unwrap()).is_err());
    }
}
