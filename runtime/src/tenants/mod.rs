//! Tenants' own initialisers: loaded from each tenant's file within the ceiling the operator
//! set, kept apart from one another, and reloaded when their files change.
//!
//! [`Tenants`] holds every tenant the operator's file declares. Before each wake the loop asks
//! it to [`Tenants::refresh`]: each tenant's files, components and signatures are stamped
//! (module `sources`), and only a tenant whose stamps changed is read again. Reading a tenant
//! checks every entry on its own (module `components`): its grants and limits against the
//! ceiling, its code against its pin and the tenant's keys, then describe and validate.
//! A refused entry is reported and does not run; if an earlier version of it was in service,
//! that one keeps running. A file that cannot be read or parsed leaves the tenant's last good
//! set in service. Nothing a tenant writes can stop the runtime or another tenant.
//!
//! A tenant's entry `seed` runs as `acme/seed`: that is its key in `__system__` / `init-state`,
//! so no tenant can touch another's flags or the operator's (whose names may not begin with a
//! tenant's `name/`).

mod components;
mod sources;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use crate::Sandbox;
use crate::init_file::{ConfigError, InitialiserSpec, TenantEntry, TenantFile, TenantSpec};
use crate::initialiser::Initialiser;
use crate::integrity::Digest;
use components::{Compiled, KnownComponent};
use sources::Sources;

/// Every tenant, and what each has in service.
pub struct Tenants {
    sandbox: Sandbox,
    tenants: Vec<Tenant>,
    compiled: Compiled,
    reload: ReloadHandle,
}

/// One tenant: its declaration, and what its last load found.
pub struct Tenant {
    spec: TenantSpec,
    /// What its last load read, stamped; `None` before the first.
    sources: Option<Sources>,
    running: Vec<Running>,
    refused: Vec<ConfigError>,
    file_error: Option<ConfigError>,
    /// Its component files as last read, by path.
    components: HashMap<PathBuf, KnownComponent>,
}

/// A tenant's entry in service.
pub struct Running {
    /// The entry as written (named as in the tenant's file).
    pub spec: InitialiserSpec,
    /// The file it is in.
    pub file: PathBuf,
    /// Ready to run, as `tenant/name`.
    pub initialiser: Arc<Initialiser>,
}

/// What a refresh found, for the loop's report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantsReport {
    /// Some tenant's set of initialisers changed.
    pub changed: bool,
    /// One per tenant, in the operator's order.
    pub tenants: Vec<TenantSummary>,
    /// Component files read and hashed by this refresh.
    pub components_read: u64,
}

/// One tenant after a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSummary {
    pub name: Arc<str>,
    /// Its files were read again (they changed, or a reload was asked for).
    pub reloaded: bool,
    /// Entries in service.
    pub entries: usize,
    /// Entries refused by its last load, or 1 for a file that could not be read.
    pub refused: usize,
}

/// Asks for every tenant to be read again, at once: what SIGHUP does.
#[derive(Clone, Default)]
pub struct ReloadHandle(Arc<ReloadState>);

#[derive(Default)]
struct ReloadState {
    forced: AtomicBool,
    wake: Notify,
}

impl ReloadHandle {
    /// Read every tenant's files and components again (even those whose stamps say they are
    /// unchanged: a copy that kept its times), and wake now.
    pub fn request(&self) {
        self.0.forced.store(true, Ordering::SeqCst);
        self.0.wake.notify_one();
    }

    /// Resolves when a reload is asked for.
    pub async fn requested(&self) {
        self.0.wake.notified().await;
    }

    fn take(&self) -> bool {
        self.0.forced.swap(false, Ordering::SeqCst)
    }
}

impl Tenants {
    /// The tenants `specs` declares, none loaded yet: the first [`Tenants::refresh`] loads
    /// them all, in `sandbox`.
    pub fn new(specs: Vec<TenantSpec>, sandbox: Sandbox) -> Self {
        let tenants = specs
            .into_iter()
            .map(|spec| Tenant {
                spec,
                sources: None,
                running: Vec::new(),
                refused: Vec::new(),
                file_error: None,
                components: HashMap::new(),
            })
            .collect();
        Self { sandbox, tenants, compiled: Compiled::default(), reload: ReloadHandle::default() }
    }

    /// Reload when `handle` asks (SIGHUP's handler holds it), rather than on a handle of
    /// their own.
    pub fn reloaded_by(mut self, handle: ReloadHandle) -> Self {
        self.reload = handle;
        self
    }

    /// What asks for a reload.
    pub fn reload_handle(&self) -> ReloadHandle {
        self.reload.clone()
    }

    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    pub fn tenants(&self) -> &[Tenant] {
        &self.tenants
    }

    /// Every tenant's initialisers in service, tenant by tenant, each in file order.
    pub fn running(&self) -> impl Iterator<Item = &Arc<Initialiser>> {
        self.tenants.iter().flat_map(|tenant| tenant.running.iter().map(|running| &running.initialiser))
    }

