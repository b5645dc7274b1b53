//! workspace-setup, in Rust with the guest SDK (`bootstrap-guest`): seeds a tenant's workspace
//! with config entries, then starts its flow. The same initialiser as the Python and
//! JavaScript examples beside it.
//!
//! Parameters (the init-file entry's `params`):
//! - `workspace` (required): the workspace to seed and start the flow in.
//! - `blueprint` (required): the blueprint to start the flow from; it must exist in the
//!   workspace (WorkspaceInit copies the template's).
//! - `flow_id` (default `"default"`), `description` (default `"Started by workspace-setup"`).
//! - `seed` (default `{}`): `{type: {key: value}}`; each value is stored as its JSON text, as
//!   Python's `json.dumps` writes it. (Params reach a Rust guest through `serde_json`, so the
//!   keys of a mapping inside a value are stored sorted.)
//! - `overwrite` (default `false`): on a re-run (the flag changed), `true` rewrites every seed
//!   entry; `false` adds only the keys the workspace lacks, so an operator's edits survive.
//!
//! Grants it needs: config read and write on `workspace`, flow on `workspace`.

use bootstrap_guest::seed::{SeedTree, WriteMode};
use bootstrap_guest::{Description, Error, HostError, Initialiser, Parameters, Params, ParamsError};
use bootstrap_guest::{export_initialiser, flow, info};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The parameters, read and checked by the SDK: a missing or mistyped one is an error that
/// names it, an unknown one a warning.
#[derive(Deserialize)]
struct Settings {
    workspace: String,
    blueprint: String,
    #[serde(default = "default_flow_id")]
    flow_id: String,
    #[serde(default = "default_description")]
    description: String,
    #[serde(default)]
    seed: Map<String, Value>,
    #[serde(default)]
    overwrite: bool,
}

fn default_flow_id() -> String {
    "default".into()
}

fn default_description() -> String {
    "Started by workspace-setup".into()
}

impl Parameters for Settings {
    fn check(&self) -> Result<(), ParamsError> {
        for (name, value) in
            [("workspace", &self.workspace), ("blueprint", &self.blueprint), ("flow_id", &self.flow_id)]
        {
            if value.is_empty() {
                return Err(ParamsError::new(name, "must be a non-empty string"));
            }
        }
        if !self.seed.values().all(Value::is_object) {
            return Err(ParamsError::new("seed", "must be a mapping of config types to mappings of keys to values"));
        }
        Ok(())
    }
}

/// `what` failed with `error`, as one line for the operator.
fn explain(what: &str, error: HostError) -> Error {
    let hint = if matches!(error, HostError::Denied(_)) { " (not in this initialiser's grants)" } else { "" };
    Error::msg(format!("{what}: {error}{hint}"))
}

/// Start the flow unless it is running already (the flag may have been lost).
fn start_flow(settings: &Settings) -> Result<(), Error> {
    let Settings { workspace, flow_id, blueprint, .. } = settings;
    let running = flow::list_flows(workspace)
        .map_err(|e| explain(&format!("listing the flows of workspace '{workspace}'"), e))?;
    if running.contains(flow_id) {
        info!("flow '{flow_id}' already running in workspace '{workspace}'");
        return Ok(());
    }
    // A missing blueprint is the likeliest mistake: say so plainly (a `not-found` error).
    match flow::get_blueprint(workspace, blueprint) {
        Ok(_) => {}
        Err(HostError::NotFound(_)) => {
            bootstrap_guest::bail!("blueprint '{blueprint}' is not in workspace '{workspace}' (has WorkspaceInit run?)")
        }
        Err(e) => return Err(explain(&format!("reading blueprint '{blueprint}'"), e)),
    }
    flow::start_flow(workspace, flow_id, blueprint, &settings.description, &[])
        .map_err(|e| explain(&format!("starting flow '{flow_id}' from blueprint '{blueprint}'"), e))?;
    info!("flow '{flow_id}' started from blueprint '{blueprint}' in workspace '{workspace}'");
    Ok(())
}

struct WorkspaceSetup;

impl Initialiser for WorkspaceSetup {
    fn describe() -> Description {
        Description::new("Seeds a workspace's config and starts its flow (Rust example)")
    }

    fn validate(params: &Params) -> Result<Vec<String>, String> {
        params.validate_as::<Settings>()
    }

    fn run(params: &Params, old_flag: Option<&str>, new_flag: &str) -> Result<(), Error> {
        let settings: Settings = params.read()?;
        let workspace = &settings.workspace;
        let seed = SeedTree::from_json(&Value::Object(settings.seed.clone()).to_string()).map_err(Error::msg)?;
        // First run, or asked to: write every entry. A re-run after a flag bump adds only
        // what is missing, keeping what an operator changed since.
        let mode = WriteMode::for_run(old_flag, settings.overwrite);
        let written = seed
            .write(workspace, mode)
            .map_err(|e| explain(&format!("writing the seed to workspace '{workspace}'"), e))?;
        let shown = if mode == WriteMode::All { "all entries" } else { "missing entries only" };
        let old_flag = old_flag.unwrap_or("none");
        info!("flag {old_flag} -> {new_flag}: wrote {written} seed entries to '{workspace}' ({shown})");
        start_flow(&settings)
    }
}

export_initialiser!(WorkspaceSetup);
