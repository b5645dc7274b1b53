//! `trustgraph:bootstrap/iam`: registering workspaces with TrustGraph's IAM (2.4.13 and later),
//! within the initialiser's `iam` grants.
//!
//! `create-workspace` sends IAM's own `create-workspace`; `is-registered` reads the workspace's
//! entry in the registry (`__workspaces__` / `workspace`), the one flow-svc goes by, which no
//! guest may read through `config`. Both go through the services the run was given, so the
//! wake's read cache sees them: it forgets the registry and the workspace before an IAM call.
//! On the legacy protocol (TrustGraph 2.4.4 to 2.4.10) nothing is sent: there is no IAM to ask,
//! and every workspace is served without registration.

use std::time::Duration;

use crate::services::wire::{IamOperation, IamRequest, IamResponse, WORKSPACE_REGISTRY, WorkspaceInput};
use crate::services::{ConfigClient, Protocol, ServiceError};
use crate::wit::{HostError, iam};

use super::HostState;

const CREATE: &str = "iam.create-workspace";
const IS_REGISTERED: &str = "iam.is-registered";

/// IAM's error type for a workspace it has registered already: success, for the caller.
const DUPLICATE: &str = "duplicate";
/// IAM's error type for a request it will refuse however often it is sent.
const INVALID_ARGUMENT: &str = "invalid-argument";

impl iam::Host for HostState {
    async fn registers_workspaces(&mut self) -> bool {
        self.services.as_ref().is_some_and(|services| services.protocol() == Some(Protocol::Workspaces))
    }

    async fn create_workspace(&mut self, id: String, name: String, timeout_ms: Option<u32>) -> Result<bool, HostError> {
        let services = self.services_if(self.grants.may_register(&id), CREATE, &id)?;
        if id.is_empty() || id.starts_with('_') {
            let why = "workspace ids that are empty or begin with '_' are reserved: IAM registers none";
            return Err(HostError::InvalidRequest(format!("{CREATE}: {why}")));
        }
        if timeout_ms == Some(0) {
            return Err(HostError::InvalidRequest(format!("{CREATE}: timeout-ms must be more than 0")));
        }
        self.usage.value(CREATE, &id, "name", name.len())?;
        self.usage.write(CREATE, &id, id.len().saturating_add(name.len()))?;
        match services.protocol() {
            None => return Err(ServiceError::protocol_unknown().into()),
            Some(Protocol::Legacy) => return Err(ServiceError::no_iam().into()),
            Some(Protocol::Workspaces) => {}
        }
        let record = WorkspaceInput { id, name, enabled: true };
        let request =
            IamRequest { operation: IamOperation::CreateWorkspace.as_str().into(), workspace_record: Some(record) };
        let answer = match timeout_ms.map(|ms| Duration::from_millis(ms.into())) {
            // Dropping the call on time-out forgets its waiter; a late answer is ignored.
            Some(within) => {
                tokio::time::timeout(within, services.iam(request)).await.unwrap_or(Err(ServiceError::Timeout(within)))
            }
            None => services.iam(request).await,
        };
        registered(answer)
    }

    async fn is_registered(&mut self, id: String) -> Result<bool, HostError> {
        let services = self.services_if(self.grants.may_ask_registration(&id), IS_REGISTERED, &id)?;
        match services.protocol() {
            None => return Err(ServiceError::protocol_unknown().into()),
            Some(Protocol::Legacy) => return Ok(true),
            Some(Protocol::Workspaces) => {}
        }
        let (registry, kind) = WORKSPACE_REGISTRY;
        Ok(ConfigClient(&*services).get(registry, kind, &id).await?.is_some())
    }
}

