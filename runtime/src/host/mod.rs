//! The host side of the WIT imports: `config`, `flow` and `log`, as one guest sees them.
//!
//! Each run gets its own [`HostState`]: the initialiser's name, its grants and the services.
//! Every call is checked against the grants before anything is sent; a refusal returns
//! `host-error::denied` to the guest and is logged with the initialiser, the function and the
//! target. Service failures are translated into the WIT's typed `host-error` so a guest can
//! tell a refusal from an outage.

mod config;
mod flow;
mod log;

use std::sync::Arc;

use crate::policy::{Grants, SYSTEM_WORKSPACE};
use crate::sandbox::bindings::HostError;
use crate::services::{ServiceError, Services};

/// What the host functions of one run can reach.
pub(crate) struct HostState {
    initialiser: Arc<str>,
    grants: Arc<Grants>,
    /// `None` while the component is only being described or validated: then every call is
    /// refused, since those exports must not reach the services.
    services: Option<Arc<dyn Services>>,
}

impl HostState {
    pub fn new(initialiser: Arc<str>, grants: Arc<Grants>, services: Option<Arc<dyn Services>>) -> Self {
        Self { initialiser, grants, services }
    }

    /// The services, if `allowed`; otherwise the refusal, logged.
    fn services_if(&self, allowed: bool, function: &str, target: &str) -> Result<&dyn Services, HostError> {
        match &self.services {
            Some(services) if allowed => Ok(services.as_ref()),
            Some(_) if target == SYSTEM_WORKSPACE => Err(self.deny(function, target, "reserved for the runtime")),
            Some(_) => Err(self.deny(function, target, "not granted")),
            None => Err(self.deny(function, target, "host calls are not allowed outside run")),
        }
    }

    fn deny(&self, function: &str, target: &str, reason: &str) -> HostError {
        tracing::warn!(initialiser = %self.initialiser, function, target, "denied: {reason}");
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

impl crate::sandbox::bindings::types::Host for HostState {}
