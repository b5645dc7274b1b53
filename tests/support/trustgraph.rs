//! TrustGraph's own services, started for one test: config-svc, flow-svc and no-auth-svc (as
//! IAM) of trustgraph-flow 2.11.1 from PyPI, on the test's broker (a RabbitMQ vhost, or
//! pulsar-lite).
//!
//! `.ci/setup` installs them in `.venv-trustgraph`; `trustgraph_services.py` runs each as
//! upstream's own process, except that config-svc keeps its table in memory instead of
//! Cassandra. They stop when dropped.

use std::path::PathBuf;
use std::process::Command;

use super::running::Running;

/// The version the tests run, as `.ci/setup` pins it.
pub const VERSION: &str = "2.11.1";

/// What each service logs once it serves requests.
const READY: [(&str, &str); 3] = [
    ("config-svc", "Discovered workspaces"),
    ("no-auth-svc", "Added producer: response:tg:iam"),
    ("flow-svc", "Applied startup config version"),
];

/// The three services, running.
pub struct TrustGraph {
    _services: Vec<Running>,
}

impl TrustGraph {
    /// Start them with `broker_args` (upstream's `--pubsub-backend ...` arguments, which are
    /// bootstrap-wasm's too), config-svc first (the others read their config from it as they
    /// start), and wait until each serves.
    pub fn start(broker_args: &[String]) -> Self {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let python = repo.join(".venv-trustgraph/bin/python");
        assert!(python.exists(), "{} is missing: run .ci/setup", python.display());
        let script = repo.join("tests/support/trustgraph_services.py");
        let services = READY
            .iter()
            .map(|(service, ready)| {
                let mut running = Running::spawn(
                    Command::new(&python)
                        .arg(&script)
                        .arg(service)
                        .args(broker_args)
                        .args(["--no-metrics", "--no-loki-enabled"]),
                );
                running.wait_for(ready);
                running
            })
            .collect();
        Self { _services: services }
    }
}
