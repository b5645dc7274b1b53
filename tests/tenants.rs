//! Tenant self-service, end to end through the binary on the embedded backend: the operator
//! declares tenants (`tenants:` in the init file), each ships a file of initialisers of its own
//! within a ceiling the operator sets. Ceilings refuse entry by entry and field by field;
//! broken files, missing code, wrong pins and bad signatures are refused without touching the
//! other tenants; a tenant's file is reloaded while the runtime runs (SIGHUP reloads and wakes
//! at once); entry names are scoped by tenant; a thousand tenants converge and then cost no
//! component reads at a steady wake.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::tenant_files::*;
use support::{Scratch, logged, stderr};

/// A `--once` run exits 0 when every initialiser in service reached its flag: a tenant's
/// refused entry is the tenant's problem, reported by `check`, `status` and the metrics, and
/// must not fail the operator's run (nor exit 2, a configuration error of the process).
fn assert_survived(output: &std::process::Output) {
    assert_eq!(output.status.code(), Some(0), "expected exit 0:\n{}", stderr(output));
}

// ---------------------------------------------------------------------------------------------
// 1. Ceilings

/// A tenant's entries beyond its ceiling, one field at a time: each is refused by name (tenant,
/// entry, field) and nothing of it runs, while the tenant's good entry and another tenant's
/// entry converge in the same (single) wake. `check` reports the same refusals and exits 1.
#[test]
fn ceilings_refuse_each_field_and_others_converge() {
    let scratch = Scratch::new();
    let (acme_dir, acme_probe) = tenant_dir_with_probe(&scratch, "acme");
    let (beta_dir, beta_probe) = tenant_dir_with_probe(&scratch, "beta");
    let allowed_files = scratch.path("seed/acme");
    std::fs::create_dir_all(&allowed_files).unwrap();
    let allowed_file = allowed_files.join("seed.json");
    std::fs::write(&allowed_file, "{}").unwrap();
    let outside_file = scratch.path("seed/outside.json");
    std::fs::write(&outside_file, "{}").unwrap();

    // Every limit of the ceiling below the default (fuel 20e9, memory 256 MiB, timeout 30 s),
    // and the refused entries' limits between the two: refused by the ceiling, not the default.
    let acme_ceiling = json!({
        "grants": {
            "config": {"read": ["acme-*"], "write": ["acme-*"]},
            "http": ["https://api.acme.example"],
            "files": [format!("{}/", allowed_files.display())],
        },
        "limits": {"fuel": 5_000_000_000_u64, "memory": "128MiB", "timeout": "10s"},
    });

    // The good entry uses a little of every part of the ceiling.
    let mut good = probe_entry("good", &acme_probe, "acme-good", "v1");
    good["grants"] = json!({
        "config": {"read": ["acme-good"], "write": ["acme-good"]},
        "http": ["https://api.acme.example"],
        "files": [allowed_file],
    });
    good["limits"] = json!({"fuel": 1_000_000_000_u64, "memory": "64MiB", "timeout": "5s"});

    // (entry, field refused, the entry). Each would record a run in a workspace of its own
    // (or, for write-beta, under flag `intruder` in beta's), if it ran.
    let mut refused: Vec<(&str, &str, Value)> = Vec::new();
    let mut write_beta = probe_entry("write-beta", &acme_probe, "beta-1", "intruder");
    write_beta["grants"] = json!({"config": {"write": ["beta-1"]}});
    refused.push(("write-beta", "grants.config.write", write_beta));
    let mut write_system = probe_entry("write-system", &acme_probe, "acme-system", "v1");
    write_system["grants"] = json!({"config": {"write": ["acme-system", "__system__"]}});
    refused.push(("write-system", "grants.config.write", write_system));
    let mut read_registry = probe_entry("read-registry", &acme_probe, "acme-registry", "v1");
    read_registry["grants"] = json!({"config": {"read": ["__workspaces__"], "write": ["acme-registry"]}});
    refused.push(("read-registry", "grants.config.read", read_registry));
    let mut http = probe_entry("http-elsewhere", &acme_probe, "acme-http", "v1");
    http["grants"]["http"] = json!(["https://evil.example"]);
    refused.push(("http-elsewhere", "grants.http", http));
    let mut files = probe_entry("file-elsewhere", &acme_probe, "acme-file", "v1");
    files["grants"]["files"] = json!([outside_file]);
    refused.push(("file-elsewhere", "grants.files", files));
    let mut fuel = probe_entry("fuel-above", &acme_probe, "acme-fuel", "v1");
    fuel["limits"] = json!({"fuel": 10_000_000_000_u64});
    refused.push(("fuel-above", "limits.fuel", fuel));
    let mut memory = probe_entry("memory-above", &acme_probe, "acme-memory", "v1");
    memory["limits"] = json!({"memory": "200MiB"});
    refused.push(("memory-above", "limits.memory", memory));
    let mut timeout = probe_entry("timeout-above", &acme_probe, "acme-timeout", "v1");
    timeout["limits"] = json!({"timeout": "20s"});
    refused.push(("timeout-above", "limits.timeout", timeout));

    let mut acme_entries = vec![good];
    acme_entries.extend(refused.iter().map(|(_, _, entry)| entry.clone()));
    let acme_file = acme_dir.join("acme.json");
    write(&acme_file, &tenant_file(&acme_entries));
    // Beta's path is its directory: every .json in it.
    write(&beta_dir.join("10-seed.json"), &tenant_file(&[probe_entry("seed", &beta_probe, "beta-1", "v1")]));

    let init = operator_file(
        &scratch,
        &[],
        &[
            tenant("acme", &acme_file, Some(acme_ceiling), &[]),
            tenant("beta", &beta_dir, Some(config_ceiling(&["beta-*"])), &[]),
        ],
    );

    let output = scratch.run_once(&init);
    let log = stderr(&output);
    assert_survived(&output);
    for (entry, field, _) in &refused {
        assert!(refusal_reported(&log, "acme", entry, field), "no refusal of acme's {entry} for {field} in:\n{log}");
    }
    assert!(logged(&log, "acme/good", &["running"]), "acme/good never ran:\n{log}");
    assert!(logged(&log, "beta/seed", &["running"]), "beta/seed never ran:\n{log}");
    for (entry, _, _) in &refused {
        assert!(!logged(&log, &format!("acme/{entry}"), &["running"]), "refused acme/{entry} ran:\n{log}");
    }

    let dump = scratch.dump();
    let expected_flags = [("acme/good".to_owned(), stored("v1")), ("beta/seed".to_owned(), stored("v1"))];
    assert_eq!(flags(&dump), expected_flags.into_iter().collect(), "only the two good entries converged:\n{log}");
    assert_eq!(probe_runs(&dump, "acme-good"), [("v1".to_owned(), run_record(None, "v1"))].into());
    // beta's own run, and nothing from acme's write-beta (flag `intruder`).
    assert_eq!(probe_runs(&dump, "beta-1"), [("v1".to_owned(), run_record(None, "v1"))].into());
    assert_eq!(workspaces(&dump), ["acme-good", "beta-1"], "a refused entry wrote:\n{dump:#}");
    let system: Vec<&String> = dump["__system__"].as_object().unwrap().keys().collect();
    assert_eq!(system, ["init-state"], "{dump:#}");

    // `check`: exit 1, each refusal with its field; JSON the same, entry by entry.
    let (code, out, err) = check(&init, false);
    let text = format!("{out}\n{err}");
    assert_eq!(code, Some(1), "check should exit 1 with refused tenant entries:\n{text}");
    for (entry, field, _) in &refused {
        assert!(text.contains(field) && text.contains(entry), "check does not report {entry}'s {field}:\n{text}");
    }
    let (code, out, err) = check(&init, true);
    assert_eq!(code, Some(1), "{err}");
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let acme = checked_tenant(&report, "acme");
    let mut got = checked_refusals(acme);
    got.sort();
    let mut want: Vec<(String, String)> = refused.iter().map(|(e, f, _)| ((*e).to_owned(), (*f).to_owned())).collect();
    want.sort();
    assert_eq!(got, want, "{acme:#}");
    let names: Vec<&str> = acme["initialisers"].as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
    assert!(names == ["good"] || names == ["acme/good"], "acme's entries in service: {names:?}");
    assert!(checked_refusals(checked_tenant(&report, "beta")).is_empty(), "{report:#}");
}

