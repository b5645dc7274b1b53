//! config-svc, in-process: answers [`ConfigRequest`]s from the [`ConfigStore`] with TrustGraph
//! 2.4.4's semantics (`trustgraph-flow/trustgraph/config/service/config.py`), and in the
//! workspace protocol with 2.11.1's: the same, plus a put that registers a workspace copies
//! `__template__` into it ([`super::registry`]).
//!
//! The handler is a plain synchronous function from request to response, so the same code can
//! sit behind [`super::EmbeddedServices`] or be served over a broker by a test peer.
//!
//! Differences from upstream, all deliberate:
//! - no config push: upstream broadcasts `ConfigPush` after each put/delete so running
//!   processors reload; nothing runs beside the embedded backend to listen.
//! - a put or delete of many keys is one transaction, so it lands whole or not at all
//!   (upstream writes key by key). The version still rises by one per request, as upstream.
//! - a read answers data and version from one snapshot (upstream reads them separately).
//! - a `put` value of `null` is stored as `""`, the schema's default: the store holds strings.
//! - `getvalues-all-ws` lists workspaces in sorted order (Cassandra's is token order).

use std::sync::Arc;

use tracing::debug;

use super::registry;
use super::store::{ConfigStore, StoreError};
use crate::services::Protocol;
use crate::services::wire::{ConfigOperation, ConfigRequest, ConfigResponse, ConfigValue, WireError};

/// The error type upstream's config-svc reports any failure of an operation as.
const CONFIG_ERROR: &str = "config-error";

/// config-svc over a [`ConfigStore`], as the services of one protocol answer it.
#[derive(Debug, Clone)]
pub struct ConfigService {
    store: Arc<ConfigStore>,
    protocol: Protocol,
}

impl ConfigService {
    pub fn new(store: Arc<ConfigStore>, protocol: Protocol) -> Self {
        Self { store, protocol }
    }

    /// Answers one request. Never fails: every failure is an answer with `error` set.
    pub fn handle(&self, request: ConfigRequest) -> ConfigResponse {
        debug!(operation = %request.operation, workspace = %request.workspace, "config request");

        // getvalues-all-ws spans every workspace; everything else is scoped to one.
        let operation = ConfigOperation::parse(&request.operation);
        if operation != Some(ConfigOperation::GetValuesAllWorkspaces) && request.workspace.is_empty() {
            return error_response("bad-request", "Workspace is required");
        }

        let answer = match operation {
            Some(ConfigOperation::Get) => self.get(&request),
            Some(ConfigOperation::List) => self.list(&request),
            Some(ConfigOperation::GetValues) => self.getvalues(&request),
            Some(ConfigOperation::GetValuesAllWorkspaces) => self.getvalues_all_ws(&request),
            Some(ConfigOperation::Delete) => self.delete(&request),
            Some(ConfigOperation::Put) => self.put(&request),
            Some(ConfigOperation::Config) => self.config(&request),
            None => return error_response("bad-operation", "Bad operation"),
        };
        answer.unwrap_or_else(|err| error_response(CONFIG_ERROR, err.to_string()))
    }

