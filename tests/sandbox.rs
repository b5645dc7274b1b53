//! End-to-end tests of the sandbox: each shows a limit or a boundary stopping a hostile
//! component (`tests/components/hostile`) while the runtime carries on and a well-behaved one
//! (`tests/components/probe`) in the same init file converges.
//!
//! Most run the real binary for one wake (`--once`) and judge it by its exit code, its log,
//! what it stored and how much memory it took; one drives the public API to check the outcomes
//! wake by wake.

mod support;

use std::path::Path;
use std::sync::Arc;

use bootstrap_wasm::embedded::EmbeddedServices;
use bootstrap_wasm::sandbox::RunFailure;
use bootstrap_wasm::{Cadence, InitFile, Initialiser, Outcome, Reconciler, Sandbox};
use serde_json::{Value, json};
use support::listener::{untouched_listener, was_connected};
use support::pulsar_admin::PulsarAdmin;
use support::{Scratch, entry, hostile, logged, probe, stored_flags};

/// The most memory the runtime may take while a hostile guest runs: a sanity bound, far above
/// what it needs (about 100 MiB with a 32 MiB guest), far below what an unbounded copy of a
/// guest's data, or a guest's log, would take.
const RSS_BOUND_KIB: u64 = 300 << 10;

/// Runs `hostile` and then the probe in one wake, checks what every limit test expects (the
/// runtime survives and exits 1, not converged, within [`RSS_BOUND_KIB`]; the probe converges;
/// the hostile entry's flag is not stored; nothing was written outside the workspaces the
/// two may write), and returns the log and the store's contents.
fn run_beside_probe(hostile: Value) -> (String, Value) {
    let (log, dump, _) = support::beside_probe(hostile, RSS_BOUND_KIB);
    (log, dump)
}

/// Runs `guest` beside the probe (see [`run_beside_probe`]) and checks that the runtime logged
/// `stopped` for it; returns the log.
fn stopped_beside_probe(guest: Value, stopped: &str) -> String {
    let name = guest["name"].as_str().unwrap().to_owned();
    let (log, _) = run_beside_probe(guest);
    assert!(logged(&log, &name, &[stopped]), "expected {name}: {stopped}\n{log}");
    log
}

/// Not a test: the middleman through which `support::output_and_peak_rss` measures the
/// runtime's memory (this binary, started again for this test alone). Does nothing otherwise.
#[test]
fn peak_rss_parent() {
    support::peak_rss_parent();
}

/// The hostile component as `name` in `mode`, under `limits`.
fn limited(name: &str, mode: &str, limits: Value) -> Value {
    let mut guest = hostile(name, json!({"mode": mode}));
    guest["limits"] = limits;
    guest
}

/// Fuel enough for any of these guests to run until their wall-clock limit.
const AMPLE_FUEL: u64 = 1_000_000_000_000;

#[test]
fn an_endless_loop_runs_out_of_fuel() {
    let spin = limited("spinner", "spin", json!({"fuel": 50_000_000}));
    stopped_beside_probe(spin, "stopped: out of fuel (limit 50000000)");
}

#[test]
fn an_endless_loop_with_fuel_to_spare_hits_the_wall_clock_limit() {
    let spin = limited("spinner", "spin", json!({"fuel": AMPLE_FUEL, "timeout": "300ms"}));
    stopped_beside_probe(spin, "stopped: wall-clock limit of 300ms exceeded");
}

#[test]
fn an_endless_loop_of_host_calls_hits_the_wall_clock_limit() {
    let spin = limited("chatterer", "spin-host", json!({"fuel": AMPLE_FUEL, "timeout": "300ms"}));
    stopped_beside_probe(spin, "stopped: wall-clock limit of 300ms exceeded");
}

#[test]
fn a_guest_blocked_in_a_host_call_hits_the_wall_clock_limit() {
    // `sleep` waits inside WASI's clock: no wasm runs, so no fuel is spent and no epoch check
    // happens; only the timeout around the whole call can stop it.
    let sleeper = limited("sleeper", "sleep", json!({"fuel": AMPLE_FUEL, "timeout": "300ms"}));
    stopped_beside_probe(sleeper, "stopped: wall-clock limit of 300ms exceeded");
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    let bomb = limited("hoarder", "memory", json!({"memory": "32MiB"}));
    let log = stopped_beside_probe(bomb, "stopped: memory limit of 33554432 bytes reached");
    // The guest's own last words (Rust's allocation-failure message) reach the log too.
    assert!(logged(&log, "hoarder", &["memory allocation of", "failed"]), "{log}");
}

