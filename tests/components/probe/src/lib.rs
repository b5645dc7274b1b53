//! `probe`: a well-behaved test initialiser. It records each run in config so a test can see
//! that it ran, with which flags, and in which order.
//!
//! Parameters:
//! - `workspace` (required): where to record the run (the operator must grant config write).
//! - `fail` (default `false`): fail the run with "deliberate failure" instead.
//!
//! A run writes `workspace` / `probe-runs` / `<new flag>` = `{"old": <old flag or null>,
//! "new": <new flag>}`.

use bootstrap_guest::{Description, Error, Initialiser, Parameters, Params};
use bootstrap_guest::{bail, config, export_initialiser, info};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Settings {
    workspace: String,
    #[serde(default)]
    fail: bool,
}

impl Parameters for Settings {}

struct Probe;

impl Initialiser for Probe {
    fn describe() -> Description {
        Description::new("Test probe: records each run's flags in config")
    }

    fn validate(params: &Params) -> Result<Vec<String>, String> {
        params.validate_as::<Settings>()
    }

    fn run(params: &Params, old_flag: Option<&str>, new_flag: &str) -> Result<(), Error> {
        let settings: Settings = params.read()?;
        if settings.fail {
            bail!("deliberate failure");
        }
        let record = json!({"old": old_flag, "new": new_flag});
        config::put_json(&settings.workspace, "probe-runs", new_flag, &record)?;
        info!("probe ran: {record}");
        Ok(())
    }
}

export_initialiser!(Probe);
