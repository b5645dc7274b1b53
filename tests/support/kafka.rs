//! A real Apache Kafka broker for the tests: Kafka 4.4.0 from Maven Central's jars (fetched
//! into `<repo>/.kafka/4.4.0/libs` by `.ci/setup`), run on the machine's Java as a single KRaft
//! node (broker and controller in one JVM) in a scratch directory, on free loopback ports.
//!
//! Each [`Kafka`] is a cluster of its own, formatted afresh, so tests running in parallel never
//! share topics or groups. It can be killed and started again on the same ports and data, and
//! frozen, to play the broker going away mid-cycle.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The JVM's options: a small heap, the serial collector and the quick (C1) compiler only,
/// measured the quickest to start on 2 cores: a node serves in 1.9 s on 2.4 s of CPU, where a
/// 1 GB heap under G1 with both compilers takes 2.5 s on 4 s; about 290 MB resident.
const JVM_OPTIONS: &[&str] =
    &["-Xmx384m", "-Xms64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData"];

/// How long a start may take before the test gives up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running single-node Kafka; killed, and its directory removed, when dropped.
pub struct Kafka {
    dir: tempfile::TempDir,
    /// The PLAINTEXT listener, for clients.
    port: u16,
    /// The KRaft controller's listener.
    controller_port: u16,
    child: Option<Child>,
}

