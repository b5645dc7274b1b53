//! The init file: which initialisers to run, with what flag, code, params, limits and grants.
//!
//! The shape is upstream's (`initialisers: [{class, name, flag, params}]`, YAML or JSON chosen by
//! the file's extension), so an existing TrustGraph init file loads unchanged. bootstrap-wasm adds
//! two other ways to name the code (`builtin:`, `component:`) and the per-entry `sha256:` (an
//! integrity pin, see [`crate::integrity`]), `limits:` and `grants:`. Loading is all-or-nothing:
//! the first problem found is returned as a [`ConfigError`] naming the file, the entry and the
//! field, and nothing runs.
//!
//! Relative paths (components, granted files, builtin seed files) are resolved against the
//! directory of the init file, not the process's working directory, so a file means the same
//! wherever it is run from.

mod error;
mod raw;
mod tenant;
mod units;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use error::ConfigError;
use error::FieldError;
pub(crate) use tenant::read_at_most;
pub use tenant::{MAX_TENANT_COMPONENT_BYTES, MAX_TENANT_FILE_BYTES, TenantEntry, TenantFile, TenantSpec};
pub use units::parse_duration;

use crate::builtins::Builtin;
use crate::flag::Flag;
use crate::integrity::Digest;
use crate::policy::{Grants, Limits, MAX_FLAG_BYTES, MAX_PARAMS_BYTES, Origin, WorkspacePattern, format_bytes};

/// A loaded, checked init file.
#[derive(Debug, Clone)]
pub struct InitFile {
    pub path: PathBuf,
    pub initialisers: Vec<InitialiserSpec>,
    /// The tenants that may ship initialisers of their own (`tenants:`), in file order.
    pub tenants: Vec<TenantSpec>,
}

/// One entry of the init file.
#[derive(Debug, Clone)]
pub struct InitialiserSpec {
    /// Unique within the file; the key its flag is stored under.
    pub name: String,
    /// 1-based position in the file, for messages.
    pub position: usize,
    pub flag: Flag,
    pub code: Code,
    /// The field that named the code (`component`, `builtin` or `class`), for messages.
    pub code_field: &'static str,
    /// The entry's `sha256:` pin: the digest its code's bytes must have.
    pub sha256: Option<Digest>,
    /// The entry's `params` (an object; `{}` when absent).
    pub params: Value,
    pub limits: Limits,
    /// The entry's `grants:`, if it has any. Builtins derive theirs from their params.
    pub grants: Option<Grants>,
}

/// Where an initialiser's code comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Code {
    /// A core initialiser compiled into the binary (`builtin:` or upstream's `class:`).
    Builtin(Builtin),
    /// A component file on disk (absolute path).
    Component(PathBuf),
}

impl std::fmt::Display for Code {
    /// `builtin template-seed` or `component /abs/path.wasm`, for logs and `check`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Code::Builtin(builtin) => write!(f, "builtin {}", builtin.name()),
            Code::Component(path) => write!(f, "component {}", path.display()),
        }
    }
}

impl InitFile {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::file(path, format!("cannot read: {e}")))?;
        let raw = raw::parse(path, &text)?;
        let base_dir = base_dir_of(path);
        let tenants = tenant::check_tenants(path, &base_dir, raw.tenants.unwrap_or_default())?;

        let mut names = HashSet::new();
        let mut initialisers = Vec::with_capacity(raw.initialisers.len());
        for (index, entry) in raw.initialisers.into_iter().enumerate() {
            let spec = check_entry(path, &base_dir, index + 1, entry, &Limits::default())?;
            if !names.insert(spec.name.clone()) {
                return Err(ConfigError::entry(path, &spec.name, spec.position, "name")
                    .because("duplicate name: every initialiser needs its own"));
            }
            // A tenant's entries are stored as `<tenant>/<name>`: that key space is theirs.
            if let Some(tenant) = tenants.iter().find(|t| spec.name.starts_with(&format!("{}/", t.name))) {
                let message = format!("names beginning '{}/' belong to tenant '{}'", tenant.name, tenant.name);
                return Err(ConfigError::entry(path, &spec.name, spec.position, "name").because(message));
            }
            initialisers.push(spec);
        }
        Ok(Self { path: path.to_path_buf(), initialisers, tenants })
    }
}

