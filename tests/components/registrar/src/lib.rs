//! `registrar`: a test initialiser that makes the `iam` calls, and `config` calls on IAM's
//! registry (`__workspaces__`), that its params list, and reports each outcome, so the tests
//! can show which ones its grants let through.
//!
//! Parameters (each optional):
//! - `create`: ids to register with `iam.create-workspace` (named by their title, waiting at
//!   most `timeout_ms` if given);
//! - `ask`: ids to ask `iam.is-registered` about;
//! - `registry`: `true` to also read the registry with every `config` read (`get`,
//!   `list-keys`, `get-values`, `get-workspace`), write it with `put` and `delete`, and aim
//!   `flow.list-flows` and `flow.put-blueprint` at it (flow-svc keeps its records in config).
//!
//! It logs `registers-workspaces: <bool>`, then one line `<call> <target>: <outcome>` per call
//! (the outcome `ok <answer>`, or the host's error), and succeeds.

use bootstrap_guest::config::{self, ConfigEntry, ConfigKey};
use bootstrap_guest::{Description, Error, HostError, Initialiser, Parameters, Params};
use bootstrap_guest::{export_initialiser, flow, iam, info};
use serde::Deserialize;

#[derive(Deserialize)]
struct Settings {
    #[serde(default)]
    create: Vec<String>,
    #[serde(default)]
    ask: Vec<String>,
    #[serde(default)]
    registry: bool,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

impl Parameters for Settings {}

const REGISTRY: &str = "__workspaces__";

fn report<T: std::fmt::Debug>(call: &str, target: &str, outcome: Result<T, HostError>) {
    match outcome {
        Ok(answer) => info!("{call} {target}: ok {answer:?}"),
        Err(error) => info!("{call} {target}: {error}"),
    }
}

struct Registrar;

impl Initialiser for Registrar {
    fn describe() -> Description {
        Description::new("Test guest: makes iam calls and config calls on the registry, reporting each")
    }

    fn validate(params: &Params) -> Result<Vec<String>, String> {
        params.validate_as::<Settings>()
    }

    fn run(params: &Params, _old_flag: Option<&str>, new_flag: &str) -> Result<(), Error> {
        let settings: Settings = params.read()?;
        info!("registers-workspaces: {}", iam::registers_workspaces());
        let timeout = settings.timeout_ms.map(std::time::Duration::from_millis);
        for id in &settings.create {
            let name = bootstrap_guest::pystr::title(id);
            report("iam.create-workspace", id, iam::create_workspace(id, &name, timeout));
        }
        for id in &settings.ask {
            report("iam.is-registered", id, iam::is_registered(id));
        }
        if settings.registry {
            report("config.get", REGISTRY, config::get(REGISTRY, "workspace", "default"));
            report("config.list-keys", REGISTRY, config::list_keys(REGISTRY, "workspace"));
            report("config.get-values", REGISTRY, config::get_values(REGISTRY, "workspace"));
            report("config.get-workspace", REGISTRY, config::get_workspace(REGISTRY));
            let forged = ConfigEntry::new("workspace", new_flag, r#"{"enabled": true}"#);
            report("config.put", REGISTRY, config::put(REGISTRY, &[forged]));
            report("config.delete", REGISTRY, config::delete(REGISTRY, &[ConfigKey::new("workspace", "default")]));
            report("flow.list-flows", REGISTRY, flow::list_flows(REGISTRY));
            report("flow.put-blueprint", REGISTRY, flow::put_blueprint(REGISTRY, "workspace", "{}"));
        }
        Ok(())
    }
}

export_initialiser!(Registrar);
