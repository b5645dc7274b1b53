//! `calls`: a test initialiser whose run does nothing but make `gets` host calls, for the
//! sandbox benchmarks (`runtime/benches/instances.rs`). With `gets: 0` it is the trivial
//! initialiser: an instance started, a run that returns at once.
//!
//! Parameters:
//! - `workspace` (default `bench`): where to read (the operator must grant config read).
//! - `gets` (default 0): how many `config.get` calls of `workspace` / `bench` / `key` to make.

use bootstrap_guest::{Description, Error, Initialiser, Parameters, Params, config, export_initialiser};
use serde::Deserialize;

#[derive(Deserialize)]
struct Settings {
    #[serde(default = "default_workspace")]
    workspace: String,
    #[serde(default)]
    gets: u32,
}

fn default_workspace() -> String {
    "bench".into()
}

impl Parameters for Settings {}

struct Calls;

impl Initialiser for Calls {
    fn describe() -> Description {
        Description::new("Test guest: makes `gets` config.get calls, or none")
    }

    fn validate(params: &Params) -> Result<Vec<String>, String> {
        params.validate_as::<Settings>()
    }

    fn run(params: &Params, _old_flag: Option<&str>, _new_flag: &str) -> Result<(), Error> {
        let settings: Settings = params.read()?;
        for _ in 0..settings.gets {
            config::get(&settings.workspace, "bench", "key")?;
        }
        Ok(())
    }
}

export_initialiser!(Calls);
