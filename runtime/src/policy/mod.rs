//! What each initialiser may touch: its grants, and the sandbox limits it runs under.
//!
//! This module holds policy only: plain data that the init file produces and the host checks
//! against. The sandbox and the host interfaces enforce it; they never decide it. Everything is
//! denied unless granted, and the two reserved workspaces are denied to every guest whatever its
//! grants say: `__system__`, where the runtime keeps its own state, and `__workspaces__`, the
//! registry IAM keeps of the workspaces TrustGraph 2.4.13 and later serve (a guest registers a
//! workspace through IAM, with an `iam` grant, never by writing the registry).
//!
//! A tenant's entries are bounded once more, by the [`Ceiling`] the operator sets for the
//! tenant: their grants and limits must lie within it.

mod ceiling;

use std::path::PathBuf;
use std::time::Duration;

pub use ceiling::{Ceiling, Exceeds};

/// The workspace where the runtime stores initialiser flags. No guest may read or write it.
pub const SYSTEM_WORKSPACE: &str = "__system__";

/// The workspace where IAM registers the workspaces TrustGraph serves (2.4.13 and later). No
/// guest may read or write it: `iam.create-workspace` registers, `iam.is-registered` asks.
pub const REGISTRY_WORKSPACE: &str = "__workspaces__";

/// Why `workspace` is out of every guest's reach whatever its grants say, if it is reserved.
pub fn reserved(workspace: &str) -> Option<&'static str> {
    match workspace {
        SYSTEM_WORKSPACE => Some("reserved for the runtime"),
        REGISTRY_WORKSPACE => {
            Some("reserved for IAM's registry of workspaces (register one with iam.create-workspace)")
        }
        _ => None,
    }
}

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

    /// Whether some workspace matches both patterns.
    pub fn overlaps(&self, other: &WorkspacePattern) -> bool {
        match (self.0.strip_suffix('*'), other.0.strip_suffix('*')) {
            (Some(mine), Some(theirs)) => mine.starts_with(theirs) || theirs.starts_with(mine),
            (Some(_), None) => self.matches(&other.0),
            (None, _) => other.matches(&self.0),
        }
    }

    /// The one workspace it names, unless it is a prefix.
    pub fn exact(&self) -> Option<&str> {
        (!self.0.ends_with('*')).then_some(self.0.as_str())
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
    /// Workspaces it may register with IAM (`iam.create-workspace`).
    pub iam: Vec<WorkspacePattern>,
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

    /// Whether it may register `workspace` with IAM.
    pub fn may_register(&self, workspace: &str) -> bool {
        allowed(&self.iam, workspace)
    }

    /// Whether it may ask if `workspace` is registered: with an `iam` grant for it, or a `flow`
    /// one (a guest that may use a workspace's flows may know whether flow-svc serves it).
    pub fn may_ask_registration(&self, workspace: &str) -> bool {
        self.may_register(workspace) || self.may_use_flow(workspace)
    }

    pub fn may_reach(&self, origin: &Origin) -> bool {
        self.http.contains(origin)
    }
}

fn allowed(patterns: &[WorkspacePattern], workspace: &str) -> bool {
    reserved(workspace).is_none() && patterns.iter().any(|p| p.matches(workspace))
}

/// The largest `params` an entry may have, as JSON text. Params are held for the life of the
/// process and copied into every call (`validate`, then each run), so an oversized block would
/// cost memory and time on every wake; real initialisers take a few hundred bytes (upstream's
/// largest names one seed file), and bulk data belongs in a granted file instead.
pub const MAX_PARAMS_BYTES: usize = 1 << 20;

/// The largest flag, as stored (its JSON text). Flags live in config-svc (`__system__` /
/// `init-state`), all read back in one request on every wake and printed by `status`; they are
/// version labels (`v1`, `2024-06-01`), so 1 KiB is ample and keeps that request small.
pub const MAX_FLAG_BYTES: usize = 1 << 10;

