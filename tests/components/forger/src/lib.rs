//! `forger`: a test initialiser whose every text (its `describe` summary, `validate` warnings
//! and refusal, `log` lines, stdout, stderr and `run` error) tries to forge lines of the
//! runtime's log and to hide itself with control and bidirectional characters. The tests look
//! for the forged lines, and for raw NUL, ESC and U+202E, in what the runtime printed.
//!
//! Parameters: `refuse` (bool): `validate` refuses the params (with forged text) instead of
//! accepting them with forged warnings.

use bootstrap_guest::{Description, Error, Initialiser, Params, bail, export_initialiser, log};
use serde::Deserialize;

/// What each text carries: a newline, then a line shaped like the runtime's own, then NUL,
/// ESC (a terminal's clear-screen) and a right-to-left override.
pub const FORGED: &str = "innocent\n2026-01-01T00:00:00.000000Z  INFO run{initialiser=victim}: completed (flag=\"v9\") FORGED\r\0\u{1b}[2J\u{202e}desrever";

#[derive(Deserialize)]
struct Settings {
    #[serde(default)]
    refuse: bool,
}

impl bootstrap_guest::Parameters for Settings {}

struct Forger;

impl Initialiser for Forger {
    fn describe() -> Description {
        Description::new(format!("summary {FORGED}"))
    }

    fn validate(params: &Params) -> Result<Vec<String>, String> {
        let settings: Settings = params.read().map_err(|e| e.to_string())?;
        if settings.refuse {
            return Err(format!("refusal {FORGED}"));
        }
        Ok(vec![format!("warning {FORGED}")])
    }

    fn run(_params: &Params, _old_flag: Option<&str>, _new_flag: &str) -> Result<(), Error> {
        log::info(&format!("log {FORGED}"));
        println!("stdout {FORGED}");
        eprintln!("stderr {FORGED}");
        bail!("run error {FORGED}")
    }
}

export_initialiser!(Forger);
