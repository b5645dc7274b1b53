//! IAM, in-process, for the workspace protocol: answers [`IamRequest`]s as TrustGraph 2.11.1's
//! no-auth-svc does (`trustgraph-flow/trustgraph/iam/noauth/`), which is the IAM a deployment
//! without users runs.
//!
//! `create-workspace` registers the workspace: a config-svc `put` of `{"enabled": true}` into
//! `__workspaces__` / `workspace` / `<id>`, made through [`ConfigService`] so that config-svc
//! copies `__template__` into a new workspace as it does upstream. Like both upstream IAMs it is
//! idempotent: creating a workspace that exists puts its registration again (the version rises)
//! and succeeds. Neither answers `duplicate` for a workspace (iam-svc answers it for a
//! username only); the bootstrapper's WorkspaceInit would take it as success if one did.
//!
//! Differences from no-auth-svc, deliberate:
//! - a `create-workspace` without an id, or with an id starting `_`, is refused with iam-svc's
//!   `invalid-argument` answers; no-auth-svc would register `""` or a reserved workspace
//!   (`__template__`, `__system__`) as a workspace.
//! - it answers the `workspace` record, as iam-svc does (`created` empty: nothing here keeps
//!   when); no-auth-svc answers an empty record.
//! - `bootstrap-status` answers as no-auth-svc does (nothing to bootstrap); every other
//!   operation is refused (`invalid-argument`): no-auth-svc answers them with stub
//!   users, keys and decisions, which the records here do not carry and no initialiser needs.

use tracing::debug;

use super::config_svc::ConfigService;
use crate::services::wire::{
    ConfigOperation, ConfigRequest, ConfigValue, IamOperation, IamRequest, IamResponse, REGISTERED_WORKSPACE,
    WORKSPACE_REGISTRY, WireError, WorkspaceInput, WorkspaceRecord,
};

/// The error type upstream's IAM refuses a malformed request with.
const INVALID_ARGUMENT: &str = "invalid-argument";

/// IAM over the embedded config-svc.
#[derive(Debug, Clone)]
pub struct IamService {
    config: ConfigService,
}

impl IamService {
    /// IAM registering workspaces through `config`.
    pub fn new(config: ConfigService) -> Self {
        Self { config }
    }

    /// Answers one request. Never fails: every failure is an answer with `error` set.
    pub fn handle(&self, request: IamRequest) -> IamResponse {
        debug!(operation = %request.operation, "iam request");
        match IamOperation::parse(&request.operation) {
            Some(IamOperation::CreateWorkspace) => self.create_workspace(request.workspace_record),
            // As no-auth-svc answers it: there is no first administrator to create.
            Some(IamOperation::BootstrapStatus) => IamResponse::default(),
            None => error_response(
                INVALID_ARGUMENT,
                format!(
                    "the embedded IAM serves create-workspace and bootstrap-status only, not {:?}",
                    request.operation
                ),
            ),
        }
    }

    fn create_workspace(&self, record: Option<WorkspaceInput>) -> IamResponse {
        let Some(record) = record.filter(|record| !record.id.is_empty()) else {
            return error_response(INVALID_ARGUMENT, "workspace_record.id required for create-workspace");
        };
        if record.id.starts_with('_') {
            return error_response(INVALID_ARGUMENT, "workspace ids beginning with '_' are reserved");
        }
        let (registry, kind) = WORKSPACE_REGISTRY;
        let registration = ConfigValue {
            kind: kind.into(),
            key: record.id.clone(),
            value: Some(REGISTERED_WORKSPACE.into()),
            ..Default::default()
        };
        let put = ConfigRequest {
            operation: ConfigOperation::Put.as_str().into(),
            workspace: registry.into(),
            values: vec![registration],
            ..Default::default()
        };
        if let Some(error) = self.config.handle(put).error {
            return error_response("internal-error", format!("registering the workspace: {}", error.message));
        }
        let name = if record.name.is_empty() { record.id.clone() } else { record.name };
        let workspace = WorkspaceRecord { id: record.id, name, enabled: record.enabled, created: String::new() };
        IamResponse { workspace: Some(workspace), error: None }
    }
}

