//! Helpers for the tenant self-service tests (tests/tenants.rs): operator init files with a
//! `tenants:` section, tenant directories holding their own copy of the probe, minisign keys
//! and signatures made as a tenant would make them, a daemon whose log and metrics can be read
//! at any moment, and waiting for something with a deadline.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Scratch, bin, component};

// ---------------------------------------------------------------------------------------------
// Files

/// Write `contents` to `path`, creating its directory.
pub fn write(path: &Path, contents: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

/// Write `value` to `path` as JSON.
pub fn write_json(path: &Path, value: &Value) {
    write(path, &serde_json::to_string_pretty(value).unwrap());
}

/// Replace `path` with `contents` as an editor or a ConfigMap update does: a new file beside
/// it (hidden and not `.json`/`.yaml`, so a tenant directory's scan never sees it), then
/// renamed over it. The runtime sees the old file or the new one, never half of one.
pub fn replace_atomically(path: &Path, contents: &str) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&temporary, contents).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// A tenant file's text: `{"initialisers": entries}`.
pub fn tenant_file(entries: &[Value]) -> String {
    serde_json::to_string_pretty(&json!({ "initialisers": entries })).unwrap()
}

/// `tenants/<tenant>/` in `scratch`, holding the tenant's own copy of the probe; returns the
/// directory and the copy's path.
pub fn tenant_dir_with_probe(scratch: &Scratch, tenant: &str) -> (PathBuf, PathBuf) {
    let dir = scratch.path("tenants").join(tenant);
    std::fs::create_dir_all(&dir).unwrap();
    let probe = dir.join("probe.wasm");
    std::fs::copy(component("probe"), &probe).unwrap();
    (dir, probe)
}

/// A tenant-file entry running the probe at `component` as `name`, at `flag`, recording its
/// runs in `workspace`, granted config write there (and nothing else).
pub fn probe_entry(name: &str, component: &Path, workspace: &str, flag: &str) -> Value {
    json!({
        "name": name,
        "flag": flag,
        "component": component,
        "params": {"workspace": workspace},
        "grants": {"config": {"write": [workspace]}},
    })
}

/// The same probe, failing every run ("deliberate failure"): it is tried again at every wake.
pub fn failing_probe_entry(name: &str, component: &Path, workspace: &str) -> Value {
    let mut entry = probe_entry(name, component, workspace, "v1");
    entry["params"]["fail"] = json!(true);
    entry
}

/// A ceiling granting config read and write on `patterns` only, with the default limits.
pub fn config_ceiling(patterns: &[&str]) -> Value {
    json!({"grants": {"config": {"read": patterns, "write": patterns}}})
}

/// One item of the operator's `tenants:`.
pub fn tenant(name: &str, path: &Path, ceiling: Option<Value>, keys: &[String]) -> Value {
    let mut tenant = json!({"name": name, "path": path});
    if let Some(ceiling) = ceiling {
        tenant["ceiling"] = ceiling;
    }
    if !keys.is_empty() {
        tenant["keys"] = json!(keys);
    }
    tenant
}

/// The operator's init file (`init.json` in `scratch`) with its own `entries` and `tenants`.
pub fn operator_file(scratch: &Scratch, entries: &[Value], tenants: &[Value]) -> PathBuf {
    let path = scratch.path("init.json");
    write_json(&path, &json!({"initialisers": entries, "tenants": tenants}));
    path
}

/// The SHA-256 of a file, as a `sha256:` pin is written.
pub fn sha256_of(path: &Path) -> String {
    bootstrap_wasm::integrity::Digest::of(&std::fs::read(path).unwrap()).to_string()
}

// ---------------------------------------------------------------------------------------------
// Signatures

/// A tenant's minisign key pair, made as `minisign -G -W` makes one (no password).
pub struct Signer {
    pair: minisign::KeyPair,
}

impl Signer {
    pub fn new() -> Self {
        Self { pair: minisign::KeyPair::generate_unencrypted_keypair().unwrap() }
    }

    /// The public key as the operator lists it under `keys:` (the `.pub` file's base64 line).
    pub fn public(&self) -> String {
        self.pair.pk.to_base64()
    }

    /// A detached signature of `bytes`: a `.minisig` file's text.
    pub fn sign(&self, bytes: &[u8]) -> String {
        minisign::sign(None, &self.pair.sk, std::io::Cursor::new(bytes), None, None).unwrap().to_string()
    }

