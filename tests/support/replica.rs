//! One `bootstrap-wasm` replica of a deployment, as the lease tests run them
//! (`tests/replicas.rs`, `tests/apache_pulsar.rs`): a real process with its log in a file,
//! read for what it says about the lease and its runs. The initialiser is a probe that fails
//! every run, so it runs again on every wake (every `--init-retry`, 200 ms) for as long as its
//! replica is active.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use super::{Scratch, bin, entry};

/// A guard against hanging, not a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// What a replica logs as it starts a run.
const RUN_LINE: &str = "running (old_flag=";

/// One `bootstrap-wasm` process, its log in a file; killed when dropped.
pub struct Replica {
    pub name: &'static str,
    child: Child,
    log: PathBuf,
    killed: bool,
}

impl Replica {
    /// Run `init` on the deployment `backend` (the binary's arguments) names, with a 1 s gate
    /// backoff (heartbeats every 50 ms, a 250 ms loss window).
    pub fn start(name: &'static str, scratch: &Scratch, init: &Path, backend: &[String]) -> Self {
        Self::start_paced(name, scratch, init, backend, "1s")
    }

    /// The same with another `--gate-backoff` (the lease's loss window is a quarter of it).
    pub fn start_paced(
        name: &'static str,
        scratch: &Scratch,
        init: &Path,
        backend: &[String],
        gate_backoff: &str,
    ) -> Self {
        let log = scratch.path(&format!("{name}.log"));
        let child = bin()
            // The lease's reasons too, for a failure's message.
            .env("RUST_LOG", "info,bootstrap_wasm::lease=debug")
            .arg("-c")
            .arg(init)
            .args(backend)
            .args(["--gate-backoff", gate_backoff, "--init-retry", "200ms", "--steady-interval", "200ms"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { name, child, log, killed: false }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The timestamps of the log lines containing `text`.
    pub fn times_of(&self, text: &str) -> Vec<SystemTime> {
        self.log().lines().filter(|line| line.contains(text)).map(timestamp).collect()
    }

    /// When it started each run.
    pub fn runs(&self) -> Vec<SystemTime> {
        self.times_of(RUN_LINE)
    }

    /// Whether it holds the lease, by its last word on it.
    pub fn holds(&self) -> bool {
        self.log()
            .lines()
            .rfind(|l| l.contains("lease acquired") || l.contains("lease lost"))
            .is_some_and(|l| l.contains("lease acquired"))
    }

    /// The spans of time it held the lease, from "lease acquired" to "lease lost"; a hold
    /// still open ends at `end` if the replica was killed, now otherwise.
    pub fn holds_until(&self, end: SystemTime) -> Vec<(SystemTime, SystemTime)> {
        let end = if self.killed { end } else { SystemTime::now() };
        let mut holds = Vec::new();
        let mut from = None;
        for line in self.log().lines() {
            if line.contains("lease acquired") {
                from = Some(timestamp(line));
            } else if line.contains("lease lost") {
                holds.extend(from.take().map(|from| (from, timestamp(line))));
            }
        }
        holds.extend(from.map(|from| (from, end)));
        holds
    }

    /// Wait until `done` holds of the log; panics, with the log, after [`PATIENCE`].
    pub async fn wait_for(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(self) {
            assert!(Instant::now() < deadline, "replica {} never {what}; its log:\n{}", self.name, self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, and when it was sent.
    pub fn kill(&mut self) -> SystemTime {
        let at = SystemTime::now();
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.killed = true;
        at
    }

    /// SIGTERM, as an orchestrator stops it, and how it exited.
    pub fn terminate(&mut self) -> ExitStatus {
        // SAFETY: a signal to a child of this process, which has not been waited for.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A log line's timestamp: its first word, RFC 3339 in UTC.
pub fn timestamp(line: &str) -> SystemTime {
    let word = line.split_whitespace().next().unwrap_or_default();
    humantime::parse_rfc3339(word).unwrap_or_else(|e| panic!("no timestamp on {line:?}: {e}"))
}

/// Both replicas' logs, for a failure's message.
pub fn both_logs(replicas: &[Replica; 2]) -> String {
    format!("{}:\n{}\n---\n{}:\n{}", replicas[0].name, replicas[0].log(), replicas[1].name, replicas[1].log())
}

/// An init file whose probe fails, and so runs again, on every wake.
pub fn failing_probe(scratch: &Scratch) -> PathBuf {
    let mut probe = entry("probe", "probe", json!({"workspace": "probed", "fail": true}));
    probe["grants"] = json!({"config": {"write": ["probed"]}});
    scratch.init_file(&[probe])
}
