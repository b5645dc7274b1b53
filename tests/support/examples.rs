//! The example initialisers in other languages (`initialisers/examples/<language>/`), built by
//! their own `build.sh` into `target/examples/<language>/` once per process. Shared by
//! `tests/guests.rs` and `runtime/benches/guests.rs`; stands alone (no `support` needed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The languages with an example, as their directory names.
pub const LANGUAGES: [&str; 4] = ["rust", "python", "js", "c"];

/// The component built from the example in `initialisers/examples/<language>`.
pub fn example(language: &str) -> &'static Path {
    static BUILT: [OnceLock<PathBuf>; LANGUAGES.len()] = [const { OnceLock::new() }; LANGUAGES.len()];
    let index = LANGUAGES.iter().position(|l| *l == language).unwrap_or_else(|| panic!("no example in {language}"));
    BUILT[index].get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let out = repo.join(format!("target/examples/{language}/workspace-setup.wasm"));
        let script = repo.join(format!("initialisers/examples/{language}/build.sh"));
        let output =
            Command::new(&script).arg(&out).env_remove("RUSTFLAGS").env_remove("CARGO_ENCODED_RUSTFLAGS").output();
        let output = output.unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "{} failed (has .ci/setup run?):\n{}{}",
            script.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        out
    })
}
