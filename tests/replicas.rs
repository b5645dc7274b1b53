//! One active replica, on every backend: two real `bootstrap-wasm` processes on one deployment.
//! While both live, only the lease holder runs initialisers and the other says it is on
//! standby; after the holder is SIGKILLed, the standby takes the lease and runs. The runs of
//! the two never interleave in time (compared by their log lines' timestamps). On the brokers,
//! a replica whose broker goes away loses the lease, runs nothing, and takes it again when the
//! broker is back.
//!
//! The initialiser is the `probe` test component with `fail: true`: it fails every run, so it
//! runs again on every wake (every `--init-retry`, 200 ms here) for as long as its replica is
//! active. Each test prints how long the takeover took, from the SIGKILL to the standby's
//! "lease acquired" (docs/design.md quotes the figures).

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bootstrap_wasm::services::broker::Transport;
use bootstrap_wasm::services::broker::pulsar::{PulsarOptions, PulsarTransport};
use bootstrap_wasm::services::broker::rabbitmq::{RabbitOptions, RabbitTransport};
use bootstrap_wasm::services::embedded::EmbeddedServices;
use serde_json::json;
use support::peer::{Behaviour, ServicePeer};
use support::pulsar::PulsarLite;
use support::rabbitmq::{Relay, TestVhost};
use support::{Scratch, bin, entry};

/// A guard against hanging, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(90);

/// What a replica logs as it starts a run.
const RUN_LINE: &str = "running (old_flag=";

