//! Initialisers ready to run: each init-file entry's component loaded, described and validated.
//!
//! This is the start-up half of the runtime. For every entry it finds the code (a builtin or a
//! component file), checks the bytes against the entry's `sha256:` pin if it has one, compiles
//! them once however many entries share them, asks the component to `describe` itself, and has
//! it `validate` its params, so that every configuration problem is reported (as a
//! [`ConfigError`]) before the first wake and before anything is written.

mod builtin_params;

use std::borrow::Cow;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::flag::Flag;
use crate::init_file::{Code, ConfigError, InitFile, InitialiserSpec};
use crate::integrity::Digest;
use crate::policy::{Grants, Limits};
use crate::sandbox::{CallContext, ComponentCode, LoadError, Metered, RunFailure, SandboxError};
use crate::services::Services;
use crate::wit::Description;
use crate::{LoadedComponent, Sandbox};

/// One initialiser, ready to run.
pub struct Initialiser {
    pub name: Arc<str>,
    pub flag: Flag,
    /// Runs before the service gate (it said `wait-for-services: false`).
    pub pre_gate: bool,
    /// Its own one-line description.
    pub summary: String,
    pub limits: Limits,
    pub grants: Arc<Grants>,
    /// The SHA-256 of the code's bytes, as compiled.
    pub sha256: Digest,
    /// The params as the guest receives them (JSON text).
    params: String,
    /// What the component said of itself.
    description: Description,
    component: LoadedComponent,
}

/// Why an init file's initialisers could not be made ready to run.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The file, a pin, a component or its params: the operator's to fix.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The sandbox could not start.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

impl Initialiser {
    /// Everything start-up checks before it touches a service: the init file at `path`, pins,
    /// components, `describe` and `validate`, in a sandbox with room for `concurrency` calls at
    /// once, compiled components kept in `compile_cache`. `run` and `check` share it, so
    /// `check` passes exactly when a start-up would.
    /// The sandbox comes back too: a file's tenants load their initialisers in it.
    pub async fn load_file(
        path: &Path,
        compile_cache: Option<PathBuf>,
        concurrency: NonZeroUsize,
    ) -> Result<(InitFile, Vec<Initialiser>, Sandbox), PrepareError> {
        let init_file = InitFile::load(path)?;
        let mut sandbox = Sandbox::for_concurrency(concurrency)?;
        if let Some(dir) = compile_cache {
            sandbox = sandbox.with_compile_cache(dir);
        }
        let initialisers = Self::prepare_all(&init_file, &sandbox).await?;
        Ok((init_file, initialisers, sandbox))
    }

