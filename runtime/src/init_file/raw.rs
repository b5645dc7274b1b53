//! The init file as written, before any checking: every field optional, unknown fields refused
//! (a misspelt `parmas:` would otherwise be silently ignored).

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInitFile {
    pub initialisers: Vec<RawEntry>,
    /// The operator's file only: who may ship initialisers of their own, within what.
    pub tenants: Option<Vec<RawTenant>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenant {
    pub name: Option<String>,
    pub path: Option<String>,
    #[serde(default)]
    pub keys: Vec<String>,
    pub ceiling: Option<RawCeiling>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCeiling {
    pub grants: Option<RawGrants>,
    pub limits: Option<RawLimits>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEntry {
    pub name: Option<String>,
    pub flag: Option<Value>,
    pub class: Option<String>,
    pub builtin: Option<String>,
    pub component: Option<String>,
    /// The SHA-256 of the code's bytes, as 64 hex digits: an integrity pin. Any value here, so
    /// that a number (YAML reads an unquoted all-digit digest as one) is refused by name.
    pub sha256: Option<Value>,
    pub params: Option<Value>,
    pub limits: Option<RawLimits>,
    pub grants: Option<RawGrants>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub fuel: Option<u64>,
    /// `30s`, `500ms`, `2m`, or a number of seconds.
    pub timeout: Option<Value>,
    /// `64MiB`, `512KiB`, or a number of bytes.
    pub memory: Option<Value>,
    /// A size, as `memory`.
    pub value_size: Option<Value>,
    pub put_entries: Option<u64>,
    /// A size, as `memory`.
    pub written: Option<Value>,
    pub host_calls: Option<u64>,
    pub log_lines: Option<u64>,
    /// A size, as `memory`.
    pub log_line_size: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGrants {
    pub config: Option<RawConfigGrants>,
    pub flow: Option<RawWorkspaceGrants>,
    pub iam: Option<RawWorkspaceGrants>,
    #[serde(default)]
    pub http: Vec<String>,
    #[serde(default)]
    pub files: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfigGrants {
    #[serde(default)]
    pub read: Vec<String>,
    #[serde(default)]
    pub write: Vec<String>,
}

/// `flow:` and `iam:`, each a list of workspaces.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkspaceGrants {
    #[serde(default)]
    pub workspaces: Vec<String>,
}

/// Parse YAML (`.yaml`, `.yml`) or JSON (anything else), as upstream decides.
pub(super) fn parse(path: &Path, text: &str) -> Result<RawInitFile, ConfigError> {
    let is_yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
    let parsed = if is_yaml {
        serde_saphyr::from_str::<RawInitFile>(text).map_err(|e| e.to_string())
    } else {
        serde_json::from_str::<RawInitFile>(text).map_err(|e| e.to_string())
    };
    parsed.map_err(|message| ConfigError::file(path, message))
}
