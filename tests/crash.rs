//! Crash safety on the embedded backend: the runtime is killed with SIGKILL at random moments
//! of a converging cycle, and restarted.
//!
//! Each trial starts from a fresh store, kills the runtime after a random delay spread over
//! one cycle (measured first), then checks the store as the kill left it: for every flag
//! stored, that initialiser's work is there whole. It then restarts the runtime with `--once`
//! until it converges and compares the store with a reference converged without
//! interruption: every trial must end in the same state. The delays come from a seeded
//! generator; the seed is printed (set `CRASH_SEED` to replay a run, `CRASH_TRIALS` for more).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};
use support::{Scratch, bin, example_seed, stderr};

/// Trials whose kill found the runtime still running (kills after it exited do not count).
const TRIALS: usize = 50;

/// Workspaces set up from the template, each with its default flow: enough work that a
/// converging wake spans several of the embedded store's 200 ms sync windows, so that kills
/// find some of its writes durable and others not.
const WORKSPACES: usize = 40;

fn workspaces() -> impl Iterator<Item = String> {
    (0..WORKSPACES).map(|i| format!("tenant-{i:02}"))
}

/// Restarts allowed after a kill before the trial counts as not converging.
const RESTARTS: usize = 3;

/// splitmix64: enough randomness to spread kill times, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn fraction(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// TemplateSeed, then a WorkspaceInit and a DefaultFlowStart per workspace.
fn init_file(scratch: &Scratch) -> PathBuf {
    let mut entries = vec![json!({"builtin": "template-seed", "name": "template-seed", "flag": "v1",
                                  "params": {"config_file": example_seed()}})];
    for workspace in workspaces() {
        entries.push(json!({"builtin": "workspace-init", "name": format!("workspace-{workspace}"), "flag": "v1",
                            "params": {"workspace": workspace}}));
        entries.push(json!({"builtin": "default-flow-start", "name": format!("flow-{workspace}"), "flag": "v1",
                            "params": {"workspace": workspace, "flow_id": "default", "blueprint": "document-rag"}}));
    }
    scratch.init_file(&entries)
}

/// `bootstrap-wasm --once` on `state`, with the shared compile cache, syncing writes to disk
/// within `sync` (`--state-sync`).
fn once(init: &Path, state: &Path, cache: &Path, sync: &str) -> Command {
    let mut command = bin();
    command
        .arg("-c")
        .arg(init)
        .args(["--pubsub-backend", "embedded", "--once", "--state-sync", sync, "--state"])
        .arg(state)
        .arg("--compile-cache")
        .arg(cache);
    command
}

