//! Builds the core initialisers (`../initialisers`, a wasm32-wasip2 workspace), precompiles
//! them for the target, and places both in `OUT_DIR` with their SHA-256 digests, where
//! `src/builtins.rs` embeds them (a start then need not hash the builtins it loads).
//!
//! The guests get their own target directory (`target/guests`) so this nested cargo never waits
//! on the outer build's lock, and so repeated builds reuse their artefacts.
//!
//! Precompiling uses the sandbox's own code settings (`src/sandbox/compiler_settings.rs`) and
//! names the target explicitly, which makes Cranelift assume only the architecture's baseline
//! CPU, not the build machine's: the artefacts load wherever the binary runs. Where they cannot
//! be made (a target this build's Cranelift does not support), they are left empty with a
//! warning and the runtime compiles the builtins at start-up instead.

#[path = "src/sandbox/compiler_settings.rs"]
mod compiler_settings;

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

const GUESTS: [&str; 4] = ["pulsar_topology", "template_seed", "workspace_init", "default_flow_start"];
/// The guests' sources; not all of `initialisers/`, whose examples the tests build in place.
const WATCHED: [&str; 8] = [
    "initialisers/Cargo.toml",
    "initialisers/Cargo.lock",
    "initialisers/pulsar-topology",
    "initialisers/template-seed",
    "initialisers/workspace-init",
    "initialisers/default-flow-start",
    // With the crate it shares with the runtime, `guest-sdk/upstream` (cargo watches a
    // directory's whole tree).
    "guest-sdk",
    "wit",
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let repo = manifest_dir.parent().unwrap();
    for watched in WATCHED {
        println!("cargo:rerun-if-changed={}", repo.join(watched).display());
    }
    println!("cargo:rerun-if-changed=src/sandbox/compiler_settings.rs");
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo.join("target")).join("guests");

    build_guests(&repo.join("initialisers/Cargo.toml"), &target_dir);

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let engine = precompiling_engine();
    for guest in GUESTS {
        let built = target_dir.join(format!("wasm32-wasip2/release/{guest}.wasm"));
        let bytes = std::fs::read(&built).unwrap_or_else(|e| panic!("{} was not built: {e}", built.display()));
        std::fs::write(out_dir.join(format!("{guest}.wasm")), &bytes).unwrap();
        std::fs::write(out_dir.join(format!("{guest}.sha256")), Sha256::digest(&bytes)).unwrap();
        let artefact = match &engine {
            Some(engine) => engine.precompile_component(&bytes).unwrap_or_else(|e| {
                println!("cargo:warning=cannot precompile {guest}, it will compile at start-up: {e:#}");
                Vec::new()
            }),
            None => Vec::new(),
        };
        std::fs::write(out_dir.join(format!("{guest}.cwasm")), artefact).unwrap();
    }
}

/// An engine that compiles for the target being built, with the sandbox's code settings; none
/// (with a warning) for a target this build's Cranelift cannot compile for.
fn precompiling_engine() -> Option<wasmtime::Engine> {
    let target = std::env::var("TARGET").unwrap();
    let mut config = wasmtime::Config::new();
    compiler_settings::apply(&mut config);
    match config.target(&target).and_then(|config| wasmtime::Engine::new(config)) {
        Ok(engine) => Some(engine),
        Err(e) => {
            println!(
                "cargo:warning=cannot precompile the core initialisers for {target}, they will compile at start-up: {e:#}"
            );
            None
        }
    }
}

fn build_guests(manifest: &Path, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir);
    // The outer build's flags are for the host; the guests must not inherit them.
    for var in
        ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR", "RUSTC_WORKSPACE_WRAPPER"]
    {
        command.env_remove(var);
    }
    let status = command.status().expect("cannot run cargo to build the core initialisers");
    if !status.success() {
        panic!(
            "building the core initialisers for wasm32-wasip2 failed (is the target installed? \
             `rustup target add wasm32-wasip2`)"
        );
    }
}
