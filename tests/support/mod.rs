//! Shared helpers for the end-to-end tests: the real binary, real components, real stores.
//!
//! Test components live in `tests/components/` (a wasm32-wasip2 workspace of guests written
//! with the guest SDK). They are built on first use, once per test process, into
//! `target/test-guests`; cargo's own lock serialises concurrent builds from several test
//! binaries.

#![allow(dead_code)] // Each test binary uses a different subset.

pub mod peer;
pub mod pulsar;
pub mod pulsar_admin;
pub mod rabbitmq;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The `bootstrap-wasm` binary under test.
pub fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bootstrap-wasm"));
    command.env_remove("RUST_LOG").env_remove("PUBSUB_BACKEND");
    command
}

/// The path of test component `name` (a crate of `tests/components/`), built if needed.
pub fn component(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let target_dir = repo().join("target/test-guests");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(repo().join("tests/components/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("cannot run cargo");
        assert!(status.success(), "building the test components failed");
        target_dir.join("wasm32-wasip2/release")
    });
    let path = dir.join(format!("{}.wasm", name.replace('-', "_")));
    assert!(path.exists(), "no test component {}", path.display());
    path
}

/// A scratch directory holding an init file, the files it names, and a state store.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write `contents` to `name` in the scratch directory; returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Write an init file (JSON) with `entries`; returns its path.
    pub fn init_file(&self, entries: &[Value]) -> PathBuf {
        self.write("init.json", &serde_json::json!({"initialisers": entries}).to_string())
    }

    /// The embedded backend's state file.
    pub fn state(&self) -> PathBuf {
        self.path("state.redb")
    }

    /// `bootstrap-wasm -c <init> --pubsub-backend embedded --state <state> --once`, to run.
    pub fn once_command(&self, init: &Path) -> Command {
        let mut command = bin();
        command.arg("-c").arg(init).args(["--pubsub-backend", "embedded", "--state"]).arg(self.state()).arg("--once");
        command
    }

    /// Run [`Self::once_command`] to completion.
    pub fn run_once(&self, init: &Path) -> Output {
        self.once_command(init).output().unwrap()
    }

    /// `bootstrap-wasm dump --state <state>` as JSON.
    pub fn dump(&self) -> Value {
        let output = bin().arg("dump").arg("--state").arg(self.state()).output().unwrap();
        assert!(output.status.success(), "dump failed: {}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The seed file the examples use.
pub fn example_seed() -> PathBuf {
    repo().join("examples/seed.json")
}

/// An init-file entry running test component `code` as `name`, at flag `v1`.
pub fn entry(name: &str, code: &str, params: Value) -> Value {
    serde_json::json!({"name": name, "flag": "v1", "component": component(code), "params": params})
}

/// Whether one line of `log` is about `initialiser` and contains every one of `texts`.
pub fn logged(log: &str, initialiser: &str, texts: &[&str]) -> bool {
    let field = [format!("initialiser={initialiser}"), format!("initialiser=\"{initialiser}\"")];
    log.lines().any(|line| {
        line.split_whitespace().any(|word| field.iter().any(|f| f == word))
            && texts.iter().all(|text| line.contains(text))
    })
}

/// The flags the runtime stored, by initialiser name, from a dump.
pub fn stored_flags(dump: &Value) -> Value {
    dump["__system__"]["init-state"].clone()
}