    /// Load every entry of `file` in `sandbox`, in file order. Stops at the first problem.
    ///
    /// Three passes: read and pin-check every entry's code (cheap, in file order); compile
    /// each distinct component once, several at a time (a first start with an empty compile
    /// cache is mostly Cranelift); then describe and validate each entry, in file order.
    pub async fn prepare_all(file: &InitFile, sandbox: &Sandbox) -> Result<Vec<Initialiser>, ConfigError> {
        let base_dir = file.path.parent().unwrap_or(Path::new("."));
        let err =
            |spec: &InitialiserSpec, field: &str| ConfigError::entry(&file.path, &spec.name, spec.position, field);

        let mut codes: HashMap<&Code, usize> = HashMap::new();
        let mut sources: Vec<ReadCode> = Vec::new();
        for spec in &file.initialisers {
            let index = match codes.get(&spec.code) {
                Some(&index) => index,
                None => {
                    sources.push(read(&spec.code).map_err(|m| err(spec, spec.code_field).because(m))?);
                    codes.insert(&spec.code, sources.len() - 1);
                    sources.len() - 1
                }
            };
            // Before compiling: bytes that are not the reviewed ones are not even parsed.
            check_pin(spec, sources[index].digest).map_err(|m| err(spec, "sha256").because(m))?;
        }

        // Off the async thread: start-up may be doing other things meanwhile (taking the lease).
        let compiling = sandbox.clone();
        let (sources, compiled) = tokio::task::spawn_blocking(move || {
            let compiled = compile_all(&compiling, &sources);
            (sources, compiled)
        })
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
        // A component describes itself, whatever its params: asked once, however many entries
        // share it (a thousand tenants' WorkspaceInits are one component).
        let mut descriptions: HashMap<usize, Description> = HashMap::new();
        let mut prepared = Vec::with_capacity(file.initialisers.len());
        for spec in &file.initialisers {
            let index = codes[&spec.code];
            let digest = sources[index].digest;
            let component = compiled[index].clone().map_err(|e| {
                let message = match &spec.code {
                    Code::Builtin(_) => e.to_string(),
                    Code::Component(path) => format!("{}: {e}", path.display()),
                };
                err(spec, spec.code_field).because(message)
            })?;
            tracing::info!(initialiser = %spec.name, sha256 = %digest, "loaded {}", spec.code);
            let described = descriptions.get(&index).cloned();
            let initialiser = Self::prepare(spec, &spec.name, base_dir, digest, component, described).await;
            let initialiser = initialiser.map_err(|e| err(spec, e.field(spec)).because(e.to_string()))?;
            descriptions.entry(index).or_insert_with(|| initialiser.description.clone());
            prepared.push(initialiser);
        }
        Ok(prepared)
    }

    /// One entry of `file` (in `base_dir`) made ready to run as `name`, from its compiled
    /// `component` whose bytes hash to `sha256`: described (unless `described` already, by
    /// another entry of the same code) and validated. For entries loaded one at a time: a
    /// tenant's ([`crate::tenants`]).
    pub(crate) async fn prepare_entry(
        file: &Path,
        spec: &InitialiserSpec,
        name: &str,
        sha256: Digest,
        component: LoadedComponent,
        described: Option<Description>,
    ) -> Result<Self, ConfigError> {
        let base_dir = file.parent().unwrap_or(Path::new("."));
        Self::prepare(spec, name, base_dir, sha256, component, described)
            .await
            .map_err(|e| ConfigError::entry(file, &spec.name, spec.position, e.field(spec)).because(e.to_string()))
    }

    /// The grants an entry of a file in `base_dir` runs with: its own `grants:`, or else
    /// (for a builtin) those its params imply.
    pub fn effective_grants(spec: &InitialiserSpec, base_dir: &Path) -> Grants {
        match (&spec.grants, &spec.code) {
            (Some(grants), _) => grants.clone(),
            (None, Code::Builtin(builtin)) => builtin_params::prepare(*builtin, &spec.params, base_dir).1,
            (None, Code::Component(_)) => Grants::default(),
        }
    }

    /// What the component said of itself.
    pub(crate) fn description(&self) -> &Description {
        &self.description
    }

    /// Describe (unless `described` already) and validate one entry, to run as `name`.
    async fn prepare(
        spec: &InitialiserSpec,
        name: &str,
        base_dir: &Path,
        sha256: Digest,
        component: LoadedComponent,
        described: Option<Description>,
    ) -> Result<Self, NotReady> {
        let (params, derived_grants) = match spec.code {
            Code::Builtin(builtin) => builtin_params::prepare(builtin, &spec.params, base_dir),
            Code::Component(_) => (spec.params.clone(), Grants::default()),
        };
        let grants = Arc::new(spec.grants.clone().unwrap_or(derived_grants));
        let name: Arc<str> = name.into();
        // describe and validate get no services: they must not reach them.
        let context =
            CallContext { initialiser: name.clone(), limits: spec.limits, grants: grants.clone(), services: None };

        let description = match described {
            Some(description) => description,
            None => component.describe(&context).await.map_err(NotReady::Describe)?,
        };
        let params = params.to_string();
        match component.validate(&context, &params).await {
            Ok(Ok(warnings)) => {
                for warning in warnings {
                    tracing::warn!(initialiser = %name, "params: {warning}");
                }
            }
            Ok(Err(refusal)) => return Err(NotReady::Refused(refusal)),
            Err(failure) => return Err(NotReady::Validate(failure)),
        }

        Ok(Self {
            name,
            flag: spec.flag.clone(),
            pre_gate: !description.wait_for_services,
            summary: description.summary.clone(),
            description,
            limits: spec.limits,
            grants,
            sha256,
            params,
            component,
        })
    }

