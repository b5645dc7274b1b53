//! `trustgraph:bootstrap/flow`: flow-svc, within the initialiser's flow grants.

use crate::sandbox::bindings::{HostError, flow};
use crate::services::FlowClient;

use super::HostState;

impl HostState {
    fn flow_client(&self, function: &str, workspace: &str) -> Result<FlowClient<'_>, HostError> {
        self.services_if(self.grants.may_use_flow(workspace), function, workspace).map(FlowClient)
    }
}

impl flow::Host for HostState {
    async fn list_blueprints(&mut self, workspace: String) -> Result<Vec<String>, HostError> {
        Ok(self.flow_client("flow.list-blueprints", &workspace)?.list_blueprints(&workspace).await?)
    }

    async fn get_blueprint(&mut self, workspace: String, name: String) -> Result<String, HostError> {
        let client = self.flow_client("flow.get-blueprint", &workspace)?;
        client
            .get_blueprint(&workspace, &name)
            .await?
            .ok_or_else(|| HostError::NotFound(format!("no blueprint '{name}' in workspace '{workspace}'")))
    }

    async fn put_blueprint(&mut self, workspace: String, name: String, definition: String) -> Result<(), HostError> {
        Ok(self.flow_client("flow.put-blueprint", &workspace)?.put_blueprint(&workspace, &name, &definition).await?)
    }

    async fn delete_blueprint(&mut self, workspace: String, name: String) -> Result<(), HostError> {
        Ok(self.flow_client("flow.delete-blueprint", &workspace)?.delete_blueprint(&workspace, &name).await?)
    }

    async fn list_flows(&mut self, workspace: String) -> Result<Vec<String>, HostError> {
        Ok(self.flow_client("flow.list-flows", &workspace)?.list_flows(&workspace).await?)
    }

    async fn get_flow(&mut self, workspace: String, flow_id: String) -> Result<flow::FlowInfo, HostError> {
        let client = self.flow_client("flow.get-flow", &workspace)?;
        let not_found = || HostError::NotFound(format!("no flow '{flow_id}' in workspace '{workspace}'"));
        match client.get_flow(&workspace, &flow_id).await {
            Ok(response) => Ok(flow::FlowInfo {
                definition: response.flow.ok_or_else(not_found)?,
                description: response.description,
                parameters: response.parameters.into_iter().collect(),
            }),
            // flow-svc answers a missing flow with a generic error; tell the guest which it was.
            Err(error) => match client.list_flows(&workspace).await {
                Ok(flows) if !flows.contains(&flow_id) => Err(not_found()),
                _ => Err(error.into()),
            },
        }
    }

    async fn start_flow(
        &mut self,
        workspace: String,
        flow_id: String,
        blueprint: String,
        description: String,
        parameters: Vec<(String, String)>,
    ) -> Result<(), HostError> {
        let client = self.flow_client("flow.start-flow", &workspace)?;
        let parameters = parameters.into_iter().collect();
        Ok(client.start_flow(&workspace, &flow_id, &blueprint, &description, parameters).await?)
    }

    async fn stop_flow(&mut self, workspace: String, flow_id: String) -> Result<(), HostError> {
        Ok(self.flow_client("flow.stop-flow", &workspace)?.stop_flow(&workspace, &flow_id).await?)
    }
}
