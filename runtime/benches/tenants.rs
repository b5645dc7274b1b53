//! Tenant self-service figures, printed: 1,000 tenants, each in a directory of its own with its
//! own tenant file, its own copy of the tests' probe component and a workspace of its own within
//! its ceiling, loaded in this process through the public API ([`Tenants::refresh`], which the
//! daemon's loop calls before each wake).
//!
//! These figures are loading only: no service is involved and nothing runs (no wake, no
//! backend, no store). Nor is a log subscriber installed: the daemon would also write a line or
//! two per tenant it loads.
//!
//! `cargo bench -p bootstrap-wasm --bench tenants`. For unsigned tenants, then for tenants that
//! each sign their component (a minisign key of their own under `keys:`, `<component>.minisig`
//! beside it), each in a fresh process of its own (this bench, started again), so that one's
//! memory is not counted in the other's:
//! 1. the first load (the first refresh) of the 1,000 tenants: wall time, CPU (user + sys of the
//!    whole process, compile threads included: getrusage `RUSAGE_SELF`), the growth of the
//!    resident set (`/proc/self/statm`, before and after) and the process's peak after it
//!    (`VmHWM`). The 1,000 copies are one digest: the probe is compiled once;
//! 2. a steady refresh, nothing changed, median of 5: it should read no component;
//! 3. one tenant among the 1,000 reloaded, median of 5: its file atomically replaced with a
//!    changed flag (its component is not read again); then, separately, its component replaced
//!    by a copy (same bytes, a new inode and new times), which is read, hashed and its
//!    signature checked again, but not compiled again. A reload is a whole refresh: its figures
//!    include the stamps of the 999 others (the steady refresh's cost), so the tenant's own load
//!    is the difference.
//!
//! `read` is the refresh's `components_read`, `reloaded` the tenants it read again. Name a
//! variant to run only that one: `cargo bench -p bootstrap-wasm --bench tenants -- signed`.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bootstrap_wasm::tenants::{Tenants, TenantsReport};
use bootstrap_wasm::{InitFile, Sandbox};
use serde_json::{Value, json};
use support::Scratch;
use support::tenant_files::{Signer, probe_entry, replace_atomically, tenant, tenant_file, write};

const TENANTS: usize = 1000;
/// Runs of the cheap figures (steady refresh, one tenant's reload); the median is printed.
const RUNS: usize = 5;
/// The tenant reloaded, among the 1,000.
const RELOADED: usize = TENANTS / 2;
/// Set, to the variant, when this bench is started again to measure one variant.
const VARIANT: &str = "BOOTSTRAP_WASM_TENANTS_BENCH_VARIANT";
/// Set, with [`VARIANT`], to the probe's path (built by the first process).
const PROBE: &str = "BOOTSTRAP_WASM_TENANTS_BENCH_PROBE";
const VARIANTS: [&str; 2] = ["unsigned", "signed"];

fn main() {
    if let (Ok(variant), Some(probe)) = (std::env::var(VARIANT), std::env::var_os(PROBE)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        return runtime.block_on(measure(variant == "signed", Path::new(&probe)));
    }
    // cargo passes `--bench`; every other argument names a variant.
    let named: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with('-')).collect();
    // Built (if need be) before the table starts, so that cargo's output does not cut into it.
    let probe = support::component("probe");

    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!("{TENANTS} tenants, each its own directory, tenant file, copy of the probe and workspace");
    println!("in-process Tenants::refresh, current-thread runtime as the daemon's; loading only, no service");
    println!("{cores} cores; CPU = user + sys of the process (getrusage); RSS = resident set growth (statm)");
    println!(
        "{:<9} | {:<36} | {:>10} | {:>10} | {:>26} | {:>5} | {:>8}",
        "tenants", "what", "wall", "CPU", "RSS", "read", "reloaded"
    );
    for variant in VARIANTS.into_iter().filter(|v| named.is_empty() || named.iter().any(|n| n == v)) {
        let mut command = Command::new(std::env::current_exe().unwrap());
        let status = command.env(VARIANT, variant).env(PROBE, &probe).status().unwrap();
        assert!(status.success(), "the {variant} run failed: {status}");
    }
}

