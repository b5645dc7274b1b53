//! Shared helpers for the end-to-end tests: the real binary, real components, real stores.
//!
//! Test components live in `tests/components/` (a wasm32-wasip2 workspace of guests written
//! with the guest SDK). They are built on first use, once per test process, into
//! `target/test-guests`; cargo's own lock serialises concurrent builds from several test
//! binaries.

#![allow(dead_code)] // Each test binary uses a different subset.

pub mod apache_pulsar;
pub mod kafka;
pub mod listener;
pub mod peer;
pub mod pulsar;
pub mod pulsar_admin;
pub mod rabbitmq;
pub mod replica;
pub mod running;
pub mod tenant_files;
pub mod tenants;
pub mod tls_front;
pub mod transport;
pub mod trustgraph;
pub mod upstream;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The `bootstrap-wasm` binary under test.
pub fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bootstrap-wasm"));
    command.env_remove("RUST_LOG").env_remove("PUBSUB_BACKEND");
    command
}

/// The path of test component `name` (a crate of `tests/components/`), built if needed.
pub fn component(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let target_dir = repo().join("target/test-guests");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(repo().join("tests/components/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("cannot run cargo");
        assert!(status.success(), "building the test components failed");
        target_dir.join("wasm32-wasip2/release")
    });
    let path = dir.join(format!("{}.wasm", name.replace('-', "_")));
    assert!(path.exists(), "no test component {}", path.display());
    path
}

/// A scratch directory holding an init file, the files it names, and a state store.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write `contents` to `name` in the scratch directory; returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Write an init file (JSON) with `entries`; returns its path.
    pub fn init_file(&self, entries: &[Value]) -> PathBuf {
        self.write("init.json", &serde_json::json!({"initialisers": entries}).to_string())
    }

    /// The embedded backend's state file.
    pub fn state(&self) -> PathBuf {
        self.path("state.redb")
    }

    /// `bootstrap-wasm -c <init> --pubsub-backend embedded --state <state> --once`, to run.
    pub fn once_command(&self, init: &Path) -> Command {
        let mut command = bin();
        command.arg("-c").arg(init).args(["--pubsub-backend", "embedded", "--state"]).arg(self.state()).arg("--once");
        command
    }

    /// Run [`Self::once_command`] to completion.
    pub fn run_once(&self, init: &Path) -> Output {
        self.once_command(init).output().unwrap()
    }

    /// Run [`Self::once_command`] to completion; also returns its peak memory (see
    /// [`output_and_peak_rss`]).
    pub fn run_once_measured(&self, init: &Path) -> (Output, u64) {
        output_and_peak_rss(&self.once_command(init))
    }

    /// `bootstrap-wasm dump --state <state>` as JSON.
    pub fn dump(&self) -> Value {
        let output = bin().arg("dump").arg("--state").arg(self.state()).output().unwrap();
        assert!(output.status.success(), "dump failed: {}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

/// Set, to a JSON job, when a test binary is started again as the measuring parent of
/// [`output_and_peak_rss`].
const PEAK_RSS_JOB: &str = "BOOTSTRAP_WASM_TEST_PEAK_RSS_JOB";

/// Run `command` to completion, as [`Command::output`] does, and return also the peak resident
/// set size of the process it ran, in KiB (`ru_maxrss`, from `wait4`).
///
/// Linux counts in a process's `ru_maxrss` the memory of the process that started it as it was
/// when it called `exec`: measured from here, the runtime would seem as large as this test
/// process (which compiles components too). So the runtime is started by a small middleman,
/// this test binary run again for its test `peak_rss_parent` alone (see [`peak_rss_parent`]),
/// which waits for it and leaves its output, status and peak in a scratch directory.
pub fn output_and_peak_rss(command: &Command) -> (Output, u64) {
    let (output, usage) = output_and_usage(command);
    (output, usage.peak_rss_kib)
}

/// What a process run by [`output_and_usage`] cost.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// From spawn to exit.
    pub wall: std::time::Duration,
    /// User plus system time.
    pub cpu: std::time::Duration,
    /// Peak resident set size, KiB.
    pub peak_rss_kib: u64,
}

/// Run `command` to completion, as [`output_and_peak_rss`] does, and return what it cost.
pub fn output_and_usage(command: &Command) -> (Output, Usage) {
    let dir = tempfile::tempdir().unwrap();
    let text = |s: &std::ffi::OsStr| s.to_str().unwrap().to_owned();
    let job = serde_json::json!({
        "program": text(command.get_program()),
        "args": command.get_args().map(text).collect::<Vec<_>>(),
        "env": command.get_envs().map(|(k, v)| (text(k), v.map(text))).collect::<Vec<_>>(),
        "dir": dir.path(),
    });
    let middleman = Command::new(std::env::current_exe().unwrap())
        .args(["peak_rss_parent", "--exact", "--quiet", "--test-threads=1"])
        .env(PEAK_RSS_JOB, job.to_string())
        .output()
        .unwrap();
    assert!(middleman.status.success(), "the measuring parent failed: {}", stderr(&middleman));
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let number = |name: &str| String::from_utf8(read(name)).unwrap().parse::<i64>().unwrap();
    let output = Output {
        status: ExitStatus::from_raw(i32::try_from(number("status")).unwrap()),
        stdout: read("stdout"),
        stderr: read("stderr"),
    };
    let micros = |name: &str| std::time::Duration::from_micros(u64::try_from(number(name)).unwrap());
    let usage = Usage {
        wall: micros("wall_us"),
        cpu: micros("cpu_us"),
        peak_rss_kib: u64::try_from(number("peak_rss")).unwrap(),
    };
    (output, usage)
}

/// User plus system time, so far, of the running process `pid`.
pub fn cpu_of(pid: u32) -> std::time::Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces: utime and
    // stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a system constant.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap();
    std::time::Duration::from_millis(ticks * 1000 / per_second)
}

