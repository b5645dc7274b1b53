//! RabbitMQ for the tests: the machine's server (started if it is down), a fresh virtual host
//! per test so tests running in parallel do not see each other's exchanges and queues, and a
//! TCP relay in front of the server whose connections can be cut, to play the broker going
//! away without stopping the server the other tests share.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use bootstrap_wasm::broker::rabbitmq::RabbitOptions;

/// The machine's RabbitMQ server.
const HOST: &str = "127.0.0.1";
const PORT: u16 = 5672;

/// Run `rabbitmqctl args`; its standard output if it succeeded.
fn rabbitmqctl(args: &[&str]) -> Result<String, String> {
    let output = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run rabbitmqctl: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("rabbitmqctl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr)))
    }
}

/// Make sure the server runs, starting it if need be; once per test process.
fn ensure_server() {
    static CHECKED: Once = Once::new();
    CHECKED.call_once(|| {
        if rabbitmqctl(&["status"]).is_ok() {
            return;
        }
        let started = Command::new("rabbitmq-server").arg("-detached").status().expect("cannot run rabbitmq-server");
        assert!(started.success(), "rabbitmq-server -detached failed");
        // The node takes a few seconds to come up; bounded, so a broken server fails the tests.
        for _ in 0..90 {
            if rabbitmqctl(&["await_startup", "--timeout", "5"]).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        panic!("RabbitMQ did not start: {}", rabbitmqctl(&["status"]).unwrap_err());
    });
}

/// The binary's backend options for the server at `options`.
pub fn backend_args(options: RabbitOptions) -> Vec<String> {
    vec![
        "--pubsub-backend".into(),
        "rabbitmq".into(),
        "--rabbitmq-host".into(),
        options.host,
        "--rabbitmq-port".into(),
        options.port.to_string(),
        "--rabbitmq-vhost".into(),
        options.vhost,
    ]
}

/// A virtual host of its own for one test, deleted (with all in it) when dropped.
pub struct TestVhost {
    name: String,
}

impl TestVhost {
    pub fn create() -> Self {
        ensure_server();
        let name = format!("test-{}", uuid::Uuid::new_v4());
        rabbitmqctl(&["add_vhost", &name]).unwrap();
        let vhost = Self { name };
        rabbitmqctl(&["set_permissions", "-p", &vhost.name, "guest", ".*", ".*", ".*"]).unwrap();
        vhost
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Options for the server itself, as guest, in this vhost.
    pub fn options(&self) -> RabbitOptions {
        self.options_on_port(PORT)
    }

    /// Options for reaching the server through `relay`.
    pub fn options_via(&self, relay: &Relay) -> RabbitOptions {
        self.options_on_port(relay.port())
    }

    fn options_on_port(&self, port: u16) -> RabbitOptions {
        RabbitOptions {
            host: HOST.into(),
            port,
            username: "guest".into(),
            password: "guest".into(),
            vhost: self.name.clone(),
        }
    }

    /// `rabbitmqctl list_<what> -p <vhost> <columns>`: one line per item, columns tab-separated.
    pub fn list(&self, what: &str, columns: &[&str]) -> Vec<String> {
        let command = format!("list_{what}");
        let mut args = vec![command.as_str(), "-p", &self.name, "--no-table-headers"];
        args.extend_from_slice(columns);
        rabbitmqctl(&args).unwrap().lines().map(str::to_owned).collect()
    }

    /// How many client connections the server has open in this vhost.
    pub fn connections(&self) -> usize {
        let listed = rabbitmqctl(&["list_connections", "--no-table-headers", "vhost"]).unwrap();
        listed.lines().filter(|line| line.trim() == self.name).count()
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        if let Err(e) = rabbitmqctl(&["delete_vhost", &self.name]) {
            eprintln!("cannot delete test vhost {}: {e}", self.name);
        }
    }
}

/// A plain TCP relay on a free loopback port in front of the RabbitMQ server. While cut, it
/// has closed every connection it carried and closes each new one at once.
pub struct Relay {
    port: u16,
    state: Arc<Mutex<RelayState>>,
}

#[derive(Default)]
struct RelayState {
    cut: bool,
    /// Both ends of every connection carried, to shut them down on a cut.
    sockets: Vec<TcpStream>,
}

impl Relay {
    pub fn start() -> Self {
        let listener = TcpListener::bind((HOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(RelayState::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                carry(client, &shared);
            }
        });
        Self { port, state }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Close every connection and refuse new ones, as if the broker went away.
    pub fn cut(&self) {
        let mut state = self.state.lock().unwrap();
        state.cut = true;
        for socket in state.sockets.drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    /// Carry new connections again.
    pub fn restore(&self) {
        self.state.lock().unwrap().cut = false;
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The accepting thread lives on with the process; this just stops it carrying.
        self.cut();
    }
}

/// Relay one client connection to the server, both ways, until either end closes.
fn carry(client: TcpStream, state: &Mutex<RelayState>) {
    let mut state = state.lock().unwrap();
    if state.cut {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(server) = TcpStream::connect((HOST, PORT)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    state.sockets.push(client.try_clone().unwrap());
    state.sockets.push(server.try_clone().unwrap());
    pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
    pipe(server, client);
}

/// Copy `from` to `to` on a thread of its own; when `from` ends, shut both down so the other
/// direction ends too.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
