//! End-to-end tests of the sandbox's former escapes: memory a guest made the host hold outside
//! its limit, log lines a guest could forge, flags a slow guest held back, and a memory
//! refusal a guest could hide. Each runs a hostile component (`tests/components/greedy`,
//! `forger`, `hostile`) beside the well-behaved probe, through the real binary (judged by its
//! exit code, its log, what it stored and its peak memory) or through the public API.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bootstrap_wasm::embedded::EmbeddedServices;
use bootstrap_wasm::metrics::Metrics;
use bootstrap_wasm::{Cadence, InitFile, Initialiser, Reconciler, Sandbox};
use serde_json::{Value, json};
use support::{Scratch, entry, logged, probe_in, stored_flags};

/// The memory budget these tests give a hostile guest.
const LIMIT: &str = "128MiB";
const LIMIT_KIB: u64 = 128 << 10;

/// What the runtime holds beside its guests' budgets, at most, in these tests: the binary, the
/// compiler while it compiles the test components at start-up, the embedded store's page cache
/// (16 MiB) and the read cache (32 MiB). docs/operations.md ("Memory") states the bound.
const OVERHEAD_KIB: u64 = 128 << 10;

/// Not a test: the middleman through which `support::output_and_peak_rss` measures the
/// runtime's memory (this binary, started again for this test alone). Does nothing otherwise.
#[test]
fn peak_rss_parent() {
    support::peak_rss_parent();
}

/// `code` as `name`, with `params`, under the tests' memory budget.
fn greedy(name: &str, params: Value) -> Value {
    let mut guest = entry(name, "greedy", params);
    // Time enough for large reads on a loaded machine: only the memory limit is under test.
    guest["limits"] = json!({"memory": LIMIT, "timeout": "10m"});
    guest
}

/// Runs `guest` then the probe in one wake and checks what every hostile-guest test expects
/// (`support::beside_probe`), with the runtime's peak memory within the guest's budget plus
/// the overhead. Returns the log.
fn run_beside_probe(guest: Value) -> String {
    let name = guest["name"].as_str().unwrap().to_owned();
    let (log, _, peak_rss_kib) = support::beside_probe(guest, LIMIT_KIB + OVERHEAD_KIB);
    eprintln!("{name}: the runtime peaked at {peak_rss_kib} KiB");
    log
}

#[test]
fn a_header_bomb_without_an_http_grant_is_stopped_at_its_first_header_object() {
    let log = run_beside_probe(greedy("bomber", json!({"mode": "header-bomb"})));
    assert!(
        logged(
            &log,
            "bomber",
            &["trapped: called wasi:http/types", "[constructor]fields", "granted no HTTP origins (grants.http)"]
        ),
        "{log}"
    );
}

#[test]
fn a_header_bomb_with_an_http_grant_meets_the_memory_limit() {
    let mut bomb = greedy("bomber", json!({"mode": "header-bomb"}));
    bomb["grants"] = json!({"http": ["http://127.0.0.1:9"]});
    let log = run_beside_probe(bomb);
    assert!(
        logged(&log, "bomber", &["stopped: memory limit of 134217728 bytes reached", "WASI and HTTP objects"]),
        "{log}"
    );
}

#[test]
fn a_guest_filling_its_resource_table_meets_the_memory_limit() {
    let log = run_beside_probe(greedy("hoarder", json!({"mode": "handle-bomb", "count": 10_000_000})));
    assert!(
        logged(&log, "hoarder", &["stopped: memory limit of 134217728 bytes reached", "more than 256 WASI"]),
        "{log}"
    );
}

#[test]
fn reading_a_large_workspace_again_and_again_stays_within_the_memory_limit() {
    // 40 MiB read ten times: the runtime must neither keep each answer nor copy it twice.
    let mut reader =
        greedy("reader", json!({"mode": "read-amplify", "workspace": "bulk", "bytes": 40 << 20, "count": 10}));
    reader["grants"] = json!({"config": {"read": ["bulk"], "write": ["bulk"]}});
    let log = run_beside_probe(reader);
    // Either every read fitted (and the guest then fails on purpose) or one met the limit.
    assert!(
        logged(&log, "reader", &["failed: read 41943040 bytes 10 times"])
            || logged(&log, "reader", &["stopped: memory limit of 134217728 bytes reached"]),
        "{log}"
    );
}

