//! A small blocking HTTP client over WASI's `wasi:http/outgoing-handler`, for initialisers
//! that call an admin API (such as Pulsar's). The runtime lets a component reach only the
//! origins the operator granted; anything else fails with [`HttpError::Denied`].

use serde::{Serialize, de::DeserializeOwned};
use std::fmt;
use std::time::Duration;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, Method as WasiMethod, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::StreamError;

/// The HTTP methods this client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `PATCH`
    Patch,
}

/// A response: its status code and its whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, such as 200 or 404.
    pub status: u16,
    /// The body's bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL could not be parsed, or uses a scheme other than `http` or `https`.
    InvalidUrl(String),
    /// The operator's grants do not allow this origin.
    Denied(String),
    /// Connecting, or waiting for the response, took longer than the timeout.
    Timeout(String),
    /// Anything else: connection refused, DNS failure, protocol error, ...
    Failed(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::InvalidUrl(message) => write!(f, "invalid URL: {message}"),
            HttpError::Denied(message) => write!(f, "HTTP request denied: {message}"),
            HttpError::Timeout(message) => write!(f, "HTTP request timed out: {message}"),
            HttpError::Failed(message) => write!(f, "HTTP request failed: {message}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Sends a `GET` to `url`.
pub fn get(url: &str, timeout: Duration) -> Result<Response, HttpError> {
    send(Method::Get, url, None, timeout)
}

/// Sends a `PUT` to `url` with `body` encoded as JSON.
pub fn put_json<T: Serialize + ?Sized>(url: &str, body: &T, timeout: Duration) -> Result<Response, HttpError> {
    let body = serde_json::to_value(body).map_err(|error| HttpError::Failed(format!("encoding the body: {error}")))?;
    send(Method::Put, url, Some(&body), timeout)
}

/// Sends `method` to `url`, with `json_body` (and `content-type: application/json`) if
/// given, and waits for the whole response. `timeout` bounds connecting, the wait for the
/// first byte of the response and each wait between its bytes — the same as a Python
/// `requests` timeout.
pub fn send(
    method: Method,
    url: &str,
    json_body: Option<&serde_json::Value>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let target = Target::parse(url)?;
    let body = json_body.map(|value| value.to_string().into_bytes());

    let mut headers = Vec::new();
    if let Some(body) = &body {
        headers.push(("content-type".to_string(), b"application/json".to_vec()));
        headers.push(("content-length".to_string(), body.len().to_string().into_bytes()));
    }
    let headers =
        Fields::from_list(&headers).map_err(|error| HttpError::Failed(format!("building headers: {error:?}")))?;

    let request = OutgoingRequest::new(headers);
    let rejected = |what: &str| HttpError::InvalidUrl(format!("{url}: the host rejects its {what}"));
    request.set_method(&method.to_wasi()).map_err(|()| rejected("method"))?;
    request.set_scheme(Some(&target.scheme)).map_err(|()| rejected("scheme"))?;
    request.set_authority(Some(&target.authority)).map_err(|()| rejected("authority"))?;
    request.set_path_with_query(Some(&target.path_with_query)).map_err(|()| rejected("path"))?;

    let outgoing_body = request.body().map_err(|()| HttpError::Failed("no request body handle".into()))?;
    let pending =
        outgoing_handler::handle(request, Some(timeouts(timeout)?)).map_err(|code| error_from_code(url, code))?;
    write_body(outgoing_body, body.as_deref().unwrap_or_default())?;

    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(error_from_code(url, code)),
        Some(Err(())) | None => {
            return Err(HttpError::Failed(format!("{url}: the response was lost")));
        }
    };
    let status = response.status();
    let incoming_body =
        response.consume().map_err(|()| HttpError::Failed(format!("{url}: the response body was taken")))?;
    let body = read_all(url, &incoming_body)?;
    Ok(Response { status, body })
}

/// The parts of a URL the WASI request needs.
#[derive(Debug, Clone)]
struct Target {
    scheme: Scheme,
    authority: String,
    path_with_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, HttpError> {
        let invalid = |why: &str| HttpError::InvalidUrl(format!("{url}: {why}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("no scheme"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(invalid("the scheme must be http or https")),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_with_query) = rest.split_at(path_start);
        if authority.is_empty() {
            return Err(invalid("no host"));
        }
        let path_with_query = match path_with_query {
            "" => "/".to_string(),
            query if query.starts_with('?') => format!("/{query}"),
            path => path.to_string(),
        };
        Ok(Target { scheme, authority: authority.to_string(), path_with_query })
    }
}

impl Method {
    fn to_wasi(self) -> WasiMethod {
        match self {
            Method::Get => WasiMethod::Get,
            Method::Head => WasiMethod::Head,
            Method::Post => WasiMethod::Post,
            Method::Put => WasiMethod::Put,
            Method::Delete => WasiMethod::Delete,
            Method::Patch => WasiMethod::Patch,
        }
    }
}

fn timeouts(timeout: Duration) -> Result<RequestOptions, HttpError> {
    let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    let options = RequestOptions::new();
    let unsupported = |()| HttpError::Failed("the host does not support request timeouts".into());
    options.set_connect_timeout(Some(nanos)).map_err(unsupported)?;
    options.set_first_byte_timeout(Some(nanos)).map_err(unsupported)?;
    options.set_between_bytes_timeout(Some(nanos)).map_err(unsupported)?;
    Ok(options)
}

fn write_body(outgoing_body: OutgoingBody, bytes: &[u8]) -> Result<(), HttpError> {
    let failed = |what: String| HttpError::Failed(format!("sending the request body: {what}"));
    {
        // The stream is a child of the body: it must be dropped before `finish`.
        let stream = outgoing_body.write().map_err(|()| failed("no body stream".into()))?;
        // `blocking-write-and-flush` takes at most 4096 bytes per call.
        for chunk in bytes.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|error| failed(stream_error(error)))?;
        }
    }
    OutgoingBody::finish(outgoing_body, None).map_err(|code| failed(format!("{code:?}")))
}

fn read_all(url: &str, incoming_body: &wasi::http::types::IncomingBody) -> Result<Vec<u8>, HttpError> {
    let stream =
        incoming_body.stream().map_err(|()| HttpError::Failed(format!("{url}: the response body stream was taken")))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(body),
            Err(error) => {
                return Err(HttpError::Failed(format!("{url}: reading the response: {}", stream_error(error))));
            }
        }
    }
}

