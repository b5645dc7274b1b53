//! A tenant's entries admitted one by one: within the ceiling, code pinned and signed as the
//! tenant's keys require, compiled once per digest, described and validated.
//!
//! A component file is read (and hashed, and its signature checked) only when its stamp
//! changed since the tenant's last load: a thousand unchanged tenants cost no reads. Compiled
//! components are shared by digest across tenants (a thousand copies of one component compile
//! once), and dropped once no tenant uses them.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::sources::{Stamp, signature_path};
use super::{Running, Tenant};
use crate::init_file::{Code, ConfigError, InitialiserSpec, MAX_TENANT_COMPONENT_BYTES, read_at_most};
use crate::initialiser::Initialiser;
use crate::initialiser::check_pin;
use crate::integrity::Digest;
use crate::integrity::signature;
use crate::policy::{Ceiling, Grants};
use crate::sandbox::ComponentCode;
use crate::wit::Description;
use crate::{LoadedComponent, Sandbox};

/// A component file named by a tenant's last load, as it found it.
pub(super) struct KnownComponent {
    /// The file's stamp, and its signature's, taken before they were read.
    pub stamp: Option<Stamp>,
    pub signature_stamp: Option<Stamp>,
    /// What was read, or why it could not be: a component not there yet is still stamped, so
    /// that it is read as soon as it appears.
    found: Result<Found, String>,
}

/// A component file read.
struct Found {
    digest: Digest,
    /// Whether its signature is good, by the tenant's keys; `Ok` when it has none.
    signed: Result<(), String>,
    /// The bytes, until compiled.
    bytes: Option<Arc<Vec<u8>>>,
}

impl KnownComponent {
    /// Its digest, if it could be read.
    pub(super) fn digest(&self) -> Option<Digest> {
        self.found.as_ref().ok().map(|found| found.digest)
    }

    pub(super) fn forget_bytes(&mut self) {
        if let Ok(found) = &mut self.found {
            found.bytes = None;
        }
    }
}

/// Compiled components by digest, with what each said of itself once described.
#[derive(Default)]
pub(super) struct Compiled(HashMap<Digest, (LoadedComponent, Option<Description>)>);

impl Compiled {
    /// Forget every component but those in `in_use`.
    pub(super) fn keep_only(&mut self, in_use: &HashSet<Digest>) {
        self.0.retain(|digest, _| in_use.contains(digest));
    }
}

/// Admits one tenant's entries, for one load.
pub(super) struct Loader<'a> {
    pub tenant: &'a Tenant,
    pub sandbox: &'a Sandbox,
    pub compiled: &'a mut Compiled,
    /// The component files this load has met so far, to become the tenant's.
    pub known: &'a mut HashMap<PathBuf, KnownComponent>,
    /// Component files read by this loader.
    pub read: u64,
}

