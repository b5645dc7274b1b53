//! A real Apache Pulsar for the tests: Pulsar 4.2.4's standalone broker (broker, one bookie and
//! a RocksDB metadata store in one JVM) and, in front of it when a test asks, a Pulsar proxy,
//! from Maven Central's jars (fetched into `<repo>/.pulsar/` by `.ci/setup`), run on the
//! machine's Java in a scratch directory, on free loopback ports, with no Docker.
//!
//! A broker is heavy: measured on this kind of machine (2 cores), it serves 4 s after it is
//! started (3 s of CPU with the class data sharing archive `.ci/setup` makes, 5 s without), and
//! holds about 260 MB resident once started, 300 to 400 MB once tests have used it. So a
//! test binary shares one ([`ApachePulsar::shared`]), started on first use and killed as the
//! test process exits; its tests use tenants or topic names of their own, to run in parallel.
//! The `tg` tenant is the exception: TrustGraph's queue names are fixed, so a test that uses
//! it holds [`ApachePulsar::tg`] for its duration. The proxy (Pulsar 4.0.8's, the only one
//! Maven Central serves here; see `.ci/setup`) starts in about 2 s and holds about 130 MB.
//!
//! Every JVM is started from one thread that lives as long as the test process, with SIGKILL
//! as its parent-death signal (`PR_SET_PDEATHSIG`): however the test process ends, even
//! killed, no broker outlives it. (The signal follows the thread that spawned the child, not
//! the process, hence the one long-lived thread rather than the test's own.)
//!
//! The admin REST API is reached with a small blocking HTTP/1.1 client of its own:
//! [`ApachePulsar::admin`], and helpers for the calls the tests make.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::kafka::log4j_properties;

/// The broker's JVM options (`.ci/setup` makes its class data sharing archive with the same):
/// a small heap, the serial collector and the quick (C1) compiler only, the quickest to start
/// on 2 cores, as for Kafka (`super::kafka`).
const BROKER_JVM_OPTIONS: &[&str] =
    &["-Xmx512m", "-Xms64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData"];

/// The proxy's: the same, with a smaller heap.
const PROXY_JVM_OPTIONS: &[&str] =
    &["-Xmx256m", "-Xms32m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData"];

/// How long a start may take before the test gives up: a guard against a hang, generous for
/// a machine busy with other tests.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How long one admin call may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The cluster the standalone registers, which tenants must allow.
pub const CLUSTER: &str = "standalone";

/// A running standalone Pulsar; killed, and its directory removed, when dropped (or, for
/// [`Self::shared`], when the test process exits).
pub struct ApachePulsar {
    dir: tempfile::TempDir,
    broker_port: u16,
    web_port: u16,
    child: Mutex<Option<Child>>,
}

/// The broker [`ApachePulsar::shared`] hands out; stopped by [`stop_shared`] at exit.
static SHARED: OnceLock<ApachePulsar> = OnceLock::new();