    /// Read again every tenant whose files changed since its last load (all of them on the
    /// first call, or after [`ReloadHandle::request`]).
    pub async fn refresh(&mut self) -> TenantsReport {
        let forced = self.reload.take();
        let mut report = TenantsReport::default();
        for index in 0..self.tenants.len() {
            let tenant = &mut self.tenants[index];
            if forced {
                tenant.components.clear();
            }
            let files = tenant.spec.files().unwrap_or_default();
            let current = Sources::stamp(&files, &tenant.component_paths());
            let reloaded = forced || tenant.sources.as_ref() != Some(&current);
            if reloaded {
                let stamped = Sources::stamp(&files, &[]);
                report.components_read += self.load(index, stamped).await;
                report.changed = true;
                // Reading and hashing do not yield: let the lease's heartbeats (on this same
                // thread) through between tenants, however many change at once.
                tokio::task::yield_now().await;
            }
            let tenant = &self.tenants[index];
            report.tenants.push(TenantSummary {
                name: tenant.spec.name.as_str().into(),
                reloaded,
                entries: tenant.running.len(),
                refused: tenant.refused.len() + usize::from(tenant.file_error.is_some()),
            });
        }
        if report.changed {
            let in_use: HashSet<Digest> = self.tenants.iter().flat_map(Tenant::digests).collect();
            self.compiled.keep_only(&in_use);
        }
        report
    }

    /// Read tenant `index`'s files, whose stamps before reading are `stamped`; the component
    /// files read, as a count.
    async fn load(&mut self, index: usize, stamped: Sources) -> u64 {
        let Self { sandbox, tenants, compiled, .. } = self;
        let tenant = &mut tenants[index];
        let name = tenant.spec.name.clone();
        let file = match TenantFile::load(&tenant.spec) {
            Ok(file) => file,
            Err(error) => {
                let kept = tenant.running.len();
                tracing::warn!(tenant = %name, "{error}; its last good set ({kept} initialisers) stays in service");
                tenant.file_error = Some(error);
                tenant.refused.clear();
                tenant.sources = Some(stamped.with_components(&tenant.components));
                return 0;
            }
        };
        let mut known = HashMap::new();
        let mut components_read = 0;
        let mut running = Vec::with_capacity(file.entries.len());
        let mut refused = Vec::new();
        for TenantEntry { file, checked } in file.entries {
            let admitted = match checked {
                Ok(spec) => {
                    let mut loader = components::Loader { tenant, sandbox, compiled, known: &mut known, read: 0 };
                    let admitted = loader.admit(&file, spec).await;
                    components_read += loader.read;
                    admitted
                }
                Err(error) => Err(error),
            };
            match admitted {
                Ok(entry) => running.push(entry),
                Err(error) => {
                    match tenant.take_last_good(&error, &running) {
                        Some(last_good) => {
                            tracing::warn!(tenant = %name, "{error}; its last good version stays in service");
                            running.push(last_good);
                        }
                        None => tracing::warn!(tenant = %name, "{error}"),
                    }
                    refused.push(error);
                }
            }
        }
        // The bytes were kept only until compiled.
        known.values_mut().for_each(KnownComponent::forget_bytes);
        tenant.settle(running, refused, known, stamped);
        components_read
    }
}

impl Tenant {
    pub fn spec(&self) -> &TenantSpec {
        &self.spec
    }

    /// Its entries in service, in file order.
    pub fn running(&self) -> &[Running] {
        &self.running
    }

    /// Its entries refused by the last load, each with why.
    pub fn refused(&self) -> &[ConfigError] {
        &self.refused
    }

    /// Why its file could not be read at the last load, if it could not.
    pub fn file_error(&self) -> Option<&ConfigError> {
        self.file_error.as_ref()
    }

    /// The last good version of the entry `refusal` is about, out of the tenant's set in
    /// service, unless the new set already has an entry of that name (`refusal` is of a
    /// duplicate).
    fn take_last_good(&mut self, refusal: &ConfigError, new_set: &[Running]) -> Option<Running> {
        let name = self.spec.scoped(&refusal.entry.as_ref()?.0);
        let named = |running: &Running| *running.initialiser.name == *name;
        if new_set.iter().any(named) {
            return None;
        }
        let at = self.running.iter().position(named)?;
        Some(self.running.swap_remove(at))
    }

    /// Put a load's outcome in service: `running`, `refused`, the components it read and
    /// the stamps its files had before they were read.
    fn settle(
        &mut self,
        running: Vec<Running>,
        refused: Vec<ConfigError>,
        components: HashMap<PathBuf, KnownComponent>,
        stamped: Sources,
    ) {
        let name = &self.spec.name;
        for gone in
            self.running.iter().filter(|old| !running.iter().any(|new| new.initialiser.name == old.initialiser.name))
        {
            let gone = &gone.initialiser.name;
            tracing::info!(tenant = %name, "{gone} is no longer in the tenant's file: it stops running (its stored flag stays)");
        }
        tracing::info!(tenant = %name, "loaded: {} in service, {} refused", running.len(), refused.len());
        self.running = running;
        self.refused = refused;
        self.file_error = None;
        self.sources = Some(stamped.with_components(&components));
        self.components = components;
    }

    /// The component files its last load named.
    fn component_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.components.keys().cloned().collect();
        paths.sort();
        paths
    }

    /// The digests of the code it uses.
    fn digests(&self) -> impl Iterator<Item = Digest> + '_ {
        let running = self.running.iter().map(|running| running.initialiser.sha256);
        running.chain(self.components.values().filter_map(KnownComponent::digest))
    }
}

#[cfg(test)]
mod tests;
