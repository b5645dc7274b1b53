//! A stand-in for the Pulsar admin REST API, as much of it as PulsarTopology uses: clusters,
//! tenants and namespaces, kept in memory. pulsar-lite (the broker the tests run) has no admin
//! API, so the tests serve this on a free loopback port. Plain HTTP/1.1, one request per
//! connection.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct State {
    tenants: BTreeMap<String, String>,
    namespaces: BTreeMap<String, String>,
    requests: usize,
}

/// The admin API, serving until the test process ends.
pub struct PulsarAdmin {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl PulsarAdmin {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                serve(stream, &shared);
            }
        });
        Self { port, state }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The namespaces created, as `tenant/namespace`, sorted.
    pub fn namespaces(&self) -> Vec<String> {
        self.state.lock().unwrap().namespaces.keys().cloned().collect()
    }

    /// The body each namespace was created with.
    pub fn namespace_body(&self, name: &str) -> Option<String> {
        self.state.lock().unwrap().namespaces.get(name).cloned()
    }

    pub fn request_count(&self) -> usize {
        self.state.lock().unwrap().requests
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut content_length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; content_length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));

    let (status, reply) = {
        let mut state = state.lock().unwrap();
        state.requests += 1;
        let segments: Vec<&str> = path.trim_start_matches("/admin/v2/").split('/').collect();
        match (method, segments.as_slice()) {
            ("GET", ["clusters"]) => (200, r#"["standalone"]"#.to_owned()),
            ("GET", ["tenants", tenant]) if state.tenants.contains_key(*tenant) => (200, "{}".into()),
            ("PUT", ["tenants", tenant]) => {
                state.tenants.insert(tenant.to_string(), body);
                (204, String::new())
            }
            ("GET", ["namespaces", tenant, namespace])
                if state.namespaces.contains_key(&format!("{tenant}/{namespace}")) =>
            {
                (200, "{}".into())
            }
            ("PUT", ["namespaces", tenant, namespace]) if state.tenants.contains_key(*tenant) => {
                state.namespaces.insert(format!("{tenant}/{namespace}"), body);
                (204, String::new())
            }
            _ => (404, r#"{"reason": "not found"}"#.to_owned()),
        }
    };
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        _ => "Not Found",
    };
    let response =
        format!("HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}", reply.len());
    let _ = (&stream).write_all(response.as_bytes());
}