impl ApachePulsar {
    /// The test binary's broker, started on first use.
    pub fn shared() -> &'static Self {
        SHARED.get_or_init(|| {
            let broker = Self::start();
            // SAFETY: registers a plain function, which only kills our own child and removes
            // its directory.
            unsafe { libc::atexit(stop_shared) };
            broker
        })
    }

    /// Start a broker of its own; returns once it serves clients and its admin API, the
    /// `public/default` namespace created.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let [broker_port, web_port, bookie_port] = free_ports();
        let broker = Self { dir, broker_port, web_port, child: Mutex::new(None) };
        std::fs::write(broker.path("standalone.conf"), broker.config()).unwrap();
        std::fs::write(broker.path("log4j2.properties"), log4j_properties(&broker.path("pulsar.log"))).unwrap();

        let libs = libs(".pulsar/4.2.4");
        let mut command = java(BROKER_JVM_OPTIONS, &libs, broker.dir.path());
        // The classes a broker loads as it starts, archived by `.ci/setup`: a start takes
        // 3 s of CPU instead of 5. A JVM that cannot use the archive says so in the log and
        // starts without it.
        let archive = libs.with_file_name("pulsar.jsa");
        if archive.exists() {
            command.arg(format!("-XX:SharedArchiveFile={}", archive.display()));
        }
        command
            .arg("org.apache.pulsar.PulsarStandaloneStarter")
            .arg("--config")
            .arg(broker.path("standalone.conf"))
            // Neither Pulsar Functions nor the table service: the tests use neither.
            .args(["--no-functions-worker", "--no-stream-storage"])
            .args(["--bookkeeper-port", &bookie_port.to_string()])
            .arg("--bookkeeper-dir")
            .arg(broker.path("data/bookkeeper"))
            .arg("--metadata-dir")
            .arg(broker.path("data/metadata"))
            .current_dir(broker.dir.path());
        *broker.child.lock().unwrap() = Some(spawn_tied(command, &broker.path("pulsar.log")));

        let ready = || {
            let (status, body) = broker.admin("GET", "/admin/v2/namespaces/public", None).ok()?;
            (status == 200 && body.contains("public/default")).then_some(())
        };
        broker.wait_until("Apache Pulsar", ready);
        broker
    }

    /// Where clients connect: `pulsar://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("pulsar://127.0.0.1:{}", self.broker_port)
    }

    /// The admin REST API (and lookups over HTTP): `http://127.0.0.1:PORT`.
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.web_port)
    }

    /// Call the admin REST API: `method` on `path` (from `/admin/...`), with a JSON `body`;
    /// returns the status and the body of the answer.
    pub fn admin(&self, method: &str, path: &str, body: Option<&str>) -> io::Result<(u16, String)> {
        http(self.web_port, method, path, body)
    }

    /// Create `tenant` (allowed on the standalone's cluster) and `tenant/namespace`, unless
    /// they exist.
    pub fn create_tenant_and_namespace(&self, tenant: &str, namespace: &str) {
        let tenant_body = format!(r#"{{"adminRoles":[],"allowedClusters":["{CLUSTER}"]}}"#);
        self.admin_expecting("PUT", &format!("/admin/v2/tenants/{tenant}"), Some(&tenant_body), &[204, 409]);
        self.admin_expecting("PUT", &format!("/admin/v2/namespaces/{tenant}/{namespace}"), Some("{}"), &[204, 409]);
    }

    /// The namespaces of `tenant`, as `tenant/namespace`; none if the tenant does not exist.
    pub fn namespaces(&self, tenant: &str) -> Vec<String> {
        let (status, body) = self.admin("GET", &format!("/admin/v2/namespaces/{tenant}"), None).unwrap();
        if status != 200 {
            return Vec::new();
        }
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("namespaces of {tenant}: {e}: {body}"))
    }

    /// Create `topic` (`persistent://tenant/namespace/name`, or `non-persistent://...`) as a
    /// partitioned topic of `partitions` partitions.
    pub fn create_partitioned_topic(&self, topic: &str, partitions: u32) {
        let path = format!("{}/partitions", topic_path(topic));
        self.admin_expecting("PUT", &path, Some(&partitions.to_string()), &[204]);
    }

    /// Unload `topic` (`persistent://...` or `non-persistent://...`): the broker closes it,
    /// telling its producers and consumers (CLOSE_PRODUCER, CLOSE_CONSUMER), and loads it
    /// again at the next lookup, as it does when it moves a topic to another broker.
    pub fn unload_topic(&self, topic: &str) {
        self.admin_expecting("PUT", &format!("{}/unload", topic_path(topic)), None, &[204]);
    }

    /// The broker's statistics of `topic` (its producers, subscriptions and consumers), as
    /// JSON text, or why there are none: for a failure's message.
    pub fn topic_stats(&self, topic: &str) -> String {
        match self.admin("GET", &format!("{}/stats", topic_path(topic)), None) {
            Ok((200, body)) => body,
            answer => format!("no statistics: {answer:?}"),
        }
    }

    /// What the broker has logged so far: its own log (INFO) and anything the JVM printed.
    pub fn log(&self) -> String {
        read_log(&self.path("pulsar.log"))
    }

    /// The `tg` tenant, held: TrustGraph's services and the shared transport test bodies use
    /// fixed names in it (`request:tg:config`, `response:tg:echo`), so the tests that use it
    /// take turns on the shared broker. Creates nothing. (Tokio's lock, held across awaits;
    /// it works across the tests' runtimes.)
    pub async fn tg(&self) -> tokio::sync::MutexGuard<'static, ()> {
        static TG: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        TG.lock().await
    }

    fn admin_expecting(&self, method: &str, path: &str, body: Option<&str>, expected: &[u16]) {
        let answer = self.admin(method, path, body);
        match answer {
            Ok((status, _)) if expected.contains(&status) => {}
            _ => panic!("{method} {path}: {answer:?}, not one of {expected:?}"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The broker's settings, on top of Pulsar's defaults. The bookie is told its port on the
    /// command line; it binds the loopback interface only.
    fn config(&self) -> String {
        [
            format!("clusterName={CLUSTER}"),
            "bindAddress=127.0.0.1".to_owned(),
            "advertisedAddress=127.0.0.1".to_owned(),
            format!("brokerServicePort={}", self.broker_port),
            format!("webServicePort={}", self.web_port),
            // One bookie: every ledger on it alone (the defaults want two).
            "managedLedgerDefaultEnsembleSize=1".to_owned(),
            "managedLedgerDefaultWriteQuorum=1".to_owned(),
            "managedLedgerDefaultAckQuorum=1".to_owned(),
            "functionsWorkerEnabled=false".to_owned(),
            // Bookie settings (the standalone reads the same file for its bookie): the port
            // given, not one it picks itself, and on the loopback interface, not 0.0.0.0.
            "allowEphemeralPorts=true".to_owned(),
            "listeningInterface=lo".to_owned(),
            "allowLoopback=true".to_owned(),
        ]
        .join("\n")
            + "\n"
    }

    /// Wait until `ready` answers, the JVM alive; panics with the log's tail otherwise.
    fn wait_until(&self, what: &str, ready: impl Fn() -> Option<()>) {
        wait_for_child(&self.child, what, &self.path("pulsar.log"), ready);
    }

    fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ApachePulsar {
    fn drop(&mut self) {
        self.stop();
    }
}

/// At the test process's exit: kill the shared broker and remove its directory, which a
/// static's never-run drop would leave behind.
extern "C" fn stop_shared() {
    if let Some(broker) = SHARED.get() {
        broker.stop();
        let _ = std::fs::remove_dir_all(broker.dir.path());
    }
}

/// A Pulsar proxy in front of a broker; killed, and its directory removed, when dropped.
///
/// Lookups through it answer with the proxy's own address (`proxy_through_service_url`), and
/// a client then connects to the proxy, naming the broker it wants in its CONNECT
/// (`proxy_to_broker_url`).
pub struct ApachePulsarProxy {
    dir: tempfile::TempDir,
    port: u16,
    child: Mutex<Option<Child>>,
}

impl ApachePulsarProxy {
    /// Start a proxy for `broker`; returns once it serves clients (and its web port).
    pub fn start(broker: &ApachePulsar) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let [port, web_port] = free_ports();
        let proxy = Self { dir, port, child: Mutex::new(None) };
        let config = [
            format!("brokerServiceURL={}", broker.url()),
            format!("brokerWebServiceURL={}", broker.admin_url()),
            format!("servicePort={port}"),
            format!("webServicePort={web_port}"),
            "bindAddress=127.0.0.1".to_owned(),
            "advertisedAddress=127.0.0.1".to_owned(),
            format!("clusterName={CLUSTER}"),
            // The proxy connects only to brokers on ports 6650 and 6651 unless told otherwise.
            "brokerProxyAllowedTargetPorts=*".to_owned(),
        ]
        .join("\n")
            + "\n";
        std::fs::write(proxy.path("proxy.conf"), config).unwrap();
        std::fs::write(proxy.path("log4j2.properties"), log4j_properties(&proxy.path("proxy.log"))).unwrap();

        let mut command = java(PROXY_JVM_OPTIONS, &libs(".pulsar/proxy-4.0.8"), proxy.dir.path());
        command
            .arg("org.apache.pulsar.proxy.server.ProxyServiceStarter")
            .arg("--config")
            .arg(proxy.path("proxy.conf"))
            .current_dir(proxy.dir.path());
        *proxy.child.lock().unwrap() = Some(spawn_tied(command, &proxy.path("proxy.log")));

        // The service port opens first, the web server last, once the proxy is all started.
        let ready = || (accepts(port) && accepts(web_port)).then_some(());
        wait_for_child(&proxy.child, "the Pulsar proxy", &proxy.path("proxy.log"), ready);
        proxy
    }

    /// Where clients connect: `pulsar://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("pulsar://127.0.0.1:{}", self.port)
    }

    /// What the proxy has logged so far.
    pub fn log(&self) -> String {
        read_log(&self.path("proxy.log"))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for ApachePulsarProxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A set of jars `.ci/setup` fetched, under the repository; it writes `complete` beside them
/// last.
fn libs(set: &str) -> PathBuf {
    let libs = super::repo().join(set).join("libs");
    assert!(libs.with_file_name("complete").exists(), "no Pulsar jars in {}: run .ci/setup", libs.display());
    libs
}

/// `java` with `options`, the jars of `libs`, and the log configuration and a temporary
/// directory in `scratch`: the JVM unpacks native libraries (RocksDB's, 13 MB) into its
/// temporary directory and deletes them only if it exits cleanly, which a killed one does not.
fn java(options: &[&str], libs: &Path, scratch: &Path) -> Command {
    let java = std::env::var_os("JAVA_HOME").map_or_else(|| "java".into(), |home| Path::new(&home).join("bin/java"));
    let tmp = scratch.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut command = Command::new(java);
    command
        .args(options)
        .arg(format!("-Dlog4j2.configurationFile={}", scratch.join("log4j2.properties").display()))
        .arg(format!("-Djava.io.tmpdir={}", tmp.display()))
        .arg("-cp")
        .arg(libs.join("*"));
    command
}

/// Spawn `command`, its output appended to `log`, from the long-lived spawning thread (see
/// the module's documentation), to die with the test process.
fn spawn_tied(mut command: Command, log: &Path) -> Child {
    type Job = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, incoming) = mpsc::channel::<Job>();
        std::thread::spawn(move || {
            // Never ends while the process lives: the sender is in a static.
            for (mut command, reply) in incoming {
                let _ = reply.send(command.spawn());
            }
        });
        Mutex::new(jobs)
    });

    let output = OpenOptions::new().create(true).append(true).open(log).unwrap();
    // SAFETY: getpid, getppid and prctl are async-signal-safe; nothing is allocated.
    let parent = unsafe { libc::getpid() };
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the signal was asked for.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    command.stdin(Stdio::null()).stdout(output.try_clone().unwrap()).stderr(output);
    let program = command.get_program().to_owned();
    let (reply, answer) = mpsc::channel();
    spawner.lock().unwrap().send((command, reply)).unwrap();
    answer.recv().unwrap().unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

/// Wait until `ready` answers while the child in `child` lives; panics with the tail of `log`
/// if it exits first or does not get ready within [`START_TIMEOUT`].
fn wait_for_child(child: &Mutex<Option<Child>>, what: &str, log: &Path, ready: impl Fn() -> Option<()>) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.lock().unwrap().as_mut().unwrap().try_wait().unwrap() {
            panic!("{what} exited ({status}) before it served:\n{}", log_tail(log));
        }
        if ready().is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "{what} did not serve within {START_TIMEOUT:?}:\n{}", log_tail(log));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_log(log: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned()
}

