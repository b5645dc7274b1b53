//! A real Pulsar broker for the tests: pulsar-lite (a single-binary broker from PyPI, installed
//! into `<repo>/.venv` by `.ci/setup`), on a free loopback port, reached through a relay.
//!
//! The relay can be paused, closing every connection and refusing new ones, to make the broker
//! seem gone while it keeps running. For that, clients must reach the broker only through it:
//! pulsar-lite answers topic lookups with its own address, and a client would then connect
//! there directly, so the relay rewrites those answers to its own address. Everything else
//! passes through unchanged.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bootstrap_wasm::broker::pulsar::proto::{BaseCommand, CommandType};
use prost::Message as _;

/// A running pulsar-lite behind a relay; killed when dropped.
pub struct PulsarLite {
    dir: tempfile::TempDir,
    broker_port: u16,
    child: Option<Child>,
    relay: Relay,
}

impl PulsarLite {
    /// Start pulsar-lite and its relay on free loopback ports; returns once it accepts
    /// connections.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // No metrics endpoint: it would listen on 0.0.0.0:8080.
        std::fs::write(dir.path().join("pulsar-lite.toml"), "[metrics]\nenabled = false\n").unwrap();
        let broker_port = free_port();
        let relay = Relay::start(SocketAddr::from(([127, 0, 0, 1], broker_port)));
        let mut broker = Self { dir, broker_port, child: None, relay };
        broker.launch();
        broker
    }

    /// The broker's URL, through the relay: what the tests' clients use.
    pub fn url(&self) -> String {
        format!("pulsar://127.0.0.1:{}", self.relay.port)
    }

    /// The broker's own URL, around the relay: for the benches, which never pause it and
    /// should not pay the relay's hops.
    pub fn direct_url(&self) -> String {
        format!("pulsar://127.0.0.1:{}", self.broker_port)
    }

    /// A client's options for this broker, through the relay.
    pub fn options(&self) -> bootstrap_wasm::broker::pulsar::PulsarOptions {
        options(self.url())
    }

    /// A client's options for this broker, around the relay.
    pub fn direct_options(&self) -> bootstrap_wasm::broker::pulsar::PulsarOptions {
        options(self.direct_url())
    }

    /// Kill the broker (its data stays for [`Self::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Clients connected through the relay lose their connections now, not when the relay
        // next reads from the dead broker.
        self.relay.cut();
    }

    /// Start the broker again, on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Close every connection through the relay and refuse new ones, as if the broker were
    /// gone; the broker itself keeps running.
    pub fn pause(&self) {
        self.relay.shared.paused.store(true, Ordering::SeqCst);
        self.relay.cut();
    }

    /// Let connections through again after [`Self::pause`].
    pub fn resume(&self) {
        self.relay.shared.paused.store(false, Ordering::SeqCst);
    }

    /// What pulsar-lite has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pulsar-lite.log")).unwrap_or_default()
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("pulsar-lite.log")).unwrap();
        let child = Command::new(binary())
            .arg("--config")
            .arg(self.dir.path().join("pulsar-lite.toml"))
            .arg("--addr")
            .arg(format!("127.0.0.1:{}", self.broker_port))
            .arg("--db-path")
            .arg(self.dir.path().join("db"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary().display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", self.broker_port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("pulsar-lite exited ({status}) before accepting connections:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "pulsar-lite did not accept connections within 30 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PulsarLite {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The pulsar-lite binary: `$PULSAR_LITE_BIN`, or the one `.ci/setup` installs.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PULSAR_LITE_BIN") {
        return path.into();
    }
    let lib = super::repo().join(".venv/lib");
    let found = std::fs::read_dir(&lib).into_iter().flatten().flatten().find_map(|python| {
        let path = python.path().join("site-packages/pulsar_lite/bin/pulsar-lite");
        path.exists().then_some(path)
    });
    found.unwrap_or_else(|| panic!("no pulsar-lite under {}: run .ci/setup (or set PULSAR_LITE_BIN)", lib.display()))
}