/// The figures of one variant, in this (fresh) process; `built` is the probe.
async fn measure(signed: bool, built: &Path) {
    let label = if signed { "signed" } else { "unsigned" };
    let scratch = Scratch::new();
    let tenants_made = make_tenants(&scratch, built, signed);
    let init = InitFile::load(&tenants_made.init).unwrap();
    assert_eq!(init.tenants.len(), TENANTS);
    let mut tenants = Tenants::new(init.tenants, Sandbox::new().unwrap());
    let row = |what: &str, figures: &Figures, rss: String| {
        println!(
            "{label:<9} | {what:<36} | {:>7.1} ms | {:>7.1} ms | {rss:>26} | {:>5} | {:>8}",
            ms(figures.wall),
            ms(figures.cpu),
            figures.read,
            figures.reloaded
        );
    };

    // 1. The first load.
    let first = refresh(&mut tenants, assert_all_loaded).await;
    let peak = support::peak_rss_kib_of(std::process::id());
    row(
        &format!("first load, {TENANTS} tenants"),
        &first,
        format!("{:+.1} MiB, peak {:.0} MiB", first.rss_kib as f64 / 1024.0, peak as f64 / 1024.0),
    );

    // 2. Steady: nothing changed.
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        runs.push(refresh(&mut tenants, |_, _| {}).await);
    }
    let steady = Figures::median(&runs);
    row(&format!("steady refresh (median of {RUNS})"), &steady, kib(steady.rss_kib));

    // 3. One tenant's file replaced, with a changed flag.
    let (file, probe, name) = &tenants_made.reloaded;
    let mut runs = Vec::new();
    for run in 0..RUNS {
        let flag = format!("v{}", run + 2);
        replace_atomically(file, &tenant_file(&[seed(probe, name, &flag)]));
        let figures = refresh(&mut tenants, assert_one_reloaded).await;
        let running = &tenants.tenants()[RELOADED].running()[0];
        assert_eq!(running.initialiser.flag.to_string(), flag, "the new flag is not in service");
        runs.push(figures);
    }
    let file_reload = Figures::median(&runs);
    row(&format!("reload 1 tenant file (median of {RUNS})"), &file_reload, kib(file_reload.rss_kib));
    settled(&mut tenants, label, "a tenant file's reload").await;

    // 3, again: one tenant's component replaced by a copy (same bytes, new inode and times).
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        let copy = probe.with_file_name(".probe.wasm.tmp");
        std::fs::copy(built, &copy).unwrap();
        std::fs::rename(&copy, probe).unwrap();
        let figures = refresh(&mut tenants, assert_one_reloaded).await;
        runs.push(figures);
    }
    let component_reload = Figures::median(&runs);
    row(&format!("reload 1 component (median of {RUNS})"), &component_reload, kib(component_reload.rss_kib));
    settled(&mut tenants, label, "a component's reload").await;
    let peak = support::peak_rss_kib_of(std::process::id());
    println!("{label:<9} | {:<36} | peak {:.0} MiB", "at the end", peak as f64 / 1024.0);

    if !signed {
        // What part of the first load is compiling the probe: once, in a sandbox of its own.
        let bytes = std::fs::read(built).unwrap();
        let sandbox = Sandbox::new().unwrap();
        let (cpu, started) = (process_cpu(), Instant::now());
        sandbox.load(&bytes).unwrap();
        let (wall, cpu) = (started.elapsed(), process_cpu() - cpu);
        println!(
            "{label:<9} | {:<36} | {:>7.1} ms | {:>7.1} ms | {:>26} |",
            "compile probe once (Sandbox::load)",
            ms(wall),
            ms(cpu),
            format!("{} KiB component", bytes.len() / 1024)
        );
    }
}

/// The tenants' directories and files, and the operator's init file declaring them.
struct Made {
    init: PathBuf,
    /// The reloaded tenant's file, component and name.
    reloaded: (PathBuf, PathBuf, String),
}

/// `TENANTS` tenants in `scratch`: `t-NNNN`, each with `tenants/t-NNNN/tenant.json` running
/// its own copy of `built` (the probe) as `seed` in workspace `t-NNNN`, within a ceiling of
/// that workspace alone (and limits below the defaults); `signed`, each with a key of its own
/// and its component signed.
fn make_tenants(scratch: &Scratch, built: &Path, signed: bool) -> Made {
    let mut declared = Vec::with_capacity(TENANTS);
    let mut reloaded = None;
    for index in 0..TENANTS {
        let name = format!("t-{index:04}");
        let dir = scratch.path("tenants").join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let probe = dir.join("probe.wasm");
        std::fs::copy(built, &probe).unwrap();
        let file = dir.join("tenant.json");
        write(&file, &tenant_file(&[seed(&probe, &name, "v1")]));
        let keys = if signed {
            let signer = Signer::new();
            signer.sign_file(&probe);
            vec![signer.public()]
        } else {
            Vec::new()
        };
        let ceiling = json!({
            "grants": {"config": {"read": [name], "write": [name]}},
            "limits": {"fuel": 5_000_000_000_u64, "memory": "64MiB", "timeout": "10s"},
        });
        declared.push(tenant(&name, &file, Some(ceiling), &keys));
        if index == RELOADED {
            reloaded = Some((file, probe, name));
        }
    }
    let init = scratch.path("init.json");
    write(&init, &serde_json::to_string(&json!({"initialisers": [], "tenants": declared})).unwrap());
    Made { init, reloaded: reloaded.unwrap() }
}