/// One `bootstrap-wasm` process, its log in a file; killed when dropped.
struct Replica {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Replica {
    fn start(name: &'static str, scratch: &Scratch, init: &Path, backend: &[String]) -> Self {
        let log = scratch.path(&format!("{name}.log"));
        let child = bin()
            .arg("-c")
            .arg(init)
            .args(backend)
            .args(["--gate-backoff", "1s", "--init-retry", "200ms", "--steady-interval", "200ms"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { name, child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The timestamps of the log lines containing `text`.
    fn times_of(&self, text: &str) -> Vec<SystemTime> {
        self.log().lines().filter(|line| line.contains(text)).map(timestamp).collect()
    }

    fn runs(&self) -> Vec<SystemTime> {
        self.times_of(RUN_LINE)
    }

    /// Wait until `done` holds of the log; panics, with the log, after [`PATIENCE`].
    async fn wait_for(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(self) {
            assert!(Instant::now() < deadline, "replica {} never {what}; its log:\n{}", self.name, self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, and when it was sent.
    fn kill(&mut self) -> SystemTime {
        let at = SystemTime::now();
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        at
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A log line's timestamp: its first word, RFC 3339 in UTC.
fn timestamp(line: &str) -> SystemTime {
    let word = line.split_whitespace().next().unwrap_or_default();
    humantime::parse_rfc3339(word).unwrap_or_else(|e| panic!("no timestamp on {line:?}: {e}"))
}

/// An init file whose probe fails, and so runs again, on every wake.
fn failing_probe(scratch: &Scratch) -> PathBuf {
    let mut probe = entry("probe", "probe", json!({"workspace": "probed", "fail": true}));
    probe["grants"] = json!({"config": {"write": ["probed"]}});
    scratch.init_file(&[probe])
}

/// The scenario, on a deployment reached with `backend` (the binary's arguments).
async fn one_replica_runs_and_the_standby_takes_over(label: &str, scratch: &Scratch, backend: &[String]) {
    let init = failing_probe(scratch);
    let mut first = Replica::start("first", scratch, &init, backend);
    first.wait_for("took the lease and ran", |r| r.log().contains("lease acquired") && !r.runs().is_empty()).await;
    let second = Replica::start("second", scratch, &init, backend);
    second.wait_for("said it is on standby", |r| r.log().contains("standby: another replica holds the lease")).await;
    // The holder keeps running while the standby waits.
    let runs_before = first.runs().len();
    first.wait_for("ran twice more beside the standby", |r| r.runs().len() >= runs_before + 2).await;
    assert!(second.runs().is_empty(), "the standby ran while the holder lived:\n{}", second.log());
    assert!(!second.log().contains("lease acquired"), "both held the lease:\n{}", second.log());
    assert!(!first.log().contains("lease lost"), "the newcomer took the lease from the holder:\n{}", first.log());

    let killed_at = first.kill();
    second.wait_for("took over and ran", |r| !r.runs().is_empty()).await;

    let acquired = second.times_of("lease acquired");
    assert_eq!(acquired.len(), 1, "{}", second.log());
    let takeover = acquired[0].duration_since(killed_at).unwrap_or_default();
    println!("{label}: the standby took the lease {} ms after the holder's SIGKILL", takeover.as_millis());

    // No overlap: every run of the first started before any run of the second, and the second
    // ran only once it held the lease.
    let last_of_first = *first.runs().last().unwrap();
    let first_of_second = second.runs()[0];
    assert!(last_of_first < first_of_second, "runs interleaved:\n{}\n---\n{}", first.log(), second.log());
    assert!(acquired[0] <= first_of_second, "the second ran before it held the lease:\n{}", second.log());
}

/// One replica whose broker goes away (`go_away`) and comes back (`come_back`).
async fn a_lost_lease_stops_the_runs_until_it_is_taken_again(
    scratch: &Scratch,
    backend: &[String],
    go_away: impl FnOnce(),
    come_back: impl FnOnce(),
) {
    let replica = Replica::start("only", scratch, &failing_probe(scratch), backend);
    replica.wait_for("took the lease and ran", |r| r.log().contains("lease acquired") && !r.runs().is_empty()).await;
    go_away();
    replica.wait_for("lost the lease", |r| r.log().contains("lease lost")).await;
    come_back();
    replica
        .wait_for("took the lease again and ran", |r| {
            let acquired = r.times_of("lease acquired");
            acquired.len() == 2 && r.runs().last().is_some_and(|run| *run > acquired[1])
        })
        .await;
    let lost = replica.times_of("lease lost")[0];
    let again = replica.times_of("lease acquired")[1];
    let runs_between = replica.runs().into_iter().filter(|run| lost < *run && *run < again).count();
    assert_eq!(runs_between, 0, "ran without the lease:\n{}", replica.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded() {
    let scratch = Scratch::new();
    let backend = ["--pubsub-backend".to_owned(), "embedded".into(), "--state".into(), path_arg(&scratch.state())];
    one_replica_runs_and_the_standby_takes_over("embedded", &scratch, &backend).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pulsar() {
    let scratch = Scratch::new();
    let (broker, _peer, backend) = pulsar_deployment(&scratch).await;
    one_replica_runs_and_the_standby_takes_over("pulsar", &scratch, &backend).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq() {
    let scratch = Scratch::new();
    let vhost = TestVhost::create();
    let _peer = peer(Arc::new(RabbitTransport::new(vhost.options())), &scratch).await;
    let backend = rabbitmq_args(&vhost.options());
    one_replica_runs_and_the_standby_takes_over("rabbitmq", &scratch, &backend).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pulsar_lease_lost_and_taken_again() {
    let scratch = Scratch::new();
    let (broker, _peer, backend) = pulsar_deployment(&scratch).await;
    a_lost_lease_stops_the_runs_until_it_is_taken_again(&scratch, &backend, || broker.pause(), || broker.resume())
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_lease_lost_and_taken_again() {
    let scratch = Scratch::new();
    let vhost = TestVhost::create();
    let relay = Relay::start();
    // The peer reaches the server directly; the replica through the relay, which is cut.
    let _peer = peer(Arc::new(RabbitTransport::new(vhost.options())), &scratch).await;
    let backend = rabbitmq_args(&vhost.options_via(&relay));
    a_lost_lease_stops_the_runs_until_it_is_taken_again(&scratch, &backend, || relay.cut(), || relay.restore()).await;
}

/// pulsar-lite with config-svc and flow-svc on it, and the binary's arguments to reach it.
async fn pulsar_deployment(scratch: &Scratch) -> (PulsarLite, ServicePeer, Vec<String>) {
    let broker = PulsarLite::start();
    let options = PulsarOptions { url: broker.url(), api_key: None, listener: None, tcp_nodelay: true };
    let peer = peer(Arc::new(PulsarTransport::new(options)), scratch).await;
    let backend = vec!["--pubsub-backend".to_owned(), "pulsar".into(), "-p".into(), broker.url()];
    (broker, peer, backend)
}

/// The binary's arguments for the RabbitMQ server of `options`.
fn rabbitmq_args(options: &RabbitOptions) -> Vec<String> {
    let port = options.port.to_string();
    let pairs = [("host", options.host.as_str()), ("port", &port), ("vhost", &options.vhost)];
    let mut args = vec!["--pubsub-backend".to_owned(), "rabbitmq".to_owned()];
    args.extend(pairs.iter().flat_map(|(name, value)| [format!("--rabbitmq-{name}"), (*value).to_owned()]));
    args
}

/// config-svc and flow-svc for the replicas, over `transport`, on a store of their own.
async fn peer(transport: Arc<dyn Transport>, scratch: &Scratch) -> ServicePeer {
    let store = EmbeddedServices::open(&scratch.path("peer.redb")).unwrap();
    ServicePeer::start(transport, store, Behaviour::default()).await
}

fn path_arg(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}
