//! The embedded backend: config-svc, flow-svc and IAM answered in-process from one durable
//! redb file, for running initialisers without a TrustGraph deployment.
//!
//! [`ConfigStore`] is the file; [`ConfigService`], [`FlowService`] and [`IamService`] are
//! upstream's services as plain request → response functions over it; [`EmbeddedServices`]
//! puts them behind the [`Services`] trait. Because the handlers are plain functions, a test
//! peer can serve the very same code over a broker (see [`EmbeddedServices::config_service`]).
//!
//! They speak either [`Protocol`], current TrustGraph's ([`Protocol::Workspaces`]) unless told
//! otherwise, so that the no-broker quick start teaches what a deployment does. In it, as in
//! TrustGraph 2.11.1: IAM's `create-workspace` registers a workspace in `__workspaces__`;
//! config-svc copies `__template__` into a workspace when it is first registered
//! (`registry.rs`); and a flow call for a workspace that is not registered fails at once with
//! `not-registered` ([`ServiceError::not_registered`]), where upstream's flow-svc would not
//! answer at all. In the legacy protocol (TrustGraph 2.4.4) there is no IAM, no registration and
//! no copy: flow-svc serves every workspace.

mod config_svc;
mod flow_svc;
mod group_commit;
mod iam_svc;
mod registry;
mod store;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

pub use config_svc::ConfigService;
pub use flow_svc::{BLUEPRINT_TYPE, FLOW_TYPE, FlowService, PARAMETER_TYPE};
pub use group_commit::DEFAULT_SYNC_WINDOW;
pub use iam_svc::IamService;
pub use store::{ConfigStore, Snapshot, StoreError, Tables, Update, WorkspaceConfig};

use crate::services::{
    ConfigRequest, ConfigResponse, FlowRequest, FlowResponse, IamRequest, IamResponse, Protocol, ServiceError,
    Services, WireError,
};

/// config-svc, flow-svc and IAM on one local store, speaking one protocol.
#[derive(Debug, Clone)]
pub struct EmbeddedServices {
    store: Arc<ConfigStore>,
    protocol: Protocol,
    config: ConfigService,
    flow: FlowService,
    iam: IamService,
}

impl EmbeddedServices {
    /// Opens (or creates) the store file at `path`; its directory must exist. The services
    /// speak the workspace protocol; [`speaking`](Self::speaking) chooses another.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self::from_store(Arc::new(ConfigStore::open(path)?)))
    }

    /// [`open`](Self::open), with writes durable within `sync_window` (zero: each before it
    /// returns) instead of the default 200 ms.
    pub fn open_with_sync_window(path: &Path, sync_window: std::time::Duration) -> Result<Self, StoreError> {
        Ok(Self::from_store(Arc::new(ConfigStore::open_with_sync_window(path, sync_window)?)))
    }

    /// The services over an already open store, speaking the workspace protocol.
    pub fn from_store(store: Arc<ConfigStore>) -> Self {
        Self::on(store, Protocol::Workspaces)
    }

    /// The same services, on the same store, speaking `protocol`.
    pub fn speaking(self, protocol: Protocol) -> Self {
        Self::on(self.store, protocol)
    }

    fn on(store: Arc<ConfigStore>, protocol: Protocol) -> Self {
        let config = ConfigService::new(store.clone(), protocol);
        Self { iam: IamService::new(config.clone()), flow: FlowService::new(store.clone()), config, store, protocol }
    }

    pub fn store(&self) -> &Arc<ConfigStore> {
        &self.store
    }

    /// The config-svc handler, to serve elsewhere (it is cheap to clone).
    pub fn config_service(&self) -> &ConfigService {
        &self.config
    }

    /// The flow-svc handler, to serve elsewhere (it is cheap to clone). It serves whatever
    /// workspace a request names: whoever serves it decides which workspaces it answers for.
    pub fn flow_service(&self) -> &FlowService {
        &self.flow
    }

    /// The IAM handler, to serve elsewhere in the workspace protocol (it is cheap to clone).
    pub fn iam_service(&self) -> &IamService {
        &self.iam
    }

    /// Whether `workspace` is registered (`__workspaces__`), as the workspace protocol's
    /// flow-svc requires before it serves a workspace.
    pub fn is_registered(&self, workspace: &str) -> Result<bool, StoreError> {
        registry::is_registered(&self.store, workspace)
    }

    /// The whole store as `{workspace: {type: {key: value}}}`, or with `workspace` that
    /// workspace's `{type: {key: value}}` (`{}` if it has nothing). Values are the stored
    /// strings, not parsed.
    pub fn dump(&self, workspace: Option<&str>) -> Result<serde_json::Value, StoreError> {
        let dumped = match workspace {
            Some(workspace) => serde_json::to_value(self.store.snapshot()?.workspace(workspace)?),
            None => serde_json::to_value(self.store.snapshot()?.all()?),
        };
        Ok(dumped.expect("maps of strings always serialise"))
    }
}

