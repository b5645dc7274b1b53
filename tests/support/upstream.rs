//! Upstream's Python bootstrapper, run beside bootstrap-wasm so the benches compare the two on
//! the same machine, broker, peer and init file.
//!
//! `runtime/benches/install-upstream` puts trustgraph-flow 2.4.4 (the version bootstrap-wasm
//! matches) in `.venv-upstream`; without it the benches skip their upstream rows. Upstream has
//! no `--once`: a run lasts until the peer has answered its last request and then been quiet
//! for [`QUIET`] (after a wake upstream sleeps for 5 s at least), and is then killed. Its wall
//! time ends at that last answer; its CPU and peak memory are read from `/proc` before the kill.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Usage;
use super::peer::ServicePeer;

/// How long the peer must be quiet before a run counts as over.
const QUIET: Duration = Duration::from_secs(1);

/// The longest a run may take.
const DEADLINE: Duration = Duration::from_secs(900);

/// The interpreter of `.venv-upstream`, with upstream's bootstrapper installed.
pub struct Upstream {
    python: PathBuf,
}

/// What one run of upstream cost, and did.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamRun {
    pub usage: Usage,
    /// The requests the peer answered.
    pub requests: usize,
    /// Initialisers that logged `Completed`.
    pub completed: usize,
}

impl Upstream {
    /// Upstream's bootstrapper, if `runtime/benches/install-upstream` installed it.
    pub fn find() -> Option<Self> {
        Self::find_in(".venv-upstream")
    }

    /// The same trustgraph-flow 2.4.4 from `venv` (under the repository), if its bootstrapper is
    /// there: `.venv-trustgraph-2.4.4`, which `.ci/setup` installs with Kafka's client
    /// (confluent-kafka) where `install-upstream` leaves it out.
    pub fn find_in(venv: &str) -> Option<Self> {
        let python = super::repo().join(venv).join("bin/python");
        let installed = python.exists()
            && Command::new(&python)
                .args(["-c", "import trustgraph.bootstrap.bootstrapper"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
        installed.then_some(Self { python })
    }

    /// Run upstream on `init` against `peer` over the broker that `backend_args` names (upstream's
    /// own flags: `-p pulsar://...` or `--pubsub-backend rabbitmq ...`) until the peer has gone
    /// quiet, then kill it.
    pub fn run(&self, init: &Path, backend_args: &[String], peer: &ServicePeer) -> UpstreamRun {
        let log = tempfile::NamedTempFile::new().unwrap();
        let requests_before = peer.request_count();
        let started = Instant::now();
        let mut child = Command::new(&self.python)
            .args(["-m", "trustgraph.bootstrap.bootstrapper", "--no-metrics", "--no-loki-enabled", "-c"])
            .arg(init)
            .args(backend_args)
            // Relative paths in the init file (a seed file) resolve as bootstrap-wasm resolves them.
            .current_dir(init.parent().unwrap())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let (mut count, mut last_answer) = (requests_before, started);
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let now = peer.request_count();
            if now != count {
                (count, last_answer) = (now, Instant::now());
            }
            let quiet = count > requests_before && last_answer.elapsed() >= QUIET;
            assert!(started.elapsed() < DEADLINE, "upstream did not go quiet within {DEADLINE:?}");
            assert!(child.try_wait().unwrap().is_none(), "upstream exited:\n{}", read(log.path()));
            if quiet {
                break;
            }
        }
        let usage = Usage {
            wall: last_answer - started,
            cpu: super::cpu_of(child.id()),
            peak_rss_kib: super::peak_rss_kib_of(child.id()),
        };
        child.kill().unwrap();
        child.wait().unwrap();
        let completed = read(log.path()).matches("Completed (flag=").count();
        UpstreamRun { usage, requests: count - requests_before, completed }
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
}