/// What IAM's answer to `create-workspace` tells the guest: `true` taken, `false` registered
/// already. An error answer may arrive as the answer's `error` or, from services that turn it
/// into one, as [`ServiceError::Remote`]: both read the same.
fn registered(answer: Result<IamResponse, ServiceError>) -> Result<bool, HostError> {
    let error = match answer {
        Ok(IamResponse { error: None, .. }) => return Ok(true),
        Ok(IamResponse { error: Some(error), .. }) | Err(ServiceError::Remote(error)) => error,
        Err(failure) => return Err(failure.into()),
    };
    let text = format!("{}: {}", error.kind, error.message);
    match error.kind.as_str() {
        DUPLICATE => Ok(false),
        INVALID_ARGUMENT => Err(HostError::InvalidRequest(text)),
        _ => Err(HostError::ServiceError(text)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::policy::{Grants, Limits, WorkspacePattern};
    use crate::sandbox::{GuestLog, RunMemory};
    use crate::services::WireError;
    use crate::wit::iam::Host as _;

    /// A run with `grants`, on an embedded store in `dir` speaking the legacy protocol.
    fn host_state(dir: &tempfile::TempDir, grants: Grants) -> HostState {
        let (name, limits): (Arc<str>, _) = ("t".into(), Limits::default());
        let store = crate::embedded::EmbeddedServices::open(&dir.path().join("state.redb"))
            .unwrap()
            .speaking(crate::services::Protocol::Legacy);
        let log = GuestLog::new(name.clone(), &limits);
        let memory = RunMemory::new(limits.memory, 0);
        HostState::new(name, Arc::new(grants), Some(Arc::new(store)), limits, log, memory)
    }

    fn answer(kind: &str) -> Result<IamResponse, ServiceError> {
        Ok(IamResponse { error: Some(WireError::new(kind, "told so")), ..Default::default() })
    }

    #[test]
    fn iams_answers_read_as_created_registered_already_or_refused() {
        assert!(matches!(registered(Ok(IamResponse::default())), Ok(true)));
        assert!(matches!(registered(answer(DUPLICATE)), Ok(false)));
        assert!(matches!(registered(Err(ServiceError::Remote(WireError::new(DUPLICATE, "")))), Ok(false)));
        let refused = registered(answer(INVALID_ARGUMENT));
        assert!(
            matches!(&refused, Err(HostError::InvalidRequest(m)) if m == "invalid-argument: told so"),
            "{refused:?}"
        );
        let failed = registered(answer("internal-error"));
        assert!(matches!(&failed, Err(HostError::ServiceError(m)) if m == "internal-error: told so"), "{failed:?}");
        let timed_out = registered(Err(ServiceError::Timeout(Duration::from_secs(1))));
        assert!(matches!(timed_out, Err(HostError::Timeout(_))), "{timed_out:?}");
    }

    #[tokio::test]
    async fn on_the_legacy_protocol_nothing_is_sent_and_every_workspace_counts_as_registered() {
        let dir = tempfile::tempdir().unwrap();
        let grants = Grants { iam: vec![WorkspacePattern::new("acme")], ..Grants::default() };
        let mut host = host_state(&dir, grants);
        assert!(!host.registers_workspaces().await);
        assert!(matches!(host.is_registered("acme".into()).await, Ok(true)));
        let Err(HostError::ServiceError(message)) = host.create_workspace("acme".into(), "Acme".into(), None).await
        else {
            panic!("expected a service error")
        };
        assert!(message.contains("no IAM"), "{message}");
    }

    #[tokio::test]
    async fn calls_are_checked_against_the_grants_before_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let grants = Grants {
            iam: vec![WorkspacePattern::new("*")],
            flow: vec![WorkspacePattern::new("flows")],
            ..Grants::default()
        };
        let mut host = host_state(&dir, grants);
        let denied = host.create_workspace("__workspaces__".into(), String::new(), Some(0)).await;
        assert!(
            matches!(&denied, Err(HostError::Denied(m)) if m.contains("reserved for IAM's registry")),
            "{denied:?}"
        );
        for id in ["", "_private", "__template__"] {
            let refused = host.create_workspace(id.into(), String::new(), None).await;
            assert!(matches!(refused, Err(HostError::InvalidRequest(_))), "{id}: {refused:?}");
        }
        let zero = host.create_workspace("acme".into(), String::new(), Some(0)).await;
        assert!(matches!(zero, Err(HostError::InvalidRequest(m)) if m.contains("timeout-ms")));

        let other_dir = tempfile::tempdir().unwrap();
        let mut flow_only =
            host_state(&other_dir, Grants { flow: vec![WorkspacePattern::new("flows")], ..Grants::default() });
        assert!(matches!(flow_only.is_registered("flows".into()).await, Ok(true)));
        assert!(matches!(flow_only.is_registered("other".into()).await, Err(HostError::Denied(_))));
        assert!(matches!(
            flow_only.create_workspace("flows".into(), String::new(), None).await,
            Err(HostError::Denied(_))
        ));
    }
}
