//! Builds the core initialisers (`../initialisers`, a wasm32-wasip2 workspace) and places their
//! components in `OUT_DIR`, where `src/builtins.rs` embeds them.
//!
//! The guests get their own target directory (`target/guests`) so this nested cargo never waits
//! on the outer build's lock, and so repeated builds reuse their artefacts.

use std::path::{Path, PathBuf};
use std::process::Command;

const GUESTS: [&str; 4] = ["pulsar_topology", "template_seed", "workspace_init", "default_flow_start"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let repo = manifest_dir.parent().unwrap();
    for watched in ["initialisers", "guest-sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", repo.join(watched).display());
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"))
        .join("guests");

    build_guests(&repo.join("initialisers/Cargo.toml"), &target_dir);

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    for guest in GUESTS {
        let built = target_dir.join(format!("wasm32-wasip2/release/{guest}.wasm"));
        std::fs::copy(&built, out_dir.join(format!("{guest}.wasm")))
            .unwrap_or_else(|e| panic!("{} was not built: {e}", built.display()));
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
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR", "RUSTC_WORKSPACE_WRAPPER"] {
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
