//! DefaultFlowStart: starts a named flow in a workspace from a blueprint, unless a flow with
//! that id is already there. Separate from `WorkspaceInit` so a deployment can have a
//! workspace without an auto-started flow by leaving this out.
//!
//! On TrustGraph 2.4.13 and later (the runtime's `--protocol workspaces`), flow-svc serves
//! only workspaces IAM has registered, so it first checks that the workspace is registered
//! and fails with `Workspace '<workspace>' does not exist yet` when not, as upstream 2.11.1
//! does; the run is then retried on a later wake, after `WorkspaceInit` has registered it. On
//! TrustGraph 2.4.4 to 2.4.10 there is nothing to check, as in 2.4.4.
//!
//! Parameters:
//! - `workspace` (default `"default"`), `flow_id` (default `"default"`).
//! - `blueprint` (required): the blueprint to start the flow from; it must already exist in
//!   the workspace (typically via `TemplateSeed` then `WorkspaceInit`).
//! - `description` (default `"Default"`).
//! - `parameters` (optional mapping): overrides of the blueprint's parameters; a value that
//!   is not a string is passed as its JSON text.
//! - `list_timeout`, `start_timeout`: accepted (numbers of seconds), as upstream takes them,
//!   but they have no effect: the runtime's per-request timeout for flow-svc
//!   (`--request-timeout`) applies to both calls, since the WIT's flow calls take none.
//!
//! Its grant, derived by the runtime: flow `workspace` (which also lets it ask whether the
//! workspace is registered).
//!
//! Matches TrustGraph 2.4.4 and 2.11.1, each in its own protocol.

use bootstrap_guest::pyjson;
use bootstrap_guest::{Context, Description, Error, Initialiser, Parameters, Params, ParamsError};
use bootstrap_guest::{bail, export_initialiser, flow, iam, info};
use bootstrap_upstream::builtins::default_flow_start::{DESCRIPTION, FLOW_ID, WORKSPACE};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

/// The parameters this initialiser reads.
#[derive(Debug, Deserialize, PartialEq)]
struct Settings {
    #[serde(default = "default_workspace")]
    workspace: String,
    #[serde(default = "default_flow_id")]
    flow_id: String,
    blueprint: String,
    #[serde(default = "default_description")]
    description: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    /// Read only to check its type; see the crate docs.
    #[serde(default)]
    #[allow(dead_code)]
    list_timeout: Option<Number>,
    /// Read only to check its type; see the crate docs.
    #[serde(default)]
    #[allow(dead_code)]
    start_timeout: Option<Number>,
}

fn default_workspace() -> String {
    WORKSPACE.into()
}

fn default_flow_id() -> String {
    FLOW_ID.into()
}

fn default_description() -> String {
    DESCRIPTION.into()
}

impl Parameters for Settings {
    fn check(&self) -> Result<(), ParamsError> {
        if self.blueprint.is_empty() {
            return Err(ParamsError::new("blueprint", "must not be empty"));
        }
        Ok(())
    }
}

impl Settings {
    /// The flow parameters as flow-svc takes them: strings as they are, anything else as
    /// its JSON text.
    fn flow_parameters(&self) -> Vec<(String, String)> {
        self.parameters
            .iter()
            .flatten()
            .map(|(name, value)| {
                let text = match value {
                    Value::String(text) => text.clone(),
                    other => pyjson::Value::from(other.clone()).dumps(),
                };
                (name.clone(), text)
            })
            .collect()
    }
}

struct DefaultFlowStart;

impl Initialiser for DefaultFlowStart {
    fn describe() -> Description {
        Description::new("Starts a named flow from a blueprint unless it is already running")
    }

    fn validate(params: &Params) -> Result<Vec<String>, String> {
        params.validate_as::<Settings>()
    }

    fn run(params: &Params, _old_flag: Option<&str>, _new_flag: &str) -> Result<(), Error> {
        let settings: Settings = params.read()?;
        let Settings { workspace, flow_id, blueprint, .. } = &settings;

        // Where workspaces are registered, flow-svc serves no other.
        if iam::registers_workspaces() && !iam::is_registered(workspace).context("registration check failed")? {
            bail!("Workspace '{workspace}' does not exist yet");
        }

        // Belt and braces beyond the flag: if the flow is running already (the bootstrap
        // state was lost, say), starting it again would fail.
        let running = flow::list_flows(workspace).context("list-flows failed")?;
        if running.contains(flow_id) {
            info!("Flow '{flow_id}' already running in workspace '{workspace}'; nothing to do");
            return Ok(());
        }

        info!("Starting flow '{flow_id}' (blueprint='{blueprint}') in workspace '{workspace}'");
        flow::start_flow(workspace, flow_id, blueprint, &settings.description, &settings.flow_parameters())
            .context("start-flow failed")?;
        info!("Flow '{flow_id}' started");
        Ok(())
    }
}

export_initialiser!(DefaultFlowStart);

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> Result<Settings, String> {
        Params::from_json(json).unwrap().read().map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_match_upstream() {
        let settings = settings(r#"{"blueprint": "everything"}"#).unwrap();
        assert_eq!(
            settings,
            Settings {
                workspace: "default".into(),
                flow_id: "default".into(),
                blueprint: "everything".into(),
                description: "Default".into(),
                parameters: None,
                list_timeout: None,
                start_timeout: None,
            }
        );
        assert!(settings.flow_parameters().is_empty());
    }

    #[test]
    fn blueprint_is_required_and_not_empty() {
        assert_eq!(settings("{}").unwrap_err(), "missing required parameter `blueprint`");
        assert_eq!(settings(r#"{"blueprint": ""}"#).unwrap_err(), "parameter `blueprint`: must not be empty");
    }

    #[test]
    fn parameters_must_be_a_mapping_and_non_strings_become_json_text() {
        let error = settings(r#"{"blueprint": "b", "parameters": ["x"]}"#).unwrap_err();
        assert!(error.starts_with("parameter `parameters`: invalid type"), "{error}");

        let settings = settings(
            r#"{"blueprint": "b", "parameters": {"model": "gpt", "temperature": 0.5, "chunks": 3, "opts": {"a": [true]}}}"#,
        )
        .unwrap();
        assert_eq!(
            settings.flow_parameters(),
            [
                ("chunks".to_string(), "3".to_string()),
                ("model".to_string(), "gpt".to_string()),
                ("opts".to_string(), r#"{"a": [true]}"#.to_string()),
                ("temperature".to_string(), "0.5".to_string()),
            ]
        );
    }

    #[test]
    fn timeouts_are_accepted_but_must_be_numbers() {
        assert!(settings(r#"{"blueprint": "b", "list_timeout": 10, "start_timeout": 30}"#).is_ok());
        let error = settings(r#"{"blueprint": "b", "start_timeout": "30s"}"#).unwrap_err();
        assert!(error.starts_with("parameter `start_timeout`: invalid type"), "{error}");
    }

    #[test]
    fn only_undocumented_parameters_draw_warnings() {
        let params = Params::from_json(r#"{"workspace": "w", "flow_id": "f", "blueprint": "b", "description": "d", "parameters": {}, "list_timeout": 1, "start_timeout": 2, "flowid": "x"}"#).unwrap();
        let warnings = DefaultFlowStart::validate(&params).unwrap();
        assert!(matches!(&warnings[..], [only] if only.starts_with("unknown parameter `flowid`")), "{warnings:?}");
    }
}