fn stream_error(error: StreamError) -> String {
    match error {
        StreamError::Closed => "the stream closed".into(),
        StreamError::LastOperationFailed(io_error) => io_error.to_debug_string(),
    }
}

fn error_from_code(url: &str, code: ErrorCode) -> HttpError {
    let message = format!("{url}: {code:?}");
    match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied(format!("{url}: the grants do not allow this origin")),
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => HttpError::Timeout(message),
        ErrorCode::HttpRequestUriInvalid => HttpError::InvalidUrl(message),
        _ => HttpError::Failed(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, String, String) {
        let target = Target::parse(url).unwrap();
        (format!("{:?}", target.scheme), target.authority, target.path_with_query)
    }

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        assert_eq!(
            parts("http://pulsar:8080/admin/v2/tenants/tg"),
            ("Scheme::Http".into(), "pulsar:8080".into(), "/admin/v2/tenants/tg".into())
        );
        assert_eq!(parts("HTTPS://example.org"), ("Scheme::Https".into(), "example.org".into(), "/".into()));
        assert_eq!(parts("http://h?x=1"), ("Scheme::Http".into(), "h".into(), "/?x=1".into()));
        assert_eq!(parts("http://h/p?q#frag"), ("Scheme::Http".into(), "h".into(), "/p?q".into()));
    }

    #[test]
    fn bad_urls_are_rejected_with_the_reason() {
        for (url, reason) in [
            ("pulsar:8080/admin", "no scheme"),
            ("ftp://h/", "the scheme must be http or https"),
            ("http:///path", "no host"),
        ] {
            assert_eq!(Target::parse(url).unwrap_err(), HttpError::InvalidUrl(format!("{url}: {reason}")));
        }
    }

    #[test]
    fn responses_decode_as_text_and_json() {
        let response = Response { status: 200, body: br#"["standalone"]"#.to_vec() };
        assert_eq!(response.text(), r#"["standalone"]"#);
        assert_eq!(response.json::<Vec<String>>().unwrap(), ["standalone"]);
    }
}