#[test]
fn unbounded_recursion_is_a_stack_overflow() {
    stopped_beside_probe(hostile("recurser", json!({"mode": "stack"})), "stopped: stack overflow");
}

/// Every call gets a fresh instance, but the pool hands out the same memory slot again, with
/// the pages an earlier call wrote kept resident up to a bound: each must have been reset.
#[test]
fn no_call_finds_what_an_earlier_call_left_in_memory() {
    let scratch = Scratch::new();
    let names: Vec<String> = (1..=5).map(|i| format!("forgetful-{i}")).collect();
    let entries: Vec<Value> = names.iter().map(|name| hostile(name, json!({"mode": "remember"}))).collect();
    let output = scratch.run_once(&scratch.init_file(&entries));
    let log = support::stderr(&output);
    // Five runs, one after another: each would find the last one's counter and scribbles if
    // its slot had not been reset.
    assert_eq!(output.status.code(), Some(0), "{log}");
    for name in &names {
        assert!(logged(&log, name, &["nothing left by an earlier call"]), "{log}");
    }
}

#[test]
fn a_panic_is_a_failed_run() {
    // The panic message arrives on the guest's stderr, under its name; the run ends in a trap
    // (whose log message spans several lines: the wasm backtrace).
    let log = stopped_beside_probe(hostile("panicker", json!({"mode": "panic"})), "deliberate panic");
    assert!(log.contains("trapped: ") && log.contains("unreachable"), "{log}");
}

/// Whether the hostile entry `name` of the test below was stopped by the limit it goes for.
fn stopped_as_expected(name: &str, failure: &RunFailure) -> bool {
    match name {
        "spinner" => *failure == RunFailure::OutOfFuel(50_000_000),
        "hoarder" => *failure == RunFailure::Memory(32 << 20),
        "recurser" => *failure == RunFailure::StackOverflow,
        "panicker" => matches!(failure, RunFailure::Trap(_)),
        _ => false,
    }
}

