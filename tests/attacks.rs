//! End-to-end attacks on the edges of the sandbox that `tests/sandbox.rs` leaves alone: a
//! hostile `describe` or `validate` at start-up, workspace names dressed up as a granted one or
//! as `__system__`, separator characters in config types and keys, flow calls outside the flow
//! grants, sockets and name lookups, HTTP origin look-alikes and redirects, and code that is no
//! initialiser (a large file that is no component, a component importing what the host does not
//! provide).
//!
//! Like `tests/sandbox.rs`, each runs the real binary (`--pubsub-backend embedded --once`, or
//! `check`) and judges it by its exit code, its log, what it stored (`dump`) and, where a guest
//! pushes a lot of data at the runtime, its peak memory. The attackers are the modes of
//! `tests/components/hostile`, and `tests/components/stowaway`; the well-behaved
//! `tests/components/probe` runs beside them where the runtime should carry on.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::listener::{untouched_listener, was_connected};
use support::{Scratch, entry, hostile, logged, probe, stored_flags};

/// Not a test: the middleman through which `support::output_and_peak_rss` measures the
/// runtime's memory (this binary, started again for this test alone). Does nothing otherwise.
#[test]
fn peak_rss_parent() {
    support::peak_rss_parent();
}

/// The most memory the runtime may take while a guest hands it huge data: the sanity bound of
/// `tests/sandbox.rs`, far above what the runtime needs, far below what it would take to keep
/// a guest's 100 MB string and copies of it.
const RSS_BOUND_KIB: u64 = 300 << 10;

/// The longest line the log or an error message may have, whatever the guest sent: a line is
/// cut to `limits.log_line_size` (4 KiB) and may then grow by its escapes and marker.
const LINE_BOUND: usize = 64 << 10;

/// Fuel enough for a guest to run until its wall-clock limit.
const AMPLE_FUEL: u64 = 1_000_000_000_000;

