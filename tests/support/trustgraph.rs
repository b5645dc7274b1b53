//! TrustGraph's own services, started for one test or bench, on its broker (a RabbitMQ vhost,
//! pulsar-lite or Apache Kafka), at either version the runtime speaks to:
//! - 2.4.4 (the legacy protocol): config-svc and flow-svc of trustgraph-flow 2.4.4 from PyPI,
//!   installed by `.ci/setup` in `.venv-trustgraph-2.4.4`;
//! - 2.11.1 (the workspace protocol): config-svc, flow-svc and no-auth-svc (as IAM) of
//!   trustgraph-flow 2.11.1, in `.venv-trustgraph`.
//!
//! `trustgraph_services.py` runs each as upstream's own process, except that config-svc keeps
//! its table in memory instead of Cassandra. They stop when dropped.
//!
//! A service is taken to serve once it logs a given line, and on Kafka, where no line tells,
//! once it has answered a read on its request queue (`Version::probe`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bootstrap_wasm::broker::kafka::{KafkaOptions, KafkaTransport};
use bootstrap_wasm::broker::{Queue, RequestResponse, Transport as _};
use bootstrap_wasm::services::wire::{IamOperation, IamRequest};
use bootstrap_wasm::services::{ConfigRequest, FlowOperation, FlowRequest, ServiceError};
use serde_json::{Value, json};

use super::running::Running;

/// A TrustGraph release the tests run, as `.ci/setup` pins it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The legacy protocol: one shared flow queue, no IAM.
    V2_4_4,
    /// The workspace protocol: a flow queue per registered workspace, IAM.
    V2_11_1,
}

impl Version {
    /// As PyPI spells it.
    pub fn number(self) -> &'static str {
        match self {
            Self::V2_4_4 => "2.4.4",
            Self::V2_11_1 => "2.11.1",
        }
    }

    /// The virtualenv `.ci/setup` installs this version in, under the repository.
    fn venv(self) -> &'static str {
        match self {
            Self::V2_4_4 => ".venv-trustgraph-2.4.4",
            Self::V2_11_1 => ".venv-trustgraph",
        }
    }

    /// The services, in start order (config-svc first: the others read their config from it
    /// as they start), each with what it logs once it serves requests (on Kafka, see
    /// [`Self::probe`]).
    fn services(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::V2_4_4 => &[
                ("config-svc", "Successfully subscribed to topic: request:tg:config"),
                ("flow-svc", "Successfully subscribed to topic: request:tg:flow"),
            ],
            Self::V2_11_1 => &[
                ("config-svc", "Discovered workspaces"),
                ("no-auth-svc", "Added producer: response:tg:iam"),
                ("flow-svc", "Applied startup config version"),
            ],
        }
    }

    /// On Kafka, how to tell that `service` serves: the name of its queues (`config` for
    /// `request:tg:config`) and a read to send there until it is answered. None for 2.11.1's
    /// flow-svc, which reads no request queue as it starts (a workspace's comes once IAM has
    /// registered the workspace, on every broker).
    ///
    /// A request consumer on Kafka joins its group, is assigned the queue's one partition, and
    /// only then looks up where to start reading: the topic's end (upstream's groups start at
    /// `latest`, and a new one has committed nothing). A request published before that lookup
    /// is never read, and neither version logs the lookup. 2.4.4's confluent-kafka logs the
    /// line of [`Self::services`] as it subscribes, before the group joins, then "Partition
    /// assignment for tg.request.config: [0]" once assigned; a request sent as that line came
    /// was lost in every try (one sent 0.1 s later was answered). 2.11.1's aiokafka returns
    /// from `start` once assigned ("Added consumer: request:tg:config"); a request sent as that
    /// line came was lost in two tries of three. Its lines of [`Self::services`] come a
    /// moment later, and so far always late enough, but nothing orders them after the lookup.
    fn probe(self, service: &str) -> Option<(&'static str, Value)> {
        let workspace = "default".to_owned();
        let read = match (self, service) {
            (_, "config-svc") => {
                let (operation, kind) = ("list".into(), "flow".into());
                ("config", json!(ConfigRequest { operation, workspace, kind, ..Default::default() }))
            }
            (Self::V2_4_4, "flow-svc") => {
                let operation = FlowOperation::ListBlueprints.as_str().into();
                ("flow", json!(FlowRequest { operation, workspace, ..Default::default() }))
            }
            (Self::V2_11_1, "no-auth-svc") => {
                let operation = IamOperation::BootstrapStatus.as_str().into();
                ("iam", json!(IamRequest { operation, ..Default::default() }))
            }
            _ => return None,
        };
        Some(read)
    }
}

