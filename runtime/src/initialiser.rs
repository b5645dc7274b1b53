//! Initialisers ready to run: each init-file entry's component loaded, described and validated.
//!
//! This is the start-up half of the runtime. For every entry it finds the code (a builtin or a
//! component file), compiles it once however many entries share it, asks it to `describe`
//! itself, and has it `validate` its params, so that every configuration problem is reported
//! (as a [`ConfigError`]) before the first wake and before anything is written.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::flag::Flag;
use crate::init_file::{Code, ConfigError, InitFile, InitialiserSpec};
use crate::policy::{Grants, Limits};
use crate::sandbox::{CallContext, LoadedComponent, RunFailure, Sandbox};
use crate::services::Services;

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
    /// The params as the guest receives them (JSON text).
    params: String,
    component: LoadedComponent,
}

impl Initialiser {
    /// Load every entry of `file` in `sandbox`. Stops at the first problem.
    pub async fn prepare_all(file: &InitFile, sandbox: &Sandbox) -> Result<Vec<Initialiser>, ConfigError> {
        let base_dir = file.path.parent().unwrap_or(Path::new("."));
        let mut compiled: HashMap<Code, LoadedComponent> = HashMap::new();
        let mut prepared = Vec::with_capacity(file.initialisers.len());
        for spec in &file.initialisers {
            let err = |field: &str| ConfigError::entry(&file.path, &spec.name, spec.position, field);
            let component = match compiled.get(&spec.code) {
                Some(component) => component.clone(),
                None => {
                    let component = load(sandbox, &spec.code).map_err(|m| err(spec.code_field).because(m))?;
                    compiled.insert(spec.code.clone(), component.clone());
                    component
                }
            };
            prepared.push(Self::prepare(spec, base_dir, component).await.map_err(|(field, m)| {
                err(if field.is_empty() { spec.code_field } else { field }).because(m)
            })?);
        }
        Ok(prepared)
    }

    /// Describe and validate one entry. On error: the field to blame (empty = the code) and why.
    async fn prepare(
        spec: &InitialiserSpec,
        base_dir: &Path,
        component: LoadedComponent,
    ) -> Result<Self, (&'static str, String)> {
        let (params, derived_grants) = match spec.code {
            Code::Builtin(builtin) => builtin.prepare(&spec.params, base_dir),
            Code::Component(_) => (spec.params.clone(), Grants::default()),
        };
        let grants = Arc::new(spec.grants.clone().unwrap_or(derived_grants));
        let name: Arc<str> = spec.name.as_str().into();
        // describe and validate get no services: they must not reach them.
        let context = CallContext { initialiser: name.clone(), limits: spec.limits, grants: grants.clone(), services: None };

        let description = component.describe(&context).await.map_err(|f| ("", format!("describe() {f}")))?;
        let params = params.to_string();
        match component.validate(&context, &params).await {
            Ok(Ok(warnings)) => {
                for warning in warnings {
                    tracing::warn!(initialiser = %name, "params: {warning}");
                }
            }
            Ok(Err(refusal)) => return Err(("params", refusal)),
            Err(failure) => return Err(("params", format!("validate() {failure}"))),
        }

        Ok(Self {
            name,
            flag: spec.flag.clone(),
            pre_gate: !description.wait_for_services,
            summary: description.summary,
            limits: spec.limits,
            grants,
            params,
            component,
        })
    }

    /// Run it once against `services`, moving it from `old_flag` to its configured flag.
    pub async fn run(&self, services: Arc<dyn Services>, old_flag: Option<&Flag>) -> Result<(), RunFailure> {
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

/// Compile the code an entry names.
fn load(sandbox: &Sandbox, code: &Code) -> Result<LoadedComponent, String> {
    match code {
        Code::Builtin(builtin) => sandbox.load(builtin.component()).map_err(|e| e.to_string()),
        Code::Component(path) => {
            let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            sandbox.load(&bytes).map_err(|e| format!("{}: {e}", path.display()))
        }
    }
}
