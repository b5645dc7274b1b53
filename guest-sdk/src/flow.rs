//! TrustGraph's flow service (flow-svc): blueprints and the flows started from them, each
//! call scoped to one workspace.

use crate::HostError;
use crate::bindings::trustgraph::bootstrap::flow as host;

/// A running flow, as [`get_flow`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowInfo {
    /// The flow's description, as given to [`start_flow`].
    pub description: String,
    /// The flow's parameters after defaults were applied, as `(name, value)` pairs.
    pub parameters: Vec<(String, String)>,
    /// The whole flow record as the service stores it (JSON text).
    pub definition: String,
}

/// The names of the blueprints in `workspace`.
pub fn list_blueprints(workspace: &str) -> Result<Vec<String>, HostError> {
    Ok(host::list_blueprints(workspace)?)
}

/// The definition (JSON text) of blueprint `name`; [`HostError::NotFound`] if there is none.
pub fn get_blueprint(workspace: &str, name: &str) -> Result<String, HostError> {
    Ok(host::get_blueprint(workspace, name)?)
}

/// Creates or replaces blueprint `name` with `definition` (JSON text).
pub fn put_blueprint(workspace: &str, name: &str, definition: &str) -> Result<(), HostError> {
    Ok(host::put_blueprint(workspace, name, definition)?)
}

/// Deletes blueprint `name`.
pub fn delete_blueprint(workspace: &str, name: &str) -> Result<(), HostError> {
    Ok(host::delete_blueprint(workspace, name)?)
}

/// The ids of the flows in `workspace`.
pub fn list_flows(workspace: &str) -> Result<Vec<String>, HostError> {
    Ok(host::list_flows(workspace)?)
}

/// Flow `flow_id`; [`HostError::NotFound`] if there is none.
pub fn get_flow(workspace: &str, flow_id: &str) -> Result<FlowInfo, HostError> {
    let info = host::get_flow(workspace, flow_id)?;
    Ok(FlowInfo { description: info.description, parameters: info.parameters, definition: info.definition })
}

/// Starts flow `flow_id` from `blueprint`, with `parameters` (`(name, value)` pairs)
/// overriding the blueprint's defaults. Fails with [`HostError::ServiceError`] if the flow
/// already exists or the blueprint does not.
pub fn start_flow(
    workspace: &str,
    flow_id: &str,
    blueprint: &str,
    description: &str,
    parameters: &[(String, String)],
) -> Result<(), HostError> {
    Ok(host::start_flow(workspace, flow_id, blueprint, description, parameters)?)
}

/// Stops flow `flow_id` and removes it.
pub fn stop_flow(workspace: &str, flow_id: &str) -> Result<(), HostError> {
    Ok(host::stop_flow(workspace, flow_id)?)
}
