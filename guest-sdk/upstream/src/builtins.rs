//! The core initialisers' parameter defaults (TrustGraph 2.4.4's), and the reserved workspace
//! two of them use.
//!
//! Each initialiser (`initialisers/*`) reads its params with these defaults; the runtime
//! (`runtime/src/builtins.rs`) derives each one's grants from its params with the same ones,
//! so a param left out is granted exactly what the initialiser then does with it.

/// The reserved workspace TemplateSeed fills and WorkspaceInit copies new workspaces from.
pub const TEMPLATE_WORKSPACE: &str = "__template__";

/// PulsarTopology's defaults.
pub mod pulsar_topology {
    /// `admin_url`: Pulsar's admin REST API, the one HTTP origin the initialiser is granted.
    pub const ADMIN_URL: &str = "http://pulsar:8080";
    /// `tenant`: the Pulsar tenant it creates.
    pub const TENANT: &str = "tg";
}

/// WorkspaceInit's defaults.
pub mod workspace_init {
    /// `workspace`: the workspace it fills, the one it may read and write.
    pub const WORKSPACE: &str = "default";
    /// `source`, by default: the [`TEMPLATE_WORKSPACE`](super::TEMPLATE_WORKSPACE), which it
    /// then may read.
    pub const SOURCE_TEMPLATE: &str = "template";
    /// The other `source`: the file `seed_file` names, which it then may read.
    pub const SOURCE_SEED_FILE: &str = "seed-file";
}

/// DefaultFlowStart's defaults.
pub mod default_flow_start {
    /// `workspace`: the workspace it starts the flow in, the one whose flows it may manage.
    pub const WORKSPACE: &str = "default";
    /// `flow_id`: the id of the flow it starts.
    pub const FLOW_ID: &str = "default";
    /// `description`: the started flow's description.
    pub const DESCRIPTION: &str = "Default";
}