#[test]
fn a_read_answer_over_the_memory_limit_ends_the_run_with_that_reason() {
    // 40 MiB of answer under a 32 MiB budget: refused before it reaches the guest.
    let mut reader =
        entry("reader", "greedy", json!({"mode": "read-amplify", "workspace": "bulk", "bytes": 40 << 20, "count": 1}));
    reader["limits"] = json!({"memory": "32MiB", "timeout": "10m"});
    reader["grants"] = json!({"config": {"read": ["bulk"], "write": ["bulk"]}});
    let log = run_beside_probe(reader);
    assert!(
        logged(&log, "reader", &["stopped: memory limit of 33554432 bytes reached (config.get-workspace's answer)"]),
        "{log}"
    );
}

#[test]
fn greedy_runs_side_by_side_stay_within_the_sum_of_their_budgets() {
    // Six runs at once (their grants are apart), each 64 MiB: three read a 24 MiB workspace of
    // their own ten times, two fill their linear memory, one makes host objects until stopped.
    let scratch = Scratch::new();
    let mut entries = Vec::new();
    for i in 1..=3 {
        let workspace = format!("bulk-{i}");
        let params = json!({"mode": "read-amplify", "workspace": workspace, "bytes": 24 << 20, "count": 10});
        let mut reader = entry(&format!("reader-{i}"), "greedy", params);
        reader["grants"] = json!({"config": {"read": [workspace], "write": [workspace]}});
        entries.push(reader);
    }
    for i in 1..=2 {
        entries.push(entry(&format!("filler-{i}"), "greedy", json!({"mode": "memory-then-ok"})));
    }
    entries.push(entry("hoarder", "greedy", json!({"mode": "handle-bomb", "count": 10_000_000})));
    for guest in &mut entries {
        guest["limits"] = json!({"memory": "64MiB", "timeout": "10m"});
    }
    let budgets_kib = entries.len() as u64 * (64 << 10);
    let init = scratch.init_file(&entries);
    let (output, peak_rss_kib) = support::output_and_peak_rss(scratch.once_command(&init).args(["--concurrency", "8"]));
    let log = support::stderr(&output);
    eprintln!("six greedy runs: the runtime peaked at {peak_rss_kib} KiB");
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(peak_rss_kib < budgets_kib + OVERHEAD_KIB, "peaked at {peak_rss_kib} KiB:\n{log}");
    for i in 1..=3 {
        assert!(logged(&log, &format!("reader-{i}"), &["failed: read 25165824 bytes 10 times"]), "{log}");
    }
    assert!(logged(&log, "filler-1", &["reached its memory limit of 67108864 bytes"]), "{log}");
    assert!(logged(&log, "hoarder", &["stopped: memory limit of 67108864 bytes reached"]), "{log}");
}

/// Raw characters that must never reach the log from a guest.
const RAW: [char; 4] = ['\0', '\u{1b}', '\u{202e}', '\r'];

/// Checks that no line of `text` was forged by the `forger` component: none starts with the
/// forged timestamp, and no raw control or bidirectional character is anywhere.
fn assert_nothing_forged(text: &str) {
    for line in text.lines() {
        assert!(!line.starts_with("2026-01-01T00:00:00"), "a forged line: {line:?}\n{text}");
    }
    for raw in RAW {
        assert!(!text.contains(raw), "raw {raw:?} in:\n{text}");
    }
}

#[test]
fn no_guest_text_can_forge_a_log_line_or_carry_raw_control_characters() {
    let scratch = Scratch::new();
    let mut forger = entry("forger", "forger", json!({}));
    forger["limits"] = json!({"memory": LIMIT});
    let init = scratch.init_file(&[forger, probe_in("probe", "probed")]);
    let (output, peak_rss_kib) = scratch.run_once_measured(&init);
    let log = support::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(peak_rss_kib < LIMIT_KIB + OVERHEAD_KIB, "peaked at {peak_rss_kib} KiB:\n{log}");
    assert_nothing_forged(&log);
    for line in log.lines().filter(|line| line.contains("FORGED")) {
        assert!(line.contains("forger"), "forged text outside the forger's lines: {line:?}");
    }
    // Every path reached the log, escaped: the validate warning at start-up, `log`, stdout,
    // stderr, and the run's error.
    for path in [
        "params: warning innocent\\n2026",
        "log innocent",
        "stdout innocent",
        "stderr innocent",
        "failed: run error innocent\\n2026",
    ] {
        assert!(logged(&log, "forger", &[path]), "no {path:?} in:\n{log}");
    }
    assert!(log.contains("\\u{0}\\u{1b}[2J\\u{202e}desrever"), "{log}");
    assert_eq!(stored_flags(&scratch.dump()), json!({"probe": "\"v1\""}));

    // The summary, in `check`'s report for people and in its JSON.
    for format in ["text", "json"] {
        let check = support::bin().args(["check", "--format", format, "-c"]).arg(&init).output().unwrap();
        let report = String::from_utf8_lossy(&check.stdout);
        assert!(check.status.success(), "{}", support::stderr(&check));
        assert_nothing_forged(&report);
        assert!(report.contains("summary innocent\\\\n2026") || report.contains("summary innocent\\n2026"), "{report}");
    }
}