/// The resources one run may consume, and what it may push through the host.
///
/// The first three bound the guest itself (the sandbox stops it: a failed run). The others
/// bound what it may make the runtime do on its behalf; the host enforces them call by call
/// (a call over a cap gets `host-error::invalid-request`; log lines past the cap are dropped)
/// and the run carries on, so a guest sees the refusal and can report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wasm fuel: roughly one unit per instruction executed (`limits.fuel`).
    pub fuel: u64,
    /// Wall-clock time for the whole run, host calls included (`limits.timeout`).
    pub timeout: Duration,
    /// Linear memory, in bytes, across all the component's memories (`limits.memory`).
    pub memory: usize,
    /// Bytes per config type, key or value a `config.put` writes, per blueprint definition,
    /// and per name `iam.create-workspace` registers (`limits.value_size`).
    pub value_size: usize,
    /// Entries per `config.put`, keys per `config.delete` (`limits.put_entries`).
    pub put_entries: usize,
    /// Bytes one run may write through config, flow and iam in all: types, keys and values
    /// put, keys deleted, blueprint names and definitions, flow ids, descriptions and
    /// parameters, workspace ids and names registered (`limits.written`).
    pub written: usize,
    /// Calls one run may make to the runtime's own interfaces (`config`, `flow`, `iam` but
    /// `registers-workspaces`, and `log`, refused ones included) (`limits.host_calls`).
    pub host_calls: usize,
    /// Lines one run may send to the runtime's log: `log` calls and stdout and stderr lines
    /// together (`limits.log_lines`).
    pub log_lines: usize,
    /// Bytes per log line; a longer line is cut and marked as truncated
    /// (`limits.log_line_size`).
    pub log_line_size: usize,
}

impl Default for Limits {
    /// Generous for real work (an interpreted Python guest included, or a seed of thousands of
    /// templates), small enough that a runaway guest is stopped within seconds and cannot make
    /// the runtime hold or send more than tens of MiB on its behalf.
    fn default() -> Self {
        Self {
            fuel: 20_000_000_000,
            timeout: Duration::from_secs(30),
            memory: 256 << 20,
            value_size: 1 << 20,
            put_entries: 10_000,
            written: 64 << 20,
            host_calls: 100_000,
            log_lines: 1_000,
            log_line_size: 4 << 10,
        }
    }
}

impl Limits {
    /// Each limit as `(name, value)`, named as in `limits:` and written for people:
    /// `("fuel", "20000000000")`, `("timeout", "30s")`, `("memory", "256 MiB")`.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        vec![
            ("fuel", self.fuel.to_string()),
            ("timeout", humantime::format_duration(self.timeout).to_string()),
            ("memory", format_bytes(self.memory)),
            ("value_size", format_bytes(self.value_size)),
            ("put_entries", self.put_entries.to_string()),
            ("written", format_bytes(self.written)),
            ("host_calls", self.host_calls.to_string()),
            ("log_lines", self.log_lines.to_string()),
            ("log_line_size", format_bytes(self.log_line_size)),
        ]
    }
}

