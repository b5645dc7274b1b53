//! Guest figures, printed: for an initialiser in each language, the component's size, the time
//! to compile it (Cranelift, in `Sandbox::load`; paid once per process for each component an
//! init file names), wall-clock and CPU (all threads), and the time of one call into it (a
//! fresh store and instance, then `describe`, or `validate` of a small params block), as every
//! call the runtime makes costs.
//!
//! `cargo bench -p bootstrap-wasm --bench guests` (needs `.ci/setup`: python3-venv, npm and
//! clang, for the examples' build scripts). The guests are `initialisers/examples/`: the same
//! initialiser, workspace-setup, in each language.

#[path = "../../tests/support/examples.rs"]
mod examples;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bootstrap_wasm::Sandbox;
use bootstrap_wasm::policy::{Grants, Limits};
use bootstrap_wasm::sandbox::CallContext;

/// Calls measured per figure, after as many again to warm up.
const CALLS: usize = 200;

const PARAMS: &str = r#"{"workspace": "acme", "blueprint": "document-rag", "seed": {"prompt": {"system": "Hi"}}}"#;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let names =
        ["Rust (guest SDK)", "Python (componentize-py)", "JavaScript (componentize-js)", "C (wit-bindgen, clang)"];
    let guests: Vec<(&str, Vec<u8>)> = (examples::LANGUAGES.into_iter().zip(names))
        .map(|(language, name)| (name, std::fs::read(examples::example(language)).unwrap()))
        .collect();

    let sandbox = Sandbox::new().unwrap();
    let context = CallContext {
        initialiser: "bench".into(),
        limits: Limits::default(),
        grants: Arc::new(Grants::default()),
        services: None,
    };
    println!("one component per language; call = fresh store + instance + the call, median (p99) of {CALLS}");
    println!(
        "{:<30} {:>8} {:>9} {:>12} {:>20} {:>20}",
        "guest", "size", "compile", "compile CPU", "call describe", "call validate"
    );
    for (name, bytes) in guests {
        let (started, cpu_started) = (Instant::now(), cpu_time());
        let component = sandbox.load(&bytes).unwrap();
        let (compile, compile_cpu) = (started.elapsed(), cpu_time() - cpu_started);
        let describe = calls(|| async { component.describe(&context).await.unwrap() }).await;
        let validate = calls(|| async { component.validate(&context, PARAMS).await.unwrap().unwrap() }).await;
        println!(
            "{name:<30} {:>8} {:>9} {:>12} {:>20} {:>20}",
            size(bytes.len()),
            format!("{:.2} s", compile.as_secs_f64()),
            format!("{:.2} s", compile_cpu.as_secs_f64()),
            figure(describe),
            figure(validate),
        );
    }
}

/// The times of `CALLS` calls of `call`, sorted, after as many to warm up.
async fn calls<T, F: Future<Output = T>>(call: impl Fn() -> F) -> Vec<Duration> {
    for _ in 0..CALLS {
        call().await;
    }
    let mut times: Vec<Duration> = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let started = Instant::now();
        call().await;
        times.push(started.elapsed());
    }
    times.sort();
    times
}

/// The CPU time this process has used, all threads (Linux: /proc/self/stat, in clock ticks of
/// 10 ms). Cranelift compiles on every core, so on a busy machine this is the steadier figure.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// `bytes` in KB or MB.
fn size(bytes: usize) -> String {
    if bytes < 1_000_000 { format!("{:.0} KB", bytes as f64 / 1e3) } else { format!("{:.1} MB", bytes as f64 / 1e6) }
}

/// `median (p99)` in milliseconds.
fn figure(times: Vec<Duration>) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!("{:.3} ms ({:.3})", ms(times[times.len() / 2]), ms(times[times.len() * 99 / 100]))
}