impl Kafka {
    /// Format a new cluster and start its node; returns once it serves clients, consumer
    /// groups included.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (port, controller_port) = free_ports();
        let mut kafka = Self { dir, port, controller_port, child: None };
        std::fs::write(kafka.path("server.properties"), kafka.server_properties()).unwrap();
        std::fs::write(kafka.path("log4j2.properties"), kafka_log4j_properties(&kafka.path("kafka.log"))).unwrap();
        kafka.format();
        kafka.launch();
        kafka
    }

    /// Where clients connect: `127.0.0.1:PORT`.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kill the node (SIGKILL: no controlled shutdown) and wait for it to die; its data stays
    /// for [`Self::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the node again, on the same ports and data; returns once it serves clients.
    ///
    /// After a kill, the controller holds the dead node's registration until its session
    /// expires (`broker.session.timeout.ms`, 2 s here, 9 s by default), so a restart takes
    /// about 2 s longer than a start: 3 s in all.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Freeze the node (SIGSTOP): its connections stay open but nothing answers. After more
    /// than a session (2 s), the controller, frozen with it, finds the node's session expired
    /// when it resumes, and fences it for a few milliseconds until its next heartbeat.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Let the node run again after [`Self::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// What Kafka has logged so far, in every start: its own log (INFO), the storage
    /// formatter's output and anything the JVM printed.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.path("kafka.log")).unwrap_or_default()).into_owned()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn server_properties(&self) -> String {
        let (port, controller_port) = (self.port, self.controller_port);
        let data = self.path("data");
        [
            "process.roles=broker,controller".to_owned(),
            "node.id=1".to_owned(),
            format!("listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"),
            format!("advertised.listeners=PLAINTEXT://127.0.0.1:{port}"),
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".to_owned(),
            "controller.listener.names=CONTROLLER".to_owned(),
            "inter.broker.listener.name=PLAINTEXT".to_owned(),
            // A static quorum of this one node.
            format!("controller.quorum.voters=1@127.0.0.1:{controller_port}"),
            format!("log.dirs={}", data.display()),
            // One replica of everything, and one partition: the internal topics are created
            // (and loaded) at first use, which 50 partitions would slow.
            "offsets.topic.replication.factor=1".to_owned(),
            "offsets.topic.num.partitions=1".to_owned(),
            "transaction.state.log.replication.factor=1".to_owned(),
            "transaction.state.log.min.isr=1".to_owned(),
            "transaction.state.log.num.partitions=1".to_owned(),
            "share.coordinator.state.topic.replication.factor=1".to_owned(),
            "share.coordinator.state.topic.min.isr=1".to_owned(),
            "share.coordinator.state.topic.num.partitions=1".to_owned(),
            "num.partitions=1".to_owned(),
            "auto.create.topics.enable=true".to_owned(),
            // Otherwise every new consumer group waits 3 s for more members before its first
            // assignment.
            "group.initial.rebalance.delay.ms=0".to_owned(),
            // A killed node's registration outlives it for a session; restarted, the node waits
            // for it to expire, polling at the heartbeat interval (9 s and 2 s by default).
            "broker.session.timeout.ms=2000".to_owned(),
            "broker.heartbeat.interval.ms=250".to_owned(),
        ]
        .join("\n")
            + "\n"
    }

    /// `kafka-storage format` for a new cluster: a node starts only on a formatted log dir.
    fn format(&self) {
        let status = self
            .jvm()
            .args(["kafka.tools.StorageTool", "format", "--cluster-id", &cluster_id(), "--config"])
            .arg(self.path("server.properties"))
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", java().display()));
        assert!(status.success(), "formatting Kafka's storage failed ({status}):\n{}", self.log());
    }

    fn launch(&mut self) {
        let log_start = self.log().len();
        let child = self
            .jvm()
            .arg("kafka.Kafka")
            .arg(self.path("server.properties"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", java().display()));
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let mut started = false;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("Kafka exited ({status}) before serving clients:\n{}", self.log_tail());
            }
            // The line follows the PLAINTEXT listener's start; a group's coordinator is ready
            // later (see `coordinator_ready`).
            started = started || self.log().get(log_start..).is_some_and(|new| new.contains("Kafka Server started"));
            if started && coordinator_ready(self.port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Kafka did not serve clients within {START_TIMEOUT:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `java` with the JVM's options, the jars and the log configuration, its output appended
    /// to the log.
    fn jvm(&self) -> Command {
        let libs = libs();
        let mut command = Command::new(java());
        command.args(JVM_OPTIONS);
        // The classes a node loads, archived by `.ci/setup` (class data sharing): a format
        // and a start take 1.7 s instead of 2.7 s. A JVM that cannot use the archive says so
        // in the log and starts without it.
        let archive = libs.with_file_name("kafka.jsa");
        if archive.exists() {
            command.arg(format!("-XX:SharedArchiveFile={}", archive.display()));
        }
        let log = OpenOptions::new().create(true).append(true).open(self.path("kafka.log")).unwrap();
        command
            .arg(format!("-Dlog4j2.configurationFile={}", self.path("log4j2.properties").display()))
            .arg("-cp")
            .arg(libs.join("*"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        command
    }

    /// The end of the log, for a failure's message: the whole log of a start runs to
    /// hundreds of lines.
    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("Kafka is not running");
        // SAFETY: kill only sends a signal, to our own child, which is not yet reaped.
        let sent = unsafe { libc::kill(libc::pid_t::try_from(child.id()).unwrap(), signal) };
        assert_eq!(sent, 0, "kill failed: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kafka's jars, fetched by `.ci/setup`; it writes `complete` beside them last.
fn libs() -> PathBuf {
    let libs = super::repo().join(".kafka/4.4.0/libs");
    assert!(libs.with_file_name("complete").exists(), "no Kafka jars in {}: run .ci/setup", libs.display());
    libs
}

/// `$JAVA_HOME/bin/java`, or `java` on the PATH.
fn java() -> PathBuf {
    std::env::var_os("JAVA_HOME").map_or_else(|| "java".into(), |home| Path::new(&home).join("bin/java"))
}

/// Kafka's log configuration: [`log4j_properties`], without the settings Kafka lists at every
/// start.
fn kafka_log4j_properties(log: &Path) -> String {
    log4j_properties(log)
        + "logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"
}

/// A JVM's Log4j 2 configuration: INFO and up to `log`, appended.
pub fn log4j_properties(log: &Path) -> String {
    format!(
        "status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {}
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
",
        log.display()
    )
}

/// Two distinct free loopback ports (both held at once, so they differ).
fn free_ports() -> (u16, u16) {
    let first = TcpListener::bind("127.0.0.1:0").unwrap();
    let second = TcpListener::bind("127.0.0.1:0").unwrap();
    (first.local_addr().unwrap().port(), second.local_addr().unwrap().port())
}

/// A random cluster id as Kafka writes one: 16 bytes, URL-safe base64 without padding, and not
/// starting with `-` (which the formatter's command line would take for an option).
fn cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut random = std::fs::File::open("/dev/urandom").unwrap();
    loop {
        let mut bytes = [0u8; 16];
        random.read_exact(&mut bytes).unwrap();
        let (mut id, mut bits, mut count) = (String::new(), 0u32, 0);
        for byte in bytes {
            (bits, count) = ((bits << 8 | u32::from(byte)) & 0xffff, count + 8);
            while count >= 6 {
                count -= 6;
                id.push(ALPHABET[(bits >> count & 63) as usize] as char);
            }
        }
        id.push(ALPHABET[(bits << (6 - count) & 63) as usize] as char); // The last 2 bits.
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// Whether the node's group coordinator is ready: a FindCoordinator request (version 1, for
/// any group: they all live in the one partition of `__consumer_offsets`) answered without an
/// error. The first such request creates `__consumer_offsets`; until it is loaded, the answer
/// is an error, and a client that gets one (librdkafka, under confluent-kafka and rdkafka)
/// asks again only 3 s later: asked here, the first consumer group of a new node gets its
/// first assignment in about 0.1 s, not 3 s.
fn coordinator_ready(port: u16) -> bool {
    let ask = || -> std::io::Result<bool> {
        let timeout = Duration::from_secs(5);
        let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        let (client, group) = (b"kafka-test-support", b"kafka-test-support");
        let mut request = Vec::new();
        request.extend(10i16.to_be_bytes()); // API key: FindCoordinator.
        request.extend(1i16.to_be_bytes()); // API version.
        request.extend(1i32.to_be_bytes()); // Correlation id.
        request.extend((client.len() as i16).to_be_bytes());
        request.extend(client);
        request.extend((group.len() as i16).to_be_bytes());
        request.extend(group);
        request.push(0); // Key type: a group.
        stream.write_all(&[&(request.len() as i32).to_be_bytes()[..], &request].concat())?;
        // The answer: size, correlation id, throttle time, error code, ...
        let mut answer = [0u8; 14];
        stream.read_exact(&mut answer)?;
        Ok(i16::from_be_bytes([answer[12], answer[13]]) == 0)
    };
    ask().unwrap_or(false)
}
