//! End-to-end tests of the reconcile loop through the public API, with the real core
//! initialisers and test components on the embedded backend: what runs, with which flags, what
//! it writes, and how long the loop sleeps after each wake.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bootstrap_wasm::embedded::EmbeddedServices;
use bootstrap_wasm::sandbox::RunFailure;
use bootstrap_wasm::services::{
    ConfigRequest, ConfigResponse, FlowClient, FlowRequest, FlowResponse, Protocol, ServiceError, Services,
};
use bootstrap_wasm::{Cadence, InitFile, Initialiser, Outcome, Reconciler, Sandbox, WakeReport};
use serde_json::{Value, json};
use support::{Scratch, entry, example_seed, stored_flags};

/// A reconciler for the init file at `init` against `services`.
async fn reconciler(init: &Path, services: Arc<dyn Services>) -> Reconciler {
    let file = InitFile::load(init).unwrap();
    let sandbox = Sandbox::new().unwrap();
    let initialisers = Initialiser::prepare_all(&file, &sandbox).await.unwrap();
    Reconciler::new(initialisers, services, Cadence::default())
}

/// The embedded services on `scratch`'s store, in the legacy protocol, where flow-svc serves
/// every workspace unregistered (the wrappers below speak legacy too: the trait's default).
fn embedded(scratch: &Scratch) -> Arc<EmbeddedServices> {
    Arc::new(legacy(scratch))
}

fn legacy(scratch: &Scratch) -> EmbeddedServices {
    EmbeddedServices::open(&scratch.state()).unwrap().speaking(Protocol::Legacy)
}

/// The outcomes of a wake, by name, in file order.
fn outcomes(report: &WakeReport) -> Vec<(&str, &Outcome)> {
    report.outcomes.iter().map(|(name, outcome)| (&**name, outcome)).collect()
}

/// Whether `outcome` is the guest's own failure, saying `text`.
fn failed_with(outcome: &Outcome, text: &str) -> bool {
    matches!(outcome, Outcome::Failed(RunFailure::Guest(why)) if why.contains(text))
}

/// The three core initialisers of `examples/init.yaml`, pointed at a seed file in `scratch`.
fn core_entries(seed: &Path) -> Vec<Value> {
    vec![
        json!({"builtin": "template-seed", "name": "template-seed", "flag": "v1", "params": {"config_file": seed}}),
        json!({"builtin": "workspace-init", "name": "workspace-init", "flag": "v1", "params": {"workspace": "default"}}),
        json!({"builtin": "default-flow-start", "name": "default-flow-start", "flag": "v1",
               "params": {"workspace": "default", "blueprint": "document-rag"}}),
    ]
}

#[tokio::test]
async fn the_core_initialisers_converge_on_the_first_wake_and_then_only_skip() {
    let scratch = Scratch::new();
    let services = embedded(&scratch);
    let mut loop_ = reconciler(&support::repo().join("examples/init.yaml"), services.clone()).await;
    let cadence = Cadence::default();

    let first = loop_.wake().await;
    assert!(first.converged(), "{first:?}");
    assert!(first.outcomes.iter().all(|(_, o)| *o == Outcome::Ran), "{first:?}");
    assert_eq!(first.next_sleep(&cadence), cadence.init_retry);

    let dump = services.dump(None).unwrap();
    let seed: Value = serde_json::from_str(&std::fs::read_to_string(example_seed()).unwrap()).unwrap();
    for (kind, entries) in seed.as_object().unwrap() {
        for key in entries.as_object().unwrap().keys() {
            assert!(dump["__template__"][kind][key].is_string(), "template lacks {kind}/{key}");
            assert_eq!(dump["default"][kind][key], dump["__template__"][kind][key]);
        }
    }
    let flow: Value = serde_json::from_str(dump["default"]["flow"]["default"].as_str().unwrap()).unwrap();
    assert_eq!(flow["blueprint-name"], "document-rag");
    assert_eq!(flow["parameters"], json!({"model": "gemma2:9b", "temperature": "0.3"}));
    assert_eq!(
        stored_flags(&dump),
        json!({"template-seed": "\"v1\"", "workspace-init": "\"v1\"", "default-flow-start": "\"v1\""})
    );

    let second = loop_.wake().await;
    assert!(second.converged());
    assert!(second.outcomes.iter().all(|(_, o)| *o == Outcome::Skipped), "{second:?}");
    assert_eq!(second.next_sleep(&cadence), cadence.steady_interval);
    assert_eq!(services.dump(None).unwrap(), dump, "a steady wake wrote something");
}