/// `bytes` for people: `256 MiB`, `4 KiB`, `1 GiB` when exact, `1500 bytes` otherwise.
pub fn format_bytes(bytes: usize) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    if bytes == 1 { "1 byte".into() } else { format!("{bytes} bytes") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_overlap_when_a_workspace_could_match_both() {
        let overlap = |a: &str, b: &str| {
            let (a, b) = (WorkspacePattern::new(a), WorkspacePattern::new(b));
            assert_eq!(a.overlaps(&b), b.overlaps(&a), "symmetric");
            a.overlaps(&b)
        };
        assert!(overlap("acme", "acme"));
        assert!(!overlap("acme", "beta"));
        assert!(overlap("acme-*", "acme-1"));
        assert!(!overlap("acme-*", "acme"));
        assert!(overlap("acme-*", "acme-eu-*"));
        assert!(!overlap("acme-*", "beta-*"));
        assert!(overlap("*", "anything"));
        assert_eq!(WorkspacePattern::new("acme").exact(), Some("acme"));
        assert_eq!(WorkspacePattern::new("acme-*").exact(), None);
    }

    #[test]
    fn patterns_match_exactly_or_by_prefix() {
        assert!(WorkspacePattern::new("acme").matches("acme"));
        assert!(!WorkspacePattern::new("acme").matches("acme-2"));
        assert!(WorkspacePattern::new("acme-*").matches("acme-2"));
        assert!(WorkspacePattern::new("*").matches("anything"));
    }

    #[test]
    fn reserved_workspaces_are_never_granted() {
        for reserved_workspace in [SYSTEM_WORKSPACE, REGISTRY_WORKSPACE] {
            let everything = vec![WorkspacePattern::new("*"), WorkspacePattern::new(reserved_workspace)];
            let grants = Grants {
                config_read: everything.clone(),
                config_write: everything.clone(),
                flow: everything.clone(),
                iam: everything,
                ..Grants::default()
            };
            assert!(grants.may_read_config("acme") && grants.may_register("acme"));
            assert!(!grants.may_read_config(reserved_workspace));
            assert!(!grants.may_write_config(reserved_workspace));
            assert!(!grants.may_use_flow(reserved_workspace));
            assert!(!grants.may_register(reserved_workspace));
            assert!(!grants.may_ask_registration(reserved_workspace));
            assert!(reserved(reserved_workspace).is_some());
        }
        assert_eq!(reserved("__template__"), None);
    }

    #[test]
    fn registration_may_be_asked_with_an_iam_or_a_flow_grant() {
        let iam = Grants { iam: vec![WorkspacePattern::new("tenant-*")], ..Grants::default() };
        assert!(iam.may_register("tenant-1") && iam.may_ask_registration("tenant-1"));
        assert!(!iam.may_use_flow("tenant-1") && !iam.may_register("acme"));
        let flow = Grants { flow: vec![WorkspacePattern::new("acme")], ..Grants::default() };
        assert!(flow.may_ask_registration("acme") && !flow.may_register("acme"));
        assert!(!flow.may_ask_registration("other"));
    }

    #[test]
    fn nothing_is_granted_by_default() {
        let grants = Grants::default();
        assert!(!grants.may_read_config("acme"));
        assert!(!grants.may_use_flow("acme"));
        assert!(!grants.may_register("acme") && !grants.may_ask_registration("acme"));
        assert!(!grants.may_reach(&Origin::parse("http://pulsar:8080").unwrap()));
    }

    #[test]
    fn limits_read_as_people_write_them() {
        let rows = Limits::default().rows();
        let row = |name: &str| rows.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str()).unwrap();
        assert_eq!(row("fuel"), "20000000000");
        assert_eq!(row("timeout"), "30s");
        assert_eq!(row("memory"), "256 MiB");
        assert_eq!(row("value_size"), "1 MiB");
        assert_eq!(row("put_entries"), "10000");
        assert_eq!(row("written"), "64 MiB");
        assert_eq!(row("host_calls"), "100000");
        assert_eq!(row("log_lines"), "1000");
        assert_eq!(row("log_line_size"), "4 KiB");
        assert_eq!(rows.len(), 9, "one row per field");
        let short = Limits { timeout: Duration::from_millis(1500), ..Limits::default() };
        assert_eq!(short.rows()[1], ("timeout", "1s 500ms".to_owned()));
    }

    #[test]
    fn sizes_use_the_largest_exact_unit() {
        assert_eq!(format_bytes(1 << 30), "1 GiB");
        assert_eq!(format_bytes(3 << 20), "3 MiB");
        assert_eq!(format_bytes(1536), "1536 bytes");
        assert_eq!(format_bytes(2048), "2 KiB");
        assert_eq!(format_bytes(1), "1 byte");
        assert_eq!(format_bytes(0), "0 bytes");
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
