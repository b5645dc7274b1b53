//! A `bootstrap-wasm` process running in the background, for the tests that watch a live
//! runtime (metrics scrapes, signals, kills): its log is read line by line as it is written,
//! so a test can wait for a given line, then act.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Scratch, entry};

/// How long to wait for a line or an exit before calling the test hung. A guard only: the
/// tests assert what happened, not how fast.
const HANG: Duration = Duration::from_secs(120);

/// An init file in `scratch` of a probe (which converges, using the services), then a guest
/// that spins until it is stopped. A runtime on it is mid-run, its clients used, from its
/// second [`RUNNING`] line on.
pub fn probe_then_spinner(scratch: &Scratch) -> PathBuf {
    let mut probe = entry("probe", "probe", json!({"workspace": "probed"}));
    probe["grants"] = json!({"config": {"write": ["probed"]}});
    let mut spinner = entry("spinner", "hostile", json!({"mode": "spin"}));
    spinner["limits"] = json!({"fuel": 1_000_000_000_000_u64, "timeout": "10m"});
    // May read what the probe writes, so it starts once the probe has finished, however many
    // initialisers run at once.
    spinner["grants"] = json!({"config": {"read": ["probed"]}});
    scratch.init_file(&[probe, spinner])
}

/// The start of the line the runtime logs as a first run begins.
pub const RUNNING: &str = "running (old_flag=none";

pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far.
    pub log: String,
}

impl Running {
    /// Start `command` with its stderr (the log) piped to us.
    pub fn spawn(command: &mut Command) -> Self {
        let mut child = command.stdin(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let pipe = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, log: String::new() }
    }

    pub fn pid(&self) -> libc::pid_t {
        libc::pid_t::try_from(self.child.id()).unwrap()
    }

    /// Wait for the `count`th line (counting from the start) that contains `text`; returns it.
    pub fn wait_for_nth(&mut self, text: &str, count: usize) -> String {
        self.wait_for_nth_within(text, count, HANG)
    }

    /// The same, giving up after `hang` (a bench's long run) rather than the tests' guard.
    pub fn wait_for_nth_within(&mut self, text: &str, count: usize, hang: Duration) -> String {
        let give_up = Instant::now() + hang;
        loop {
            if let Some(line) = self.log.lines().filter(|line| line.contains(text)).nth(count - 1) {
                return line.to_owned();
            }
            let left = give_up.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push_str(&line);
                    self.log.push('\n');
                }
                Err(_) => panic!("no line {count} with {text:?} (exit: {:?}) in:\n{}", self.child.try_wait(), self.log),
            }
        }
    }

    /// Wait for the first line that contains `text`.
    pub fn wait_for(&mut self, text: &str) -> String {
        self.wait_for_nth(text, 1)
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: a plain syscall on our own, not yet reaped, child.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    /// Wait for the process to exit; returns its status, with the whole log read.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let give_up = Instant::now() + HANG;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < give_up, "still running:\n{}", self.log);
            std::thread::sleep(Duration::from_millis(5));
        };
        // The pipe closes with the process: drain what is left.
        while let Ok(line) = self.lines.recv_timeout(HANG) {
            self.log.push_str(&line);
            self.log.push('\n');
        }
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