// The handlers block on redb: a commit waits for fsync, which is milliseconds, not
// microseconds. They run on the blocking pool so they never stall the async workers.
#[async_trait]
impl Services for EmbeddedServices {
    async fn config(&self, request: ConfigRequest) -> Result<ConfigResponse, ServiceError> {
        let config = self.config.clone();
        let mut response = blocking("config-svc", move || config.handle(request)).await?;
        into_result(response.error.take(), response)
    }

    async fn flow(&self, request: FlowRequest) -> Result<FlowResponse, ServiceError> {
        let services = self.clone();
        let mut response = blocking("flow-svc", move || {
            if services.protocol == Protocol::Workspaces {
                match services.is_registered(&request.workspace) {
                    Ok(true) => {}
                    Ok(false) => return Err(ServiceError::not_registered(&request.workspace)),
                    Err(err) => return Err(ServiceError::Unavailable(format!("embedded flow-svc: {err}"))),
                }
            }
            Ok(services.flow.handle(request))
        })
        .await??;
        into_result(response.error.take(), response)
    }

    /// An error answer is the caller's to read, as from a broker's IAM (`duplicate`, say).
    async fn iam(&self, request: IamRequest) -> Result<IamResponse, ServiceError> {
        if self.protocol == Protocol::Legacy {
            return Err(ServiceError::no_iam());
        }
        let iam = self.iam.clone();
        blocking("IAM", move || iam.handle(request)).await
    }

    fn protocol(&self) -> Option<Protocol> {
        Some(self.protocol)
    }
}

/// `handle` on the blocking pool; `service` names it if the pool cannot run it.
async fn blocking<T: Send + 'static>(
    service: &str,
    handle: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(handle)
        .await
        .map_err(|err| ServiceError::Unavailable(format!("embedded {service}: {err}")))
}

