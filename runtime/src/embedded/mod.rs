//! The embedded backend: config-svc and flow-svc answered in-process from one durable redb
//! file, for running initialisers without a TrustGraph deployment.
//!
//! [`ConfigStore`] is the file; [`ConfigService`] and [`FlowService`] are upstream's two
//! services as plain request → response functions over it; [`EmbeddedServices`] puts them
//! behind the [`Services`] trait. Because the handlers are plain functions, a test peer can
//! serve the very same code over a broker (see [`EmbeddedServices::config_service`]).

mod config_svc;
mod flow_svc;
mod group_commit;
mod store;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

pub use config_svc::ConfigService;
pub use flow_svc::{BLUEPRINT_TYPE, FLOW_TYPE, FlowService, PARAMETER_TYPE};
pub use group_commit::DEFAULT_SYNC_WINDOW;
pub use store::{ConfigStore, Snapshot, StoreError, Tables, Update, WorkspaceConfig};

use crate::services::{ConfigRequest, ConfigResponse, FlowRequest, FlowResponse, ServiceError, Services, WireError};

/// config-svc and flow-svc on one local store.
#[derive(Debug, Clone)]
pub struct EmbeddedServices {
    store: Arc<ConfigStore>,
    config: ConfigService,
    flow: FlowService,
}

impl EmbeddedServices {
    /// Opens (or creates) the store file at `path`; its directory must exist.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self::from_store(Arc::new(ConfigStore::open(path)?)))
    }

    /// [`open`](Self::open), with writes durable within `sync_window` (zero: each before it
    /// returns) instead of the default 200 ms.
    pub fn open_with_sync_window(path: &Path, sync_window: std::time::Duration) -> Result<Self, StoreError> {
        Ok(Self::from_store(Arc::new(ConfigStore::open_with_sync_window(path, sync_window)?)))
    }

    /// Both services over an already open store.
    pub fn from_store(store: Arc<ConfigStore>) -> Self {
        Self { config: ConfigService::new(store.clone()), flow: FlowService::new(store.clone()), store }
    }

    pub fn store(&self) -> &Arc<ConfigStore> {
        &self.store
    }

    /// The config-svc handler, to serve elsewhere (it is cheap to clone).
    pub fn config_service(&self) -> &ConfigService {
        &self.config
    }

    /// The flow-svc handler, to serve elsewhere (it is cheap to clone).
    pub fn flow_service(&self) -> &FlowService {
        &self.flow
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
        let mut response = tokio::task::spawn_blocking(move || config.handle(request))
            .await
            .map_err(|err| ServiceError::Unavailable(format!("embedded config-svc: {err}")))?;
        into_result(response.error.take(), response)
    }

    async fn flow(&self, request: FlowRequest) -> Result<FlowResponse, ServiceError> {
        let flow = self.flow.clone();
        let mut response = tokio::task::spawn_blocking(move || flow.handle(request))
            .await
            .map_err(|err| ServiceError::Unavailable(format!("embedded flow-svc: {err}")))?;
        into_result(response.error.take(), response)
    }
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
    use crate::services::{ConfigKey, ConfigValue};

    fn open() -> (tempfile::TempDir, EmbeddedServices) {
        let dir = tempfile::tempdir().unwrap();
        let services = EmbeddedServices::open(&dir.path().join("config.redb")).unwrap();
        (dir, services)
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

        let flows = services
            .flow(FlowRequest { operation: "list-flows".into(), workspace: "w".into(), ..Default::default() })
            .await
            .unwrap();
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
