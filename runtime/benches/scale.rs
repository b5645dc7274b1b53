//! Scale figures, printed: many tenants' initialisers converging, steady wakes, and the idle
//! runtime.
//!
//! `cargo bench -p bootstrap-wasm --bench scale` (after `.ci/setup`; Pulsar through pulsar-lite
//! and the tests' peer serving config-svc and flow-svc). Three parts:
//! 1. one TemplateSeed plus, for each of N tenants, a WorkspaceInit (from the template) and a
//!    DefaultFlowStart (1 + 2N initialisers), converged by the real binary with `--once` from a
//!    fresh store and a warm compile cache, then a steady `--once` run: wall time, CPU, peak
//!    memory and the requests of the wake, for N = 10, 100 and 1,000, on the embedded backend
//!    and over Pulsar; then, if `runtime/benches/install-upstream` installed it, upstream's
//!    Python bootstrapper on the same init files over the same broker and peer, with the same
//!    columns (see `tests/support/upstream.rs` for where its runs end);
//! 2. the CPU and time of one steady wake with 1,000 tenants (2,001 initialisers) in-process
//!    on the embedded backend, through the public API;
//! 3. the resident memory of the runtime idling in steady state with the core initialisers.
//!
//! Name parts to run only those: `cargo bench --bench scale -- embedded pulsar upstream steady idle`.
//!
//! See docs/performance.md.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bootstrap_wasm::broker::pulsar::PulsarTransport;
use bootstrap_wasm::embedded::EmbeddedServices;
use bootstrap_wasm::services::Protocol;
use bootstrap_wasm::{Cadence, InitFile, Initialiser, Reconciler, Sandbox};
use support::peer::{Behaviour, ServicePeer};
use support::upstream::{Upstream, UpstreamRun};
use support::{Scratch, Usage, tenants};

const TENANTS: [usize; 3] = [10, 100, 1000];
const STEADY_WAKES: usize = 20;

fn main() {
    if support::is_measuring_parent() {
        support::peak_rss_parent();
        return;
    }
    // cargo passes `--bench`; every other argument names a part to run.
    let parts: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with('-')).collect();
    let wanted = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cache = tempfile::tempdir().unwrap();

    println!("converging 1 + 2N initialisers with --once, then a steady --once (whole process, warm compile cache)");
    println!(
        "{:<10} {:>6} {:>6} | {:>9} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} {:>9}",
        "backend", "N", "inits", "wall", "cpu", "peak", "requests", "wall", "cpu", "peak", "requests"
    );
    for tenants in TENANTS.into_iter().filter(|_| wanted("embedded")) {
        let scratch = Scratch::new();
        let init = scratch.init_file(&tenants::entries(tenants));
        tenants::warm_compile_cache(&init, cache.path());
        let run = || measure(scratch.once_command(&init).arg("--compile-cache").arg(cache.path()));
        print_row("embedded", tenants, run(), run());
    }
    let pulsar = support::pulsar::PulsarLite::start();
    // The default concurrency, then one initialiser at a time, as upstream.
    for (backend, concurrency) in [("pulsar", None), ("pulsar -c1", Some("1"))] {
        for tenants in TENANTS.into_iter().filter(|_| wanted("pulsar")) {
            let scratch = Scratch::new();
            let init = scratch.init_file(&tenants::entries(tenants));
            tenants::warm_compile_cache(&init, cache.path());
            let peer = start_peer(&runtime, &pulsar, &scratch);
            let run = || {
                let mut command = support::bin();
                command.arg("-c").arg(&init).args(["--pubsub-backend", "pulsar", "-p", &pulsar.direct_url(), "--once"]);
                command.args(concurrency.map(|n| ["--concurrency", n]).into_iter().flatten());
                measure(command.arg("--compile-cache").arg(cache.path()))
            };
            print_row(backend, tenants, run(), run());
            drop(peer);
        }
    }
    match Upstream::find().filter(|_| wanted("upstream")) {
        Some(upstream) => {
            println!("upstream's Python bootstrapper (trustgraph-flow 2.4.4) on the same init files, broker and peer:");
            for tenants in TENANTS {
                let scratch = Scratch::new();
                let init = scratch.init_file(&tenants::entries(tenants));
                let peer = start_peer(&runtime, &pulsar, &scratch);
                let args = ["-p".to_owned(), pulsar.direct_url()];
                let converge = upstream.run(&init, &args, &peer);
                assert_eq!(converge.completed, 1 + 2 * tenants, "upstream did not converge: {converge:?}");
                let steady = upstream.run(&init, &args, &peer);
                assert_eq!(steady.completed, 0, "upstream ran initialisers again: {steady:?}");
                let row = |run: UpstreamRun| (run.usage, run.requests as u64);
                print_row("upstream", tenants, row(converge), row(steady));
            }
        }
        None if wanted("upstream") => {
            println!("(upstream's Python bootstrapper not installed: runtime/benches/install-upstream)")
        }
        None => {}
    }
    drop(pulsar);

    if wanted("steady") {
        println!();
        steady_wake_in_process(&runtime, cache.path());
    }
    if wanted("idle") {
        println!();
        idle_memory(cache.path());
    }
}