fn dump(state: &Path) -> Value {
    if !state.exists() {
        return json!({});
    }
    let output = bin().arg("dump").arg("--state").arg(state).output().unwrap();
    assert!(output.status.success(), "dump failed after a kill: {}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The config types of `workspace` in `dump` whose names `owned` accepts, as stored.
fn types(dump: &Value, workspace: &str, owned: impl Fn(&str) -> bool) -> BTreeMap<String, Value> {
    let Some(types) = dump[workspace].as_object() else { return BTreeMap::new() };
    types.iter().filter(|(kind, _)| owned(kind)).map(|(kind, items)| (kind.clone(), items.clone())).collect()
}

/// Which config types an initialiser's work is made of.
type OwnsType<'a> = Box<dyn Fn(&str) -> bool + 'a>;

/// For every flag stored in `state`, the work of that initialiser, whole, as in `reference`.
fn check_flags_match_work(state: &Value, reference: &Value, trial: usize) {
    let template_types: Vec<String> = reference["__template__"].as_object().unwrap().keys().cloned().collect();
    let flags = state["__system__"]["init-state"].as_object().cloned().unwrap_or_default();
    for name in flags.keys() {
        let (workspace, owned): (&str, OwnsType<'_>) = if name == "template-seed" {
            ("__template__", Box::new(|_: &str| true))
        } else if let Some(workspace) = name.strip_prefix("workspace-") {
            (workspace, Box::new(|kind: &str| template_types.iter().any(|t| t == kind)))
        } else if let Some(workspace) = name.strip_prefix("flow-") {
            (workspace, Box::new(|kind: &str| kind == "flow" || kind.starts_with("processor:")))
        } else {
            panic!("trial {trial}: a flag for no initialiser: {name}");
        };
        let found = types(state, workspace, &owned);
        let expected = types(reference, workspace, &owned);
        assert!(!expected.is_empty(), "{name} owns nothing in the reference");
        assert_eq!(found, expected, "trial {trial}: {name}'s flag is stored but its work in {workspace} is not whole");
    }
}

/// Kill trials for each `--state-sync`: `0` (every write synced at once, so a kill can land
/// between any two of them) and the default 200 ms (writes synced in groups, so a kill loses
/// the last of them).
const SYNC_MODES: [(&str, usize); 2] = [("0", TRIALS), ("200ms", TRIALS / 5)];

#[test]
fn sigkill_at_random_moments_never_leaves_a_flag_without_its_work_and_restarts_converge() {
    let scratch = Scratch::new();
    let init = init_file(&scratch);
    let cache = scratch.path("compiled");

    // The reference: one uninterrupted convergence (which also fills the compile cache).
    let reference_state = scratch.path("reference.redb");
    let output = once(&init, &reference_state, &cache, "200ms").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let reference = dump(&reference_state);
    assert_eq!(reference["__system__"]["init-state"].as_object().unwrap().len(), 1 + 2 * WORKSPACES);

    let seed = std::env::var("CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    let scale = std::env::var("CRASH_TRIALS").ok().and_then(|s| s.parse::<usize>().ok());
    println!("crash test: seed {seed} (CRASH_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    for (sync, trials) in SYNC_MODES {
        let trials = scale.map_or(trials, |scale| scale * trials / TRIALS);
        kill_trials(&scratch, &init, &cache, &reference, sync, trials, &mut rng);
    }
}

/// `trials` runs killed at random moments with `--state-sync sync`, each checked and restarted.
fn kill_trials(
    scratch: &Scratch,
    init: &Path,
    cache: &Path,
    reference: &Value,
    sync: &str,
    trials: usize,
    rng: &mut Rng,
) {
    // One converging cycle, spawn to exit, from the warm cache: the span the kills are spread
    // over. The shortest of three, so that few kills come after the exit on a busy machine.
    let cycle = (0..3)
        .map(|attempt| {
            let measured = scratch.path(&format!("measured-{sync}-{attempt}.redb"));
            let started = Instant::now();
            let output = once(init, &measured, cache, sync).output().unwrap();
            let cycle = started.elapsed();
            assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
            assert_eq!(&dump(&measured), reference, "two uninterrupted convergences differ");
            cycle
        })
        .min()
        .unwrap();

    // How many flags each kill left, to show the kills landed all over the cycle.
    let mut flags_left: BTreeMap<usize, usize> = BTreeMap::new();
    let mut exited_before_kill = 0;
    let mut trial = 0;
    while trial - exited_before_kill < trials {
        assert!(trial < 3 * trials, "most kills came after the exit: the cycle ({cycle:?}) is mismeasured");
        let state = scratch.path(&format!("trial-{sync}-{trial}.redb"));
        let delay = cycle.mul_f64(rng.fraction());
        let mut child = once(init, &state, cache, sync)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let exited = child.try_wait().unwrap().is_some();
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        trial += 1;
        if exited {
            // An uninterrupted run, as the reference's: nothing to learn, another trial instead.
            exited_before_kill += 1;
            continue;
        }

        let killed = dump(&state);
        check_flags_match_work(&killed, reference, trial);
        let flags = killed["__system__"]["init-state"].as_object().map_or(0, |flags| flags.len());
        *flags_left.entry(flags).or_default() += 1;

        let mut converged = false;
        for _ in 0..RESTARTS {
            let output = once(init, &state, cache, sync).output().unwrap();
            if output.status.code() == Some(0) {
                converged = true;
                break;
            }
        }
        assert!(
            converged,
            "--state-sync {sync}, trial {trial} (delay {delay:?}): no convergence in {RESTARTS} restarts"
        );
        assert_eq!(
            &dump(&state),
            reference,
            "--state-sync {sync}, trial {trial} (delay {delay:?}) converged elsewhere"
        );
        std::fs::remove_file(&state).unwrap();
    }
    println!(
        "--state-sync {sync}: {trials} trials over a {cycle:?} cycle; flags stored at the kill -> trials: \
         {flags_left:?}; and {exited_before_kill} more had exited before it"
    );
}
