//! The host side of the WIT imports: `config`, `flow`, `iam` and `log`, as one guest sees them.
//!
//! Each run gets its own [`HostState`]: the initialiser's name, its grants, its limits and the
//! services. Every call is counted and checked against the grants before anything is sent; a
//! refusal returns `host-error::denied` to the guest and is logged with the initialiser, the
//! function and the target. What a call may carry is capped by the run's limits (`budget`):
//! over a cap, the guest gets `host-error::invalid-request` naming it. Service failures are
//! translated into the WIT's typed `host-error` so a guest can tell a refusal from an outage.

mod budget;
mod config;
mod flow;
mod iam;
mod log;

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use crate::guest_text::{LOGGED_DENIALS, QUOTED_CHARS, abbreviate};
use crate::policy::{Grants, Limits, reserved};
use crate::sandbox::{CallContext, GuestLog, Imports, RunMemory, RunState};
use crate::services::{ServiceError, Services};
use crate::wit::{HostError, InitialiserComponent};

/// What the host functions of one run can reach. The sandbox makes one for each call
/// ([`Imports::for_call`]); nothing outside this module looks inside.
pub struct HostState {
    initialiser: Arc<str>,
    grants: Arc<Grants>,
    /// `None` while the component is only being described or validated: then every call is
    /// refused, since those exports must not reach the services.
    services: Option<Arc<dyn Services>>,
    /// What this run has used of its limits.
    usage: budget::Usage,
    /// This run's log budget, shared with the guest's stdout and stderr.
    log: Arc<GuestLog>,
    /// The refusals logged so far in this run, as `(function, target)`.
    denials_logged: Vec<(String, String)>,
    /// The run's memory budget: its linear memories (the sandbox's limiter), and the answers
    /// host calls hand the guest, charged here ([`HostState::hand_over`]).
    memory: RunMemory,
}

/// `HasData` marker: the generated imports see the [`HostState`] inside each run's store.
struct HostImports;

impl HasData for HostImports {
    type Data<'a> = &'a mut HostState;
}

impl Imports for HostState {
    fn add_to_linker(linker: &mut Linker<RunState<Self>>) -> wasmtime::Result<()> {
        InitialiserComponent::add_to_linker::<RunState<Self>, HostImports>(linker, RunState::imports)?;
        config::add_list_checks(linker, RunState::imports)
    }

    fn for_call(context: &CallContext, log: Arc<GuestLog>, memory: RunMemory) -> Self {
        let CallContext { initialiser, limits, grants, services } = context;
        Self::new(initialiser.clone(), grants.clone(), services.clone(), *limits, log, memory)
    }

    fn memory(&mut self) -> &mut RunMemory {
        &mut self.memory
    }
}

impl HostState {
    fn new(
        initialiser: Arc<str>,
        grants: Arc<Grants>,
        services: Option<Arc<dyn Services>>,
        limits: Limits,
        log: Arc<GuestLog>,
        memory: RunMemory,
    ) -> Self {
        let usage = budget::Usage::new(initialiser.clone(), limits);
        Self { initialiser, grants, services, usage, log, denials_logged: Vec::new(), memory }
    }

    /// Charge `answer` (a read's result, `bytes` long) to the run's memory budget until it is in
    /// the guest's memory. Over the budget the guest gets nothing and the run ends as the call
    /// returns, with the memory limit as its reason; the refusal is logged once.
    fn hand_over<T>(&mut self, answer: T, bytes: usize, what: &'static str) -> Result<T, HostError> {
        match self.memory.hold(bytes, what) {
            Ok(()) => Ok(answer),
            Err(over) => {
                tracing::warn!(
                    initialiser = &*self.initialiser,
                    function = what,
                    "refused: {bytes} bytes would exceed limits.memory"
                );
                Err(HostError::InvalidRequest(over.to_string()))
            }
        }
    }

    /// Count the call, then hand out the services if `allowed`; otherwise the refusal, logged.
    fn services_if(&mut self, allowed: bool, function: &str, target: &str) -> Result<Arc<dyn Services>, HostError> {
        self.usage.call(function, target)?;
        self.granted(allowed, function, target)
    }

    /// The services if `allowed`, without counting a call.
    fn granted(&mut self, allowed: bool, function: &str, target: &str) -> Result<Arc<dyn Services>, HostError> {
        match &self.services {
            Some(services) if allowed => Ok(services.clone()),
            Some(_) => Err(self.deny(function, target, reserved(target).unwrap_or("not granted"))),
            None => Err(self.deny(function, target, "host calls are not allowed outside run")),
        }
    }

    fn deny(&mut self, function: &str, target: &str, reason: &str) -> HostError {
        let initialiser = &*self.initialiser;
        // The guest chose the target: quote no more of it than a person would read.
        let target = abbreviate(target, QUOTED_CHARS);
        let seen = self.denials_logged.iter().any(|(f, t)| f == function && *t == target);
        if seen || self.denials_logged.len() >= LOGGED_DENIALS {
            tracing::debug!(initialiser, function, target, "denied: {reason}");
        } else {
            tracing::warn!(initialiser, function, target, "denied: {reason}");
            self.denials_logged.push((function.to_owned(), target.clone()));
        }
        HostError::Denied(format!("{function} on '{target}': {reason}"))
    }
}

impl From<ServiceError> for HostError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Timeout(after) => HostError::Timeout(format!("no answer within {after:?}")),
            ServiceError::Unavailable(why) => HostError::ServiceError(format!("unavailable: {why}")),
            ServiceError::BadAnswer(why) => HostError::ServiceError(format!("malformed answer: {why}")),
            ServiceError::Remote(e) if matches!(e.kind.as_str(), "bad-request" | "bad-operation") => {
                HostError::InvalidRequest(format!("{}: {}", e.kind, e.message))
            }
            ServiceError::Remote(e) => HostError::ServiceError(format!("{}: {}", e.kind, e.message)),
        }
    }
}

impl crate::wit::types::Host for HostState {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run granted nothing, with services (an embedded store in `dir`).
    fn host_state(dir: &tempfile::TempDir) -> HostState {
        let (name, limits): (Arc<str>, _) = ("t".into(), Limits::default());
        let store = crate::embedded::EmbeddedServices::open(&dir.path().join("state.redb")).unwrap();
        let log = GuestLog::new(name.clone(), &limits);
        let memory = RunMemory::new(limits.memory, 0);
        HostState::new(name, Arc::new(Grants::default()), Some(Arc::new(store)), limits, log, memory)
    }

    #[test]
    fn refusals_are_logged_once_per_call_and_target_and_at_most_so_many_times() {
        let dir = tempfile::tempdir().unwrap();
        let mut host = host_state(&dir);
        for _ in 0..5 {
            assert!(matches!(host.granted(false, "config.get", "acme"), Err(HostError::Denied(_))));
        }
        assert_eq!(host.denials_logged.len(), 1);
        for i in 0..100 {
            let denied = host.granted(false, "config.put", &format!("w{i}"));
            assert!(matches!(denied, Err(HostError::Denied(m)) if m == format!("config.put on 'w{i}': not granted")));
        }
        assert_eq!(host.denials_logged.len(), LOGGED_DENIALS);
    }

    #[test]
    fn a_refusal_quotes_only_the_start_of_a_long_target() {
        let dir = tempfile::tempdir().unwrap();
        let mut host = host_state(&dir);
        let Err(HostError::Denied(message)) = host.granted(false, "config.get", &"w".repeat(1 << 20)) else {
            panic!("expected a refusal")
        };
        assert!(message.len() < QUOTED_CHARS + 100, "{}", message.len());
    }
}