// ---------------------------------------------------------------------------------------------
// 2. Broken inputs

/// Each tenant with one problem: a file that is not YAML, a component that is not there, a
/// wrong pin, a signature over other bytes, no signature, a signature by another tenant's key.
/// Each is refused naming its tenant and field (or file), and only the healthy tenant and the
/// one correctly signed (and pinned) run.
#[test]
fn broken_inputs_are_refused_and_isolated() {
    let scratch = Scratch::new();
    let mut tenants = Vec::new();
    let ceiling = |tenant: &str| Some(config_ceiling(&[&format!("{tenant}-*")]));
    let seed = |tenant: &str, component: &Path| probe_entry("seed", component, &format!("{tenant}-ws"), "v1");

    // Broken YAML: a flow mapping never closed.
    let broken_dir = scratch.path("tenants/broken-yaml");
    let broken_file = broken_dir.join("tenant.yaml");
    write(&broken_file, "initialisers:\n  - {name: seed, flag: v1, component: probe.wasm\n");
    tenants.push(tenant("broken-yaml", &broken_file, ceiling("broken-yaml"), &[]));

    // A component that is not there.
    let missing_dir = scratch.path("tenants/missing");
    let missing_file = missing_dir.join("tenant.json");
    write(&missing_file, &tenant_file(&[seed("missing", &missing_dir.join("absent.wasm"))]));
    tenants.push(tenant("missing", &missing_file, ceiling("missing"), &[]));

    // A pin of other bytes.
    let (pinned_dir, pinned_probe) = tenant_dir_with_probe(&scratch, "pinned");
    let mut wrong_pin = seed("pinned", &pinned_probe);
    wrong_pin["sha256"] = json!(bootstrap_wasm::integrity::Digest::of(b"not the probe").to_string());
    write(&pinned_dir.join("tenant.json"), &tenant_file(&[wrong_pin]));
    tenants.push(tenant("pinned", &pinned_dir.join("tenant.json"), ceiling("pinned"), &[]));

    let signed_key = Signer::new();

    // A signature by the tenant's key, over other bytes.
    let tampered_key = Signer::new();
    let (tampered_dir, tampered_probe) = tenant_dir_with_probe(&scratch, "tampered");
    let mut other_bytes = std::fs::read(&tampered_probe).unwrap();
    other_bytes.push(0);
    std::fs::write(minisig_of(&tampered_probe), tampered_key.sign(&other_bytes)).unwrap();
    write(&tampered_dir.join("tenant.json"), &tenant_file(&[seed("tampered", &tampered_probe)]));
    tenants.push(tenant("tampered", &tampered_dir.join("tenant.json"), ceiling("tampered"), &[tampered_key.public()]));

    // Keys, but no signature.
    let (unsigned_dir, unsigned_probe) = tenant_dir_with_probe(&scratch, "unsigned");
    write(&unsigned_dir.join("tenant.json"), &tenant_file(&[seed("unsigned", &unsigned_probe)]));
    tenants.push(tenant("unsigned", &unsigned_dir.join("tenant.json"), ceiling("unsigned"), &[Signer::new().public()]));

    // Signed, correctly, but by the key of another tenant (`signed`).
    let (foreign_dir, foreign_probe) = tenant_dir_with_probe(&scratch, "foreign");
    signed_key.sign_file(&foreign_probe);
    write(&foreign_dir.join("tenant.json"), &tenant_file(&[seed("foreign", &foreign_probe)]));
    tenants.push(tenant("foreign", &foreign_dir.join("tenant.json"), ceiling("foreign"), &[Signer::new().public()]));

    // Healthy: no keys, a right pin.
    let (healthy_dir, healthy_probe) = tenant_dir_with_probe(&scratch, "healthy");
    let mut pinned_right = seed("healthy", &healthy_probe);
    pinned_right["sha256"] = json!(sha256_of(&healthy_probe));
    write(&healthy_dir.join("tenant.json"), &tenant_file(&[pinned_right]));
    tenants.push(tenant("healthy", &healthy_dir.join("tenant.json"), ceiling("healthy"), &[]));

    // Signed by one of its two keys, and pinned beside it.
    let (signed_dir, signed_probe) = tenant_dir_with_probe(&scratch, "signed");
    signed_key.sign_file(&signed_probe);
    let mut signed_and_pinned = seed("signed", &signed_probe);
    signed_and_pinned["sha256"] = json!(sha256_of(&signed_probe));
    write(&signed_dir.join("tenant.json"), &tenant_file(&[signed_and_pinned]));
    let keys = [Signer::new().public(), signed_key.public()];
    tenants.push(tenant("signed", &signed_dir.join("tenant.json"), ceiling("signed"), &keys));

    let init = operator_file(&scratch, &[], &tenants);
    let output = scratch.run_once(&init);
    let log = stderr(&output);
    assert_survived(&output);

    let refusals = [
        ("missing", "component"),
        ("pinned", "sha256"),
        ("tampered", "signature"),
        ("unsigned", "signature"),
        ("foreign", "signature"),
    ];
    for (tenant, field) in refusals {
        assert!(refusal_reported(&log, tenant, "seed", field), "no refusal of {tenant}'s seed for {field} in:\n{log}");
    }
    let yaml_refusal = lines_with(&log, &["tenant 'broken-yaml'", &broken_file.display().to_string()]);
    assert!(!yaml_refusal.is_empty(), "the broken YAML is not reported with its tenant and file:\n{log}");

    let dump = scratch.dump();
    let expected_flags = [("healthy/seed".to_owned(), stored("v1")), ("signed/seed".to_owned(), stored("v1"))];
    assert_eq!(flags(&dump), expected_flags.into_iter().collect(), "only healthy and signed converged:\n{log}");
    assert_eq!(workspaces(&dump), ["healthy-ws", "signed-ws"], "a refused tenant wrote:\n{dump:#}");
    for workspace in ["healthy-ws", "signed-ws"] {
        assert_eq!(probe_runs(&dump, workspace), [("v1".to_owned(), run_record(None, "v1"))].into(), "{workspace}");
    }

    // `check`: exit 1; the JSON report gives each tenant's refusal (or file error).
    let (code, out, err) = check(&init, false);
    let text = format!("{out}\n{err}");
    assert_eq!(code, Some(1), "{text}");
    for (tenant, field) in refusals {
        assert!(text.contains(tenant) && text.contains(field), "check does not report {tenant}'s {field}:\n{text}");
    }
    let (code, out, err) = check(&init, true);
    assert_eq!(code, Some(1), "{err}");
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    for (tenant, field) in refusals {
        assert_eq!(
            checked_refusals(checked_tenant(&report, tenant)),
            [("seed".to_owned(), field.to_owned())],
            "{tenant}"
        );
    }
    let broken = checked_tenant(&report, "broken-yaml");
    let error = broken["error"].as_str().unwrap_or_else(|| panic!("no error for broken-yaml: {broken:#}"));
    assert!(error.contains(&broken_file.display().to_string()), "{error}");
    for tenant in ["healthy", "signed"] {
        let checked = checked_tenant(&report, tenant);
        assert!(checked_refusals(checked).is_empty() && checked["error"].is_null(), "{checked:#}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Live reload

/// Tenant `acme` (config within `acme-*`) whose file `acme.json` holds the probe as `seed` at
/// `v1`, recording in `acme-seed`: the file, the tenant's probe and the operator's init file.
fn acme_with_seed(scratch: &Scratch) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let (dir, probe) = tenant_dir_with_probe(scratch, "acme");
    let file = dir.join("acme.json");
    write(&file, &tenant_file(&[probe_entry("seed", &probe, "acme-seed", "v1")]));
    let init = operator_file(scratch, &[], &[tenant("acme", &file, Some(config_ceiling(&["acme-*"])), &[])]);
    (file, probe, init)
}

/// A tenant's file replaced while the runtime runs: a new entry converges, a flag change reruns
/// (v1 → v2 → v1), a removed entry stops running and keeps its stored flag, and SIGHUP re-reads
/// everything at once. A replaced tenant file does not make its unchanged component be read
/// again.
#[test]
fn tenant_file_replaced_while_running() {
    let scratch = Scratch::new();
    let (file, probe, init) = acme_with_seed(&scratch);
    let seed = |flag: &str| probe_entry("seed", &probe, "acme-seed", flag);
    let daemon =
        Daemon::start(&scratch, &init, &["--steady-interval", "1s", "--init-retry", "1s", "--gate-backoff", "1s"]);
    let wait = Duration::from_secs(90);

    daemon.wait_metric(wait, &by_initialiser("bootstrap_flag_current", "acme/seed"), |v| v == 1.0);
    assert_eq!(daemon.metric(&ok_runs("acme/seed")), Some(1.0), "{}", daemon.log());
    assert_eq!(daemon.metric(&by_tenant("bootstrap_tenant_reloads_total", "acme")), Some(1.0), "{}", daemon.log());
    assert_eq!(daemon.metric(&by_tenant("bootstrap_tenant_entries", "acme")), Some(1.0), "{}", daemon.log());

    // A new entry, and one that fails at every wake (so it would keep running, if it could).
    let flaky = failing_probe_entry("flaky", &probe, "acme-flaky");
    let extra = probe_entry("extra", &probe, "acme-extra", "v1");
    replace_atomically(&file, &tenant_file(&[seed("v1"), extra.clone(), flaky.clone()]));
    daemon.wait_metric(wait, &by_initialiser("bootstrap_flag_current", "acme/extra"), |v| v == 1.0);
    daemon.wait_metric(wait, &guest_failures("acme/flaky"), |v| v >= 1.0);
    let text = daemon.metrics();
    assert_eq!(sample(&text, &ok_runs("acme/seed")), Some(1.0), "seed reran though unchanged:\n{text}");
    assert_eq!(sample(&text, &by_tenant("bootstrap_tenant_reloads_total", "acme")), Some(2.0), "{text}");
    assert_eq!(sample(&text, &by_tenant("bootstrap_tenant_entries", "acme")), Some(3.0), "{text}");

    // v1 → v2 → v1: each change reruns the seed.
    replace_atomically(&file, &tenant_file(&[seed("v2"), extra.clone(), flaky.clone()]));
    daemon.wait_metric(wait, &ok_runs("acme/seed"), |v| v >= 2.0);
    replace_atomically(&file, &tenant_file(&[seed("v1"), extra.clone(), flaky.clone()]));
    daemon.wait_metric(wait, &ok_runs("acme/seed"), |v| v >= 3.0);
    daemon.wait_metric(wait, &by_initialiser("bootstrap_flag_current", "acme/seed"), |v| v == 1.0);
    let text = daemon.metrics();
    assert_eq!(sample(&text, &ok_runs("acme/seed")), Some(3.0), "{text}");
    assert_eq!(sample(&text, &ok_runs("acme/extra")), Some(1.0), "{text}");
    // Four loads of the file, and the one component file read once for all of them.
    assert_eq!(sample(&text, &by_tenant("bootstrap_tenant_reloads_total", "acme")), Some(4.0), "{text}");
    let components_read = sample(&text, "bootstrap_tenant_components_read_total");
    assert_eq!(components_read, Some(1.0), "an unchanged component was read again:\n{text}");

    // SIGHUP: every tenant file and component read again, at once.
    let reloads = sample(&text, &by_tenant("bootstrap_tenant_reloads_total", "acme")).unwrap();
    daemon.signal(libc::SIGHUP);
    daemon.wait_metric(wait, "bootstrap_tenant_components_read_total", |v| v > 1.0);
    let reloads_series = by_tenant("bootstrap_tenant_reloads_total", "acme");
    daemon.wait_metric(wait, &reloads_series, |r| r > reloads);
    daemon.wait_wakes(1);
    assert_eq!(daemon.metric(&reloads_series), Some(reloads + 1.0), "one SIGHUP, one load:\n{}", daemon.log());
    assert!(!lines_with(&daemon.log(), &["SIGHUP"]).is_empty(), "the SIGHUP is not logged:\n{}", daemon.log());
    // The one component file, read once more.
    assert_eq!(daemon.metric("bootstrap_tenant_components_read_total"), Some(2.0), "{}", daemon.log());

    // Remove extra and flaky: they stop running.
    replace_atomically(&file, &tenant_file(&[seed("v1")]));
    daemon.wait_metric(wait, &by_tenant("bootstrap_tenant_entries", "acme"), |v| v == 1.0);
    daemon.wait_wakes(1);
    let failures = daemon.metric(&guest_failures("acme/flaky")).unwrap();
    daemon.wait_wakes(3);
    let text = daemon.metrics();
    assert_eq!(sample(&text, &guest_failures("acme/flaky")), Some(failures), "a removed entry ran:\n{text}");
    assert_eq!(sample(&text, &ok_runs("acme/extra")), Some(1.0), "{text}");
    assert_eq!(sample(&text, &ok_runs("acme/seed")), Some(3.0), "{text}");

    let (status, log) = daemon.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    let dump = scratch.dump();
    // The removed entry's flag stays; the one that never converged has none.
    let expected_flags = [("acme/extra".to_owned(), stored("v1")), ("acme/seed".to_owned(), stored("v1"))];
    assert_eq!(flags(&dump), expected_flags.into_iter().collect(), "{log}");
    // v1 (first run, then again from v2), and v2 from v1.
    let runs = probe_runs(&dump, "acme-seed");
    assert_eq!(runs.get("v2"), Some(&run_record(Some("v1"), "v2")), "{runs:?}");
    assert_eq!(runs.get("v1"), Some(&run_record(Some("v2"), "v1")), "{runs:?}");
    assert_eq!(probe_runs(&dump, "acme-extra"), [("v1".to_owned(), run_record(None, "v1"))].into());
    assert!(dump.get("acme-flaky").is_none(), "the failing probe wrote: {dump:#}");
}

/// SIGHUP reads the tenants' files again *and wakes the loop now*: with an hour between wakes,
/// a changed flag runs within the minute only because of the signal.
#[test]
fn sighup_wakes_the_loop_now() {
    let scratch = Scratch::new();
    let (file, probe, init) = acme_with_seed(&scratch);
    let seed = |flag: &str| probe_entry("seed", &probe, "acme-seed", flag);
    let daemon = Daemon::start(&scratch, &init, &["--steady-interval", "1h", "--init-retry", "1h"]);
    let wait = Duration::from_secs(60);
    daemon.wait_metric(wait, &ok_runs("acme/seed"), |v| v == 1.0);

    replace_atomically(&file, &tenant_file(&[seed("v2")]));
    daemon.signal(libc::SIGHUP);
    daemon.wait_metric(wait, &ok_runs("acme/seed"), |v| v == 2.0);
    assert!(!lines_with(&daemon.log(), &["waking now"]).is_empty(), "{}", daemon.log());
    let (status, log) = daemon.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(probe_runs(&scratch.dump(), "acme-seed").get("v2"), Some(&run_record(Some("v1"), "v2")));
}

// ---------------------------------------------------------------------------------------------
// 4. Scoped names

/// Two tenants with an entry of the same name: two flags (`acme/seed`, `beta/seed`), and a
/// change of beta's flag reruns beta's only.
#[test]
fn same_entry_name_in_two_tenants_does_not_share_a_flag() {
    let scratch = Scratch::new();
    let (acme_dir, acme_probe) = tenant_dir_with_probe(&scratch, "acme");
    let (beta_dir, beta_probe) = tenant_dir_with_probe(&scratch, "beta");
    // Tenant files in YAML, as a tenant would write them; components relative to the file.
    let yaml = |workspace: &str, flag: &str| {
        format!(
            "initialisers:\n  - name: seed\n    flag: {flag}\n    component: probe.wasm\n    params: {{workspace: {workspace}}}\n    grants:\n      config: {{write: [{workspace}]}}\n"
        )
    };
    assert!(acme_probe.exists() && beta_probe.exists());
    let acme_file = acme_dir.join("tenant.yaml");
    let beta_file = beta_dir.join("tenant.yaml");
    write(&acme_file, &yaml("acme-1", "v1"));
    write(&beta_file, &yaml("beta-1", "v1"));
    let init = operator_file(
        &scratch,
        &[],
        &[
            tenant("acme", &acme_file, Some(config_ceiling(&["acme-*"])), &[]),
            tenant("beta", &beta_file, Some(config_ceiling(&["beta-*"])), &[]),
        ],
    );

    let output = scratch.run_once(&init);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(logged(&log, "acme/seed", &["running"]) && logged(&log, "beta/seed", &["running"]), "{log}");
    let dump = scratch.dump();
    let expected = [("acme/seed".to_owned(), stored("v1")), ("beta/seed".to_owned(), stored("v1"))];
    assert_eq!(flags(&dump), expected.into_iter().collect(), "{log}");

    write(&beta_file, &yaml("beta-1", "v2"));
    let output = scratch.run_once(&init);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(logged(&log, "beta/seed", &["running"]), "beta's seed did not rerun:\n{log}");
    assert!(!logged(&log, "acme/seed", &["running"]), "acme's seed reran:\n{log}");

    let dump = scratch.dump();
    let expected = [("acme/seed".to_owned(), stored("v1")), ("beta/seed".to_owned(), stored("v2"))];
    assert_eq!(flags(&dump), expected.into_iter().collect(), "{log}");
    // Had the two shared a flag, acme's would have rerun from v2.
    assert_eq!(probe_runs(&dump, "acme-1"), [("v1".to_owned(), run_record(None, "v1"))].into());
    let beta_runs = probe_runs(&dump, "beta-1");
    assert_eq!(beta_runs.get("v1"), Some(&run_record(None, "v1")), "{beta_runs:?}");
    assert_eq!(beta_runs.get("v2"), Some(&run_record(Some("v1"), "v2")), "{beta_runs:?}");

    // `status`: a row per tenant entry, each tenant's ceiling and grants, and a refusal.
    write(
        &beta_file,
        &(yaml("beta-1", "v2")
            + "  - {name: greedy, flag: v1, component: probe.wasm, grants: {config: {write: [acme-1]}}}\n"),
    );
    let output = support::bin()
        .args(["status", "-c"])
        .arg(&init)
        .args(["--pubsub-backend", "embedded", "--state"])
        .arg(scratch.state())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "a refused entry makes status exit 1:\n{shown}");
    let row =
        |name: &str, flag: &str| shown.lines().any(|l| l.starts_with(name) && l.contains(flag) && l.ends_with("done"));
    assert!(row("acme/seed", "\"v1\"") && row("beta/seed", "\"v2\""), "{shown}");
    assert!(shown.contains("tenant beta (") && shown.contains("1 in service, 1 refused"), "{shown}");
    let ceiling = |l: &str| l.trim_start().starts_with("ceiling") && l.contains("config write beta-*");
    assert!(shown.lines().any(ceiling), "{shown}");
    assert!(
        shown.lines().any(|l| l.trim_start().starts_with("beta/seed") && l.contains("config write beta-1")),
        "{shown}"
    );
    assert!(refusal_reported(&shown, "beta", "greedy", "grants.config.write"), "{shown}");
}

// ---------------------------------------------------------------------------------------------
// 5. Scale

const TENANTS: usize = 1000;

/// A thousand tenants, each with its own directory, file, copy of the probe and workspace:
/// all converge, and a steady wake afterwards reads no component and reloads no tenant.
#[test]
fn thousand_tenants_converge_and_a_steady_wake_reads_no_component() {
    let scratch = Scratch::new();
    let names: Vec<String> = (0..TENANTS).map(|i| format!("t-{i:04}")).collect();
    let mut tenants = Vec::with_capacity(TENANTS);
    for name in &names {
        let (dir, probe) = tenant_dir_with_probe(&scratch, name);
        let file = dir.join("tenant.json");
        write(&file, &tenant_file(&[probe_entry("seed", &probe, name, "v1")]));
        let ceiling = json!({"grants": {"config": {"write": [name]}}});
        tenants.push(tenant(name, &file, Some(ceiling), &[]));
    }
    let init = operator_file(&scratch, &[], &tenants);

    let started = Instant::now();
    let daemon = Daemon::start(
        &scratch,
        &init,
        &["--steady-interval", "1s", "--init-retry", "1s", "--gate-backoff", "1s", "--concurrency", "16"],
    );
    let last = std::sync::Mutex::new(String::new());
    wait_until(
        Duration::from_secs(300),
        "all 1000 tenants' flags current",
        || format!("last scrape:\n{}\nlog tail:\n{}", last.lock().unwrap(), tail(&daemon.log(), 50)),
        || {
            let text = daemon.metrics();
            let current = samples_of(&text, "bootstrap_flag_current")
                .iter()
                .filter(|(labels, value)| labels.contains("/seed\"") && *value == 1.0)
                .count();
            *last.lock().unwrap() = text;
            (current == TENANTS).then_some(())
        },
    );
    let converged = started.elapsed();
    eprintln!("{TENANTS} tenants converged in {converged:?}");

    // At least one full wake after the one that converged.
    daemon.wait_wakes(2);
    let before = daemon.metrics();
    daemon.wait_wakes(2);
    let after = daemon.metrics();
    let read_before = sample(&before, "bootstrap_tenant_components_read_total");
    assert_eq!(read_before, Some(TENANTS as f64), "each tenant's component read once:\n{}", tail(&before, 40));
    assert_eq!(sample(&after, "bootstrap_tenant_components_read_total"), read_before, "a steady wake read a component");
    let reloads = samples_of(&after, "bootstrap_tenant_reloads_total");
    assert_eq!(reloads.len(), TENANTS, "{}", tail(&after, 40));
    assert!(
        reloads.iter().all(|(_, value)| *value == 1.0),
        "a tenant was reloaded: {:?}",
        reloads.iter().filter(|(_, v)| *v != 1.0).collect::<Vec<_>>()
    );
    for name in [&names[0], &names[TENANTS / 2], &names[TENANTS - 1]] {
        assert_eq!(sample(&after, &ok_runs(&format!("{name}/seed"))), Some(1.0), "{name}");
        assert_eq!(sample(&after, &by_tenant("bootstrap_tenant_entries", name)), Some(1.0), "{name}");
    }

    let (status, log) = daemon.stop();
    assert_eq!(status.code(), Some(0), "{}", tail(&log, 50));
    let dump = scratch.dump();
    let stored_flags = flags(&dump);
    assert_eq!(stored_flags.len(), TENANTS);
    assert!(names.iter().all(|name| stored_flags.get(&format!("{name}/seed")) == Some(&stored("v1"))));
    for name in [&names[0], &names[TENANTS - 1]] {
        assert_eq!(probe_runs(&dump, name), [("v1".to_owned(), run_record(None, "v1"))].into(), "{name}");
    }
    assert!(started.elapsed() < Duration::from_secs(240), "took {:?}", started.elapsed());
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
