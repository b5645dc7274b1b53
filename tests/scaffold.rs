//! `bootstrap-wasm new`: for each language, the project it writes in a directory outside the
//! repository builds with its own `build.sh` and converges on the embedded backend, and its
//! greeting is in the store.
//!
//! Each build fetches its toolchain's packages on first use (the wasm32-wasip2 target, and
//! componentize-py or componentize-js), so these tests need the package registries or their
//! caches. The Rust project's build files go to `target/scaffold-rust`, shared between runs.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::Scratch;

/// `bootstrap-wasm new --lang LANG NAME` run in `dir`.
fn new(dir: &Path, lang: &str, name: &str) -> Output {
    support::bin().args(["new", "--lang", lang, name]).current_dir(dir).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Makes project `greeter` in `lang`, builds it, runs it once and checks what it wrote.
fn scaffold_builds_and_converges(lang: &str) {
    let scratch = Scratch::new();
    assert!(!scratch.dir.path().starts_with(support::repo()), "the scratch directory must be outside the repository");
    let made = new(scratch.dir.path(), lang, "greeter");
    assert!(made.status.success(), "new failed: {}", text(&made.stderr));
    assert!(text(&made.stdout).contains("./build.sh"), "no next steps: {}", text(&made.stdout));
    let project = scratch.path("greeter");

    let mut build = Command::new(project.join("build.sh"));
    build.current_dir(&project).env_remove("RUSTFLAGS").env_remove("CARGO_ENCODED_RUSTFLAGS");
    if lang == "rust" {
        build.env("CARGO_TARGET_DIR", support::repo().join("target/scaffold-rust"));
    }
    let built = build.output().unwrap();
    assert!(built.status.success(), "{lang} build.sh failed:\n{}\n{}", text(&built.stdout), text(&built.stderr));
    assert!(project.join("greeter.wasm").exists());

    let state = scratch.path("state.redb");
    let run = support::bin()
        .args(["-c", "dev.yaml", "--pubsub-backend", "embedded", "--once", "--state"])
        .arg(&state)
        .current_dir(&project)
        .output()
        .unwrap();
    assert!(run.status.success(), "{lang}: --once did not converge:\n{}", text(&run.stderr));
    assert!(
        text(&run.stderr).contains("greeting stored in workspace 'greeter'"),
        "{lang}: no log line:\n{}",
        text(&run.stderr)
    );

    let dump = support::bin().args(["dump", "--workspace", "greeter", "--state"]).arg(&state).output().unwrap();
    assert!(dump.status.success(), "dump failed: {}", text(&dump.stderr));
    let stored: serde_json::Value = serde_json::from_slice(&dump.stdout).unwrap();
    assert_eq!(stored, serde_json::json!({"greeting": {"text": "\"Hello from greeter!\""}}), "{lang}");
}

#[test]
fn a_rust_project_builds_and_converges() {
    scaffold_builds_and_converges("rust");
}

#[test]
fn a_python_project_builds_and_converges() {
    scaffold_builds_and_converges("python");
}

#[test]
fn a_js_project_builds_and_converges() {
    scaffold_builds_and_converges("js");
}

#[test]
fn a_bad_name_or_an_existing_directory_is_refused_with_exit_2() {
    let scratch = Scratch::new();
    let bad = new(scratch.dir.path(), "rust", "Bad Name");
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("bad initialiser name"), "{}", text(&bad.stderr));
    assert!(!scratch.path("Bad Name").exists());

    std::fs::create_dir(scratch.path("taken")).unwrap();
    let taken = new(scratch.dir.path(), "python", "taken");
    assert_eq!(taken.status.code(), Some(2));
    assert!(text(&taken.stderr).contains("exists already"), "{}", text(&taken.stderr));
    assert_eq!(std::fs::read_dir(scratch.path("taken")).unwrap().count(), 0);
}