/// The tenant's one entry: the probe at `component` as `seed`, at `flag`, writing its
/// workspace `name` (only), with limits within its ceiling's.
fn seed(component: &Path, name: &str, flag: &str) -> Value {
    let mut entry = probe_entry("seed", component, name, flag);
    entry["limits"] = json!({"fuel": 1_000_000_000_u64, "memory": "32MiB", "timeout": "5s"});
    entry
}

/// What one refresh cost, and what it did.
struct Figures {
    wall: Duration,
    cpu: Duration,
    /// Resident set growth, KiB (negative if it shrank).
    rss_kib: i64,
    read: u64,
    reloaded: usize,
}

impl Figures {
    /// The medians of each figure of `runs` (each on its own), with the counts of the median
    /// run by wall time.
    fn median(runs: &[Figures]) -> Figures {
        let by_wall = support::median(runs.iter().map(|f| (f.wall, f.read, f.reloaded)));
        Figures {
            wall: by_wall.0,
            cpu: support::median(runs.iter().map(|f| f.cpu)),
            rss_kib: support::median(runs.iter().map(|f| f.rss_kib)),
            read: by_wall.1,
            reloaded: by_wall.2,
        }
    }
}

/// One refresh, measured, and its outcome checked by `check`. The resident set is measured
/// once the report is dropped, as the daemon's loop drops it after the wake.
async fn refresh(tenants: &mut Tenants, check: impl FnOnce(&Tenants, &TenantsReport)) -> Figures {
    let rss_before = resident_kib();
    let (cpu_before, started) = (process_cpu(), Instant::now());
    let report = tenants.refresh().await;
    let wall = started.elapsed();
    let cpu = process_cpu() - cpu_before;
    check(tenants, &report);
    let reloaded = report.tenants.iter().filter(|t| t.reloaded).count();
    let read = report.components_read;
    drop(report);
    let rss_kib = resident_kib() - rss_before;
    Figures { wall, cpu, rss_kib, read, reloaded }
}

/// Every tenant loaded, with its one entry in service.
fn assert_all_loaded(tenants: &Tenants, report: &TenantsReport) {
    assert_eq!(report.tenants.len(), TENANTS);
    for (summary, tenant) in report.tenants.iter().zip(tenants.tenants()) {
        assert!(
            summary.reloaded && summary.entries == 1 && summary.refused == 0,
            "{summary:?}: {:?} {:?}",
            tenant.file_error(),
            tenant.refused()
        );
    }
}

/// Only the reloaded tenant was read again, and its entry is in service.
fn assert_one_reloaded(tenants: &Tenants, report: &TenantsReport) {
    let reloaded: Vec<usize> = report.tenants.iter().enumerate().filter(|(_, t)| t.reloaded).map(|(i, _)| i).collect();
    assert_eq!(reloaded, [RELOADED], "tenants read again");
    let summary = &report.tenants[RELOADED];
    let tenant = &tenants.tenants()[RELOADED];
    assert!(
        summary.entries == 1 && summary.refused == 0,
        "{summary:?}: {:?} {:?}",
        tenant.file_error(),
        tenant.refused()
    );
}

/// After a reload, a refresh reads nothing again; says so if it does.
async fn settled(tenants: &mut Tenants, label: &str, after: &str) {
    let figures = refresh(tenants, |_, _| {}).await;
    if figures.read != 0 || figures.reloaded != 0 {
        println!(
            "{label:<9} | note: the refresh after {after} read {} components and {} tenants again",
            figures.read, figures.reloaded
        );
    }
}

/// This process's resident set now, KiB (`/proc/self/statm`'s second field, in pages).
fn resident_kib() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: i64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf only reads a system constant.
    let page_size = i64::from(i32::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap());
    pages * page_size / 1024
}

/// User plus system time of this process so far, every thread's.
fn process_cpu() -> Duration {
    // SAFETY: `rusage` is plain data, valid when zeroed; getrusage only writes to it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn kib(kib: i64) -> String {
    format!("{kib:+} KiB")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