#[tokio::test]
async fn a_flag_bump_reruns_with_the_old_and_the_new_flag() {
    let scratch = Scratch::new();
    let services = embedded(&scratch);
    let mut probe = entry("probe", "probe", json!({"workspace": "probed"}));
    probe["grants"] = json!({"config": {"write": ["probed"]}});

    let init = scratch.init_file(&[probe.clone()]);
    assert!(reconciler(&init, services.clone()).await.wake().await.converged());

    probe["flag"] = json!(2);
    let init = scratch.init_file(&[probe]);
    let mut loop_ = reconciler(&init, services.clone()).await;
    assert_eq!(outcomes(&loop_.wake().await), [("probe", &Outcome::Ran)]);
    assert_eq!(outcomes(&loop_.wake().await), [("probe", &Outcome::Skipped)]);

    let dump = services.dump(None).unwrap();
    assert_eq!(dump["probed"]["probe-runs"]["v1"], r#"{"new":"v1","old":null}"#);
    // The flag 2 is stored as JSON `2` and reaches the guest as the text "2".
    assert_eq!(dump["probed"]["probe-runs"]["2"], r#"{"new":"2","old":"v1"}"#);
    assert_eq!(stored_flags(&dump), json!({"probe": "2"}));
}

#[tokio::test]
async fn a_rerun_upserts_missing_keys_unless_told_to_overwrite() {
    let scratch = Scratch::new();
    let services = embedded(&scratch);
    let seed = scratch.write("seed.json", r#"{"prompt": {"system": "v1 prompt"}}"#);
    let mut template_seed = core_entries(&seed).remove(0);
    assert!(reconciler(&scratch.init_file(&[template_seed.clone()]), services.clone()).await.wake().await.converged());

    // The operator customises a key; the seed file gains one.
    services.store().put_many("__template__", [("prompt", "system", "\"customised\"")]).unwrap();
    scratch.write("seed.json", r#"{"prompt": {"system": "v2 prompt", "extra": "new"}}"#);

    template_seed["flag"] = json!("v2");
    assert!(reconciler(&scratch.init_file(&[template_seed.clone()]), services.clone()).await.wake().await.converged());
    let prompts = services.dump(Some("__template__")).unwrap()["prompt"].clone();
    assert_eq!(prompts, json!({"system": "\"customised\"", "extra": "\"new\""}));

    template_seed["flag"] = json!("v3");
    template_seed["params"]["overwrite"] = json!(true);
    assert!(reconciler(&scratch.init_file(&[template_seed]), services.clone()).await.wake().await.converged());
    let prompts = services.dump(Some("__template__")).unwrap()["prompt"].clone();
    assert_eq!(prompts, json!({"system": "\"v2 prompt\"", "extra": "\"new\""}));
}

#[tokio::test]
async fn workspace_init_fails_cleanly_until_the_template_is_seeded() {
    let scratch = Scratch::new();
    let services = embedded(&scratch);
    let mut entries = core_entries(&example_seed());
    entries.swap(0, 1); // workspace-init first: its prerequisite has not run yet.
    let mut loop_ = reconciler(&scratch.init_file(&entries[..2]), services.clone()).await;
    let cadence = Cadence::default();

    let first = loop_.wake().await;
    let [(name, outcome), (_, seeded)] = &outcomes(&first)[..] else { panic!("{first:?}") };
    assert_eq!(*name, "workspace-init");
    assert!(failed_with(outcome, "Template workspace is empty"), "{outcome:?}");
    assert_eq!(**seeded, Outcome::Ran);
    assert!(!first.converged());
    assert_eq!(first.next_sleep(&cadence), cadence.init_retry);
    assert!(services.dump(Some("default")).unwrap().as_object().unwrap().is_empty());

    let second = loop_.wake().await;
    assert_eq!(outcomes(&second), [("workspace-init", &Outcome::Ran), ("template-seed", &Outcome::Skipped)]);
    assert!(second.converged());
}

#[tokio::test]
async fn default_flow_start_leaves_an_existing_flow_alone() {
    let scratch = Scratch::new();
    let services = embedded(&scratch);
    let mut loop_ = reconciler(&scratch.init_file(&core_entries(&example_seed())[..2]), services.clone()).await;
    assert!(loop_.wake().await.converged());
    // The operator started the flow by hand, with their own description.
    let flows = FlowClient(services.as_ref());
    flows.start_flow("default", "default", "document-rag", "by hand", BTreeMap::new()).await.unwrap();
    let before = services.dump(Some("default")).unwrap();

    let mut loop_ = reconciler(&scratch.init_file(&core_entries(&example_seed())), services.clone()).await;
    let report = loop_.wake().await;
    assert_eq!(report.outcomes[2].1, Outcome::Ran, "{report:?}");
    assert_eq!(services.dump(Some("default")).unwrap(), before, "the existing flow was touched");
}

#[tokio::test]
async fn a_failing_initialiser_does_not_block_the_next_and_keeps_no_flag() {
    let scratch = Scratch::new();
    let services = embedded(&scratch);
    let mut failing = entry("failing", "probe", json!({"workspace": "probed", "fail": true}));
    failing["grants"] = json!({"config": {"write": ["probed"]}});
    let mut next = entry("next", "probe", json!({"workspace": "probed"}));
    next["grants"] = json!({"config": {"write": ["probed"]}});
    let mut loop_ = reconciler(&scratch.init_file(&[failing, next]), services.clone()).await;

    for wake in 0..2 {
        let report = loop_.wake().await;
        let [(_, failed), (_, ran)] = &outcomes(&report)[..] else { panic!("{report:?}") };
        assert!(failed_with(failed, "deliberate failure"), "wake {wake}: {failed:?}");
        let expected = if wake == 0 { Outcome::Ran } else { Outcome::Skipped };
        assert_eq!(**ran, expected, "wake {wake}");
        assert_eq!(report.next_sleep(&Cadence::default()), Cadence::default().init_retry);
    }
    assert_eq!(stored_flags(&services.dump(None).unwrap()), json!({"next": "\"v1\""}));
}

#[tokio::test]
async fn state_written_by_the_python_bootstrapper_reads_as_converged() {
    let scratch = Scratch::new();
    let services = embedded(&scratch);
    // What upstream's `json.dumps(flag)` stored: strings quoted, numbers bare.
    services
        .store()
        .put_many(
            "__system__",
            [
                ("init-state", "template-seed", "\"v1\""),
                ("init-state", "workspace-init", "\"v1\""),
                ("init-state", "default-flow-start", "3"),
            ],
        )
        .unwrap();
    let mut entries = core_entries(&example_seed());
    entries[2]["flag"] = json!(3);
    let mut loop_ = reconciler(&scratch.init_file(&entries), services.clone()).await;

    let report = loop_.wake().await;
    assert!(report.outcomes.iter().all(|(_, o)| *o == Outcome::Skipped), "{report:?}");
    assert_eq!(report.next_sleep(&Cadence::default()), Cadence::default().steady_interval);
    assert!(services.dump(Some("__template__")).unwrap().as_object().unwrap().is_empty());
}

/// The embedded services behind a switch: while "down", every request fails as an unreachable
/// service would. It stands in for a broker outage so that the gate can be seen closing.
struct Switchable {
    inner: Arc<EmbeddedServices>,
    up: AtomicBool,
}

#[async_trait]
impl Services for Switchable {
    async fn config(&self, request: ConfigRequest) -> Result<ConfigResponse, ServiceError> {
        self.check()?;
        self.inner.config(request).await
    }

    async fn flow(&self, request: FlowRequest) -> Result<FlowResponse, ServiceError> {
        self.check()?;
        self.inner.flow(request).await
    }
}

impl Switchable {
    fn check(&self) -> Result<(), ServiceError> {
        if self.up.load(Ordering::SeqCst) { Ok(()) } else { Err(ServiceError::Unavailable("switched off".into())) }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_gate_initialiser_runs_while_the_services_are_down_and_its_flag_is_recorded_later() {
    let admin = support::pulsar_admin::PulsarAdmin::start();
    let scratch = Scratch::new();
    let services = Arc::new(Switchable { inner: embedded(&scratch), up: AtomicBool::new(false) });
    let mut entries = vec![json!({"builtin": "pulsar-topology", "name": "pulsar-topology", "flag": "v1",
                                  "params": {"admin_url": admin.url(), "tenant": "tg"}})];
    entries.extend(core_entries(&example_seed()));
    let mut loop_ = reconciler(&scratch.init_file(&entries), services.clone()).await;
    let cadence = Cadence::default();

    let down = loop_.wake().await;
    assert!(!down.gate_open);
    assert_eq!(down.next_sleep(&cadence), cadence.gate_backoff);
    assert_eq!(down.outcomes[0].1, Outcome::RanUnrecorded, "{down:?}");
    assert!(down.outcomes[1..].iter().all(|(_, o)| *o == Outcome::Waiting), "{down:?}");
    assert_eq!(admin.namespaces(), ["tg/flow", "tg/notify", "tg/request", "tg/response"]);
    let response: Value = serde_json::from_str(&admin.namespace_body("tg/response").unwrap()).unwrap();
    assert_eq!(response["retention_policies"]["retentionTimeInMinutes"], 3);
    assert_eq!(admin.namespace_body("tg/flow").unwrap(), "{}");

    // Still down: the topology is done at this flag, so it is not redone.
    let requests = admin.request_count();
    assert_eq!(loop_.wake().await.outcomes[0].1, Outcome::RanUnrecorded);
    assert_eq!(admin.request_count(), requests);

    services.up.store(true, Ordering::SeqCst);
    let up = loop_.wake().await;
    assert!(up.converged(), "{up:?}");
    assert_eq!(stored_flags(&services.inner.dump(None).unwrap())["pulsar-topology"], "\"v1\"");

    let steady = loop_.wake().await;
    assert!(steady.outcomes.iter().all(|(_, o)| *o == Outcome::Skipped), "{steady:?}");
    assert_eq!(steady.next_sleep(&cadence), cadence.steady_interval);
    assert_eq!(admin.request_count(), requests, "the topology ran again once recorded");
}

/// The embedded backend, counting the requests that reach it, which of them read a whole
/// workspace, by workspace, and how many flags each put to `__system__` carries.
struct Counted {
    store: EmbeddedServices,
    requests: std::sync::atomic::AtomicU64,
    workspace_reads: std::sync::Mutex<BTreeMap<String, u64>>,
    flag_puts: std::sync::Mutex<Vec<usize>>,
}

#[async_trait]
impl Services for Counted {
    async fn config(&self, request: ConfigRequest) -> Result<ConfigResponse, ServiceError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if request.operation == "config" {
            *self.workspace_reads.lock().unwrap().entry(request.workspace.clone()).or_default() += 1;
        }
        if request.operation == "put" && request.workspace == "__system__" {
            self.flag_puts.lock().unwrap().push(request.values.len());
        }
        self.store.config(request).await
    }
    async fn flow(&self, request: FlowRequest) -> Result<FlowResponse, ServiceError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.store.flow(request).await
    }
}

#[tokio::test]
async fn a_wake_reads_the_template_once_stores_its_flags_together_and_a_steady_wake_sends_two_requests() {
    let scratch = Scratch::new();
    let mut entries = vec![core_entries(&example_seed()).remove(0)];
    for tenant in ["t1", "t2", "t3"] {
        entries.push(json!({"builtin": "workspace-init", "name": format!("init-{tenant}"), "flag": "v1",
                            "params": {"workspace": tenant}}));
    }
    let store = legacy(&scratch);
    let services = Arc::new(Counted {
        store,
        requests: Default::default(),
        workspace_reads: Default::default(),
        flag_puts: Default::default(),
    });
    let mut loop_ = reconciler(&scratch.init_file(&entries), services.clone()).await;

    let first = loop_.wake().await;
    assert!(first.converged(), "{first:?}");
    assert_eq!(services.workspace_reads.lock().unwrap().get("__template__"), Some(&1));
    assert_eq!(first.requests, services.requests.load(Ordering::Relaxed));
    // Four clean runs well within the batch window: their flags in one put, at the wake's end.
    assert_eq!(*services.flag_puts.lock().unwrap(), [4]);

    let second = loop_.wake().await;
    assert!(second.converged(), "{second:?}");
    assert_eq!(second.requests, 2, "getvalues of the flags, and list-blueprints for the gate");
    assert_eq!(services.requests.load(Ordering::Relaxed), first.requests + 2);
}

/// The services, with every write to a `w-*` workspace held for a while, and a record of when
/// each such write began and ended, in the order it happened.
struct Held {
    store: EmbeddedServices,
    events: std::sync::Mutex<Vec<(&'static str, String)>>,
}

#[async_trait]
impl Services for Held {
    async fn config(&self, request: ConfigRequest) -> Result<ConfigResponse, ServiceError> {
        let watched = request.operation == "put" && request.workspace.starts_with("w-");
        if !watched {
            return self.store.config(request).await;
        }
        let workspace = request.workspace.clone();
        self.events.lock().unwrap().push(("begin", workspace.clone()));
        // Long enough for the other runs of a wake to reach their own writes meanwhile.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let answer = self.store.config(request).await;
        self.events.lock().unwrap().push(("end", workspace));
        answer
    }
    async fn flow(&self, request: FlowRequest) -> Result<FlowResponse, ServiceError> {
        self.store.flow(request).await
    }
}

impl Held {
    /// The most writes in progress at once.
    fn most_at_once(&self) -> usize {
        let mut now = 0usize;
        let mut most = 0;
        for (event, _) in self.events.lock().unwrap().iter() {
            now = if *event == "begin" { now + 1 } else { now - 1 };
            most = most.max(now);
        }
        most
    }
}

/// The probe as `name`, granted to write (only) `workspace`, where it records its run.
fn probe_writing(name: &str, workspace: &str) -> Value {
    let mut probe = entry(name, "probe", json!({"workspace": workspace}));
    probe["grants"] = json!({"config": {"write": [workspace]}});
    probe
}

/// The services behind one lock, as a broker client's connection is: a write to `w-slow` holds
/// it for a while, and the flags' reads and writes (`__system__`) need it too.
struct OneLock {
    store: EmbeddedServices,
    connection: tokio::sync::Mutex<()>,
}

#[async_trait]
impl Services for OneLock {
    async fn config(&self, request: ConfigRequest) -> Result<ConfigResponse, ServiceError> {
        match (request.operation.as_str(), request.workspace.as_str()) {
            ("put", "w-slow") => {
                let _held = self.connection.lock().await;
                // Longer than a flag batch's window, so the batch falls due meanwhile.
                tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
                self.store.config(request).await
            }
            (_, "__system__") => {
                let _held = self.connection.lock().await;
                self.store.config(request).await
            }
            _ => self.store.config(request).await,
        }
    }
    async fn flow(&self, request: FlowRequest) -> Result<FlowResponse, ServiceError> {
        self.store.flow(request).await
    }
}

#[tokio::test]
async fn storing_a_batch_of_flags_waits_for_a_run_that_holds_what_it_needs_without_stalling_it() {
    // A quick run's flag falls due while a slow run holds the lock the flag's put needs: the
    // slow run must go on (be polled) while the batch waits for the lock, or neither ends.
    let scratch = Scratch::new();
    let init = scratch.init_file(&[probe_writing("quick", "w-quick"), probe_writing("slow", "w-slow")]);
    let services = Arc::new(OneLock { store: legacy(&scratch), connection: Default::default() });
    let mut loop_ = reconciler(&init, services.clone()).await;

    // A guard against a hang only: the wake takes about 1.5 s.
    let report =
        tokio::time::timeout(std::time::Duration::from_secs(60), loop_.wake()).await.expect("the wake stalled");
    assert!(report.converged(), "{report:?}");
    assert_eq!(stored_flags(&services.store.dump(None).unwrap()), json!({"quick": r#""v1""#, "slow": r#""v1""#}));
}

#[tokio::test]
async fn initialisers_with_separate_grants_run_at_once_and_those_sharing_a_workspace_in_file_order() {
    // Three probes writing workspaces of their own, and a fourth writing the first one's.
    let entries = [
        probe_writing("a", "w-a"),
        probe_writing("b", "w-b"),
        probe_writing("c", "w-c"),
        probe_writing("a-again", "w-a"),
    ];

    for (concurrency, expected_at_once) in [(1, 1), (4, 3)] {
        let scratch = Scratch::new();
        let init = scratch.init_file(&entries);
        let held = Arc::new(Held { store: legacy(&scratch), events: Default::default() });
        let concurrency = std::num::NonZeroUsize::new(concurrency).unwrap();
        let mut loop_ = reconciler(&init, held.clone()).await.with_concurrency(concurrency);

        let report = loop_.wake().await;
        assert!(report.converged(), "{report:?}");
        assert_eq!(
            held.most_at_once(),
            expected_at_once,
            "concurrency {concurrency}: {:?}",
            held.events.lock().unwrap()
        );
        let on_a: Vec<_> = held.events.lock().unwrap().iter().filter(|(_, w)| w == "w-a").map(|(e, _)| *e).collect();
        assert_eq!(on_a, ["begin", "end", "begin", "end"], "the two writers of w-a one after the other");
        let runs: Vec<&str> = report.runs.iter().map(|run| &*run.initialiser).collect();
        assert!(runs.iter().position(|&r| r == "a") < runs.iter().position(|&r| r == "a-again"), "{runs:?}");
        // Every flag stored, whatever order the runs ended in.
        assert_eq!(stored_flags(&held.store.dump(None).unwrap()).as_object().unwrap().len(), 4);
    }
}
