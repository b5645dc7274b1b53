//! The request and response records of TrustGraph's config-svc and flow-svc, and of IAM's
//! `create-workspace` (TrustGraph 2.4.13 and later).
//!
//! Field names and shapes follow TrustGraph 2.4 (`trustgraph-base/trustgraph/schema/services/
//! {config,flow}.py`) and, for IAM, 2.11 (`schema/iam.py`), so these records serialise to
//! exactly the JSON bodies the real services exchange over Pulsar or RabbitMQ (an IAM request
//! carries only the fields this runtime sends; upstream reads the others at their defaults). Every field is optional on the wire: a missing field
//! deserialises to its default, as upstream's dataclasses do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The `error` field of a response: upstream's `Error {type, message}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct WireError {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

impl WireError {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self { kind: kind.into(), message: message.into() }
    }
}

/// The address of one config item: upstream's `ConfigKey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ConfigKey {
    #[serde(rename = "type")]
    pub kind: String,
    pub key: String,
}

/// One config item: upstream's `ConfigValue`. `value` is `None` for a missing key in a `get`
/// answer (upstream sends `null`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ConfigValue {
    #[serde(rename = "type")]
    pub kind: String,
    pub key: String,
    pub value: Option<String>,
    /// Only set in `getvalues-all-ws` answers.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub workspace: String,
}

/// A config-svc request. `operation` is one of `get`, `list`, `getvalues`, `getvalues-all-ws`,
/// `put`, `delete`, `config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ConfigRequest {
    pub operation: String,
    pub workspace: String,
    pub keys: Vec<ConfigKey>,
    #[serde(rename = "type")]
    pub kind: String,
    pub values: Vec<ConfigValue>,
}

/// A config-svc response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ConfigResponse {
    pub version: u64,
    pub values: Vec<ConfigValue>,
    pub directory: Vec<String>,
    /// `config` answers: `{type: {key: value}}` of one workspace.
    pub config: BTreeMap<String, BTreeMap<String, String>>,
    pub error: Option<WireError>,
}

/// A flow-svc request. `operation` is one of `list-blueprints`, `get-blueprint`,
/// `put-blueprint`, `delete-blueprint`, `list-flows`, `get-flow`, `start-flow`, `stop-flow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct FlowRequest {
    pub operation: String,
    pub workspace: String,
    pub blueprint_name: String,
    pub blueprint_definition: String,
    pub description: String,
    pub flow_id: String,
    pub parameters: BTreeMap<String, String>,
}

/// A flow-svc response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct FlowResponse {
    pub blueprint_names: Vec<String>,
    pub flow_ids: Vec<String>,
    /// `get-blueprint`; `None` (JSON `null`) when the blueprint does not exist.
    pub blueprint_definition: Option<String>,
    /// `get-flow`: the stored flow record (JSON text); `None` when the flow does not exist.
    pub flow: Option<String>,
    pub description: String,
    pub parameters: BTreeMap<String, String>,
    pub error: Option<WireError>,
}

/// Where IAM registers workspaces (TrustGraph 2.4.13 and later): config workspace
/// `__workspaces__`, one key per workspace under type `workspace`. config-svc then copies
/// `__template__` into a new one, and flow-svc starts serving it.
/// (The workspace's name lives in `policy`, which keeps it out of every guest's reach.)
pub const WORKSPACE_REGISTRY: (&str, &str) = (crate::policy::REGISTRY_WORKSPACE, "workspace");

/// The value IAM registers a workspace with in [`WORKSPACE_REGISTRY`] (TrustGraph 2.11's
/// iam-svc and no-auth-svc alike).
pub const REGISTERED_WORKSPACE: &str = r#"{"enabled": true}"#;

/// The workspace whose config config-svc copies into each workspace IAM registers (missing
/// keys only), from TrustGraph 2.4.13 on; TemplateSeed fills it.
pub const TEMPLATE_WORKSPACE: &str = "__template__";

/// A workspace as IAM's `create-workspace` takes it: upstream's `WorkspaceInput`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkspaceInput {
    pub id: String,
    pub name: String,
    pub enabled: bool,
}

impl Default for WorkspaceInput {
    /// Enabled, as upstream's default.
    fn default() -> Self {
        Self { id: String::new(), name: String::new(), enabled: true }
    }
}

/// An IAM request: upstream's `IamRequest`, of which the bootstrapper sends `operation` and
/// `workspace_record`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct IamRequest {
    pub operation: String,
    pub workspace_record: Option<WorkspaceInput>,
}

/// A workspace as IAM answers it: upstream's `WorkspaceRecord`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct WorkspaceRecord {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub created: String,
}

/// An IAM response: upstream's `IamResponse`, of which the bootstrapper reads `workspace` and
/// `error` (`duplicate` when the workspace exists already).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct IamResponse {
    pub workspace: Option<WorkspaceRecord>,
    pub error: Option<WireError>,
}

/// Names one service's operations as the wire spells them: an enum with `as_str`, `parse` and
/// `ALL`, so that no operation is a string literal outside this module.
macro_rules! operations {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every operation.
            pub const ALL: &[Self] = &[$(Self::$variant),+];

            /// The operation as the wire spells it (a request's `operation`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire),+
                }
            }

            /// The operation a request names, if it is one.
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|operation| operation.as_str() == text)
            }
        }
    };
}

operations! {
    /// config-svc's operations.
    ConfigOperation {
        Get => "get",
        List => "list",
        GetValues => "getvalues",
        GetValuesAllWorkspaces => "getvalues-all-ws",
        Put => "put",
        Delete => "delete",
        Config => "config",
    }
}

operations! {
    /// flow-svc's operations.
    FlowOperation {
        ListBlueprints => "list-blueprints",
        GetBlueprint => "get-blueprint",
        PutBlueprint => "put-blueprint",
        DeleteBlueprint => "delete-blueprint",
        ListFlows => "list-flows",
        GetFlow => "get-flow",
        StartFlow => "start-flow",
        StopFlow => "stop-flow",
    }
}

operations! {
    /// IAM's operations that the bootstrapper uses: `bootstrap-status` only asks whether an
    /// IAM is there (`--protocol auto`).
    IamOperation {
        CreateWorkspace => "create-workspace",
        BootstrapStatus => "bootstrap-status",
    }
}

impl FlowOperation {
    /// Whether it only reads: every other flow-svc operation may write config in its workspace.
    pub fn only_reads(self) -> bool {
        matches!(self, Self::ListBlueprints | Self::GetBlueprint | Self::ListFlows | Self::GetFlow)
    }
}

#[cfg(test)]
mod tests;