    /// Run it once against `services`, moving it from `old_flag` to its configured flag; the
    /// result comes with the fuel the run used.
    pub async fn run(&self, services: Arc<dyn Services>, old_flag: Option<&Flag>) -> Metered<()> {
        let context = CallContext {
            initialiser: self.name.clone(),
            limits: self.limits,
            grants: self.grants.clone(),
            services: Some(services),
        };
        let old_flag = old_flag.map(Flag::to_string);
        self.component.run(&context, &self.params, old_flag.as_deref(), &self.flag.to_string()).await
    }
}

/// Why a loaded component is not ready to run an entry.
#[derive(Debug, thiserror::Error)]
enum NotReady {
    #[error("describe() {0}")]
    Describe(RunFailure),
    #[error("validate() {0}")]
    Validate(RunFailure),
    /// `validate` refused the params, for the reason given.
    #[error("{0}")]
    Refused(String),
}

impl NotReady {
    /// The entry's field to blame: its code for `describe`, its params otherwise.
    fn field(&self, spec: &InitialiserSpec) -> &'static str {
        match self {
            Self::Describe(_) => spec.code_field,
            Self::Validate(_) | Self::Refused(_) => "params",
        }
    }
}

/// The code an entry names, read once: the bytes hashed are the bytes compiled.
struct ReadCode {
    bytes: Cow<'static, [u8]>,
    digest: Digest,
    /// The build's artefact for a core initialiser.
    precompiled: Option<&'static [u8]>,
}

impl ReadCode {
    fn code(&self) -> ComponentCode<'_> {
        ComponentCode { bytes: &self.bytes, digest: self.digest, precompiled: self.precompiled }
    }
}

fn read(code: &Code) -> Result<ReadCode, String> {
    match code {
        Code::Builtin(builtin) => {
            let ComponentCode { bytes, digest, precompiled } = builtin.code();
            Ok(ReadCode { bytes: Cow::Borrowed(bytes), digest, precompiled })
        }
        Code::Component(path) => {
            let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Ok(ReadCode { digest: Digest::of(&bytes), bytes: Cow::Owned(bytes), precompiled: None })
        }
    }
}

/// Compile (or load from the compile cache) each component, on as many threads as there are
/// cores; the results are in the order given.
fn compile_all(sandbox: &Sandbox, components: &[ReadCode]) -> Vec<Result<LoadedComponent, LoadError>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(components.len());
    let next = AtomicUsize::new(0);
    let mut compiled: Vec<(usize, Result<LoadedComponent, LoadError>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(component) = components.get(index) else { return done };
                        done.push((index, sandbox.load_code(component.code())));
                    }
                })
            })
            .collect();
        let joined = workers.into_iter().map(|worker| worker.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        joined.flatten().collect()
    });
    compiled.sort_by_key(|(index, _)| *index);
    compiled.into_iter().map(|(_, result)| result).collect()
}

/// The entry's `sha256:` pin, if any, against the digest of its code's bytes.
pub(crate) fn check_pin(spec: &InitialiserSpec, actual: Digest) -> Result<(), String> {
    match spec.sha256 {
        Some(expected) if expected != actual => {
            Err(format!("{} does not match its pin: expected sha256 {expected}, actual {actual}", spec.code))
        }
        _ => Ok(()),
    }
}