/// The directory relative paths in `path` are taken from.
fn base_dir_of(path: &Path) -> PathBuf {
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    if base_dir.as_os_str().is_empty() { PathBuf::from(".") } else { base_dir }
}

/// Check one entry; limits it leaves out are `default_limits` (a tenant's are capped by its
/// ceiling).
fn check_entry(
    path: &Path,
    base_dir: &Path,
    position: usize,
    raw: raw::RawEntry,
    default_limits: &Limits,
) -> Result<InitialiserSpec, ConfigError> {
    let name = match raw.name {
        Some(name) if !name.trim().is_empty() => name,
        Some(_) => return Err(ConfigError::entry(path, "", position, "name").because("must not be empty")),
        None => return Err(ConfigError::entry(path, "", position, "name").because("missing")),
    };
    let placed = |e: FieldError| ConfigError::entry(path, &name, position, e.field).because(e.message);
    let flag = check_flag(raw.flag).map_err(placed)?;
    let code_field = match (&raw.class, &raw.builtin) {
        (Some(_), _) => "class",
        (None, Some(_)) => "builtin",
        (None, None) => "component",
    };
    let code = check_code(base_dir, raw.class, raw.builtin, raw.component).map_err(placed)?;
    let sha256 = raw.sha256.map(check_sha256).transpose().map_err(placed)?;
    let params = check_params(raw.params).map_err(placed)?;
    let in_section = |section: &str, e: FieldError| {
        ConfigError::entry(path, &name, position, &format!("{section}.{}", e.field)).because(e.message)
    };
    let limits = match raw.limits {
        Some(raw_limits) => check_limits(raw_limits, default_limits).map_err(|e| in_section("limits", e))?,
        None => *default_limits,
    };
    let grants = raw.grants.map(|raw_grants| check_grants(base_dir, raw_grants)).transpose();
    let grants = grants.map_err(|e| in_section("grants", e))?;
    Ok(InitialiserSpec { name, position, flag, code, code_field, sha256, params, limits, grants })
}

fn check_flag(raw: Option<Value>) -> Result<Flag, FieldError> {
    let flag =
        Flag::from_config(raw.ok_or(FieldError::new("flag", "missing"))?).map_err(|m| FieldError::new("flag", m))?;
    let size = flag.to_stored().len();
    if size > MAX_FLAG_BYTES {
        let message = format!("{}, over the limit of {}", format_bytes(size), format_bytes(MAX_FLAG_BYTES));
        return Err(FieldError::new("flag", message));
    }
    Ok(flag)
}

/// The code an entry names with exactly one of `class:`, `builtin:` and `component:`.
fn check_code(
    base_dir: &Path,
    class: Option<String>,
    builtin: Option<String>,
    component: Option<String>,
) -> Result<Code, FieldError> {
    match (class, builtin, component) {
        (Some(class), None, None) => Builtin::from_class(&class).map(Code::Builtin).ok_or_else(|| {
            let known = Builtin::ALL.map(|b| b.class()).join(", ");
            FieldError::new("class", format!("unknown class '{class}'; known: {known}"))
        }),
        (None, Some(builtin), None) => Builtin::from_name(&builtin).map(Code::Builtin).ok_or_else(|| {
            let known = Builtin::ALL.map(|b| b.name()).join(", ");
            FieldError::new("builtin", format!("unknown builtin '{builtin}'; known: {known}"))
        }),
        (None, None, Some(component)) => Ok(Code::Component(resolve(base_dir, &component))),
        (None, None, None) => {
            Err(FieldError::new("component", "missing: name the code with one of `component:`, `builtin:` or `class:`"))
        }
        _ => Err(FieldError::new("component", "give only one of `component:`, `builtin:` and `class:`")),
    }
}

fn check_sha256(raw: Value) -> Result<Digest, FieldError> {
    match raw {
        Value::String(hex) => Digest::parse(&hex).map_err(|m| FieldError::new("sha256", m)),
        _ => Err(FieldError::new("sha256", "must be a string of 64 hex digits (quote it in YAML)")),
    }
}