/// The peer serving config-svc and flow-svc over `pulsar` from `scratch`'s fresh store.
fn start_peer(
    runtime: &tokio::runtime::Runtime,
    pulsar: &support::pulsar::PulsarLite,
    scratch: &Scratch,
) -> ServicePeer {
    let store = EmbeddedServices::open(&scratch.state()).unwrap().speaking(Protocol::Legacy);
    let transport = Arc::new(PulsarTransport::new(pulsar.direct_options()));
    runtime.block_on(ServicePeer::start(transport, store, Behaviour::default()))
}

/// One whole-process run: what it cost, and the requests its wake sent.
fn measure(command: &mut Command) -> (Usage, u64) {
    let (output, usage) = support::output_and_usage(command);
    let log = support::stderr(&output);
    assert!(output.status.success(), "the run did not converge:\n{log}");
    (usage, requests_of_last_wake(&log))
}

/// The `requests=N` of the last "wake done" line.
fn requests_of_last_wake(log: &str) -> u64 {
    let line = log.lines().rev().find(|line| line.contains("wake done")).expect("no wake in the log");
    let count = line.split("requests=").nth(1).expect("no request count").split_whitespace().next().unwrap();
    count.parse().unwrap()
}

fn print_row(backend: &str, tenants: usize, converge: (Usage, u64), steady: (Usage, u64)) {
    let cells = |(usage, requests): (Usage, u64)| {
        format!(
            "{:>8.2}s {:>8.2}s {:>6} MiB {:>9}",
            usage.wall.as_secs_f64(),
            usage.cpu.as_secs_f64(),
            usage.peak_rss_kib / 1024,
            requests
        )
    };
    println!("{backend:<10} {tenants:>6} {:>6} | {} | {}", 1 + 2 * tenants, cells(converge), cells(steady));
}

/// CPU and time of one steady wake of 2,001 initialisers, in this process.
fn steady_wake_in_process(runtime: &tokio::runtime::Runtime, cache: &Path) {
    let tenants = 1000;
    let scratch = Scratch::new();
    let file = InitFile::load(&scratch.init_file(&tenants::entries(tenants))).unwrap();
    let services = Arc::new(EmbeddedServices::open(&scratch.state()).unwrap().speaking(Protocol::Legacy));
    let mut reconciler = runtime.block_on(async {
        let sandbox = Sandbox::new().unwrap().with_compile_cache(cache.to_path_buf());
        let initialisers = Initialiser::prepare_all(&file, &sandbox).await.unwrap();
        Reconciler::new(initialisers, services, Cadence::default())
    });
    let started = Instant::now();
    let converging = runtime.block_on(reconciler.wake());
    assert!(converging.converged());
    println!(
        "in-process, embedded, {} initialisers: converging wake {:.2} s, {} requests",
        1 + 2 * tenants,
        started.elapsed().as_secs_f64(),
        converging.requests
    );

    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..STEADY_WAKES {
        let (cpu_before, started) = (process_cpu(), Instant::now());
        let report = runtime.block_on(reconciler.wake());
        wall.push(started.elapsed());
        cpu.push(process_cpu() - cpu_before);
        assert!(report.converged() && report.requests == 2, "{report:?}");
    }
    println!(
        "steady wake, median of {STEADY_WAKES}: {:.2} ms wall, {:.2} ms CPU, 2 requests",
        support::median(wall).as_secs_f64() * 1e3,
        support::median(cpu).as_secs_f64() * 1e3
    );
}

/// User plus system time of this process so far.
fn process_cpu() -> Duration {
    // SAFETY: `rusage` is plain data, valid when zeroed; getrusage only writes to it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The resident memory of the runtime left running in steady state with the core initialisers.
fn idle_memory(cache: &Path) {
    let scratch = Scratch::new();
    let init =
        scratch.write("init.yaml", &std::fs::read_to_string(support::repo().join("examples/init.yaml")).unwrap());
    std::fs::copy(support::example_seed(), scratch.path("seed.json")).unwrap();
    tenants::warm_compile_cache(&init, cache);
    let mut child = support::bin()
        .arg("-c")
        .arg(&init)
        .args(["--pubsub-backend", "embedded", "--state"])
        .arg(scratch.state())
        .args(["--steady-interval", "1s", "--compile-cache"])
        .arg(cache)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for two converged wakes (the one that ran everything, and a steady one), and keep
    // reading the log after that so the runtime never writes into a full pipe.
    let (converged_tx, converged_rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("wake done") && line.contains("converged=true") {
                let _ = converged_tx.send(());
            }
        }
    });
    for _ in 0..2 {
        converged_rx.recv_timeout(Duration::from_secs(60)).expect("the runtime did not reach steady state");
    }
    std::thread::sleep(Duration::from_secs(3));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).unwrap().split_whitespace().nth(1).unwrap().to_owned()
    };
    let cpu_before = support::cpu_of(child.id());
    std::thread::sleep(Duration::from_secs(10));
    let idle_cpu = support::cpu_of(child.id()) - cpu_before;
    println!(
        "idle in steady state (core initialisers, embedded): RSS {} MiB (peak {} MiB), {} threads, CPU over 10 s idle: {} ms",
        field("VmRSS:").parse::<u64>().unwrap() / 1024,
        field("VmHWM:").parse::<u64>().unwrap() / 1024,
        field("Threads:"),
        idle_cpu.as_millis()
    );
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(libc::pid_t::try_from(child.id()).unwrap(), libc::SIGTERM) };
    child.wait().unwrap();
}
