//! Tenants: the operator's `tenants:` section, and each tenant's own file of initialisers.
//!
//! The operator's file names each tenant, where its file is, the keys its components must be
//! signed with and its [`Ceiling`]; any problem there is the operator's, and fails the whole
//! load as the rest of that file does. A tenant's file is read apart, and its problems are the
//! tenant's: [`TenantFile::load`] fails only for the file as a whole (it cannot be read or
//! parsed), and keeps every entry's own problem beside the entries that are fine, so one bad
//! entry does not take the others with it. Whether an entry's grants and limits lie within the
//! ceiling, and whether its code is signed, is checked by [`crate::tenants`], which also knows
//! what a builtin's params imply.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::raw::{self, RawTenant};
use super::{ConfigError, InitialiserSpec, base_dir_of, check_entry, check_grants, check_limits};
use crate::integrity::signature::SigningKey;
use crate::policy::{Ceiling, Grants, Limits, format_bytes};

/// The longest tenant name: a Kubernetes label's, so a tenant can be named after its namespace.
const MAX_TENANT_NAME: usize = 63;

/// The largest tenant file: entries are small (a flag, a few params), and a tenant's file is
/// read into memory whole, so a larger one is refused rather than read.
pub const MAX_TENANT_FILE_BYTES: usize = 16 << 20;

/// The largest component a tenant may name: a Python guest (componentize-py, interpreter
/// included) is about 40 MiB; each new one costs a compile the tenant's limits do not bound.
pub const MAX_TENANT_COMPONENT_BYTES: usize = 128 << 20;

/// One tenant as the operator declares it.
#[derive(Debug, Clone)]
pub struct TenantSpec {
    pub name: String,
    /// 1-based position in the operator's `tenants:`, for messages.
    pub position: usize,
    /// Its file, or a directory of files (absolute).
    pub path: PathBuf,
    /// Keys its components must be signed with; none, and no signature is asked for.
    pub keys: Vec<SigningKey>,
    pub ceiling: Ceiling,
}

impl TenantSpec {
    /// The directory its components must lie in: its path if that is a directory, else the
    /// file's own directory.
    pub fn directory(&self) -> PathBuf {
        if self.path.is_dir() { self.path.clone() } else { base_dir_of(&self.path) }
    }

    /// Its files: the one at its path, or the tenant files in that directory (by name).
    pub fn files(&self) -> std::io::Result<Vec<PathBuf>> {
        if self.path.is_dir() { tenant_files_in(&self.path) } else { Ok(vec![self.path.clone()]) }
    }

    /// The key its entry `name` is known by: in `__system__` / `init-state`, logs, status
    /// and metrics.
    pub fn scoped(&self, name: &str) -> String {
        format!("{}/{name}", self.name)
    }
}

/// A tenant's file (or the files of its directory), read: each entry checked on its own.
#[derive(Debug, Clone)]
pub struct TenantFile {
    /// The files read, in the order read.
    pub files: Vec<PathBuf>,
    /// Every entry, in order.
    pub entries: Vec<TenantEntry>,
}

/// One entry of a tenant's file.
#[derive(Debug, Clone)]
pub struct TenantEntry {
    /// The file it is in.
    pub file: PathBuf,
    /// Ready for the ceiling's check, or refused for the reason given.
    pub checked: Result<InitialiserSpec, ConfigError>,
}

impl TenantFile {
    /// Read `tenant`'s file or directory. Fails (with the file named) only when a file cannot
    /// be listed, read or parsed: then nothing of it can be trusted.
    pub fn load(tenant: &TenantSpec) -> Result<Self, ConfigError> {
        let refuse = |path: &Path, e: String| ConfigError::file(path, e).of_tenant(&tenant.name);
        let files = tenant.files().map_err(|e| refuse(&tenant.path, format!("cannot list: {e}")))?;
        let defaults = tenant.ceiling.default_limits();
        let mut names = HashSet::new();
        let mut entries = Vec::new();
        for file in &files {
            let bytes = read_at_most(file, MAX_TENANT_FILE_BYTES).map_err(|m| refuse(file, m))?;
            let text = String::from_utf8(bytes).map_err(|e| refuse(file, format!("cannot read: {e}")))?;
            let parsed = raw::parse(file, &text).map_err(|e| e.of_tenant(&tenant.name))?;
            if parsed.tenants.is_some() {
                return Err(refuse(file, "a tenant's file cannot declare tenants: only the operator's can".into()));
            }
            let base_dir = base_dir_of(file);
            for (index, raw) in parsed.initialisers.into_iter().enumerate() {
                let checked = check_entry(file, &base_dir, index + 1, raw, &defaults)
                    .and_then(|spec| check_tenant_entry(file, spec, &mut names))
                    .map_err(|e| e.of_tenant(&tenant.name));
                entries.push(TenantEntry { file: file.clone(), checked });
            }
        }
        Ok(Self { files, entries })
    }
}