fn options(url: String) -> bootstrap_wasm::broker::pulsar::PulsarOptions {
    bootstrap_wasm::broker::pulsar::PulsarOptions::new(url)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The lookup-rewriting relay in front of the broker.
struct Relay {
    port: u16,
    shared: Arc<RelayShared>,
}

struct RelayShared {
    broker: SocketAddr,
    /// What lookups answer instead of the broker's address.
    own_url: String,
    paused: AtomicBool,
    closed: AtomicBool,
    /// Both sockets of every open connection, to cut them.
    connections: Mutex<Vec<TcpStream>>,
}

impl Relay {
    fn start(broker: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(RelayShared {
            broker,
            own_url: format!("pulsar://127.0.0.1:{port}"),
            paused: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            connections: Mutex::default(),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.closed.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if accepting.paused.load(Ordering::SeqCst) {
                    continue; // Dropped: the client sees its connection closed.
                }
                let Ok(broker) = TcpStream::connect(accepting.broker) else { continue };
                let _ = client.set_nodelay(true);
                let _ = broker.set_nodelay(true);
                relay_connection(client, broker, &accepting);
            }
        });
        Self { port, shared }
    }

    /// Close every open connection.
    fn cut(&self) {
        for socket in self.shared.connections.lock().unwrap().drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.cut();
        // Wake the acceptor so that it sees `closed`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn relay_connection(client: TcpStream, broker: TcpStream, shared: &Arc<RelayShared>) {
    shared.connections.lock().unwrap().extend([client.try_clone().unwrap(), broker.try_clone().unwrap()]);
    let (mut client_in, mut broker_out) = (client.try_clone().unwrap(), broker.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = io::copy(&mut client_in, &mut broker_out);
        let _ = broker_out.shutdown(Shutdown::Both);
        let _ = client_in.shutdown(Shutdown::Both);
    });
    let own_url = shared.own_url.clone();
    let (mut broker_in, mut client_out) = (broker, client);
    std::thread::spawn(move || {
        let _ = forward_frames(&mut broker_in, &mut client_out, &own_url);
        let _ = client_out.shutdown(Shutdown::Both);
        let _ = broker_in.shutdown(Shutdown::Both);
    });
}

/// Copy the broker's frames to the client, lookups rewritten, until either side closes.
fn forward_frames(from: &mut TcpStream, to: &mut TcpStream, own_url: &str) -> io::Result<()> {
    loop {
        let mut size = [0; 4];
        from.read_exact(&mut size)?;
        let mut frame = vec![0; u32::from_be_bytes(size) as usize];
        from.read_exact(&mut frame)?;
        let frame = rewrite_lookup(&frame, own_url).unwrap_or(frame);
        to.write_all(&(frame.len() as u32).to_be_bytes())?;
        to.write_all(&frame)?;
    }
}

/// One frame from the broker (without its leading total size), if it is a lookup answer naming
/// the broker: the same answer naming `own_url` instead.
///
/// A frame is `[command size: u32][command]`, and message frames continue after the command;
/// lookup answers do not.
pub fn rewrite_lookup(frame: &[u8], own_url: &str) -> Option<Vec<u8>> {
    let command_size = u32::from_be_bytes(frame.get(..4)?.try_into().unwrap()) as usize;
    if frame.len() != 4 + command_size {
        return None;
    }
    let mut decoded = BaseCommand::decode(&frame[4..]).ok()?;
    if decoded.r#type != CommandType::LookupResponse as i32 {
        return None;
    }
    let answer = decoded.lookup_topic_response.as_mut()?;
    answer.broker_service_url.as_ref()?;
    answer.broker_service_url = Some(own_url.to_owned());
    let command = decoded.encode_to_vec();
    Some([&(command.len() as u32).to_be_bytes()[..], &command].concat())
}