/// Through the public API: every limit yields a `Failed` outcome saying which limit, the probe
/// still runs, and the next wake retries the failures while skipping what converged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_runs_never_stop_the_others_and_are_retried_on_the_next_wake() {
    let scratch = Scratch::new();
    let entries = [
        limited("spinner", "spin", json!({"fuel": 50_000_000})),
        limited("hoarder", "memory", json!({"memory": "32MiB"})),
        hostile("recurser", json!({"mode": "stack"})),
        hostile("panicker", json!({"mode": "panic"})),
        probe(),
    ];
    let file = InitFile::load(&scratch.init_file(&entries)).unwrap();
    let sandbox = Sandbox::new().unwrap();
    let initialisers = Initialiser::prepare_all(&file, &sandbox).await.unwrap();
    let services = Arc::new(EmbeddedServices::open(&scratch.state()).unwrap());
    let mut reconciler = Reconciler::new(initialisers, services.clone(), Cadence::default());

    for (wake, probe_outcome) in [(1, Outcome::Ran), (2, Outcome::Skipped)] {
        let report = reconciler.wake().await;
        assert!(report.gate_open && !report.converged(), "wake {wake}: {report:?}");
        let names: Vec<&str> = report.outcomes.iter().map(|(name, _)| &**name).collect();
        assert_eq!(names, ["spinner", "hoarder", "recurser", "panicker", "probe"]);
        for (name, outcome) in &report.outcomes[..4] {
            let as_expected = matches!(outcome, Outcome::Failed(failure) if stopped_as_expected(name, failure));
            assert!(as_expected, "wake {wake}: {name}: {outcome:?}");
        }
        assert_eq!(report.outcomes[4].1, probe_outcome, "wake {wake}");
    }

    let store = services.store().snapshot().unwrap();
    assert_eq!(store.values("__system__", "init-state").unwrap(), [("probe".to_owned(), "\"v1\"".to_owned())]);
    // The probe ran once, on the first wake, with no previous flag.
    assert_eq!(
        store.values("probed", "probe-runs").unwrap(),
        [("v1".to_owned(), r#"{"new":"v1","old":null}"#.to_owned())]
    );
}

#[test]
fn host_files_are_invisible_without_a_grant() {
    let (log, _) = run_beside_probe(hostile("snooper", json!({"mode": "read-file", "path": "/etc/passwd"})));
    assert!(logged(&log, "snooper", &["failed: cannot read /etc/passwd: No such file or directory"]), "{log}");
    assert!(!log.contains("root:"), "the guest read /etc/passwd:\n{log}");
}

#[test]
fn the_guest_sees_no_environment_variables_or_arguments() {
    let scratch = Scratch::new();
    let init = scratch.init_file(&[hostile("nosy", json!({"mode": "env"})), probe()]);
    // The runtime has both: a variable set here, and its command line.
    let output = scratch.once_command(&init).env("BOOTSTRAP_TEST_SECRET", "hunter2").output().unwrap();
    let log = support::stderr(&output);
    // `env` fails if it sees any variable or argument: here it succeeded, and all converged.
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(logged(&log, "nosy", &["no environment variables, no arguments"]), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
    assert_eq!(stored_flags(&scratch.dump()), json!({"nosy": "\"v1\"", "probe": "\"v1\""}));
}

/// Runs the hostile component as `name` with `params` and `grants` beside the probe (see
/// [`run_beside_probe`]) and checks that its `config.put` to `target` was denied: logged under
/// its name with the target, and its run failed saying so. Returns the store's contents.
fn denied_beside_probe(name: &str, params: Value, grants: Value, target: &str) -> Value {
    let mut guest = hostile(name, params);
    guest["grants"] = grants;
    let (log, dump) = run_beside_probe(guest);
    assert!(logged(&log, name, &["denied", &format!("target=\"{target}\"")]), "{log}");
    assert!(logged(&log, name, &[&format!("failed: denied: config.put on '{target}'")]), "{log}");
    dump
}

#[test]
fn the_system_workspace_is_out_of_reach_even_with_a_wildcard_grant() {
    // Had this write gone through, it would have marked the probe as converged and the probe
    // would have been skipped: `run_beside_probe` checks that it ran.
    let params = json!({"mode": "write-system", "key": "probe"});
    let grants = json!({"config": {"read": ["*"], "write": ["*"]}});
    denied_beside_probe("forger", params, grants, "__system__");
}

#[test]
fn the_system_workspace_cannot_be_read_even_with_a_wildcard_grant() {
    let mut guest = hostile("peeker", json!({"mode": "read-system"}));
    guest["grants"] = json!({"config": {"read": ["*"]}});
    let (log, _) = run_beside_probe(guest);
    for function in ["config.get", "config.get-values", "config.get-workspace"] {
        let fields =
            [&format!("function=\"{function}\"")[..], "target=\"__system__\"", "denied: reserved for the runtime"];
        assert!(logged(&log, "peeker", &fields), "{function}:\n{log}");
    }
    assert!(
        logged(&log, "peeker", &["failed: could not read __system__: config.get: denied: config.get on '__system__'"]),
        "{log}"
    );
    assert!(!log.contains("config.get read "), "the guest read something:\n{log}");
}

#[test]
fn a_workspace_that_is_not_granted_cannot_be_written() {
    let params = json!({"mode": "write-other", "workspace": "theirs"});
    let grants = json!({"config": {"read": ["theirs"], "write": ["mine"]}});
    let dump = denied_beside_probe("trespasser", params, grants, "theirs");
    assert!(dump.get("theirs").is_none() && dump.get("mine").is_none(), "{dump}");
}

#[test]
fn a_granted_file_is_readable_read_only_and_alone_in_its_directory() {
    let scratch = Scratch::new();
    std::fs::create_dir(scratch.path("data")).unwrap();
    let granted = scratch.write("data/granted.txt", "granted contents");
    let secret = scratch.write("data/secret.txt", "secret contents");
    let path = |file: &Path| file.to_str().unwrap().to_owned();
    // Granted by a path relative to the init file; the guest opens it at its absolute path.
    let grants = json!({"files": ["data/granted.txt"]});
    let mut entries = [
        hostile("reader", json!({"mode": "read-file", "path": path(&granted)})),
        hostile("snooper", json!({"mode": "read-file", "path": path(&secret)})),
        hostile("scribbler", json!({"mode": "write-file", "path": path(&granted)})),
        hostile("creator", json!({"mode": "write-file", "path": path(&scratch.path("data/new.txt"))})),
    ];
    for entry in &mut entries {
        entry["grants"] = grants.clone();
    }
    let output = scratch.run_once(&scratch.init_file(&entries));
    let log = support::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");

    let data_dir = path(&scratch.path("data"));
    assert!(logged(&log, "reader", &[&format!("read {}: granted contents", path(&granted))]), "{log}");
    assert!(logged(&log, "reader", &[&format!("{data_dir} holds [\"granted.txt\"]")]), "{log}");
    assert!(logged(&log, "snooper", &["failed: cannot read", "No such file or directory"]), "{log}");
    assert!(logged(&log, "scribbler", &["failed: cannot write"]), "{log}");
    assert!(logged(&log, "creator", &["failed: cannot write"]), "{log}");
    assert!(!log.contains("secret contents"), "{log}");
    assert_eq!(std::fs::read_to_string(&granted).unwrap(), "granted contents");
    assert!(!scratch.path("data/new.txt").exists());
    assert_eq!(stored_flags(&scratch.dump()), json!({"reader": "\"v1\""}));
}

/// The hostile component as `name`, with `params`, allowed to write workspace `mine`.
fn writer(name: &str, params: Value) -> Value {
    let mut guest = hostile(name, params);
    guest["grants"] = json!({"config": {"write": ["mine"]}});
    guest
}

/// Whether `log` has the warning that `name`'s `function` on workspace `mine` was refused for
/// going over `limit` (`put_entries`), with this message.
fn refused(log: &str, name: &str, function: &str, limit: &str, message: &str) -> bool {
    let fields = [
        &format!("function=\"{function}\"")[..],
        "target=\"mine\"",
        &format!("limit=\"limits.{limit}\""),
        &format!("refused: {message}"),
    ];
    logged(log, name, &fields)
}

#[test]
fn a_log_flood_is_cut_to_the_log_limits_with_one_notice() {
    let mut flood = limited("flooder", "log-flood", json!({"log_lines": 50}));
    flood["params"] = json!({"mode": "log-flood", "lines": 10_000, "bytes": 10_000});
    let (log, _) = run_beside_probe(flood);

    // Fifty lines got through, from all three sources, each cut to 4 KiB and marked with how
    // much was cut: "flood line <i> " and 10,000 bytes, less 4,096.
    let lines: Vec<&str> = log.lines().filter(|line| line.contains("flood line ")).collect();
    assert_eq!(lines.len(), 50, "{log}");
    assert!(lines.iter().any(|line| line.contains("stream=\"stdout\"")), "{log}");
    assert!(lines.iter().any(|line| line.contains("stream=\"stderr\"")), "{log}");
    for line in &lines {
        let message = &line[line.find("flood line ").unwrap()..];
        let (text, marker) = message.split_once(" [truncated: ").expect("marked as truncated");
        assert_eq!(text.len(), 4096, "{line}");
        let number = text.split(' ').nth(2).unwrap();
        let cut = "flood line  ".len() + number.len() + 10_000 - 4096;
        assert!(marker.starts_with(&format!("{cut} more bytes, limits.log_line_size] ")), "{line}");
    }
    let notices = log.lines().filter(|line| line.contains("log limit of 50 lines per run reached")).count();
    assert_eq!(notices, 1, "{log}");
    // The run's own outcome is the runtime's to log, whatever the guest's budget.
    assert!(logged(&log, "flooder", &["failed: sent 10000 lines of 10000 bytes to the log"]), "{log}");
}

#[test]
fn a_value_over_the_size_limit_is_refused() {
    let (log, dump) = run_beside_probe(writer("bloater", json!({"mode": "giant-put", "workspace": "mine"})));
    let message =
        "config.put value at 'hostile/hostile' of 2 MiB exceeds this initialiser's limit of 1 MiB (limits.value_size)";
    assert!(refused(&log, "bloater", "config.put", "value_size", message), "{log}");
    assert!(logged(&log, "bloater", &[&format!("failed: invalid request: {message}")]), "{log}");
    assert!(dump.get("mine").is_none(), "{dump}");
}

#[test]
fn a_put_of_a_million_keys_is_refused_before_the_runtime_copies_it() {
    // The list is refused while still in the guest's memory. The runtime peaks at about 135 MiB
    // (65 of its own, 70 of the guest's); a copy of the list would add about 100 MiB.
    let guest = writer("hoarder", json!({"mode": "many-keys", "workspace": "mine"}));
    let (log, dump, peak_rss_kib) = support::beside_probe(guest, RSS_BOUND_KIB);
    assert!(peak_rss_kib < 200 << 10, "the runtime peaked at {peak_rss_kib} KiB: did it copy the list?\n{log}");
    let message = "config.put of 1000000 entries exceeds this initialiser's limit of 10000 (limits.put_entries)";
    assert!(refused(&log, "hoarder", "config.put", "put_entries", message), "{log}");
    assert!(logged(&log, "hoarder", &[&format!("failed: invalid request: {message}")]), "{log}");
    assert!(dump.get("mine").is_none(), "{dump}");
}

/// The values `put-loop` stored in `mine`, from a dump.
fn looped_values(dump: &Value) -> Vec<&str> {
    let stored = dump["mine"]["hostile"].as_object().expect("some puts went through");
    stored.values().map(|value| value.as_str().unwrap()).collect()
}

#[test]
fn many_small_puts_stop_at_the_written_limit() {
    let mut guest = writer("scribbler", json!({"mode": "put-loop", "workspace": "mine", "bytes": 10_000}));
    guest["limits"] = json!({"written": "1MiB"});
    let (log, dump) = run_beside_probe(guest);
    // Each put writes its type (7 bytes), its key (`k0`...) and 10,000 bytes of value: the
    // 105th (k104) would pass 1 MiB.
    let message = "config.put of 10011 bytes would bring this run's writes to 1051045 bytes, over this \
                   initialiser's limit of 1 MiB (limits.written)";
    assert!(refused(&log, "scribbler", "config.put", "written", message), "{log}");
    assert!(logged(&log, "scribbler", &["failed: put 104 values of 10000 bytes, then: invalid request"]), "{log}");
    assert_eq!(looped_values(&dump).len(), 104);
}

#[test]
fn host_calls_stop_at_their_limit() {
    let mut guest = writer("chatterer", json!({"mode": "put-loop", "workspace": "mine", "bytes": 1}));
    guest["limits"] = json!({"host_calls": 100});
    let (log, dump) = run_beside_probe(guest);
    let message = "config.put exceeds this initialiser's limit of 100 host calls per run (limits.host_calls)";
    assert!(refused(&log, "chatterer", "config.put", "host_calls", message), "{log}");
    assert!(logged(&log, "chatterer", &["failed: put 100 values of 1 bytes, then: invalid request"]), "{log}");
    assert_eq!(looped_values(&dump).len(), 100);
}

#[test]
fn sockets_cannot_be_opened() {
    let (listener, port) = untouched_listener();
    let address = format!("127.0.0.1:{port}");
    let (log, _) = run_beside_probe(hostile("dialer", json!({"mode": "connect", "address": address})));
    assert!(logged(&log, "dialer", &[&format!("failed: cannot connect to {address}")]), "{log}");
    assert!(!was_connected(&listener), "the guest reached the listener:\n{log}");
}

#[test]
fn http_reaches_only_the_granted_origin() {
    let admin = PulsarAdmin::start();
    let (listener, port) = untouched_listener();
    let (granted, other) = (format!("{}/admin/v2/clusters", admin.url()), format!("http://127.0.0.1:{port}/"));
    let mut guest = hostile("caller", json!({"mode": "http-get", "urls": [granted, other]}));
    guest["grants"] = json!({"http": [admin.url()]});
    let (log, _) = run_beside_probe(guest);

    assert!(logged(&log, "caller", &[&format!("GET {granted}: 200 [\"standalone\"]")]), "{log}");
    assert_eq!(admin.request_count(), 1);
    let denial = [
        "function=\"wasi:http/outgoing-handler.handle\"",
        &format!("target=\"http://127.0.0.1:{port}/\"")[..],
        &format!("denied: http://127.0.0.1:{port} is not granted"),
    ];
    assert!(logged(&log, "caller", &denial), "{log}");
    assert!(logged(&log, "caller", &[&format!("GET {other}: HTTP request denied")]), "{log}");
    assert!(logged(&log, "caller", &["failed: 1 of 2 requests failed"]), "{log}");
    assert!(!was_connected(&listener), "the guest reached the listener:\n{log}");
}

#[test]
fn oversized_params_are_refused_at_start_up() {
    let scratch = Scratch::new();
    let blob = "x".repeat(1 << 20);
    let init = scratch.init_file(&[hostile("bloated", json!({"mode": "spin", "blob": blob})), probe()]);
    let output = scratch.run_once(&init);
    let log = support::stderr(&output);
    assert_eq!(output.status.code(), Some(2), "expected a configuration error:\n{log}");
    assert!(log.contains("initialiser 'bloated' (entry 1), field 'params': "), "{log}");
    assert!(log.contains("of JSON, over the limit of 1 MiB"), "{log}");
    assert!(!log.contains("xxxxxxxx"), "the params were echoed:\n{log}");
    assert!(!scratch.state().exists());
}

#[test]
fn a_component_for_another_world_is_refused_at_start_up() {
    let scratch = Scratch::new();
    let output = scratch.run_once(&scratch.init_file(&[entry("stranger", "wrong-world", json!({})), probe()]));
    let log = support::stderr(&output);
    assert_eq!(output.status.code(), Some(2), "expected a configuration error:\n{log}");
    assert!(log.contains("initialiser 'stranger'"), "{log}");
    assert!(log.contains("does not fit the runtime's `initialiser-component` world"), "{log}");
    // Refused before the first wake: nothing ran, so no store was even opened.
    assert!(!scratch.state().exists());
}