    /// Sign the file at `path`: writes `<path>.minisig`.
    pub fn sign_file(&self, path: &Path) -> PathBuf {
        let signature = minisig_of(path);
        std::fs::write(&signature, self.sign(&std::fs::read(path).unwrap())).unwrap();
        signature
    }
}

/// Where the signature of `component` lies: `<component>.minisig`.
pub fn minisig_of(component: &Path) -> PathBuf {
    let mut name = component.as_os_str().to_owned();
    name.push(".minisig");
    PathBuf::from(name)
}

// ---------------------------------------------------------------------------------------------
// What was written

/// The probe's records in `workspace`, by flag, each parsed: `{"old": ..., "new": ...}`.
pub fn probe_runs(dump: &Value, workspace: &str) -> BTreeMap<String, Value> {
    dump[workspace]["probe-runs"]
        .as_object()
        .map(|records| {
            records
                .iter()
                .map(|(flag, record)| {
                    let record = record.as_str().map_or(record.clone(), |text| serde_json::from_str(text).unwrap());
                    (flag.clone(), record)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What the probe records for a run from `old` to `new`.
pub fn run_record(old: Option<&str>, new: &str) -> Value {
    json!({"old": old, "new": new})
}

/// The stored flags (`__system__` / `init-state`), by key, as stored (`"\"v1\""`).
pub fn flags(dump: &Value) -> BTreeMap<String, Value> {
    dump["__system__"]["init-state"]
        .as_object()
        .map(|flags| flags.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// A flag as the runtime stores it: the flag's JSON text.
pub fn stored(flag: &str) -> Value {
    Value::String(json!(flag).to_string())
}

/// The workspaces of a dump other than `__system__`, sorted.
pub fn workspaces(dump: &Value) -> Vec<String> {
    dump.as_object().unwrap().keys().filter(|w| *w != "__system__").cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// What was said

/// The lines of `text` that contain every one of `texts`.
pub fn lines_with<'a>(text: &'a str, texts: &[&str]) -> Vec<&'a str> {
    text.lines().filter(|line| texts.iter().all(|t| line.contains(t))).collect()
}

/// Whether one line of `text` reports the refusal of `tenant`'s entry `entry` for `field`, as
/// the spec words it: `tenant 'acme': <file>: initialiser 'seed' (entry 1), field 'grants.http': ...`.
pub fn refusal_reported(text: &str, tenant: &str, entry: &str, field: &str) -> bool {
    !lines_with(text, &[&format!("tenant '{tenant}'"), &format!("initialiser '{entry}'"), &format!("field '{field}'")])
        .is_empty()
}

/// `bootstrap-wasm check -c <init>` (text), and its exit code, stdout and stderr.
pub fn check(init: &Path, json_format: bool) -> (Option<i32>, String, String) {
    let mut command = bin();
    command.arg("check").arg("-c").arg(init);
    if json_format {
        command.args(["--format", "json"]);
    }
    let output = command.output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The tenant named `name` in `check --format json`'s report.
pub fn checked_tenant<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tenants"]
        .as_array()
        .unwrap_or_else(|| panic!("no tenants: in {report:#}"))
        .iter()
        .find(|tenant| tenant["name"] == name)
        .unwrap_or_else(|| panic!("no tenant {name} in {report:#}"))
}

/// A checked tenant's refusals, as (entry, field).
pub fn checked_refusals(tenant: &Value) -> Vec<(String, String)> {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    tenant["refused"]
        .as_array()
        .map(|refused| refused.iter().map(|r| (text(&r["entry"]), text(&r["field"]))).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Metrics

/// `GET /metrics` on `address`, the body of the answer.
pub fn scrape(address: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{answer}");
    body.to_owned()
}

/// The value of the sample `series` (`name{labels}` as written, in order), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

/// `name{initialiser="<initialiser>"}`.
pub fn by_initialiser(metric: &str, initialiser: &str) -> String {
    format!(r#"{metric}{{initialiser="{initialiser}"}}"#)
}

/// `name{tenant="<tenant>"}`.
pub fn by_tenant(metric: &str, tenant: &str) -> String {
    format!(r#"{metric}{{tenant="{tenant}"}}"#)
}

/// Successful runs of `initialiser`.
pub fn ok_runs(initialiser: &str) -> String {
    format!(r#"bootstrap_runs_total{{initialiser="{initialiser}",result="ok",failure=""}}"#)
}

/// Failed runs of `initialiser` that the guest failed itself.
pub fn guest_failures(initialiser: &str) -> String {
    format!(r#"bootstrap_runs_total{{initialiser="{initialiser}",result="failed",failure="guest_error"}}"#)
}

/// Every sample of `metric` (with labels), as (labels, value).
pub fn samples_of(text: &str, metric: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(metric)?.strip_prefix('{')?;
            let (labels, value) = rest.split_once("} ")?;
            Some((labels.to_owned(), value.split(' ').next()?.parse().ok()?))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Poll `poll` every 100 ms until it returns something, for at most `timeout`; on timeout,
/// panic with `what` and what `context` says then (the log, the last scrape).
pub fn wait_until<T>(
    timeout: Duration,
    what: &str,
    context: impl Fn() -> String,
    mut poll: impl FnMut() -> Option<T>,
) -> T {
    let give_up = Instant::now() + timeout;
    loop {
        if let Some(found) = poll() {
            return found;
        }
        if Instant::now() > give_up {
            panic!("timed out after {timeout:?} waiting for {what}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// A daemon

/// `bootstrap-wasm` reconciling until stopped, on the embedded backend, with metrics on a free
/// loopback port. Its log is collected as it is written and can be read at any moment.
pub struct Daemon {
    child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// `127.0.0.1:<port>` of the metrics endpoint.
    pub address: String,
}

impl Daemon {
    /// Start on `init`, with `scratch`'s state file, metrics, and `args` besides.
    pub fn start(scratch: &Scratch, init: &Path, args: &[&str]) -> Self {
        let mut command: Command = bin();
        command
            .arg("-c")
            .arg(init)
            .args(["--pubsub-backend", "embedded", "--state"])
            .arg(scratch.state())
            .args(["--metrics-port", "0", "--metrics-address", "127.0.0.1"])
            .args(args);
        let mut child = command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let pipe = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let writer = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut log = writer.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut daemon = Self { child, log, reader: Some(reader), address: String::new() };
        daemon.address = wait_until(
            Duration::from_secs(120),
            "the metrics endpoint",
            || daemon.log(),
            || {
                let log = daemon.log();
                let line = lines_with(&log, &["metrics on http://"]).first().map(|l| (*l).to_owned())?;
                Some(line.split("http://").nth(1)?.split('/').next()?.to_owned())
            },
        );
        daemon
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// A scrape of the metrics endpoint.
    pub fn metrics(&self) -> String {
        scrape(&self.address)
    }

    /// The value of `series` now, if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        sample(&self.metrics(), series)
    }

    /// How many wakes have been recorded.
    pub fn wakes(&self) -> f64 {
        self.metric("bootstrap_wake_duration_seconds_count").unwrap_or(0.0)
    }

    /// Wait until `series` has a value for which `good` holds; returns it.
    pub fn wait_metric(&self, timeout: Duration, series: &str, good: impl Fn(f64) -> bool) -> f64 {
        let last = Mutex::new(String::new());
        wait_until(
            timeout,
            &format!("{series} to reach the expected value"),
            || format!("last scrape:\n{}\nlog:\n{}", last.lock().unwrap(), self.log()),
            || {
                let text = self.metrics();
                let value = sample(&text, series);
                *last.lock().unwrap() = text;
                value.filter(|v| good(*v))
            },
        )
    }

    /// Wait until at least `count` more wakes have been recorded than now.
    pub fn wait_wakes(&self, count: u32) {
        let target = self.wakes() + f64::from(count);
        self.wait_metric(Duration::from_secs(120), "bootstrap_wake_duration_seconds_count", |w| w >= target);
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: a plain syscall on our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(libc::pid_t::try_from(self.child.id()).unwrap(), signal) }, 0);
    }

    /// SIGTERM, then wait for the exit (the store is then free for `dump`); returns the
    /// status and the whole log.
    pub fn stop(mut self) -> (ExitStatus, String) {
        self.signal(libc::SIGTERM);
        let give_up = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > give_up {
                let _ = self.child.kill();
                panic!("still running 60 s after SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        (status, self.log())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
