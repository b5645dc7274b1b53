//! {{name}}: stores a greeting in a workspace's config.
//!
//! Parameters (the init-file entry's `params`):
//! - `workspace` (required): the workspace to write to;
//! - `greeting` (default `"Hello!"`): the text stored at type `greeting`, key `text`.
//!
//! Grants it needs: config write (and read) on `workspace`.

use bootstrap_guest::{config, export_initialiser, info};
use bootstrap_guest::{Description, Error, Initialiser, Parameters, Params};
use serde::Deserialize;

/// The params, read and checked by the SDK: a missing or mistyped one is an error that names
/// it, an unknown one a warning.
#[derive(Deserialize)]
struct Settings {
    workspace: String,
    #[serde(default = "default_greeting")]
    greeting: String,
}

fn default_greeting() -> String {
    "Hello!".into()
}

impl Parameters for Settings {}

struct Greeter;

impl Initialiser for Greeter {
    fn describe() -> Description {
        Description::new("Stores a greeting in a workspace's config ({{name}})")
    }

    fn validate(params: &Params) -> Result<Vec<String>, String> {
        params.validate_as::<Settings>()
    }

    fn run(params: &Params, old_flag: Option<&str>, new_flag: &str) -> Result<(), Error> {
        let settings: Settings = params.read()?;
        // Safe to repeat: `put` replaces the value.
        config::put_json(&settings.workspace, "greeting", "text", &settings.greeting)?;
        info!("flag {} -> {new_flag}: greeting stored in workspace '{}'", old_flag.unwrap_or("none"), settings.workspace);
        Ok(())
    }
}

export_initialiser!(Greeter);