    fn get(&self, request: &ConfigRequest) -> Result<ConfigResponse, StoreError> {
        let snapshot = self.store.snapshot()?;
        let values = request
            .keys
            .iter()
            .map(|key| {
                Ok(ConfigValue {
                    kind: key.kind.clone(),
                    key: key.key.clone(),
                    value: snapshot.get(&request.workspace, &key.kind, &key.key)?,
                    workspace: String::new(),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(ConfigResponse { version: snapshot.version()?, values, ..Default::default() })
    }

    fn list(&self, request: &ConfigRequest) -> Result<ConfigResponse, StoreError> {
        let snapshot = self.store.snapshot()?;
        Ok(ConfigResponse {
            version: snapshot.version()?,
            directory: snapshot.keys(&request.workspace, &request.kind)?,
            ..Default::default()
        })
    }

    fn getvalues(&self, request: &ConfigRequest) -> Result<ConfigResponse, StoreError> {
        let snapshot = self.store.snapshot()?;
        let values = snapshot
            .values(&request.workspace, &request.kind)?
            .into_iter()
            .map(|(key, value)| ConfigValue {
                kind: request.kind.clone(),
                key,
                value: Some(value),
                workspace: String::new(),
            })
            .collect();
        Ok(ConfigResponse { version: snapshot.version()?, values, ..Default::default() })
    }

    fn getvalues_all_ws(&self, request: &ConfigRequest) -> Result<ConfigResponse, StoreError> {
        let snapshot = self.store.snapshot()?;
        let values = snapshot
            .values_all_workspaces(&request.kind)?
            .into_iter()
            .map(|(workspace, key, value)| ConfigValue {
                kind: request.kind.clone(),
                key,
                value: Some(value),
                workspace,
            })
            .collect();
        Ok(ConfigResponse { version: snapshot.version()?, values, ..Default::default() })
    }

    // put and delete answer an empty response (version 0), as upstream does.
    fn put(&self, request: &ConfigRequest) -> Result<ConfigResponse, StoreError> {
        let entries: Vec<_> = request
            .values
            .iter()
            .map(|value| (value.kind.as_str(), value.key.as_str(), value.value.as_deref().unwrap_or_default()))
            .collect();
        if self.protocol == Protocol::Workspaces && registry::registers(&request.workspace, &entries) {
            registry::put_registering(&self.store, &entries)?;
        } else {
            self.store.put_many(&request.workspace, entries)?;
        }
        Ok(ConfigResponse::default())
    }

    fn delete(&self, request: &ConfigRequest) -> Result<ConfigResponse, StoreError> {
        let keys = request.keys.iter().map(|key| (key.kind.as_str(), key.key.as_str()));
        self.store.delete_many(&request.workspace, keys)?;
        Ok(ConfigResponse::default())
    }

    fn config(&self, request: &ConfigRequest) -> Result<ConfigResponse, StoreError> {
        let snapshot = self.store.snapshot()?;
        Ok(ConfigResponse {
            version: snapshot.version()?,
            config: snapshot.workspace(&request.workspace)?,
            ..Default::default()
        })
    }
}

fn error_response(kind: &str, message: impl Into<String>) -> ConfigResponse {
    ConfigResponse { error: Some(WireError::new(kind, message)), ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::wire::ConfigKey;

    fn service() -> (tempfile::TempDir, ConfigService) {
        let dir = tempfile::tempdir().unwrap();
        let store = ConfigStore::open(&dir.path().join("config.redb")).unwrap();
        (dir, ConfigService::new(Arc::new(store), Protocol::Legacy))
    }

    fn request(operation: &str, workspace: &str) -> ConfigRequest {
        ConfigRequest { operation: operation.into(), workspace: workspace.into(), ..Default::default() }
    }

    fn value(kind: &str, key: &str, value: &str) -> ConfigValue {
        ConfigValue { kind: kind.into(), key: key.into(), value: Some(value.into()), ..Default::default() }
    }

    fn key(kind: &str, key: &str) -> ConfigKey {
        ConfigKey { kind: kind.into(), key: key.into() }
    }

    fn put(service: &ConfigService, workspace: &str, values: Vec<ConfigValue>) {
        let answer = service.handle(ConfigRequest { values, ..request("put", workspace) });
        assert_eq!(answer, ConfigResponse::default());
    }

    #[test]
    fn put_then_every_read() {
        let (_dir, service) = service();
        put(&service, "w", vec![value("prompt", "b", "B"), value("prompt", "a", "A"), value("schema", "s", "S")]);
        put(&service, "other", vec![value("prompt", "x", "X")]);

        let got = service
            .handle(ConfigRequest { keys: vec![key("prompt", "a"), key("prompt", "missing")], ..request("get", "w") });
        assert_eq!(got.version, 2);
        assert_eq!(
            got.values,
            [value("prompt", "a", "A"), ConfigValue { value: None, ..value("prompt", "missing", "") },]
        );

        let listed = service.handle(ConfigRequest { kind: "prompt".into(), ..request("list", "w") });
        assert_eq!((listed.version, listed.directory), (2, vec!["a".to_owned(), "b".to_owned()]));

        let values = service.handle(ConfigRequest { kind: "prompt".into(), ..request("getvalues", "w") });
        assert_eq!(values.values, [value("prompt", "a", "A"), value("prompt", "b", "B")]);

        let all_ws = service.handle(ConfigRequest { kind: "prompt".into(), ..request("getvalues-all-ws", "") });
        assert_eq!(all_ws.error, None);
        assert_eq!(
            all_ws.values,
            [
                ConfigValue { workspace: "other".into(), ..value("prompt", "x", "X") },
                ConfigValue { workspace: "w".into(), ..value("prompt", "a", "A") },
                ConfigValue { workspace: "w".into(), ..value("prompt", "b", "B") },
            ]
        );

        let config = service.handle(request("config", "w"));
        assert_eq!(config.version, 2);
        assert_eq!(config.config.len(), 2);
        assert_eq!(config.config["prompt"]["b"], "B");
        assert_eq!(config.config["schema"]["s"], "S");
        assert!(service.handle(request("config", "unknown")).config.is_empty());
    }

    #[test]
    fn delete_removes_keys_and_bumps_version() {
        let (_dir, service) = service();
        put(&service, "w", vec![value("t", "a", "1"), value("t", "b", "2")]);
        let answer = service
            .handle(ConfigRequest { keys: vec![key("t", "a"), key("t", "never-there")], ..request("delete", "w") });
        assert_eq!(answer, ConfigResponse::default());
        let listed = service.handle(ConfigRequest { kind: "t".into(), ..request("list", "w") });
        assert_eq!((listed.version, listed.directory), (2, vec!["b".to_owned()]));
    }

    #[test]
    fn put_overwrites_and_null_value_is_empty_string() {
        let (_dir, service) = service();
        put(&service, "w", vec![value("t", "k", "old")]);
        put(&service, "w", vec![value("t", "k", "new"), ConfigValue { value: None, ..value("t", "n", "") }]);
        let got = service.handle(ConfigRequest { keys: vec![key("t", "k"), key("t", "n")], ..request("get", "w") });
        assert_eq!(got.values[0].value.as_deref(), Some("new"));
        assert_eq!(got.values[1].value.as_deref(), Some(""));
    }

    #[test]
    fn error_records() {
        let (_dir, service) = service();
        for operation in ["get", "list", "getvalues", "put", "delete", "config", "nonsense"] {
            let answer = service.handle(request(operation, ""));
            assert_eq!(answer.error, Some(WireError::new("bad-request", "Workspace is required")), "{operation}");
        }
        let answer = service.handle(request("nonsense", "w"));
        assert_eq!(answer.error, Some(WireError::new("bad-operation", "Bad operation")));
        assert_eq!(answer.version, 0);
    }

    #[test]
    fn wire_json_matches_upstream_field_names() {
        let (_dir, service) = service();
        put(&service, "w", vec![value("prompt", "a", "A")]);
        let request: ConfigRequest = serde_json::from_str(
            r#"{"operation": "get", "workspace": "w",
                "keys": [{"type": "prompt", "key": "a"}, {"type": "prompt", "key": "nope"}]}"#,
        )
        .unwrap();
        let answer = serde_json::to_value(service.handle(request)).unwrap();
        assert_eq!(
            answer,
            serde_json::json!({
                "version": 1,
                "values": [
                    {"type": "prompt", "key": "a", "value": "A"},
                    {"type": "prompt", "key": "nope", "value": null},
                ],
                "directory": [],
                "config": {},
                "error": null,
            })
        );

        let refused = serde_json::to_value(service.handle(request_from_json(r#"{"operation": "list"}"#))).unwrap();
        assert_eq!(refused["error"], serde_json::json!({"type": "bad-request", "message": "Workspace is required"}));
    }

    fn request_from_json(json: &str) -> ConfigRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.redb");
        {
            let service = ConfigService::new(Arc::new(ConfigStore::open(&path).unwrap()), Protocol::Legacy);
            put(&service, "w", vec![value("t", "k", "v")]);
        }
        let service = ConfigService::new(Arc::new(ConfigStore::open(&path).unwrap()), Protocol::Legacy);
        let got = service.handle(ConfigRequest { keys: vec![key("t", "k")], ..request("get", "w") });
        assert_eq!((got.version, got.values), (1, vec![value("t", "k", "v")]));
    }
}
