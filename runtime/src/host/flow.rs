//! `trustgraph:bootstrap/flow`: flow-svc, within the initialiser's flow grants and limits.
//!
//! What a call writes (names, definitions, descriptions, parameters) counts towards
//! `limits.written`; a blueprint definition is a config value, so `limits.value_size` caps it.

use std::sync::Arc;

use crate::services::{FlowClient, Services};
use crate::wit::{HostError, flow};

use super::HostState;
use crate::guest_text::{QUOTED_CHARS, abbreviate};

impl HostState {
    /// The services for a flow call in `workspace`, the call counted and `written` bytes charged.
    fn flow_services(
        &mut self,
        function: &str,
        workspace: &str,
        written: usize,
    ) -> Result<Arc<dyn Services>, HostError> {
        let services = self.services_if(self.grants.may_use_flow(workspace), function, workspace)?;
        if written > 0 {
            self.usage.write(function, workspace, written)?;
        }
        Ok(services)
    }
}

impl flow::Host for HostState {
    async fn list_blueprints(&mut self, workspace: String) -> Result<Vec<String>, HostError> {
        let services = self.flow_services("flow.list-blueprints", &workspace, 0)?;
        let names = FlowClient(&*services).list_blueprints(&workspace).await?;
        let bytes = names.iter().map(String::len).sum();
        self.hand_over(names, bytes, "flow.list-blueprints's answer")
    }

    async fn get_blueprint(&mut self, workspace: String, name: String) -> Result<String, HostError> {
        let services = self.flow_services("flow.get-blueprint", &workspace, 0)?;
        let definition = FlowClient(&*services).get_blueprint(&workspace, &name).await?.ok_or_else(|| {
            let (name, workspace) = (abbreviate(&name, QUOTED_CHARS), abbreviate(&workspace, QUOTED_CHARS));
            HostError::NotFound(format!("no blueprint '{name}' in workspace '{workspace}'"))
        })?;
        let bytes = definition.len();
        self.hand_over(definition, bytes, "flow.get-blueprint's answer")
    }

    async fn put_blueprint(&mut self, workspace: String, name: String, definition: String) -> Result<(), HostError> {
        const PUT: &str = "flow.put-blueprint";
        let services = self.flow_services(PUT, &workspace, 0)?;
        let what = format!("definition of '{}'", abbreviate(&name, QUOTED_CHARS));
        self.usage.value(PUT, &workspace, &what, definition.len())?;
        self.usage.write(PUT, &workspace, name.len().saturating_add(definition.len()))?;
        Ok(FlowClient(&*services).put_blueprint(&workspace, &name, &definition).await?)
    }

    async fn delete_blueprint(&mut self, workspace: String, name: String) -> Result<(), HostError> {
        let services = self.flow_services("flow.delete-blueprint", &workspace, name.len())?;
        Ok(FlowClient(&*services).delete_blueprint(&workspace, &name).await?)
    }

    async fn list_flows(&mut self, workspace: String) -> Result<Vec<String>, HostError> {
        let services = self.flow_services("flow.list-flows", &workspace, 0)?;
        let ids = FlowClient(&*services).list_flows(&workspace).await?;
        let bytes = ids.iter().map(String::len).sum();
        self.hand_over(ids, bytes, "flow.list-flows's answer")
    }

    async fn get_flow(&mut self, workspace: String, flow_id: String) -> Result<flow::FlowInfo, HostError> {
        let services = self.flow_services("flow.get-flow", &workspace, 0)?;
        let client = FlowClient(&*services);
        let not_found = || {
            let (flow_id, workspace) = (abbreviate(&flow_id, QUOTED_CHARS), abbreviate(&workspace, QUOTED_CHARS));
            HostError::NotFound(format!("no flow '{flow_id}' in workspace '{workspace}'"))
        };
        match client.get_flow(&workspace, &flow_id).await {
            Ok(response) => {
                let info = flow::FlowInfo {
                    definition: response.flow.ok_or_else(not_found)?,
                    description: response.description,
                    parameters: response.parameters.into_iter().collect(),
                };
                let parameters: usize = info.parameters.iter().map(|(name, value)| name.len() + value.len()).sum();
                let bytes = info.definition.len() + info.description.len() + parameters;
                self.hand_over(info, bytes, "flow.get-flow's answer")
            }
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
        let written = [&flow_id, &blueprint, &description]
            .into_iter()
            .map(String::len)
            .chain(parameters.iter().map(|(name, value)| name.len() + value.len()))
            .fold(0usize, usize::saturating_add);
        let services = self.flow_services("flow.start-flow", &workspace, written)?;
        let parameters = parameters.into_iter().collect();
        Ok(FlowClient(&*services).start_flow(&workspace, &flow_id, &blueprint, &description, parameters).await?)
    }

    async fn stop_flow(&mut self, workspace: String, flow_id: String) -> Result<(), HostError> {
        let services = self.flow_services("flow.stop-flow", &workspace, flow_id.len())?;
        Ok(FlowClient(&*services).stop_flow(&workspace, &flow_id).await?)
    }
}