/// The bytes of `path`, if it holds at most `limit` of them (checked before reading, and
/// while reading, in case it grows).
pub(crate) fn read_at_most(path: &Path, limit: usize) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let over = |size: usize| format!("{}, over the limit of {}", format_bytes(size), format_bytes(limit));
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let size = file.metadata().map_err(|e| format!("cannot read: {e}"))?.len();
    if size > limit as u64 {
        return Err(over(usize::try_from(size).unwrap_or(usize::MAX)));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit as u64 + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() > limit {
        return Err(over(bytes.len()));
    }
    Ok(bytes)
}

/// What an entry must be in a tenant's file beyond what it must be in the operator's: a name
/// of its own in the tenant. (Where its code may be is checked as the code is read, by
/// [`crate::tenants`]: a component that is not there yet is watched for.)
fn check_tenant_entry(
    file: &Path,
    spec: InitialiserSpec,
    names: &mut HashSet<String>,
) -> Result<InitialiserSpec, ConfigError> {
    let refuse = |message: &str| ConfigError::entry(file, &spec.name, spec.position, "name").because(message);
    if spec.name.contains('/') {
        return Err(refuse("must not contain '/' (the runtime keeps the tenant's name before it)"));
    }
    if !names.insert(spec.name.clone()) {
        return Err(refuse("duplicate name: every initialiser of a tenant needs its own"));
    }
    Ok(spec)
}

/// The tenant files directly in `dir`, by name: `.yaml`, `.yml` and `.json`, but not hidden
/// ones (Kubernetes mounts a ConfigMap's files beside its own `..data` directory).
fn tenant_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let extension = path.extension().and_then(|e| e.to_str());
        if !name.starts_with('.') && matches!(extension, Some("yaml" | "yml" | "json")) && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The operator's `tenants:`, checked: names, paths, keys and ceilings.
pub(super) fn check_tenants(path: &Path, base_dir: &Path, raw: Vec<RawTenant>) -> Result<Vec<TenantSpec>, ConfigError> {
    let mut names = HashSet::new();
    let mut tenants = Vec::with_capacity(raw.len());
    for (index, raw) in raw.into_iter().enumerate() {
        let position = index + 1;
        let name = raw.name.unwrap_or_default();
        let refuse = |field: &str, message: String| {
            ConfigError::file(path, format!("tenant '{name}' (tenant {position}), field '{field}': {message}"))
        };
        if let Err(message) = check_tenant_name(&name) {
            return Err(refuse("name", message));
        }
        if !names.insert(name.clone()) {
            return Err(refuse("name", "duplicate tenant: every tenant needs its own name".into()));
        }
        let Some(tenant_path) = raw.path.filter(|p| !p.is_empty()) else {
            return Err(refuse("path", "missing: the tenant's file, or a directory of its files".into()));
        };
        let keys = raw.keys.iter().map(|key| SigningKey::parse(key)).collect::<Result<Vec<_>, _>>();
        let keys = keys.map_err(|m| refuse("keys", m))?;
        let ceiling = match raw.ceiling {
            None => Ceiling::default(),
            Some(ceiling) => Ceiling {
                grants: match ceiling.grants {
                    Some(grants) => check_grants(base_dir, grants)
                        .map_err(|e| refuse(&format!("ceiling.grants.{}", e.field), e.message))?,
                    None => Grants::default(),
                },
                limits: match ceiling.limits {
                    Some(limits) => check_limits(limits, &Limits::default())
                        .map_err(|e| refuse(&format!("ceiling.limits.{}", e.field), e.message))?,
                    None => Limits::default(),
                },
            },
        };
        let path = super::resolve(base_dir, &tenant_path);
        tenants.push(TenantSpec { name, position, path, keys, ceiling });
    }
    Ok(tenants)
}

/// Lowercase letters, digits, `.`, `_` and `-`, starting with a letter or digit: a name that
/// reads the same in a flag key, a log line and a metric label.
fn check_tenant_name(name: &str) -> Result<(), String> {
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() {
        Err("missing".into())
    } else if !first_ok || !rest_ok || name.len() > MAX_TENANT_NAME {
        Err(format!(
            "'{name}': a tenant's name is up to {MAX_TENANT_NAME} lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"
        ))
    } else {
        Ok(())
    }
}
