//! TrustGraph's own services, started for one test or bench, on its broker (a RabbitMQ vhost, or
//! pulsar-lite), at either version the runtime speaks to:
//! - 2.4.4 (the legacy protocol): config-svc and flow-svc of trustgraph-flow 2.4.4 from PyPI,
//!   installed by `.ci/setup` in `.venv-trustgraph-2.4.4`;
//! - 2.11.1 (the workspace protocol): config-svc, flow-svc and no-auth-svc (as IAM) of
//!   trustgraph-flow 2.11.1, in `.venv-trustgraph`.
//!
//! `trustgraph_services.py` runs each as upstream's own process, except that config-svc keeps
//! its table in memory instead of Cassandra. They stop when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

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
    /// as they start), each with what it logs once it serves requests.
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

    /// The python of the version's virtualenv.
    fn python(&self) -> PathBuf {
        let python = super::repo().join(self.version.venv()).join("bin/python");
        assert!(python.exists(), "{} is missing: run .ci/setup", python.display());
        python
    }
}
