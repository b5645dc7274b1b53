//! Typed calls on top of the raw request/response records, one method per operation.
//!
//! The reconcile loop and the host interfaces both speak to the services through these, so
//! the shape of each request (which fields an operation uses) is written down once.

use std::collections::BTreeMap;

use super::{
    ConfigKey, ConfigOperation, ConfigRequest, ConfigValue, FlowOperation, FlowRequest, FlowResponse, ServiceError,
    Services,
};

/// config-svc operations.
#[derive(Clone, Copy)]
pub struct ConfigClient<'a>(pub &'a dyn Services);

impl ConfigClient<'_> {
    /// `get` of one key; `None` when it is not stored.
    pub async fn get(&self, workspace: &str, kind: &str, key: &str) -> Result<Option<String>, ServiceError> {
        let request = ConfigRequest {
            operation: ConfigOperation::Get.as_str().into(),
            workspace: workspace.into(),
            keys: vec![ConfigKey { kind: kind.into(), key: key.into() }],
            ..Default::default()
        };
        let response = self.0.config(request).await?;
        Ok(response.values.into_iter().next().and_then(|v| v.value))
    }

    /// `list`: the keys of one type.
    pub async fn keys(&self, workspace: &str, kind: &str) -> Result<Vec<String>, ServiceError> {
        let request = ConfigRequest {
            operation: ConfigOperation::List.as_str().into(),
            workspace: workspace.into(),
            kind: kind.into(),
            ..Default::default()
        };
        Ok(self.0.config(request).await?.directory)
    }

    /// `getvalues`: every key and value of one type.
    pub async fn values(&self, workspace: &str, kind: &str) -> Result<Vec<(String, String)>, ServiceError> {
        let request = ConfigRequest {
            operation: ConfigOperation::GetValues.as_str().into(),
            workspace: workspace.into(),
            kind: kind.into(),
            ..Default::default()
        };
        let response = self.0.config(request).await?;
        Ok(response.values.into_iter().filter_map(|v| Some((v.key, v.value?))).collect())
    }

    /// `config`: a whole workspace as `{type: {key: value}}`.
    pub async fn workspace(&self, workspace: &str) -> Result<BTreeMap<String, BTreeMap<String, String>>, ServiceError> {
        let request = ConfigRequest {
            operation: ConfigOperation::Config.as_str().into(),
            workspace: workspace.into(),
            ..Default::default()
        };
        Ok(self.0.config(request).await?.config)
    }

    /// `put` of `(type, key, value)` entries in one request.
    pub async fn put(&self, workspace: &str, entries: Vec<(String, String, String)>) -> Result<(), ServiceError> {
        let values = entries
            .into_iter()
            .map(|(kind, key, value)| ConfigValue { kind, key, value: Some(value), workspace: String::new() })
            .collect();
        let request = ConfigRequest {
            operation: ConfigOperation::Put.as_str().into(),
            workspace: workspace.into(),
            values,
            ..Default::default()
        };
        self.0.config(request).await.map(drop)
    }

    /// `delete` of `(type, key)` pairs in one request.
    pub async fn delete(&self, workspace: &str, keys: Vec<(String, String)>) -> Result<(), ServiceError> {
        let keys = keys.into_iter().map(|(kind, key)| ConfigKey { kind, key }).collect();
        let request = ConfigRequest {
            operation: ConfigOperation::Delete.as_str().into(),
            workspace: workspace.into(),
            keys,
            ..Default::default()
        };
        self.0.config(request).await.map(drop)
    }
}

/// flow-svc operations.
#[derive(Clone, Copy)]
pub struct FlowClient<'a>(pub &'a dyn Services);

impl FlowClient<'_> {
    async fn call(
        &self,
        operation: FlowOperation,
        workspace: &str,
        fill: impl FnOnce(&mut FlowRequest),
    ) -> Result<FlowResponse, ServiceError> {
        let mut request =
            FlowRequest { operation: operation.as_str().into(), workspace: workspace.into(), ..Default::default() };
        fill(&mut request);
        self.0.flow(request).await
    }

    pub async fn list_blueprints(&self, workspace: &str) -> Result<Vec<String>, ServiceError> {
        Ok(self.call(FlowOperation::ListBlueprints, workspace, |_| {}).await?.blueprint_names)
    }

    /// The blueprint's definition; `None` when there is no such blueprint.
    pub async fn get_blueprint(&self, workspace: &str, name: &str) -> Result<Option<String>, ServiceError> {
        let response = self.call(FlowOperation::GetBlueprint, workspace, |r| r.blueprint_name = name.into()).await?;
        Ok(response.blueprint_definition)
    }

    pub async fn put_blueprint(&self, workspace: &str, name: &str, definition: &str) -> Result<(), ServiceError> {
        self.call(FlowOperation::PutBlueprint, workspace, |r| {
            r.blueprint_name = name.into();
            r.blueprint_definition = definition.into();
        })
        .await
        .map(drop)
    }

    pub async fn delete_blueprint(&self, workspace: &str, name: &str) -> Result<(), ServiceError> {
        self.call(FlowOperation::DeleteBlueprint, workspace, |r| r.blueprint_name = name.into()).await.map(drop)
    }

    pub async fn list_flows(&self, workspace: &str) -> Result<Vec<String>, ServiceError> {
        Ok(self.call(FlowOperation::ListFlows, workspace, |_| {}).await?.flow_ids)
    }

    /// The `get-flow` answer: `flow` (the stored record), `description` and `parameters`.
    pub async fn get_flow(&self, workspace: &str, flow_id: &str) -> Result<FlowResponse, ServiceError> {
        self.call(FlowOperation::GetFlow, workspace, |r| r.flow_id = flow_id.into()).await
    }

    pub async fn start_flow(
        &self,
        workspace: &str,
        flow_id: &str,
        blueprint: &str,
        description: &str,
        parameters: BTreeMap<String, String>,
    ) -> Result<(), ServiceError> {
        self.call(FlowOperation::StartFlow, workspace, |r| {
            r.flow_id = flow_id.into();
            r.blueprint_name = blueprint.into();
            r.description = description.into();
            r.parameters = parameters;
        })
        .await
        .map(drop)
    }

    pub async fn stop_flow(&self, workspace: &str, flow_id: &str) -> Result<(), ServiceError> {
        self.call(FlowOperation::StopFlow, workspace, |r| r.flow_id = flow_id.into()).await.map(drop)
    }
}
