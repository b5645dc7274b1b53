//! flow-svc, in-process: answers [`FlowRequest`]s with TrustGraph 2.4.4's semantics
//! (`trustgraph-flow/trustgraph/flow/service/flow.py`), keeping blueprints and flows in the
//! same [`ConfigStore`] config-svc serves: blueprints as config type `flow-blueprint`, flows as
//! type `flow`, the processor entries a flow starts as types `processor:<name>`, all in the
//! request's workspace.
//!
//! Any failure of an operation answers `{type: "flow-error", message}`, as upstream's
//! `service.py` turns an exception into; the refusals use upstream's messages.
//!
//! Differences from upstream, all deliberate:
//! - start-flow writes the processor entries and the flow record in one transaction, with the
//!   checks ("Flow already exists", "Blueprint does not exist") made inside it. Upstream does
//!   two puts, so a crash between them leaves processors configured for a flow that has no
//!   record (and that start-flow cannot be retried over, nor stop-flow clean up).
//! - stop-flow deletes the flow's processor entries and its record in one transaction.
//!   Upstream first rewrites the record with `"status": "stopping"` so its topic sweep skips
//!   it, then deletes in two more steps; with no sweep here the interim state has no use.
//! - topics are not created on start nor deleted on stop: they are the broker's concern, and
//!   the embedded backend has no broker.
//! - `parameter-type` definitions are read afresh on every start-flow. Upstream caches them for
//!   the life of the process, including a definition it found missing.
//! - an empty `blueprint_name` or `flow_id` on start-flow is refused ("No blueprint name",
//!   "No flow ID"); upstream only refuses `None`, which its dataclass never holds.
//! - malformed blueprints and records are refused with a message saying what is wrong, where
//!   upstream fails with the Python exception's text (`'flow'`, `not enough values to
//!   unpack`); get-flow of a missing flow answers "Flow ID invalid" as stop-flow does.
//!
//! Stored text is byte-for-byte what upstream writes: blueprints are parsed keeping key order
//! and records written as Python's `json.dumps` does (see [`bootstrap_upstream::pyjson`]).
//!
//! The parts: this module is the service, its dispatch and the operations on one entry (the
//! blueprints, list-flows, get-flow); [`start_stop`] is start-flow and stop-flow; [`blueprint`]
//! is what a blueprint says and how its templates apply to a flow; [`parameters`] resolves a
//! flow's parameters as upstream does.

mod blueprint;
mod parameters;
mod start_stop;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use bootstrap_upstream::pyjson::Value;
use tracing::debug;

use super::store::{ConfigStore, StoreError};
use crate::services::wire::{FlowOperation, FlowRequest, FlowResponse, WireError};
use blueprint::parse_object;

/// Config type of flow blueprints.
pub const BLUEPRINT_TYPE: &str = "flow-blueprint";
/// Config type of flow records.
pub const FLOW_TYPE: &str = "flow";
/// Config type of parameter type definitions (defaults for blueprint parameters).
pub const PARAMETER_TYPE: &str = "parameter-type";

/// The error type every failed flow operation answers with.
const FLOW_ERROR: &str = "flow-error";

/// An operation's failure: the message of a `flow-error` answer.
#[derive(Debug)]
struct FlowError(String);

impl From<StoreError> for FlowError {
    fn from(err: StoreError) -> Self {
        FlowError(err.to_string())
    }
}

fn refuse<T>(message: impl Into<String>) -> Result<T, FlowError> {
    Err(FlowError(message.into()))
}

/// flow-svc over a [`ConfigStore`].
#[derive(Debug, Clone)]
pub struct FlowService {
    store: Arc<ConfigStore>,
}

impl FlowService {
    pub fn new(store: Arc<ConfigStore>) -> Self {
        Self { store }
    }

    /// Answers one request. Never fails: every failure is an answer with `error` set.
    pub fn handle(&self, request: FlowRequest) -> FlowResponse {
        debug!(operation = %request.operation, workspace = %request.workspace, "flow request");

        if request.workspace.is_empty() {
            return error_response("bad-request", "Workspace is required");
        }

        let answer = match FlowOperation::parse(&request.operation) {
            Some(FlowOperation::ListBlueprints) => self.list_blueprints(&request),
            Some(FlowOperation::GetBlueprint) => self.get_blueprint(&request),
            Some(FlowOperation::PutBlueprint) => self.put_blueprint(&request),
            Some(FlowOperation::DeleteBlueprint) => self.delete_blueprint(&request),
            Some(FlowOperation::ListFlows) => self.list_flows(&request),
            Some(FlowOperation::GetFlow) => self.get_flow(&request),
            Some(FlowOperation::StartFlow) => self.start_flow(&request),
            Some(FlowOperation::StopFlow) => self.stop_flow(&request),
            None => return error_response("bad-operation", "Bad operation"),
        };
        answer.unwrap_or_else(|FlowError(message)| error_response(FLOW_ERROR, message))
    }

    fn list_blueprints(&self, request: &FlowRequest) -> Result<FlowResponse, FlowError> {
        Ok(FlowResponse {
            blueprint_names: self.store.snapshot()?.keys(&request.workspace, BLUEPRINT_TYPE)?,
            ..Default::default()
        })
    }

    fn get_blueprint(&self, request: &FlowRequest) -> Result<FlowResponse, FlowError> {
        let definition = self.store.snapshot()?.get(&request.workspace, BLUEPRINT_TYPE, &request.blueprint_name)?;
        Ok(FlowResponse { blueprint_definition: definition, ..Default::default() })
    }

    // Stored as given, unchecked, as upstream does: a bad blueprint is refused at start-flow.
    fn put_blueprint(&self, request: &FlowRequest) -> Result<FlowResponse, FlowError> {
        self.store
            .put_many(&request.workspace, [(BLUEPRINT_TYPE, &request.blueprint_name, &request.blueprint_definition)])?;
        Ok(FlowResponse::default())
    }

    // Upstream does not check whether running flows use the blueprint; neither does this.
    fn delete_blueprint(&self, request: &FlowRequest) -> Result<FlowResponse, FlowError> {
        self.store.delete_many(&request.workspace, [(BLUEPRINT_TYPE, &request.blueprint_name)])?;
        Ok(FlowResponse::default())
    }

    fn list_flows(&self, request: &FlowRequest) -> Result<FlowResponse, FlowError> {
        Ok(FlowResponse { flow_ids: self.store.snapshot()?.keys(&request.workspace, FLOW_TYPE)?, ..Default::default() })
    }

    fn get_flow(&self, request: &FlowRequest) -> Result<FlowResponse, FlowError> {
        let Some(text) = self.store.snapshot()?.get(&request.workspace, FLOW_TYPE, &request.flow_id)? else {
            return refuse("Flow ID invalid");
        };
        let record = parse_object(&text, "Flow record")?;
        let description = record.get("description").map(Value::py_str).unwrap_or_default();
        let parameters = match record.get("parameters") {
            Some(Value::Mapping(parameters)) => {
                parameters.iter().map(|(name, value)| (name.to_owned(), value.py_str())).collect()
            }
            _ => BTreeMap::new(),
        };
        Ok(FlowResponse { flow: Some(text), description, parameters, ..Default::default() })
    }
}

fn error_response(kind: &str, message: impl Into<String>) -> FlowResponse {
    FlowResponse { error: Some(WireError::new(kind, message)), ..Default::default() }
}
