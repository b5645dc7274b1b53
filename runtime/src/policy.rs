//! What each initialiser may touch: its grants, and the sandbox limits it runs under.
//!
//! This module holds policy only: plain data that the init file produces and the host checks
//! against. The sandbox and the host interfaces enforce it; they never decide it. Everything is
//! denied unless granted, and the reserved workspace `__system__` (where the runtime keeps its
//! own state) is denied to every guest whatever its grants say.

use std::path::PathBuf;
use std::time::Duration;

/// The workspace where the runtime stores initialiser flags. No guest may read or write it.
pub const SYSTEM_WORKSPACE: &str = "__system__";

/// A workspace name, or a prefix ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspacePattern(String);

impl WorkspacePattern {
    pub fn new(pattern: impl Into<String>) -> Self {
        Self(pattern.into())
    }

    pub fn matches(&self, workspace: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => workspace.starts_with(prefix),
            None => self.0 == workspace,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An HTTP origin a guest may send requests to: scheme, host and port, matched exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// Parse `scheme://host[:port][/...]`; the port defaults from the scheme.
    pub fn parse(text: &str) -> Result<Self, String> {
        let uri: http::Uri = text.parse().map_err(|e| format!("'{text}' is not a URL: {e}"))?;
        let scheme = uri.scheme_str().ok_or_else(|| format!("'{text}' has no scheme"))?;
        let host = uri.host().ok_or_else(|| format!("'{text}' has no host"))?;
        Self::new(scheme, host, uri.port_u16()).map_err(|e| format!("'{text}': {e}"))
    }

    /// An origin from its parts, as a request names them.
    pub fn new(scheme: &str, host: &str, port: Option<u16>) -> Result<Self, String> {
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            other => return Err(format!("scheme '{other}' is not http or https")),
        };
        Ok(Self { host: host.to_ascii_lowercase(), port: port.unwrap_or(default_port), scheme })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// What one initialiser may do through the host. The default grants nothing but logging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Workspaces whose config it may read.
    pub config_read: Vec<WorkspacePattern>,
    /// Workspaces whose config it may write or delete.
    pub config_write: Vec<WorkspacePattern>,
    /// Workspaces whose blueprints and flows it may use.
    pub flow: Vec<WorkspacePattern>,
    /// Origins it may send HTTP requests to.
    pub http: Vec<Origin>,
    /// Host files it may read, at the same absolute path inside the sandbox.
    pub files: Vec<PathBuf>,
}

impl Grants {
    pub fn may_read_config(&self, workspace: &str) -> bool {
        allowed(&self.config_read, workspace)
    }

    pub fn may_write_config(&self, workspace: &str) -> bool {
        allowed(&self.config_write, workspace)
    }

    pub fn may_use_flow(&self, workspace: &str) -> bool {
        allowed(&self.flow, workspace)
    }

    pub fn may_reach(&self, origin: &Origin) -> bool {
        self.http.contains(origin)
    }
}

fn allowed(patterns: &[WorkspacePattern], workspace: &str) -> bool {
    workspace != SYSTEM_WORKSPACE && patterns.iter().any(|p| p.matches(workspace))
}

/// The resources one run may consume before the sandbox stops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wasm fuel: roughly one unit per instruction executed.
    pub fuel: u64,
    /// Wall-clock time for the whole run, host calls included.
    pub timeout: Duration,
    /// Linear memory, in bytes, across all the component's memories.
    pub memory: usize,
}

impl Default for Limits {
    /// Generous for real work (an interpreted Python guest included), small enough that a
    /// runaway guest is stopped within seconds.
    fn default() -> Self {
        Self { fuel: 20_000_000_000, timeout: Duration::from_secs(30), memory: 256 << 20 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exactly_or_by_prefix() {
        assert!(WorkspacePattern::new("acme").matches("acme"));
        assert!(!WorkspacePattern::new("acme").matches("acme-2"));
        assert!(WorkspacePattern::new("acme-*").matches("acme-2"));
        assert!(WorkspacePattern::new("*").matches("anything"));
    }

    #[test]
    fn system_workspace_is_never_granted() {
        let grants = Grants {
            config_read: vec![WorkspacePattern::new("*")],
            config_write: vec![WorkspacePattern::new("__system__")],
            ..Grants::default()
        };
        assert!(grants.may_read_config("acme"));
        assert!(!grants.may_read_config(SYSTEM_WORKSPACE));
        assert!(!grants.may_write_config(SYSTEM_WORKSPACE));
    }

    #[test]
    fn nothing_is_granted_by_default() {
        let grants = Grants::default();
        assert!(!grants.may_read_config("acme"));
        assert!(!grants.may_use_flow("acme"));
        assert!(!grants.may_reach(&Origin::parse("http://pulsar:8080").unwrap()));
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let origin = Origin::parse("http://Pulsar:8080/admin").unwrap();
        assert_eq!(origin.to_string(), "http://pulsar:8080");
        assert_eq!(Origin::parse("https://x").unwrap().port, 443);
        assert!(Origin::parse("ftp://x").is_err());
        assert!(Origin::parse("pulsar:8080").is_err());
    }
}
