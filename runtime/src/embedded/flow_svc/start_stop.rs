//! start-flow and stop-flow: the two operations that change more than one config entry. Each
//! is one store transaction (see the module doc of [`flow_svc`](super) for why one, where
//! upstream uses several), with its checks made inside it, so a refusal writes nothing.

use bootstrap_upstream::pyjson::{Mapping, Value};

use super::blueprint::{Templates, parse_object, processors, templated_interfaces};
use super::parameters::resolve_parameters;
use super::{BLUEPRINT_TYPE, FLOW_TYPE, FlowError, FlowService, refuse};
use crate::services::wire::{FlowRequest, FlowResponse};

impl FlowService {
    /// Starts a flow: resolves its parameters, then writes one `processor:<name>` entry per
    /// processor of the blueprint's `blueprint` and `flow` sections and the flow record.
    pub(super) fn start_flow(&self, request: &FlowRequest) -> Result<FlowResponse, FlowError> {
        let workspace = request.workspace.as_str();
        if request.blueprint_name.is_empty() {
            return refuse("No blueprint name");
        }
        if request.flow_id.is_empty() {
            return refuse("No flow ID");
        }

        self.store.update(|update| {
            if update.get(workspace, FLOW_TYPE, &request.flow_id)?.is_some() {
                return refuse("Flow already exists");
            }
            let Some(blueprint_text) = update.get(workspace, BLUEPRINT_TYPE, &request.blueprint_name)? else {
                return refuse("Blueprint does not exist");
            };
            let blueprint = parse_object(&blueprint_text, "Blueprint")?;

            let parameters = resolve_parameters(update, workspace, &blueprint, &request.parameters)?;
            let templates = Templates::new(workspace, &request.blueprint_name, &request.flow_id, &parameters);

            // Shared (`blueprint`) processors first, then per-flow ones; a later entry with
            // the same key wins, as it does in upstream's sequential put.
            let mut entries = Vec::new();
            for section in ["blueprint", "flow"] {
                for processor in processors(&blueprint, section)? {
                    entries.push(processor.config_entry(&templates)?);
                }
            }
            let interfaces = templated_interfaces(&blueprint, &templates)?;
            let record = flow_record(request, interfaces, parameters);

            for (kind, key, value) in &entries {
                update.put(workspace, kind, key, value)?;
            }
            update.put(workspace, FLOW_TYPE, &request.flow_id, &record)?;
            Ok(FlowResponse::default())
        })
    }

    /// Stops a flow: deletes the processor entries of its blueprint's `flow` section and its
    /// record. The `blueprint` section's entries are shared by every flow of the blueprint and
    /// stay, as upstream leaves them.
    pub(super) fn stop_flow(&self, request: &FlowRequest) -> Result<FlowResponse, FlowError> {
        let workspace = request.workspace.as_str();
        self.store.update(|update| {
            let Some(record_text) = update.get(workspace, FLOW_TYPE, &request.flow_id)? else {
                return refuse("Flow ID invalid");
            };
            let record = parse_object(&record_text, "Flow record")?;
            let Some(blueprint_name) = record.get("blueprint-name") else {
                return refuse("Internal error: flow has no flow blueprint");
            };
            let Some(blueprint_name) = blueprint_name.as_str() else {
                return refuse("Internal error: flow's blueprint-name is not a string");
            };
            let none = Mapping::new();
            let parameters = match record.get("parameters") {
                None => &none,
                Some(Value::Mapping(parameters)) => parameters,
                Some(_) => return refuse("Internal error: flow's parameters are not an object"),
            };
            // Upstream fails here too: a flow whose blueprint was deleted cannot be stopped.
            let Some(blueprint_text) = update.get(workspace, BLUEPRINT_TYPE, blueprint_name)? else {
                return refuse("Blueprint does not exist");
            };
            let blueprint = parse_object(&blueprint_text, "Blueprint")?;
            let templates = Templates::new(workspace, blueprint_name, &request.flow_id, parameters);

            for processor in processors(&blueprint, "flow")? {
                update.delete(workspace, &processor.kind(), &processor.key(&templates))?;
            }
            update.delete(workspace, FLOW_TYPE, &request.flow_id)?;
            Ok(FlowResponse::default())
        })
    }
}

/// The flow record start-flow stores, as upstream's `json.dumps` writes it.
fn flow_record(request: &FlowRequest, interfaces: Mapping, parameters: Mapping) -> String {
    let mut record = Mapping::new();
    record.insert("description", Value::String(request.description.clone()));
    record.insert("blueprint-name", Value::String(request.blueprint_name.clone()));
    record.insert("interfaces", Value::Mapping(interfaces));
    record.insert("parameters", Value::Mapping(parameters));
    Value::Mapping(record).dumps()
}