fn check_params(raw: Option<Value>) -> Result<Value, FieldError> {
    let params = match raw {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(params @ Value::Object(_)) => params,
        Some(_) => return Err(FieldError::new("params", "must be a mapping")),
    };
    let size = params.to_string().len();
    if size > MAX_PARAMS_BYTES {
        return Err(FieldError::new(
            "params",
            format!(
                "{} of JSON, over the limit of {}: put bulk data in a granted file instead",
                format_bytes(size),
                format_bytes(MAX_PARAMS_BYTES)
            ),
        ));
    }
    Ok(params)
}

fn check_limits(raw: raw::RawLimits, defaults: &Limits) -> Result<Limits, FieldError> {
    let size = |field: &'static str, value: Option<serde_json::Value>, default: usize| match value {
        Some(value) => units::bytes(&value).map_err(|m| FieldError::new(field, m)),
        None => Ok(default),
    };
    let count = |field: &'static str, value: Option<u64>, default: usize| match value {
        Some(0) => Err(FieldError::new(field, "must be more than 0")),
        Some(n) => usize::try_from(n).map_err(|_| FieldError::new(field, format!("{n} is too large"))),
        None => Ok(default),
    };
    Ok(Limits {
        fuel: match raw.fuel {
            Some(0) => return Err(FieldError::new("fuel", "must be more than 0")),
            Some(fuel) => fuel,
            None => defaults.fuel,
        },
        timeout: match raw.timeout {
            Some(value) => units::duration(&value).map_err(|m| FieldError::new("timeout", m))?,
            None => defaults.timeout,
        },
        memory: size("memory", raw.memory, defaults.memory)?,
        value_size: size("value_size", raw.value_size, defaults.value_size)?,
        put_entries: count("put_entries", raw.put_entries, defaults.put_entries)?,
        written: size("written", raw.written, defaults.written)?,
        host_calls: count("host_calls", raw.host_calls, defaults.host_calls)?,
        log_lines: count("log_lines", raw.log_lines, defaults.log_lines)?,
        log_line_size: size("log_line_size", raw.log_line_size, defaults.log_line_size)?,
    })
}

fn check_grants(base_dir: &Path, raw: raw::RawGrants) -> Result<Grants, FieldError> {
    let patterns = |list: Vec<String>| list.into_iter().map(WorkspacePattern::new).collect();
    let config = raw.config.unwrap_or_default();
    let http = raw
        .http
        .into_iter()
        .map(|origin| Origin::parse(&origin))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| FieldError::new("http", m))?;
    Ok(Grants {
        config_read: patterns(config.read),
        config_write: patterns(config.write),
        flow: patterns(raw.flow.unwrap_or_default().workspaces),
        iam: check_iam_grants(raw.iam.unwrap_or_default().workspaces)?,
        http,
        files: raw.files.iter().map(|f| resolve(base_dir, f)).collect(),
    })
}

/// `iam: {workspaces: [...]}`: names or prefixes IAM could register. IAM refuses ids beginning
/// with `_` (the reserved `__system__`, `__workspaces__`, `__template__` among them), so a grant
/// of one could never be used: it is refused here, where the operator sees why.
fn check_iam_grants(workspaces: Vec<String>) -> Result<Vec<WorkspacePattern>, FieldError> {
    let field = "iam.workspaces";
    for workspace in &workspaces {
        if workspace.is_empty() {
            return Err(FieldError::new(field, "a workspace must not be empty"));
        }
        if workspace.starts_with('_') {
            let message = format!("'{workspace}': workspace ids beginning with '_' are reserved, IAM registers none");
            return Err(FieldError::new(field, message));
        }
    }
    Ok(workspaces.into_iter().map(WorkspacePattern::new).collect())
}

/// `path` as an absolute path, relative ones taken from `base_dir`.
pub(crate) fn resolve(base_dir: &Path, path: &str) -> PathBuf {
    let joined = base_dir.join(path);
    std::path::absolute(&joined).unwrap_or(joined)
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