/// The end of a log, for a failure's message: a whole start's runs to hundreds of lines.
fn log_tail(log: &Path) -> String {
    let log = read_log(log);
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}

/// `N` distinct free loopback ports (all held at once, so they differ).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// Whether something accepts connections on loopback `port`.
fn accepts(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// The admin API's path of `topic`: `persistent://t/ns/name` is
/// `/admin/v2/persistent/t/ns/name`, the name percent-encoded.
fn topic_path(topic: &str) -> String {
    let (domain, rest) = topic.split_once("://").unwrap_or_else(|| panic!("{topic} is not a full topic name"));
    let mut parts = rest.splitn(3, '/');
    let (tenant, namespace, name) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let encoded: String = name
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("/admin/v2/{domain}/{tenant}/{namespace}/{encoded}")
}

/// One HTTP/1.1 request to `127.0.0.1:port`, on a connection of its own; returns the status
/// and the body (chunked bodies decoded).
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(ADMIN_TIMEOUT))?;
    stream.set_write_timeout(Some(ADMIN_TIMEOUT))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {answer}"));
    let (head, body) = answer.split_once("\r\n\r\n").ok_or_else(|| invalid("no end of headers"))?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| invalid("no status"))?;
    let chunked = head.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding") && value.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = if chunked { dechunk(body).ok_or_else(|| invalid("bad chunks"))? } else { body.to_owned() };
    Ok((status, body))
}

/// A chunked body, decoded.
fn dechunk(mut body: &str) -> Option<String> {
    let mut decoded = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(decoded);
        }
        decoded.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}