impl Loader<'_> {
    /// `spec`, an entry of `file`, made ready to run, or why it is refused.
    pub(super) async fn admit(&mut self, file: &Path, spec: InitialiserSpec) -> Result<Running, ConfigError> {
        let tenant = &self.tenant.spec;
        let refuse = |field: &str, message: String| {
            ConfigError::entry(file, &spec.name, spec.position, field).because(message).of_tenant(&tenant.name)
        };
        let base_dir = file.parent().unwrap_or(Path::new("."));
        let grants = Initialiser::effective_grants(&spec, base_dir);
        tenant.ceiling.admit_grants(&grants).map_err(|e| refuse(e.field, e.message))?;
        files_resolve_within(&tenant.ceiling, &grants.files).map_err(|m| refuse("grants.files", m))?;
        tenant.ceiling.admit_limits(&spec.limits).map_err(|e| refuse(e.field, e.message))?;

        let (digest, bytes, precompiled, signed) = match &spec.code {
            Code::Builtin(builtin) => {
                let code = builtin.code();
                (code.digest, None, code.precompiled, Ok(()))
            }
            Code::Component(path) => {
                let found = self.read_component(path).map_err(|m| refuse(spec.code_field, m))?;
                (found.digest, found.bytes.clone(), None, found.signed.clone())
            }
        };
        check_pin(&spec, digest).map_err(|m| refuse("sha256", m))?;
        signed.map_err(|m| refuse("signature", m))?;

        let (component, described) = match self.compiled.0.get(&digest) {
            Some((component, described)) => (component.clone(), described.clone()),
            None => {
                let component = self.compile(&spec.code, digest, bytes, precompiled).await;
                (component.map_err(|m| refuse(spec.code_field, m))?, None)
            }
        };
        let name = tenant.scoped(&spec.name);
        let prepared = Initialiser::prepare_entry(file, &spec, &name, digest, component.clone(), described).await;
        let initialiser = prepared.map_err(|e| e.of_tenant(&tenant.name))?;
        let description = Some(initialiser.description().clone());
        self.compiled.0.insert(digest, (component, description));
        tracing::info!(initialiser = %name, sha256 = %digest, "loaded {}", spec.code);
        Ok(Running { spec, file: file.to_path_buf(), initialiser: Arc::new(initialiser) })
    }

    /// The component at `path`: as last read if its stamps are unchanged (and it is compiled:
    /// its bytes are gone once it is), else read, hashed and its signature checked now.
    fn read_component(&mut self, path: &Path) -> Result<&Found, String> {
        if !self.known.contains_key(path) {
            let (stamp, signature_stamp) = (Stamp::of(path), Stamp::of(&signature_path(path)));
            let previous = self.tenant.components.get(path).filter(|known| {
                let compiled = known.digest().is_none_or(|digest| self.compiled.0.contains_key(&digest));
                known.stamp == stamp && known.signature_stamp == signature_stamp && compiled
            });
            let found = match previous.map(|known| &known.found) {
                Some(Ok(found)) => Ok(Found { digest: found.digest, signed: found.signed.clone(), bytes: None }),
                Some(Err(why)) => Err(why.clone()),
                None => self.read_new(path),
            };
            self.known.insert(path.to_path_buf(), KnownComponent { stamp, signature_stamp, found });
        }
        self.known[path].found.as_ref().map_err(Clone::clone)
    }

    /// Read the component at `path`, which must lie, symlinks resolved, inside the tenant's
    /// directory: a tenant names code of its own, not another's or the host's.
    fn read_new(&mut self, path: &Path) -> Result<Found, String> {
        let directory = self.tenant.spec.directory();
        let within = std::fs::canonicalize(&directory).unwrap_or(directory);
        let real = std::fs::canonicalize(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if !real.starts_with(&within) {
            return Err(format!("{} is outside the tenant's directory {}", real.display(), within.display()));
        }
        let bytes = read_at_most(&real, MAX_TENANT_COMPONENT_BYTES).map_err(|m| format!("{}: {m}", path.display()))?;
        self.read += 1;
        let signed = self.check_signature(path, &bytes);
        Ok(Found { digest: Digest::of(&bytes), signed, bytes: Some(Arc::new(bytes)) })
    }

    /// `bytes`' signature beside `path`, by one of the tenant's keys; `Ok` if it has none.
    fn check_signature(&self, path: &Path, bytes: &[u8]) -> Result<(), String> {
        let keys = &self.tenant.spec.keys;
        if keys.is_empty() {
            return Ok(());
        }
        let signature_file = signature_path(path);
        let signature = std::fs::read_to_string(&signature_file).map_err(|e| {
            format!(
                "missing: the tenant's components must be signed, and {} cannot be read ({e})",
                signature_file.display()
            )
        })?;
        let key =
            signature::verify(keys, bytes, &signature).map_err(|m| format!("{}: {m}", signature_file.display()))?;
        tracing::debug!(tenant = %self.tenant.spec.name, key = key.as_str(), "{} is signed", path.display());
        Ok(())
    }

    /// Compile `code` off the async thread.
    async fn compile(
        &self,
        code: &Code,
        digest: Digest,
        bytes: Option<Arc<Vec<u8>>>,
        precompiled: Option<&'static [u8]>,
    ) -> Result<LoadedComponent, String> {
        let sandbox = self.sandbox.clone();
        let builtin = match code {
            Code::Builtin(builtin) => Some(*builtin),
            Code::Component(_) => None,
        };
        let compiling = tokio::task::spawn_blocking(move || {
            let code = match (&builtin, &bytes) {
                (Some(builtin), _) => builtin.code(),
                (None, Some(bytes)) => ComponentCode { bytes, digest, precompiled },
                (None, None) => return Err("no bytes to compile (read again with SIGHUP)".to_owned()),
            };
            sandbox.load_code(code).map_err(|e| e.to_string())
        });
        let compiled = compiling.await.unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
        compiled.map_err(|e| match code {
            Code::Builtin(_) => e,
            Code::Component(path) => format!("{}: {e}", path.display()),
        })
    }
}

/// Granted files that are symlinks (or lie under one) must lead inside the ceiling too: the
/// sandbox copies what a path leads to. A ceiling's own directories are resolved the same way
/// (Kubernetes mounts a ConfigMap's files as links into a directory beside them).
fn files_resolve_within(ceiling: &Ceiling, files: &[PathBuf]) -> Result<(), String> {
    let real = |path: &Path| std::fs::canonicalize(path).ok();
    let mut rules = ceiling.grants.files.clone();
    for rule in &ceiling.grants.files {
        let is_directory = rule.as_os_str().as_encoded_bytes().ends_with(b"/");
        if let Some(resolved) = real(rule) {
            rules.push(if is_directory { resolved.join("") } else { resolved });
        }
    }
    let resolved = Ceiling { grants: Grants { files: rules, ..Grants::default() }, ..Ceiling::default() };
    for file in files {
        let Some(target) = real(file).filter(|target| target != file) else { continue };
        let leads_to = Grants { files: vec![target.clone()], ..Grants::default() };
        resolved
            .admit_grants(&leads_to)
            .map_err(|_| format!("'{}' leads to {}, beyond the tenant's ceiling", file.display(), target.display()))?;
    }
    Ok(())
}