#[test]
fn a_validate_refusal_cannot_forge_a_line_either() {
    let scratch = Scratch::new();
    let output = scratch.run_once(&scratch.init_file(&[entry("forger", "forger", json!({"refuse": true}))]));
    let log = support::stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{log}");
    assert_nothing_forged(&log);
    assert!(log.contains("refusal innocent\\n2026"), "{log}");
}

/// Through the public API: a guest that runs until its (long) timeout does not keep the
/// probes that finished beside it from having their flags stored within the batch window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_run_does_not_hold_back_the_flags_of_runs_that_finished_beside_it() {
    let scratch = Scratch::new();
    let mut spinner = entry("spinner", "hostile", json!({"mode": "spin"}));
    spinner["limits"] = json!({"fuel": 1_000_000_000_000_u64, "timeout": "10m"});
    let probes = ["probe-1", "probe-2", "probe-3"];
    let mut entries = vec![spinner];
    entries.extend(probes.iter().map(|name| probe_in(name, name)));
    let file = InitFile::load(&scratch.init_file(&entries)).unwrap();
    let sandbox = Sandbox::new().unwrap();
    let initialisers = Initialiser::prepare_all(&file, &sandbox).await.unwrap();
    let services = Arc::new(EmbeddedServices::open(&scratch.state()).unwrap());
    let concurrency = std::num::NonZeroUsize::new(4).unwrap();
    let mut reconciler =
        Reconciler::new(initialisers, services.clone(), Cadence::default()).with_concurrency(concurrency);
    let wake = tokio::spawn(async move { reconciler.wake().await });

    // A guard against a hang only, far below the spinner's ten minutes: the property is that
    // the flags are stored while the spinner still runs.
    let give_up = tokio::time::Instant::now() + Duration::from_secs(120);
    let stored = loop {
        let stored = services.store().snapshot().unwrap().values("__system__", "init-state").unwrap();
        if stored.len() == probes.len() || tokio::time::Instant::now() > give_up {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!wake.is_finished(), "the spinner's run is still going");
    let names: Vec<&str> = stored.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, probes, "the probes' flags are stored while the spinner runs");
    wake.abort();
}

#[test]
fn a_memory_refusal_the_guest_swallows_is_logged() {
    let scratch = Scratch::new();
    let mut swallower = entry("swallower", "greedy", json!({"mode": "memory-then-ok"}));
    swallower["limits"] = json!({"memory": "32MiB"});
    let (output, peak_rss_kib) =
        scratch.run_once_measured(&scratch.init_file(&[swallower, probe_in("probe", "probed")]));
    let log = support::stderr(&output);
    // It succeeded, and is stored as done, as the guest said; but the operator is told.
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(peak_rss_kib < (32 << 10) + OVERHEAD_KIB, "peaked at {peak_rss_kib} KiB:\n{log}");
    assert_eq!(stored_flags(&scratch.dump()), json!({"probe": "\"v1\"", "swallower": "\"v1\""}));
    assert!(
        logged(
            &log,
            "swallower",
            &["reached its memory limit of 33554432 bytes", "the guest carried on and succeeded"]
        ),
        "{log}"
    );
}

/// Through the public API: the same refusal reaches the run's stats and the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_refusal_the_guest_swallows_is_counted_in_the_metrics() {
    let scratch = Scratch::new();
    let mut swallower = entry("swallower", "greedy", json!({"mode": "memory-then-ok"}));
    swallower["limits"] = json!({"memory": "32MiB"});
    let file = InitFile::load(&scratch.init_file(&[swallower])).unwrap();
    let sandbox = Sandbox::new().unwrap();
    let initialisers = Initialiser::prepare_all(&file, &sandbox).await.unwrap();
    let services = Arc::new(EmbeddedServices::open(&scratch.state()).unwrap());
    let report = Reconciler::new(initialisers, services, Cadence::default()).wake().await;
    assert!(report.converged(), "{report:?}");
    assert!(report.runs[0].memory_refused && report.runs[0].failure.is_none(), "{report:?}");
    let metrics = Metrics::new();
    metrics.record(&report);
    let text = metrics.encode();
    assert!(text.lines().any(|l| l == r#"bootstrap_memory_limit_reached_total{initialiser="swallower"} 1"#), "{text}");
}