fn into_result<T>(error: Option<WireError>, response: T) -> Result<T, ServiceError> {
    match error {
        Some(error) => Err(ServiceError::Remote(error)),
        None => Ok(response),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::wire::{TEMPLATE_WORKSPACE, WORKSPACE_REGISTRY, WorkspaceInput};
    use crate::services::{ConfigKey, ConfigValue};

    /// Services speaking the legacy protocol, where flow-svc serves every workspace.
    fn open() -> (tempfile::TempDir, EmbeddedServices) {
        let dir = tempfile::tempdir().unwrap();
        let services = EmbeddedServices::open(&dir.path().join("config.redb")).unwrap().speaking(Protocol::Legacy);
        (dir, services)
    }

    fn list_flows(workspace: &str) -> FlowRequest {
        FlowRequest { operation: "list-flows".into(), workspace: workspace.into(), ..Default::default() }
    }

    fn create_workspace(id: &str) -> IamRequest {
        let record = WorkspaceInput { id: id.into(), name: "Acme".into(), enabled: true };
        IamRequest { operation: "create-workspace".into(), workspace_record: Some(record) }
    }

    #[tokio::test]
    async fn the_workspace_protocol_is_the_default_and_serves_registered_workspaces_only() {
        let dir = tempfile::tempdir().unwrap();
        let services = EmbeddedServices::open(&dir.path().join("config.redb")).unwrap();
        assert_eq!(services.protocol(), Some(Protocol::Workspaces));

        let refused = services.flow(list_flows("acme")).await.unwrap_err();
        assert_eq!(refused, ServiceError::not_registered("acme"));
        let ServiceError::Remote(error) = &refused else { unreachable!() };
        assert_eq!(error.kind, crate::services::NOT_REGISTERED);
        assert!(error.message.contains("'acme' is not registered"), "{refused}");

        let answer = services.iam(create_workspace("acme")).await.unwrap();
        assert_eq!(answer.error, None);
        assert_eq!(answer.workspace.unwrap().name, "Acme");
        assert!(services.is_registered("acme").unwrap());
        assert!(services.flow(list_flows("acme")).await.unwrap().flow_ids.is_empty());
        // Registration is per workspace.
        assert_eq!(services.flow(list_flows("other")).await.unwrap_err(), ServiceError::not_registered("other"));
    }

    #[tokio::test]
    async fn the_legacy_protocol_has_no_iam_and_serves_every_workspace() {
        let (_dir, services) = open();
        assert_eq!(services.protocol(), Some(Protocol::Legacy));
        assert_eq!(services.iam(create_workspace("acme")).await.unwrap_err(), ServiceError::no_iam());
        assert!(services.flow(list_flows("acme")).await.unwrap().flow_ids.is_empty());
        // A registration written by hand is only config: nothing is copied into the workspace.
        services.store().put_many(TEMPLATE_WORKSPACE, [("prompt", "p", "1")]).unwrap();
        let (registry, kind) = WORKSPACE_REGISTRY;
        services.config_service().handle(ConfigRequest {
            operation: "put".into(),
            workspace: registry.into(),
            values: vec![ConfigValue {
                kind: kind.into(),
                key: "acme".into(),
                value: Some("{}".into()),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert_eq!(services.dump(Some("acme")).unwrap(), serde_json::json!({}));
    }

    #[test]
    fn speaking_another_protocol_keeps_the_store() {
        let (_dir, legacy) = open();
        legacy.store().put_many("w", [("t", "k", "v")]).unwrap();
        let workspaces = legacy.clone().speaking(Protocol::Workspaces);
        assert_eq!(workspaces.protocol(), Some(Protocol::Workspaces));
        assert!(Arc::ptr_eq(legacy.store(), workspaces.store()));
        assert_eq!(workspaces.dump(Some("w")).unwrap(), serde_json::json!({"t": {"k": "v"}}));
    }

    #[tokio::test]
    async fn services_round_trip_through_the_trait() {
        let (_dir, embedded) = open();
        let services: &dyn Services = &embedded;
        services
            .config(ConfigRequest {
                operation: "put".into(),
                workspace: "w".into(),
                values: vec![ConfigValue {
                    kind: "t".into(),
                    key: "k".into(),
                    value: Some("v".into()),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .await
            .unwrap();
        let got = services
            .config(ConfigRequest {
                operation: "get".into(),
                workspace: "w".into(),
                keys: vec![ConfigKey { kind: "t".into(), key: "k".into() }],
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(got.values[0].value.as_deref(), Some("v"));
        assert_eq!(got.version, 1);

        let flows = services.flow(list_flows("w")).await.unwrap();
        assert!(flows.flow_ids.is_empty());
    }

    #[tokio::test]
    async fn error_answers_become_remote_errors() {
        let (_dir, embedded) = open();
        let err = embedded.config(ConfigRequest { operation: "list".into(), ..Default::default() }).await.unwrap_err();
        assert_eq!(err, ServiceError::Remote(WireError::new("bad-request", "Workspace is required")));

        let err = embedded
            .flow(FlowRequest {
                operation: "stop-flow".into(),
                workspace: "w".into(),
                flow_id: "nope".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err, ServiceError::Remote(WireError::new("flow-error", "Flow ID invalid")));
        assert_eq!(err.to_string(), "flow-error: Flow ID invalid");
    }

    #[test]
    fn dump_shapes() {
        let (_dir, embedded) = open();
        assert_eq!(embedded.dump(None).unwrap(), serde_json::json!({}));
        embedded.store().put_many("w1", [("t", "k", r#"{"a": 1}"#), ("u", "x", "plain")]).unwrap();
        embedded.store().put_many("w2", [("t", "k", "2")]).unwrap();

        assert_eq!(
            embedded.dump(None).unwrap(),
            serde_json::json!({
                "w1": {"t": {"k": "{\"a\": 1}"}, "u": {"x": "plain"}},
                "w2": {"t": {"k": "2"}},
            })
        );
        assert_eq!(embedded.dump(Some("w2")).unwrap(), serde_json::json!({"t": {"k": "2"}}));
        assert_eq!(embedded.dump(Some("nope")).unwrap(), serde_json::json!({}));
    }

    #[test]
    fn the_handlers_are_shared_with_the_backend() {
        let (_dir, embedded) = open();
        // A peer serving these handlers elsewhere sees and changes the same store.
        let peer = embedded.flow_service().clone();
        let answer = peer.handle(FlowRequest {
            operation: "put-blueprint".into(),
            workspace: "w".into(),
            blueprint_name: "bp".into(),
            blueprint_definition: "{}".into(),
            ..Default::default()
        });
        assert_eq!(answer.error, None);
        assert_eq!(embedded.store().snapshot().unwrap().keys("w", BLUEPRINT_TYPE).unwrap(), ["bp"]);
    }
}