fn error_response(kind: &str, message: impl Into<String>) -> IamResponse {
    IamResponse { error: Some(WireError::new(kind, message)), ..Default::default() }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::embedded::ConfigStore;
    use crate::services::Protocol;
    use crate::services::wire::TEMPLATE_WORKSPACE;

    fn service() -> (tempfile::TempDir, Arc<ConfigStore>, IamService) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ConfigStore::open(&dir.path().join("config.redb")).unwrap());
        (dir, store.clone(), IamService::new(ConfigService::new(store, Protocol::Workspaces)))
    }

    fn create(id: &str, name: &str) -> IamRequest {
        let record = WorkspaceInput { id: id.into(), name: name.into(), enabled: true };
        IamRequest { operation: "create-workspace".into(), workspace_record: Some(record) }
    }

    #[test]
    fn create_workspace_registers_as_upstream_and_config_svc_copies_the_template() {
        let (_dir, store, iam) = service();
        store.put_many(TEMPLATE_WORKSPACE, [("prompt", "p", "\"x\"")]).unwrap();

        let answer = iam.handle(create("acme", "Acme"));
        let expected =
            WorkspaceRecord { id: "acme".into(), name: "Acme".into(), enabled: true, created: String::new() };
        assert_eq!(answer, IamResponse { workspace: Some(expected), error: None });
        let (registry, kind) = WORKSPACE_REGISTRY;
        let snapshot = store.snapshot().unwrap();
        assert_eq!(snapshot.get(registry, kind, "acme").unwrap().as_deref(), Some(r#"{"enabled": true}"#));
        assert_eq!(snapshot.get("acme", "prompt", "p").unwrap().as_deref(), Some("\"x\""));
        // A record without a name is named by its id, as iam-svc names it.
        assert_eq!(iam.handle(create("beta", "")).workspace.unwrap().name, "beta");
    }

    #[test]
    fn creating_a_workspace_that_exists_succeeds_again_as_upstream() {
        let (_dir, store, iam) = service();
        assert_eq!(iam.handle(create("acme", "Acme")).error, None);
        let version = store.snapshot().unwrap().version().unwrap();
        let again = iam.handle(create("acme", "Acme"));
        assert_eq!(again.error, None, "no `duplicate`: neither upstream IAM answers it for a workspace");
        // Upstream puts the registration again; the config version says so.
        assert_eq!(store.snapshot().unwrap().version().unwrap(), version + 1);
    }

    #[test]
    fn refusals() {
        let (_dir, store, iam) = service();
        let refused = |request: IamRequest| iam.handle(request).error.unwrap();
        let no_record = IamRequest { operation: "create-workspace".into(), workspace_record: None };
        assert_eq!(
            refused(no_record),
            WireError::new(INVALID_ARGUMENT, "workspace_record.id required for create-workspace")
        );
        assert_eq!(refused(create("", "x")).message, "workspace_record.id required for create-workspace");
        assert_eq!(
            refused(create("__template__", "x")),
            WireError::new(INVALID_ARGUMENT, "workspace ids beginning with '_' are reserved")
        );
        let whoami = refused(IamRequest { operation: "whoami".into(), workspace_record: None });
        assert_eq!(whoami.kind, INVALID_ARGUMENT);
        assert_eq!(
            whoami.message,
            r#"the embedded IAM serves create-workspace and bootstrap-status only, not "whoami""#
        );
        let status = IamRequest { operation: "bootstrap-status".into(), workspace_record: None };
        assert_eq!(iam.handle(status), IamResponse::default(), "nothing to bootstrap, as no-auth-svc says");
        assert_eq!(store.snapshot().unwrap().version().unwrap(), 0, "a refusal writes nothing");
    }
}