/// The services of one version, running.
pub struct TrustGraph {
    version: Version,
    broker_args: Vec<String>,
    services: Vec<(&'static str, Running)>,
}

impl TrustGraph {
    /// Start `version`'s services with `broker_args` (upstream's `--pubsub-backend ...`
    /// arguments, which are bootstrap-wasm's too), one after the other, and wait until each
    /// serves.
    pub fn start(version: Version, broker_args: &[String]) -> Self {
        Self::start_except(version, broker_args, &[])
    }

    /// The same, holding back the services named in `held_back` (`"flow-svc"`, say):
    /// [`Self::start_service`] starts them later.
    pub fn start_except(version: Version, broker_args: &[String], held_back: &[&str]) -> Self {
        let mut trustgraph = Self { version, broker_args: broker_args.to_vec(), services: Vec::new() };
        for (service, _) in version.services() {
            if !held_back.contains(service) {
                trustgraph.start_service(service);
            }
        }
        trustgraph
    }

    /// Start one of the version's services (held back so far), and wait until it serves.
    pub fn start_service(&mut self, service: &str) {
        let (name, ready) = *self
            .version
            .services()
            .iter()
            .find(|(name, _)| *name == service)
            .unwrap_or_else(|| panic!("TrustGraph {} has no {service}", self.version.number()));
        assert!(self.services.iter().all(|(running, _)| *running != name), "{name} runs already");
        let script = super::repo().join("tests/support/trustgraph_services.py");
        let mut running = Running::spawn(
            Command::new(self.python())
                .arg(&script)
                .arg(name)
                .args(&self.broker_args)
                .args(["--no-metrics", "--no-loki-enabled"])
                // Pulsar's C++ client logs every connection there; Python's log is stderr.
                .stdout(Stdio::null()),
        );
        running.wait_for(ready);
        if let (Some(servers), Some((queue, read))) = (self.kafka_servers(), self.version.probe(name))
            && let Err(e) = answered(servers, queue, &read)
        {
            panic!("{name} did not answer on Kafka ({e}):\n{}", running.log);
        }
        self.services.push((name, running));
    }

    /// Each running service's CPU (user plus system) so far.
    pub fn cpu(&self) -> Vec<(&'static str, Duration)> {
        self.services.iter().map(|(name, running)| (*name, super::cpu_of(running.child.id()))).collect()
    }

    /// The version's own bootstrapper (the thing bootstrap-wasm replaces), running `init` on
    /// the same broker as the services, in `init`'s directory (upstream opens a seed file from
    /// the working directory). It runs until dropped: upstream has no `--once`.
    pub fn bootstrapper(&self, init: &Path) -> Running {
        Running::spawn(
            Command::new(self.python())
                .args(["-m", "trustgraph.bootstrap.bootstrapper", "-c"])
                .arg(init)
                .args(&self.broker_args)
                .args(["--no-metrics", "--no-loki-enabled"])
                .current_dir(init.parent().unwrap())
                .stdout(Stdio::null()),
        )
    }

    /// The bootstrap servers if the services run on Kafka (`--pubsub-backend kafka`).
    fn kafka_servers(&self) -> Option<&str> {
        let arg = |name: &str| self.broker_args.windows(2).find(|pair| pair[0] == name).map(|pair| pair[1].as_str());
        (arg("--pubsub-backend") == Some("kafka")).then(|| arg("--kafka-bootstrap-servers").expect("Kafka's servers"))
    }

    /// The python of the version's virtualenv.
    fn python(&self) -> PathBuf {
        let python = super::repo().join(self.version.venv()).join("bin/python");
        assert!(python.exists(), "{} is missing: run .ci/setup", python.display());
        python
    }
}

/// How long a service on Kafka may take to answer its first read.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Send `read` to `service`'s request queue on the Kafka cluster at `servers`, again until it
/// is answered (an error answer too), at most [`PROBE_TIMEOUT`].
fn answered(servers: &str, service: &str, read: &Value) -> Result<(), ServiceError> {
    let transport = Arc::new(KafkaTransport::new(KafkaOptions::plaintext(servers), Duration::from_secs(10)));
    let subscription = format!("tests-ready--{service}--{}", uuid::Uuid::new_v4());
    let client = RequestResponse::new(
        transport.clone(),
        Queue::request(service),
        Queue::response(service),
        subscription,
        PROBE_TIMEOUT,
    );
    // A runtime of its own, on a thread of its own: a test calls this from within its runtime.
    std::thread::scope(|scope| {
        let ask = async {
            let answer = client.request_resending::<_, Value>(read, Duration::from_millis(100)).await;
            transport.close().await;
            answer.map(drop)
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        scope.spawn(move || runtime.block_on(ask)).join().unwrap()
    })
}

/// config-svc's version: it grows with every write.
pub async fn config_version(services: &bootstrap_wasm::broker::BrokerServices) -> u64 {
    use bootstrap_wasm::services::Services as _;
    let list = ConfigRequest {
        operation: "list".into(),
        workspace: "default".into(),
        kind: "flow".into(),
        ..Default::default()
    };
    services.config(list).await.unwrap().version
}