/// What the probe leaves in the store after its one run.
fn probe_record() -> Value {
    json!({"probe-runs": {"v1": r#"{"new":"v1","old":null}"#}})
}

/// Asserts that nothing was stored: start-up refused the file before the store was opened
/// (or, were it opened, left it empty).
fn assert_nothing_stored(scratch: &Scratch, log: &str) {
    if scratch.state().exists() {
        assert_eq!(scratch.dump(), json!({}), "something was stored:\n{log}");
    }
}

/// Asserts that every line of `text` is short, so no guest text reached it whole.
fn assert_lines_short(text: &str) {
    for line in text.lines() {
        let start: String = line.chars().take(200).collect();
        assert!(line.len() < LINE_BOUND, "a line of {} bytes: {start}...", line.len());
    }
}

/// Asserts that the guest text `huge_text` sends (lines starting `FORGED`, with a terminal
/// escape, a bidirectional override and a carriage return) reached `text` only escaped: it
/// started no line and drove no terminal.
fn assert_no_forged_lines(text: &str) {
    for line in text.lines() {
        assert!(!line.starts_with("FORGED"), "a guest forged a line: {line}");
    }
    for raw in ['\u{1b}', '\u{202e}', '\r'] {
        assert!(!text.contains(raw), "{raw:?} reached the output raw");
    }
}

/// Runs `entries` for one wake and expects start-up to refuse them: exit 2, nothing stored, the
/// runtime within [`RSS_BOUND_KIB`], every line short, and an `error:` line naming the init
/// file, entry `name` at `position`, `field` and starting its reason with `because`. Returns the
/// log and the error line.
fn refused_at_start_up(
    scratch: &Scratch,
    entries: &[Value],
    (name, position): (&str, usize),
    field: &str,
    because: &str,
) -> (String, String) {
    let init = scratch.init_file(entries);
    let (output, peak_rss_kib) = scratch.run_once_measured(&init);
    let log = support::stderr(&output);
    assert_eq!(output.status.code(), Some(2), "expected a configuration error:\n{log}");
    assert!(peak_rss_kib < RSS_BOUND_KIB, "the runtime peaked at {peak_rss_kib} KiB");
    assert_nothing_stored(scratch, &log);
    assert_lines_short(&log);
    let error = log.lines().find(|line| line.starts_with("error: ")).expect("an error line").to_owned();
    let expected = format!("error: {}: initialiser '{name}' (entry {position}), field '{field}': ", init.display());
    assert!(error.starts_with(&expected), "expected {expected}...\n{log}");
    assert!(error[expected.len()..].starts_with(because), "expected ...{because}...\n{log}");
    (log, error)
}

// ---------------------------------------------------------------------------------------------
// describe and validate, at start-up

/// The hostile component as `name`, whose `describe` misbehaves as `mode` says: the params are
/// written to `describe-mode` in the scratch directory, and that file is granted (describe gets
/// no params; the guest finds the file among its preopened directories).
fn describing(scratch: &Scratch, name: &str, mode: Value) -> Value {
    let file = scratch.write("describe-mode", &mode.to_string());
    let mut guest = hostile(name, json!({"mode": "env"}));
    guest["grants"] = json!({"files": [file]});
    guest
}

/// The hostile component as `name`, whose `validate` misbehaves as `params` say.
fn validating(name: &str, mut params: Value) -> Value {
    params["during"] = json!("validate");
    hostile(name, params)
}

#[test]
fn a_panic_in_describe_stops_start_up_naming_the_entry() {
    let scratch = Scratch::new();
    let entries = [describing(&scratch, "vandal", json!({"mode": "panic"})), probe()];
    let (log, _) = refused_at_start_up(&scratch, &entries, ("vandal", 1), "component", "describe() trapped: ");
    assert!(logged(&log, "vandal", &["deliberate panic in describe"]), "{log}");
}

#[test]
fn an_endless_loop_in_describe_runs_out_of_the_entrys_fuel() {
    let scratch = Scratch::new();
    let mut spinner = describing(&scratch, "spinner", json!({"mode": "spin"}));
    spinner["limits"] = json!({"fuel": 50_000_000});
    let because = "describe() stopped: out of fuel (limit 50000000)";
    refused_at_start_up(&scratch, &[spinner, probe()], ("spinner", 1), "component", because);
}

#[test]
fn an_endless_loop_in_describe_stops_at_the_entrys_timeout() {
    let scratch = Scratch::new();
    let mut spinner = describing(&scratch, "spinner", json!({"mode": "spin"}));
    spinner["limits"] = json!({"fuel": AMPLE_FUEL, "timeout": "300ms"});
    // The entry's own limit, not the default 30 s.
    let because = "describe() stopped: wall-clock limit of 300ms exceeded";
    refused_at_start_up(&scratch, &[spinner, probe()], ("spinner", 1), "component", because);
}

#[test]
fn a_panic_in_validate_stops_start_up_naming_the_params() {
    let scratch = Scratch::new();
    let entries = [validating("vandal", json!({"mode": "panic"})), probe()];
    let (log, _) = refused_at_start_up(&scratch, &entries, ("vandal", 1), "params", "validate() trapped: ");
    assert!(logged(&log, "vandal", &["deliberate panic in validate"]), "{log}");
}

#[test]
fn an_endless_loop_in_validate_runs_out_of_the_entrys_fuel() {
    let scratch = Scratch::new();
    let mut spinner = validating("spinner", json!({"mode": "spin"}));
    spinner["limits"] = json!({"fuel": 50_000_000});
    let because = "validate() stopped: out of fuel (limit 50000000)";
    refused_at_start_up(&scratch, &[spinner, probe()], ("spinner", 1), "params", because);
}

#[test]
fn an_endless_loop_in_validate_stops_at_the_entrys_timeout() {
    let scratch = Scratch::new();
    let mut spinner = validating("spinner", json!({"mode": "spin"}));
    spinner["limits"] = json!({"fuel": AMPLE_FUEL, "timeout": "300ms"});
    let because = "validate() stopped: wall-clock limit of 300ms exceeded";
    refused_at_start_up(&scratch, &[spinner, probe()], ("spinner", 1), "params", because);
}

#[test]
fn a_memory_bomb_in_describe_or_validate_stops_at_the_entrys_memory_limit() {
    let scratch = Scratch::new();
    let mut bomb = describing(&scratch, "hoarder", json!({"mode": "memory"}));
    bomb["limits"] = json!({"memory": "32MiB"});
    let because = "describe() stopped: memory limit of 33554432 bytes reached";
    refused_at_start_up(&scratch, &[bomb, probe()], ("hoarder", 1), "component", because);

    let scratch = Scratch::new();
    let mut bomb = validating("hoarder", json!({"mode": "memory"}));
    bomb["limits"] = json!({"memory": "32MiB"});
    let because = "validate() stopped: memory limit of 33554432 bytes reached";
    refused_at_start_up(&scratch, &[bomb, probe()], ("hoarder", 1), "params", because);
}

/// Grants for `host-calls`: everything it will try, so that only the stage can refuse it.
fn granted_everything(origin: &str) -> Value {
    json!({
        "config": {"read": ["acme"], "write": ["acme"]},
        "flow": {"workspaces": ["acme"]},
        "http": [origin],
    })
}

/// Asserts that a `host-calls` report (`what` made host calls: ...) shows every config and flow
/// call denied and the HTTP request refused, and that `server` saw nothing.
fn assert_all_host_calls_refused(report: &str, server: &HttpServer, log: &str) {
    for call in ["config.get", "config.put", "flow.list-blueprints", "flow.put-blueprint"] {
        assert!(report.contains(&format!("{call}: denied: ")), "{call} was not denied:\n{log}");
    }
    assert!(report.contains(&format!("GET {}/: HTTP request denied", server.origin())), "{log}");
    assert!(!report.contains("went through"), "{log}");
    assert!(server.requests().is_empty(), "the server was reached: {:?}", server.requests());
}

#[test]
fn describe_reaches_no_service_and_no_http_origin_even_when_granted() {
    let scratch = Scratch::new();
    let server = HttpServer::start(None);
    let mode = json!({"mode": "host-calls", "workspace": "acme", "urls": [format!("{}/", server.origin())]});
    let mut caller = describing(&scratch, "caller", mode);
    let files = caller["grants"]["files"].clone();
    caller["grants"] = granted_everything(&server.origin());
    caller["grants"]["files"] = files;
    let (log, _) =
        refused_at_start_up(&scratch, &[caller, probe()], ("caller", 1), "component", "describe() trapped: ");
    let report = log.lines().find(|line| line.contains("describe made host calls: ")).expect("the guest's report");
    assert!(logged(&log, "caller", &["describe made host calls: "]), "{log}");
    assert_all_host_calls_refused(report, &server, &log);
    // The log is no service: a guest may log from describe, under its own name.
    assert!(logged(&log, "caller", &["host-calls: a log call"]), "{log}");
}

#[test]
fn validate_reaches_no_service_and_no_http_origin_even_when_granted() {
    let scratch = Scratch::new();
    let server = HttpServer::start(None);
    let params = json!({"mode": "host-calls", "workspace": "acme", "urls": [format!("{}/", server.origin())]});
    let mut caller = validating("caller", params);
    caller["grants"] = granted_everything(&server.origin());
    let because = "validate made host calls: ";
    let (log, error) = refused_at_start_up(&scratch, &[caller, probe()], ("caller", 1), "params", because);
    assert_all_host_calls_refused(&error, &server, &log);
}

#[test]
fn a_100_mb_summary_is_cut_to_one_short_line() {
    let scratch = Scratch::new();
    let init = scratch.init_file(&[describing(&scratch, "boaster", json!({"mode": "huge-text"}))]);
    // `check` prints the summary, for the operator to read.
    let mut check = support::bin();
    check.arg("check").arg("-c").arg(&init).args(["--format", "json"]);
    let (output, peak_rss_kib) = support::output_and_peak_rss(&check);
    let (stdout, log) = (String::from_utf8_lossy(&output.stdout), support::stderr(&output));
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(peak_rss_kib < RSS_BOUND_KIB, "the runtime peaked at {peak_rss_kib} KiB");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let summary = report["initialisers"][0]["summary"].as_str().expect("a summary");
    assert!(summary.starts_with("FORGED line"), "{summary}");
    assert!(summary.len() < LINE_BOUND && summary.contains("[truncated: "), "{} bytes", summary.len());
    // Parsed from the JSON: what the operator's terminal would get from the text report.
    for raw in ['\n', '\r', '\u{1b}', '\u{202e}'] {
        assert!(!summary.contains(raw), "{raw:?} in {summary}");
    }
    assert_no_forged_lines(&stdout);
    assert_lines_short(&stdout);
}

#[test]
fn a_100_mb_validate_refusal_is_cut_to_one_short_line() {
    let scratch = Scratch::new();
    let entries = [validating("boaster", json!({"mode": "huge-text"})), probe()];
    let (log, error) = refused_at_start_up(&scratch, &entries, ("boaster", 1), "params", "FORGED line");
    assert!(error.contains("[truncated: "), "{error}");
    assert_no_forged_lines(&log);
}

#[test]
fn validate_warnings_of_100_mb_are_cut_to_short_lines() {
    let scratch = Scratch::new();
    let init = scratch.init_file(&[validating("boaster", json!({"mode": "huge-warnings"})), probe()]);
    let (output, peak_rss_kib) = scratch.run_once_measured(&init);
    let log = support::stderr(&output);
    // Warnings do not stop start-up: both run, and converge.
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(peak_rss_kib < RSS_BOUND_KIB, "the runtime peaked at {peak_rss_kib} KiB");
    let warnings = log.lines().filter(|line| line.contains("params: FORGED line")).count();
    assert_eq!(warnings, 4, "{log}");
    assert!(logged(&log, "boaster", &["params: FORGED line", "[truncated: "]), "{log}");
    assert_lines_short(&log);
    assert_no_forged_lines(&log);
}

// ---------------------------------------------------------------------------------------------
// Workspace names

#[test]
fn workspace_names_that_only_look_granted_are_denied() {
    let long = "a".repeat(100_000);
    // The runtime logs the first 16 distinct refusals of a run at warn (each name draws two, a
    // put and a read): the first eight names are those whose refusal the test reads.
    let forged = "acme\n2030-01-01T00:00:00Z  INFO FORGED line";
    let names = [
        "__system__",
        "ACME",
        "acme\0",
        forged,
        "acme\u{1b}[2J",
        long.as_str(),
        "\u{430}cme",
        "acme ",
        " acme",
        "Acme",
        "",
        "*",
        "acme*",
        "acme/",
        "acme/x",
        "__SYSTEM__",
        "__system__ ",
        " __system__",
    ];
    let mut trickster = hostile("trickster", json!({"mode": "workspace-tricks", "workspaces": names}));
    trickster["grants"] = json!({"config": {"read": ["acme"], "write": ["acme"]}});
    let scratch = Scratch::new();
    let output = scratch.run_once(&scratch.init_file(&[trickster, probe()]));
    let log = support::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");

    let failure = "failed: 0 of 18 puts and 0 of 18 reads went through: written [], read []";
    assert!(logged(&log, "trickster", &[failure]), "{log}");
    // Each refusal is logged under the guest's name with its target quoted (escaped, and the
    // long one abbreviated: how is the log's business), so no name starts a line of its own.
    assert!(logged(&log, "trickster", &["denied: reserved for the runtime", r#"target="__system__""#]), "{log}");
    let refused_puts =
        log.lines().filter(|line| line.contains("denied: not granted") && line.contains(r#"function="config.put""#));
    assert_eq!(refused_puts.count(), 7, "{log}");
    for target in [r#""ACME""#, r#""аcme""#, r#""acme ""#, r#""aaaaaaaa"#] {
        assert!(logged(&log, "trickster", &["denied: not granted", &format!("target={target}")]), "{target}:\n{log}");
    }
    for line in log.lines().filter(|line| line.contains("FORGED")) {
        assert!(logged(line, "trickster", &["denied: not granted"]), "{line}");
    }
    assert_lines_short(&log);
    assert!(!log.contains(&"a".repeat(5_000)), "the long name was echoed whole");
    assert_no_forged_lines(&log);

    let dump = scratch.dump();
    assert_eq!(stored_flags(&dump), json!({"probe": "\"v1\""}), "{log}");
    assert_eq!(dump, json!({"__system__": {"init-state": {"probe": "\"v1\""}}, "probed": probe_record()}));
}

#[test]
fn a_wildcard_grant_cannot_reach_the_system_workspace_through_a_look_alike_name() {
    // With `*`, a name that merely looks like `__system__` is an ordinary workspace the guest
    // may write. What must hold is that `__system__` itself is refused and that no look-alike
    // lands in it: the store does not fold case, trim, or stop at a NUL.
    let look_alikes = [
        "__SYSTEM__",
        "__System__",
        " __system__",
        "__system__ ",
        "__system__\0",
        "__system__\t",
        "__system__/",
        "\u{ff3f}\u{ff3f}system\u{ff3f}\u{ff3f}",
    ];
    let mut names = vec!["__system__"];
    names.extend(look_alikes);
    let params = json!({"mode": "workspace-tricks", "workspaces": names, "type": "init-state", "key": "probe"});
    let mut impostor = hostile("impostor", params);
    impostor["flag"] = json!("forged");
    impostor["grants"] = json!({"config": {"read": ["*"], "write": ["*"]}});
    let scratch = Scratch::new();
    let output = scratch.run_once(&scratch.init_file(&[impostor, probe()]));
    let log = support::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(logged(&log, "impostor", &["denied", r#"target="__system__""#, "reserved for the runtime"]), "{log}");
    assert!(logged(&log, "probe", &["running"]), "{log}");

    let dump = scratch.dump();
    assert_eq!(dump["__system__"], json!({"init-state": {"probe": "\"v1\""}}), "{log}");
    for (workspace, contents) in dump.as_object().unwrap() {
        match workspace.as_str() {
            "__system__" => {}
            "probed" => assert_eq!(contents, &probe_record()),
            other => {
                assert!(look_alikes.contains(&other), "{other:?} was written: {dump}");
                assert_eq!(contents, &json!({"init-state": {"probe": "\"forged\""}}), "{other:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Separators in config types and keys

#[test]
fn separators_in_config_types_and_keys_neither_collide_nor_leave_the_workspace() {
    // The same characters in workspace names, written by a neighbour, would collide with
    // `acme`'s entries under an encoding that joins workspace, type and key with one of them.
    let neighbours = ["acme/x", "acme:x", "acme\0x", "acme.x", "acme\u{1f}x"];
    let mut neighbour =
        hostile("neighbour", json!({"mode": "workspace-tricks", "workspaces": neighbours, "type": "y", "key": "z"}));
    neighbour["grants"] = json!({"config": {"read": neighbours, "write": neighbours}});

    let mut entries: Vec<(String, String)> = Vec::new();
    for separator in ["/", ":", "\0", "\n", ".", "\u{1f}", "\u{1e}", "\\", "%2F", "\u{10ffff}"] {
        entries.push((format!("x{separator}y"), "z".into()));
        entries.push(("x".into(), format!("y{separator}z")));
        entries.push((format!("x{separator}"), String::new()));
        entries.push(("x".into(), format!("y{separator}")));
    }
    for (t, k) in [("x", "y"), ("x", ""), ("", "x"), ("", ""), ("init-state", "probe"), ("processor:x", "y")] {
        entries.push((t.into(), k.into()));
    }
    let delete: Vec<(String, String)> =
        [("x", "y/z"), ("x\0y", "z"), ("", ""), ("x", "y")].iter().map(|(t, k)| ((*t).into(), (*k).into())).collect();
    let mut separator =
        hostile("separator", json!({"mode": "separators", "workspace": "acme", "entries": entries, "delete": delete}));
    separator["grants"] = json!({"config": {"read": ["acme"], "write": ["acme"]}});

    let scratch = Scratch::new();
    let output = scratch.run_once(&scratch.init_file(&[neighbour, separator, probe()]));
    let log = support::stderr(&output);
    let kept: Vec<&(String, String)> = entries.iter().filter(|pair| !delete.contains(pair)).collect();
    // The guest read every entry back exactly, every way, before and after the delete.
    assert!(logged(&log, "separator", &[&format!("read back {} entries exactly as written", entries.len())]), "{log}");
    assert!(logged(&log, "neighbour", &["failed: 5 of 5 puts and 5 of 5 reads went through"]), "{log}");
    assert_eq!(output.status.code(), Some(1), "only the neighbour, which always fails, is pending:\n{log}");

    let dump = scratch.dump();
    let mut acme = serde_json::Map::new();
    for (t, k) in &kept {
        let value = serde_json::to_string(&(t, k)).unwrap();
        acme.entry(t.clone()).or_insert_with(|| json!({}))[k.as_str()] = json!(value);
    }
    assert_eq!(dump["acme"], Value::Object(acme), "{log}");
    for workspace in neighbours {
        assert_eq!(dump[workspace], json!({"y": {"z": "\"v1\""}}), "{workspace:?}");
    }
    let flags = json!({"probe": "\"v1\"", "separator": "\"v1\""});
    assert_eq!(dump["__system__"], json!({"init-state": flags}), "{log}");
    assert_eq!(dump.as_object().unwrap().len(), 3 + neighbours.len(), "no other workspace: {dump}");
}

// ---------------------------------------------------------------------------------------------
// Flow calls outside the grants

/// The eight flow functions' names, as the runtime logs them.
const FLOW_FUNCTIONS: [&str; 8] = [
    "flow.list-blueprints",
    "flow.get-blueprint",
    "flow.put-blueprint",
    "flow.list-flows",
    "flow.get-flow",
    "flow.start-flow",
    "flow.stop-flow",
    "flow.delete-blueprint",
];

#[test]
fn flow_calls_outside_the_flow_grants_are_denied_and_change_nothing() {
    // `owner` starts a flow in `theirs`; then `nomad` (no grants) and `squatter` (flow granted
    // elsewhere, and config, not flow, on `theirs`) call every flow function on `theirs` and on
    // `__system__`, aimed at the owner's blueprint and flow.
    let mut owner = hostile("owner", json!({"mode": "flow-start", "workspace": "theirs"}));
    owner["grants"] = json!({"flow": {"workspaces": ["theirs"]}});
    let calls = json!({"mode": "flow-calls", "workspaces": ["theirs", "__system__"]});
    let nomad = hostile("nomad", calls.clone());
    let mut squatter = hostile("squatter", calls);
    squatter["grants"] = json!({"flow": {"workspaces": ["mine"]}, "config": {"read": ["theirs"], "write": ["theirs"]}});

    let scratch = Scratch::new();
    let init = scratch.init_file(&[owner, nomad, squatter, probe()]);
    // The legacy protocol, where flow-svc serves `theirs` without a registration.
    let output = scratch.once_command(&init).args(["--concurrency", "1", "--protocol", "legacy"]).output().unwrap();
    let log = support::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(logged(&log, "owner", &["started flow hostile in theirs"]), "{log}");
    for name in ["nomad", "squatter"] {
        assert!(logged(&log, name, &["failed: 0 of 16 flow calls went through: []"]), "{name}:\n{log}");
        for function in FLOW_FUNCTIONS {
            let function = format!("function=\"{function}\"");
            let theirs = [&function[..], r#"target="theirs""#, "denied: not granted"];
            let system = [&function[..], r#"target="__system__""#, "denied: reserved for the runtime"];
            assert!(logged(&log, name, &theirs), "{name} {function} on theirs:\n{log}");
            assert!(logged(&log, name, &system), "{name} {function} on __system__:\n{log}");
        }
    }

    let dump = scratch.dump();
    let theirs = &dump["theirs"];
    assert_eq!(theirs["flow-blueprint"], json!({"hostile": r#"{"blueprint": {}, "flow": {}}"#}), "{dump}");
    let flows: Vec<&String> = theirs["flow"].as_object().expect("the owner's flow").keys().collect();
    assert_eq!(flows, ["hostile"], "{dump}");
    assert!(theirs["flow"]["hostile"].as_str().unwrap().contains("started by its owner"), "{dump}");
    assert_eq!(stored_flags(&dump), json!({"owner": "\"v1\"", "probe": "\"v1\""}));
    assert_eq!(dump["__system__"].as_object().unwrap().len(), 1, "only init-state: {dump}");
    let workspaces: Vec<&String> = dump.as_object().unwrap().keys().collect();
    assert_eq!(workspaces, ["__system__", "probed", "theirs"]);
}

// ---------------------------------------------------------------------------------------------
// Network

/// A TCP port on the loopback interface that nothing listens on (it was free a moment ago).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn sockets_listeners_and_name_lookups_fail_inside_the_guest() {
    // A datagram would arrive here; a listener would be found at `listen`.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let params = json!({
        "mode": "network",
        "address": udp.local_addr().unwrap().to_string(),
        "listen": listen,
        "host": "localhost",
    });
    let scratch = Scratch::new();
    let mut runtime = scratch
        .once_command(&scratch.init_file(&[hostile("networker", params), probe()]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Knock on the port for as long as the runtime runs: a guest that got to listen holds its
    // listener for two seconds.
    let mut stderr = runtime.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        stderr.read_to_string(&mut log).unwrap();
        log
    });
    let mut answered = false;
    while runtime.try_wait().unwrap().is_none() {
        answered |= TcpStream::connect_timeout(&listen.parse().unwrap(), Duration::from_millis(50)).is_ok();
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = runtime.wait().unwrap();
    let log = reader.join().unwrap();
    assert_eq!(status.code(), Some(1), "{log}");

    assert!(logged(&log, "networker", &["failed: 0 of 6 network attempts went through: []"]), "{log}");
    // Through std, each fails at its first step; through wasi:sockets, the host refuses the
    // socket itself, or the lookup, before any address is involved.
    let refusals = [
        ("UDP send (std)", "bind: "),
        ("UDP bind (wasi:sockets)", "create: "),
        ("TCP listen (std)", ""),
        ("TCP listen (wasi:sockets)", "create: "),
        ("DNS lookup (std)", ""),
        ("DNS lookup (wasi:sockets)", "resolve-addresses: "),
    ];
    for (attempt, step) in refusals {
        assert!(logged(&log, "networker", &[&format!("{attempt}: failed: {step}")]), "{attempt}:\n{log}");
    }
    assert!(!answered, "something listened on {listen}:\n{log}");
    let mut datagram = [0u8; 64];
    let received = udp.recv(&mut datagram);
    assert!(matches!(&received, Err(e) if e.kind() == ErrorKind::WouldBlock), "received {received:?}");
    assert_eq!(stored_flags(&scratch.dump()), json!({"probe": "\"v1\""}));
}

// ---------------------------------------------------------------------------------------------
// HTTP origins

/// A tiny HTTP server on a free loopback port: it answers every request with `200 granted
/// origin`, or, for `/redirect`, with a 302 to `redirect_to`, and keeps each request's head.
struct HttpServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl HttpServer {
    fn start(redirect_to: Option<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let kept = requests.clone();
        // Serves until the test process ends.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let head = read_head(&mut stream);
                let response = match &redirect_to {
                    Some(location) if head.starts_with("GET /redirect ") => {
                        format!(
                            "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                    }
                    _ => "HTTP/1.1 200 OK\r\ncontent-length: 14\r\nconnection: close\r\n\r\ngranted origin".to_owned(),
                };
                kept.lock().unwrap().push(head);
                let _ = stream.write_all(response.as_bytes());
            }
        });
        Self { port, requests }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The heads (request line and headers) of the requests received so far.
    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// A request's head: everything up to the empty line (or what arrived before the timeout).
fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && matches!(stream.read(&mut byte), Ok(1)) {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn http_origin_look_alikes_are_denied_and_a_redirect_is_not_followed() {
    let (elsewhere, other_port) = untouched_listener();
    let server = HttpServer::start(Some(format!("http://127.0.0.1:{other_port}/stolen")));
    let port = server.port;
    let granted = server.origin();
    // Each names the granted server's address some other way, or hides another behind it.
    let look_alikes = [
        format!("http://localhost:{port}/localhost"),
        format!("http://[::1]:{port}/ipv6"),
        format!("http://[::ffff:127.0.0.1]:{port}/mapped"),
        format!("http://127.1:{port}/short"),
        format!("http://2130706433:{port}/decimal"),
        format!("http://0x7f000001:{port}/hex"),
        format!("http://127.0.0.1.:{port}/trailing-dot"),
        format!("https://127.0.0.1:{port}/https"),
        format!("http://127.0.0.1:{port}@127.0.0.1:{other_port}/userinfo-disguise"),
    ];
    let mut urls = vec![format!("{granted}/plain"), format!("{granted}/redirect")];
    urls.extend(look_alikes.iter().cloned());
    let mut caller = hostile("caller", json!({"mode": "http-get", "urls": urls}));
    caller["grants"] = json!({"http": [granted]});
    let scratch = Scratch::new();
    let output = scratch.run_once(&scratch.init_file(&[caller, probe()]));
    let log = support::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");

    assert!(logged(&log, "caller", &[&format!("GET {granted}/plain: 200 granted origin")]), "{log}");
    // The guest sees the redirect itself; nothing follows it to the other origin.
    assert!(logged(&log, "caller", &[&format!("GET {granted}/redirect: 302 ")]), "{log}");
    for url in &look_alikes {
        assert!(logged(&log, "caller", &[&format!("GET {url}: HTTP request denied")]), "{url}:\n{log}");
    }
    let failure = format!("failed: {} of {} requests failed", look_alikes.len(), look_alikes.len() + 2);
    assert!(logged(&log, "caller", &[&failure]), "{log}");
    let paths: Vec<String> =
        server.requests().iter().map(|head| head.split(' ').nth(1).unwrap_or_default().to_owned()).collect();
    assert_eq!(paths, ["/plain", "/redirect"], "{:?}", server.requests());
    assert!(!was_connected(&elsewhere), "the other origin was reached:\n{log}");
}

/// Userinfo (`http://user:secret@host:port/`) leaves the host and port as granted, but the
/// allow-list refuses any URL that carries it: no credential is sent anywhere. A port with a
/// leading zero is the granted port, and reaches only it.
#[test]
fn userinfo_is_denied_and_a_leading_zero_port_reaches_only_the_granted_origin() {
    let server = HttpServer::start(None);
    let port = server.port;
    let userinfo = format!("http://user:secret@127.0.0.1:{port}/userinfo");
    let zero = format!("http://127.0.0.1:0{port}/zero");
    let mut caller = hostile("caller", json!({"mode": "http-get", "urls": [userinfo, zero]}));
    caller["grants"] = json!({"http": [server.origin()]});
    let scratch = Scratch::new();
    let output = scratch.run_once(&scratch.init_file(&[caller, probe()]));
    let log = support::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");

    assert!(logged(&log, "caller", &[&format!("GET {userinfo}: HTTP request denied")]), "{log}");
    assert!(logged(&log, "caller", &["denied: a URL with userinfo (user:password@) is never allowed"]), "{log}");
    assert!(logged(&log, "caller", &[&format!("GET {zero}: 200 granted origin")]), "{log}");
    assert!(logged(&log, "caller", &["failed: 1 of 2 requests failed"]), "{log}");
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].starts_with("GET /zero HTTP/1.1\r\n"), "{requests:?}");
    assert!(!requests[0].contains("secret"), "{requests:?}");
}

// ---------------------------------------------------------------------------------------------
// Code that is not an initialiser

/// `bytes` pseudo-random bytes (xorshift), the same every run.
fn junk(bytes: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A WebAssembly binary with `preamble` (magic and version) and one custom section of about
/// `bytes` bytes: a valid, empty module or component.
fn with_custom_section(preamble: [u8; 8], bytes: usize) -> Vec<u8> {
    let name = b"padding";
    let size = u32::try_from(1 + name.len() + bytes).unwrap();
    let mut wasm = preamble.to_vec();
    wasm.push(0); // custom section
    let mut rest = size;
    loop {
        let byte = (rest & 0x7f) as u8;
        rest >>= 7;
        if rest == 0 {
            wasm.push(byte);
            break;
        }
        wasm.push(byte | 0x80);
    }
    wasm.push(u8::try_from(name.len()).unwrap());
    wasm.extend_from_slice(name);
    wasm.resize(wasm.len() + bytes, 0xA5);
    wasm
}

#[test]
fn a_50_mb_file_that_is_not_an_initialiser_is_refused_at_start_up_in_bounded_memory() {
    const SIZE: usize = 50 << 20;
    let module = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    let component = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
    // Junk; a valid core module, which is no component; and a valid component that exports
    // nothing, whose 50 MB the runtime must parse through before it can tell.
    let not_a_component = "not a WebAssembly component: ";
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("junk.wasm", junk(SIZE), not_a_component),
        ("module.wasm", with_custom_section(module, SIZE), not_a_component),
        (
            "empty-component.wasm",
            with_custom_section(component, SIZE),
            "does not fit the runtime's `initialiser-component` world",
        ),
    ];
    for (file, bytes, why) in cases {
        let scratch = Scratch::new();
        let path: PathBuf = scratch.path(file);
        std::fs::write(&path, bytes).unwrap();
        let bulky = json!({"name": "bulky", "flag": "v1", "component": path});
        let because = format!("{}: {why}", path.display());
        refused_at_start_up(&scratch, &[bulky, probe()], ("bulky", 1), "component", &because);
    }
}

#[test]
fn a_component_importing_an_interface_the_host_lacks_is_refused_at_start_up() {
    let scratch = Scratch::new();
    let entries = [probe(), entry("stowaway", "stowaway", json!({}))];
    let because = format!("{}: ", support::component("stowaway").display());
    let (_, error) = refused_at_start_up(&scratch, &entries, ("stowaway", 2), "component", &because);
    assert!(error.contains("does not fit the runtime's `initialiser-component` world"), "{error}");
    assert!(error.contains("imports instance `acme:evil/backdoor`"), "{error}");
}