/// The peak resident set size, so far, of the running process `pid`, KiB.
pub fn peak_rss_kib_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Whether this process was started as the measuring parent of [`output_and_usage`] (a bench
/// without the test harness asks, and then calls [`peak_rss_parent`] and nothing else).
pub fn is_measuring_parent() -> bool {
    std::env::var_os(PEAK_RSS_JOB).is_some()
}

/// The measuring parent of [`output_and_peak_rss`]: when this test binary was started as one,
/// run the job's command as a child, wait for it, and leave its stdout, stderr, wait status and
/// peak RSS (KiB) in the job's directory. Does nothing otherwise. Every test binary that
/// measures calls it from a test named `peak_rss_parent`.
pub fn peak_rss_parent() {
    let Ok(job) = std::env::var(PEAK_RSS_JOB) else { return };
    let job: Value = serde_json::from_str(&job).unwrap();
    let dir = PathBuf::from(job["dir"].as_str().unwrap());
    let mut command = Command::new(job["program"].as_str().unwrap());
    command.args(job["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()));
    for pair in job["env"].as_array().unwrap() {
        match pair[1].as_str() {
            Some(value) => command.env(pair[0].as_str().unwrap(), value),
            None => command.env_remove(pair[0].as_str().unwrap()),
        };
    }
    let file = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
    let started = std::time::Instant::now();
    #[allow(clippy::zombie_processes, reason = "reaped by wait4 below, which also reports its memory")]
    let child = command
        .env_remove(PEAK_RSS_JOB)
        .stdin(Stdio::null())
        .stdout(file("stdout"))
        .stderr(file("stderr"))
        .spawn()
        .unwrap();
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let mut status = 0;
    // SAFETY: `rusage` is plain data, valid when zeroed; wait4 only writes to it and to
    // `status`. The child is ours and not yet reaped (`child` is never waited on).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4 failed: {}", std::io::Error::last_os_error());
    let wall = started.elapsed();
    let micros = |t: libc::timeval| t.tv_sec * 1_000_000 + t.tv_usec;
    std::fs::write(dir.join("status"), status.to_string()).unwrap();
    std::fs::write(dir.join("peak_rss"), usage.ru_maxrss.to_string()).unwrap();
    std::fs::write(dir.join("wall_us"), wall.as_micros().to_string()).unwrap();
    std::fs::write(dir.join("cpu_us"), (micros(usage.ru_utime) + micros(usage.ru_stime)).to_string()).unwrap();
}

/// The middle value of `values` (the upper middle of an even count), for the benches' figures.
pub fn median<T: Ord + Copy>(values: impl IntoIterator<Item = T>) -> T {
    let mut values: Vec<T> = values.into_iter().collect();
    values.sort();
    values[values.len() / 2]
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The seed file the examples use.
pub fn example_seed() -> PathBuf {
    repo().join("examples/seed.json")
}

/// An init-file entry running test component `code` as `name`, at flag `v1`.
pub fn entry(name: &str, code: &str, params: Value) -> Value {
    serde_json::json!({"name": name, "flag": "v1", "component": component(code), "params": params})
}

/// An entry running the hostile test component as `name`, misbehaving as `params` say.
pub fn hostile(name: &str, params: Value) -> Value {
    entry(name, "hostile", params)
}

/// The well-behaved probe as `name`, allowed to record its runs in `workspace` (only there).
pub fn probe_in(name: &str, workspace: &str) -> Value {
    let mut probe = entry(name, "probe", serde_json::json!({"workspace": workspace}));
    probe["grants"] = serde_json::json!({"config": {"write": [workspace]}});
    probe
}

/// The probe as `probe`, recording its runs in workspace `probed`.
pub fn probe() -> Value {
    probe_in("probe", "probed")
}

/// Runs `hostile` and then the probe in one wake through the binary, and checks what every
/// hostile-guest test expects: the runtime survives and exits 1 (not converged), its peak
/// memory stays under `rss_bound_kib`, the probe converges and the hostile entry does not, and
/// nothing is written outside the workspaces the two may write. Returns the log, the store's
/// contents and the peak, in KiB.
pub fn beside_probe(hostile: Value, rss_bound_kib: u64) -> (String, Value, u64) {
    let name = hostile["name"].as_str().unwrap().to_owned();
    let writable: Vec<String> = hostile["grants"]["config"]["write"]
        .as_array()
        .map(|list| list.iter().map(|w| w.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    let scratch = Scratch::new();
    let (output, peak_rss_kib) = scratch.run_once_measured(&scratch.init_file(&[hostile, probe()]));
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "expected exit 1 (not converged), not a crash:\n{log}");
    assert!(peak_rss_kib < rss_bound_kib, "the runtime peaked at {peak_rss_kib} KiB:\n{log}");

    let dump = scratch.dump();
    assert_eq!(stored_flags(&dump), serde_json::json!({"probe": "\"v1\""}), "only the probe converged:\n{log}");
    assert_eq!(dump["probed"]["probe-runs"]["v1"], r#"{"new":"v1","old":null}"#);
    assert_eq!(dump["__system__"].as_object().unwrap().len(), 1, "only init-state: {dump}");
    for workspace in dump.as_object().unwrap().keys() {
        let granted = writable.iter().any(|w| w.strip_suffix('*').map_or(w == workspace, |p| workspace.starts_with(p)));
        assert!(
            ["__system__", "probed"].contains(&workspace.as_str()) || granted,
            "{workspace} was written without a grant: {dump}"
        );
    }
    assert!(logged(&log, &name, &["running"]), "{name} never ran:\n{log}");
    (log, dump, peak_rss_kib)
}

/// Whether one line of `log` is about `initialiser` and contains every one of `texts`.
pub fn logged(log: &str, initialiser: &str, texts: &[&str]) -> bool {
    let field = [format!("initialiser={initialiser}"), format!("initialiser=\"{initialiser}\"")];
    log.lines().any(|line| {
        line.split_whitespace().any(|word| field.iter().any(|f| f == word))
            && texts.iter().all(|text| line.contains(text))
    })
}

/// The flags the runtime stored, by initialiser name, from a dump.
pub fn stored_flags(dump: &Value) -> Value {
    dump["__system__"]["init-state"].clone()
}
