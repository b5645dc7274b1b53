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

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::{debug, warn};

use super::store::{ConfigStore, StoreError, Update};
use crate::services::wire::{FlowOperation, FlowRequest, FlowResponse, WireError};
use bootstrap_upstream::pyjson::{self, Mapping, Value};

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
        Ok(FlowResponse {
            blueprint_definition: self.store.snapshot()?.get(
                &request.workspace,
                BLUEPRINT_TYPE,
                &request.blueprint_name,
            )?,
            ..Default::default()
        })
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

    /// Starts a flow: resolves its parameters, then writes one `processor:<name>` entry per
    /// processor of the blueprint's `blueprint` and `flow` sections and the flow record, all in
    /// one transaction (see the module doc for why one, where upstream uses two).
    fn start_flow(&self, request: &FlowRequest) -> Result<FlowResponse, FlowError> {
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
            let templates = Templates {
                workspace,
                blueprint: &request.blueprint_name,
                flow_id: &request.flow_id,
                parameters: parameters.iter().map(|(name, value)| (format!("{{{name}}}"), value.py_str())).collect(),
            };

            // Shared (`blueprint`) processors first, then per-flow ones; a later entry with
            // the same key wins, as it does in upstream's sequential put.
            let mut entries = Vec::new();
            for section in ["blueprint", "flow"] {
                for processor in processors(&blueprint, section)? {
                    let mut entry = Mapping::new();
                    for field in ["topics", "parameters"] {
                        let templated = templated_strings(processor.spec, field, &templates).map_err(|problem| {
                            FlowError(format!("Blueprint entry '{}': {problem}", processor.entry))
                        })?;
                        entry.insert(field, Value::Mapping(templated));
                    }
                    entries.push((
                        format!("processor:{}", processor.name),
                        templates.apply(processor.variant),
                        Value::Mapping(entry).dumps(),
                    ));
                }
            }

            let mut interfaces = Mapping::new();
            match blueprint.get("interfaces") {
                None => {}
                Some(Value::Mapping(declared)) => {
                    for (name, interface) in declared.iter() {
                        let Some(interface) = interface.as_mapping() else {
                            return refuse(format!("Interface '{name}' is not an object"));
                        };
                        let mut templated = Mapping::new();
                        for (key, value) in interface.iter() {
                            let Some(value) = value.as_str() else {
                                return refuse(format!("Interface '{name}': '{key}' is not a string"));
                            };
                            templated.insert(key, Value::String(templates.apply(value)));
                        }
                        interfaces.insert(name, Value::Mapping(templated));
                    }
                }
                Some(_) => return refuse("Blueprint's 'interfaces' is not an object"),
            }

            let mut record = Mapping::new();
            record.insert("description", Value::String(request.description.clone()));
            record.insert("blueprint-name", Value::String(request.blueprint_name.clone()));
            record.insert("interfaces", Value::Mapping(interfaces));
            record.insert("parameters", Value::Mapping(parameters));

            for (kind, key, value) in &entries {
                update.put(workspace, kind, key, value)?;
            }
            update.put(workspace, FLOW_TYPE, &request.flow_id, &Value::Mapping(record).dumps())?;
            Ok(FlowResponse::default())
        })
    }

    /// Stops a flow: deletes the processor entries of its blueprint's `flow` section and its
    /// record in one transaction. The `blueprint` section's entries are shared by every flow of
    /// the blueprint and stay, as upstream leaves them.
    fn stop_flow(&self, request: &FlowRequest) -> Result<FlowResponse, FlowError> {
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
            let parameters = match record.get("parameters") {
                None => Vec::new(),
                Some(Value::Mapping(parameters)) => {
                    parameters.iter().map(|(name, value)| (format!("{{{name}}}"), value.py_str())).collect()
                }
                Some(_) => return refuse("Internal error: flow's parameters are not an object"),
            };
            // Upstream fails here too: a flow whose blueprint was deleted cannot be stopped.
            let Some(blueprint_text) = update.get(workspace, BLUEPRINT_TYPE, blueprint_name)? else {
                return refuse("Blueprint does not exist");
            };
            let blueprint = parse_object(&blueprint_text, "Blueprint")?;
            let templates = Templates { workspace, blueprint: blueprint_name, flow_id: &request.flow_id, parameters };

            for processor in processors(&blueprint, "flow")? {
                update.delete(
                    workspace,
                    &format!("processor:{}", processor.name),
                    &templates.apply(processor.variant),
                )?;
            }
            update.delete(workspace, FLOW_TYPE, &request.flow_id)?;
            Ok(FlowResponse::default())
        })
    }
}

fn error_response(kind: &str, message: impl Into<String>) -> FlowResponse {
    FlowResponse { error: Some(WireError::new(kind, message)), ..Default::default() }
}

fn parse_object(text: &str, what: &str) -> Result<Mapping, FlowError> {
    match pyjson::loads(text) {
        Ok(Value::Mapping(object)) => Ok(object),
        Ok(_) => refuse(format!("{what} is not a JSON object")),
        Err(err) => refuse(format!("{what} is not valid JSON: {err}")),
    }
}

/// Upstream's `resolve_parameters`: the flow's parameters as strings, in the order upstream
/// builds them. Declared parameters take the user's value, else their `parameter-type`'s
/// default (a missing required one is refused); then a still-unset parameter with
/// `controlled-by` copies its controller; then the user's undeclared parameters are kept.
fn resolve_parameters(
    update: &Update<'_>,
    workspace: &str,
    blueprint: &Mapping,
    user: &BTreeMap<String, String>,
) -> Result<Mapping, FlowError> {
    let mut resolved = Mapping::new();
    let Some(declared) = blueprint.get("parameters") else {
        for (name, value) in user {
            resolved.insert(name.clone(), Value::String(value.clone()));
        }
        return Ok(resolved);
    };
    let Some(declared) = declared.as_mapping() else {
        return refuse("Blueprint's 'parameters' is not an object");
    };

    let mut type_definitions = BTreeMap::<String, Mapping>::new();
    for (name, meta) in declared.iter() {
        if let Some(value) = user.get(name) {
            resolved.insert(name, Value::String(value.clone()));
            continue;
        }
        let Some(meta) = meta.as_mapping() else {
            return refuse(format!("Blueprint parameter '{name}' is not an object"));
        };
        let Some(type_name) = meta.get("type").and_then(Value::as_str).filter(|t| !t.is_empty()) else {
            continue;
        };
        let definition = type_definitions
            .entry(type_name.to_owned())
            .or_insert_with(|| parameter_type(update, workspace, type_name));
        if let Some(default) = definition.get("default") {
            resolved.insert(name, Value::String(default_string(default)));
        } else if definition.get("required").is_some_and(Value::is_truthy) {
            return refuse(format!("Required parameter '{name}' not provided and has no default"));
        }
    }

    for (name, meta) in declared.iter() {
        if resolved.contains_key(name) {
            continue;
        }
        // Every unset parameter's meta is an object: the first pass refused the others.
        let Some(controller) = meta.as_mapping().and_then(|meta| meta.get("controlled-by")) else {
            continue;
        };
        if let Some(value) = controller.as_str().and_then(|c| resolved.get(c)).cloned() {
            resolved.insert(name, value);
        } else if let Some(default) = meta
            .as_mapping()
            .and_then(|meta| meta.get("type"))
            .and_then(Value::as_str)
            .and_then(|type_name| type_definitions.get(type_name))
            .and_then(|definition| definition.get("default"))
        {
            // Upstream has this fallback too; the first pass has already used any default.
            resolved.insert(name, Value::String(default_string(default)));
        }
    }

    for (name, value) in user {
        if !resolved.contains_key(name) {
            resolved.insert(name.clone(), Value::String(value.clone()));
        }
    }
    Ok(resolved)
}

/// A `parameter-type` definition; an empty one if it is missing or unreadable, which upstream
/// logs and carries on with.
fn parameter_type(update: &Update<'_>, workspace: &str, type_name: &str) -> Mapping {
    match update.get(workspace, PARAMETER_TYPE, type_name) {
        Ok(Some(text)) if !text.is_empty() => match pyjson::loads(&text) {
            Ok(Value::Mapping(definition)) => definition,
            Ok(_) => {
                warn!(type_name, "parameter type definition is not a JSON object");
                Mapping::new()
            }
            Err(err) => {
                warn!(type_name, %err, "parameter type definition is not valid JSON");
                Mapping::new()
            }
        },
        Ok(_) => {
            warn!(type_name, "parameter type not found in config");
            Mapping::new()
        }
        Err(err) => {
            warn!(type_name, %err, "cannot read parameter type");
            Mapping::new()
        }
    }
}

/// A default as upstream stores it: booleans as JSON spells them, anything else as `str()`.
fn default_string(default: &Value) -> String {
    match default {
        Value::Bool(true) => "true".to_owned(),
        Value::Bool(false) => "false".to_owned(),
        other => other.py_str(),
    }
}

/// Upstream's template substitution: `{workspace}`, `{blueprint}`, `{id}`, then each parameter
/// in order, each a plain replace of the text so far.
struct Templates<'a> {
    workspace: &'a str,
    blueprint: &'a str,
    flow_id: &'a str,
    /// `("{name}", value)`.
    parameters: Vec<(String, String)>,
}

impl Templates<'_> {
    fn apply(&self, template: &str) -> String {
        let mut text = template
            .replace("{workspace}", self.workspace)
            .replace("{blueprint}", self.blueprint)
            .replace("{id}", self.flow_id);
        for (placeholder, value) in &self.parameters {
            text = text.replace(placeholder.as_str(), value);
        }
        text
    }
}

/// One entry of a blueprint section: `"<name>:<variant>": {topics, parameters}`.
struct Processor<'a> {
    entry: &'a str,
    name: &'a str,
    variant: &'a str,
    spec: &'a Mapping,
}

fn processors<'a>(blueprint: &'a Mapping, section: &str) -> Result<Vec<Processor<'a>>, FlowError> {
    let Some(entries) = blueprint.get(section) else {
        return refuse(format!("Blueprint has no '{section}' section"));
    };
    let Some(entries) = entries.as_mapping() else {
        return refuse(format!("Blueprint's '{section}' section is not an object"));
    };
    entries
        .iter()
        .map(|(entry, spec)| {
            let Some((name, variant)) = entry.split_once(':') else {
                return refuse(format!("Blueprint entry '{entry}' is not of the form processor:variant"));
            };
            let Some(spec) = spec.as_mapping() else {
                return refuse(format!("Blueprint entry '{entry}' is not an object"));
            };
            Ok(Processor { entry, name, variant, spec })
        })
        .collect()
}

/// `spec[field]` (absent: empty) with templates applied to its keys and values.
fn templated_strings(spec: &Mapping, field: &str, templates: &Templates<'_>) -> Result<Mapping, String> {
    let mut out = Mapping::new();
    match spec.get(field) {
        None => {}
        Some(Value::Mapping(items)) => {
            for (key, value) in items.iter() {
                let Some(value) = value.as_str() else {
                    return Err(format!("{field} '{key}' is not a string"));
                };
                out.insert(templates.apply(key), Value::String(templates.apply(value)));
            }
        }
        Some(_) => return Err(format!("'{field}' is not an object")),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::Snapshot;

    const BLUEPRINT: &str = r#"{
        "description": "Document RAG",
        "parameters": {
            "model": {"type": "llm-model", "order": 1},
            "rag-model": {"type": "rag-model", "controlled-by": "model"},
            "temperature": {"type": "temperature"},
            "chunk-size": {"type": "chunk-size"},
            "streaming": {"type": "flag"},
            "undefined-type": {"type": "no-such-type"}
        },
        "blueprint": {
            "text-completion:{blueprint}": {
                "topics": {
                    "request": "request:tg:text-completion:{workspace}:{blueprint}",
                    "response": "response:tg:text-completion:{workspace}:{blueprint}"
                },
                "parameters": {"model": "{model}", "temperature": "{temperature}"}
            }
        },
        "flow": {
            "chunker:{id}": {
                "topics": {"input": "flow:tg:document-load:{id}", "output": "flow:tg:chunk:{id}"},
                "parameters": {"chunk-size": "{chunk-size}"}
            },
            "graph-rag:{id}": {
                "topics": {"request": "request:tg:graph-rag:{id}", "response": "response:tg:graph-rag:{id}"},
                "parameters": {"model": "{rag-model}", "streaming": "{streaming}", "café": "ü"}
            }
        },
        "interfaces": {
            "graph-rag": {"request": "request:tg:graph-rag:{id}", "response": "response:tg:graph-rag:{id}"},
            "document-load": {"flow": "flow:tg:document-load:{id}"}
        }
    }"#;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<ConfigStore>,
        flows: FlowService,
    }

    impl Fixture {
        fn read(&self) -> Snapshot {
            self.store.snapshot().unwrap()
        }
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ConfigStore::open(&dir.path().join("config.redb")).unwrap());
        let flows = FlowService::new(store.clone());
        Fixture { _dir: dir, store, flows }
    }

    fn request(operation: &str) -> FlowRequest {
        FlowRequest { operation: operation.into(), workspace: "w".into(), ..Default::default() }
    }

    fn ok(answer: FlowResponse) -> FlowResponse {
        assert_eq!(answer.error, None);
        answer
    }

    fn flow_error(answer: FlowResponse) -> String {
        let error = answer.error.expect("an error answer");
        assert_eq!(error.kind, "flow-error");
        error.message
    }

    /// A workspace with the blueprint and its parameter types, as an initialiser would set up.
    fn with_blueprint() -> Fixture {
        let f = fixture();
        f.store
            .put_many(
                "w",
                [
                    (PARAMETER_TYPE, "llm-model", r#"{"type": "string", "default": "gemma3:12b"}"#),
                    (PARAMETER_TYPE, "rag-model", r#"{"type": "string"}"#),
                    (PARAMETER_TYPE, "temperature", r#"{"type": "number", "default": 0.3}"#),
                    (PARAMETER_TYPE, "chunk-size", r#"{"type": "integer", "default": 1000}"#),
                    (PARAMETER_TYPE, "flag", r#"{"type": "boolean", "default": false}"#),
                ],
            )
            .unwrap();
        ok(f.flows.handle(FlowRequest {
            blueprint_name: "doc-rag".into(),
            blueprint_definition: BLUEPRINT.into(),
            ..request("put-blueprint")
        }));
        f
    }

    fn start(f: &Fixture, id: &str, parameters: &[(&str, &str)]) -> FlowResponse {
        f.flows.handle(FlowRequest {
            blueprint_name: "doc-rag".into(),
            flow_id: id.into(),
            description: "My flow".into(),
            parameters: parameters.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..request("start-flow")
        })
    }

    #[test]
    fn blueprint_round_trip() {
        let f = fixture();
        assert!(ok(f.flows.handle(request("list-blueprints"))).blueprint_names.is_empty());
        let missing = ok(f.flows.handle(FlowRequest { blueprint_name: "nope".into(), ..request("get-blueprint") }));
        assert_eq!(missing.blueprint_definition, None);

        for name in ["b2", "b1"] {
            ok(f.flows.handle(FlowRequest {
                blueprint_name: name.into(),
                blueprint_definition: format!("{{\"name\": \"{name}\"}}"),
                ..request("put-blueprint")
            }));
        }
        assert_eq!(ok(f.flows.handle(request("list-blueprints"))).blueprint_names, ["b1", "b2"]);
        let got = ok(f.flows.handle(FlowRequest { blueprint_name: "b2".into(), ..request("get-blueprint") }));
        assert_eq!(got.blueprint_definition.as_deref(), Some(r#"{"name": "b2"}"#));
        // Blueprints are config items of type flow-blueprint.
        assert_eq!(f.read().get("w", BLUEPRINT_TYPE, "b1").unwrap().as_deref(), Some(r#"{"name": "b1"}"#));

        ok(f.flows.handle(FlowRequest { blueprint_name: "b2".into(), ..request("delete-blueprint") }));
        assert_eq!(ok(f.flows.handle(request("list-blueprints"))).blueprint_names, ["b1"]);
    }

    #[test]
    fn start_flow_writes_processor_entries_and_record() {
        let f = with_blueprint();
        let version_before = f.read().version().unwrap();
        assert_eq!(
            start(&f, "f1", &[("model", "gpt-x"), ("temperature", "0.7"), ("extra", "kept")]),
            FlowResponse::default()
        );
        // One transaction, one config change.
        assert_eq!(f.read().version().unwrap(), version_before + 1);

        // Exactly the text upstream 2.4.4's flow-svc writes for this request (checked by
        // running upstream's FlowConfig against an in-memory config client).
        let record = f.read().get("w", FLOW_TYPE, "f1").unwrap().unwrap();
        assert_eq!(
            record,
            r#"{"description": "My flow", "blueprint-name": "doc-rag", "interfaces": {"graph-rag": {"request": "request:tg:graph-rag:f1", "response": "response:tg:graph-rag:f1"}, "document-load": {"flow": "flow:tg:document-load:f1"}}, "parameters": {"model": "gpt-x", "temperature": "0.7", "chunk-size": "1000", "streaming": "false", "rag-model": "gpt-x", "extra": "kept"}}"#
        );
        assert_eq!(
            f.read().get("w", "processor:text-completion", "doc-rag").unwrap().unwrap(),
            r#"{"topics": {"request": "request:tg:text-completion:w:doc-rag", "response": "response:tg:text-completion:w:doc-rag"}, "parameters": {"model": "gpt-x", "temperature": "0.7"}}"#
        );
        assert_eq!(
            f.read().get("w", "processor:chunker", "f1").unwrap().unwrap(),
            r#"{"topics": {"input": "flow:tg:document-load:f1", "output": "flow:tg:chunk:f1"}, "parameters": {"chunk-size": "1000"}}"#
        );
        assert_eq!(
            f.read().get("w", "processor:graph-rag", "f1").unwrap().unwrap(),
            r#"{"topics": {"request": "request:tg:graph-rag:f1", "response": "response:tg:graph-rag:f1"}, "parameters": {"model": "gpt-x", "streaming": "false", "caf\u00e9": "\u00fc"}}"#
        );

        assert_eq!(ok(f.flows.handle(request("list-flows"))).flow_ids, ["f1"]);
        let got = ok(f.flows.handle(FlowRequest { flow_id: "f1".into(), ..request("get-flow") }));
        assert_eq!(got.flow.as_deref(), Some(record.as_str()));
        assert_eq!(got.description, "My flow");
        assert_eq!(got.parameters["chunk-size"], "1000");
        assert_eq!(got.parameters["rag-model"], "gpt-x");
        assert_eq!(got.parameters.len(), 6);
    }

    #[test]
    fn start_flow_defaults_only() {
        let f = with_blueprint();
        ok(start(&f, "f2", &[]));
        let got = ok(f.flows.handle(FlowRequest { flow_id: "f2".into(), ..request("get-flow") }));
        let expected: BTreeMap<String, String> = [
            ("model", "gemma3:12b"),
            ("rag-model", "gemma3:12b"),
            ("temperature", "0.3"),
            ("chunk-size", "1000"),
            ("streaming", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(got.parameters, expected);
    }

    #[test]
    fn start_flow_refusals() {
        let f = with_blueprint();
        ok(start(&f, "f1", &[]));
        let before = f.read().all().unwrap();
        let version = f.read().version().unwrap();

        assert_eq!(flow_error(start(&f, "f1", &[])), "Flow already exists");
        let missing_blueprint = f.flows.handle(FlowRequest {
            blueprint_name: "nope".into(),
            flow_id: "f9".into(),
            ..request("start-flow")
        });
        assert_eq!(flow_error(missing_blueprint), "Blueprint does not exist");
        let no_id = f.flows.handle(FlowRequest { blueprint_name: "doc-rag".into(), ..request("start-flow") });
        assert_eq!(flow_error(no_id), "No flow ID");
        let no_blueprint = f.flows.handle(FlowRequest { flow_id: "f9".into(), ..request("start-flow") });
        assert_eq!(flow_error(no_blueprint), "No blueprint name");

        // Refusals write nothing.
        assert_eq!(f.read().all().unwrap(), before);
        assert_eq!(f.read().version().unwrap(), version);
    }

    #[test]
    fn required_parameter_without_default_is_refused() {
        let f = fixture();
        f.store.put_many("w", [(PARAMETER_TYPE, "api-key", r#"{"type": "string", "required": true}"#)]).unwrap();
        f.store
            .put_many(
                "w",
                [(BLUEPRINT_TYPE, "bp", r#"{"parameters": {"key": {"type": "api-key"}}, "blueprint": {}, "flow": {"p:{id}": {"parameters": {"k": "{key}"}}}}"#)],
            )
            .unwrap();
        let start = |parameters: &[(&str, &str)]| {
            f.flows.handle(FlowRequest {
                blueprint_name: "bp".into(),
                flow_id: "f".into(),
                parameters: parameters.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                ..request("start-flow")
            })
        };
        assert_eq!(flow_error(start(&[])), "Required parameter 'key' not provided and has no default");
        assert!(f.read().keys("w", FLOW_TYPE).unwrap().is_empty());
        ok(start(&[("key", "s3cret")]));
        assert_eq!(
            f.read().get("w", "processor:p", "f").unwrap().unwrap(),
            r#"{"topics": {}, "parameters": {"k": "s3cret"}}"#
        );
    }

    #[test]
    fn blueprint_without_parameters_keeps_user_parameters() {
        let f = fixture();
        f.store.put_many("w", [(BLUEPRINT_TYPE, "bp", r#"{"blueprint": {}, "flow": {}}"#)]).unwrap();
        ok(f.flows.handle(FlowRequest {
            blueprint_name: "bp".into(),
            flow_id: "f".into(),
            parameters: [("b".to_owned(), "2".to_owned()), ("a".to_owned(), "1".to_owned())].into(),
            ..request("start-flow")
        }));
        assert_eq!(
            f.read().get("w", FLOW_TYPE, "f").unwrap().unwrap(),
            r#"{"description": "", "blueprint-name": "bp", "interfaces": {}, "parameters": {"a": "1", "b": "2"}}"#
        );
    }

    #[test]
    fn a_malformed_blueprint_writes_nothing() {
        let f = fixture();
        // The second processor entry is broken: the first must not be written either.
        f.store
            .put_many(
                "w",
                [(
                    BLUEPRINT_TYPE,
                    "bp",
                    r#"{"blueprint": {"ok:{id}": {"topics": {"t": "x"}}}, "flow": {"no-colon": {}}}"#,
                )],
            )
            .unwrap();
        let before = f.read().all().unwrap();
        let answer =
            f.flows.handle(FlowRequest { blueprint_name: "bp".into(), flow_id: "f".into(), ..request("start-flow") });
        assert_eq!(flow_error(answer), "Blueprint entry 'no-colon' is not of the form processor:variant");
        assert_eq!(f.read().all().unwrap(), before);

        f.store.put_many("w", [(BLUEPRINT_TYPE, "bad", "not json")]).unwrap();
        let answer =
            f.flows.handle(FlowRequest { blueprint_name: "bad".into(), flow_id: "f".into(), ..request("start-flow") });
        assert!(flow_error(answer).starts_with("Blueprint is not valid JSON"));
    }

    #[test]
    fn stop_flow_removes_per_flow_entries_and_record() {
        let f = with_blueprint();
        ok(start(&f, "f1", &[]));
        ok(start(&f, "f2", &[]));
        let version = f.read().version().unwrap();

        ok(f.flows.handle(FlowRequest { flow_id: "f1".into(), ..request("stop-flow") }));
        assert_eq!(f.read().version().unwrap(), version + 1);
        assert_eq!(ok(f.flows.handle(request("list-flows"))).flow_ids, ["f2"]);
        assert_eq!(f.read().keys("w", "processor:chunker").unwrap(), ["f2"]);
        assert_eq!(f.read().keys("w", "processor:graph-rag").unwrap(), ["f2"]);
        // The blueprint-wide processor is shared and stays, as upstream leaves it.
        assert_eq!(f.read().keys("w", "processor:text-completion").unwrap(), ["doc-rag"]);

        let again = f.flows.handle(FlowRequest { flow_id: "f1".into(), ..request("stop-flow") });
        assert_eq!(flow_error(again), "Flow ID invalid");
        let gone = f.flows.handle(FlowRequest { flow_id: "f1".into(), ..request("get-flow") });
        assert_eq!(flow_error(gone), "Flow ID invalid");

        // A stopped flow id can be started again.
        ok(start(&f, "f1", &[]));
    }

    #[test]
    fn stop_flow_uses_the_recorded_parameters() {
        let f = fixture();
        f.store
            .put_many(
                "w",
                [(BLUEPRINT_TYPE, "bp", r#"{"parameters": {"m": {}}, "blueprint": {}, "flow": {"llm:{id}-{m}": {}}}"#)],
            )
            .unwrap();
        ok(f.flows.handle(FlowRequest {
            blueprint_name: "bp".into(),
            flow_id: "f".into(),
            parameters: [("m".to_owned(), "big".to_owned())].into(),
            ..request("start-flow")
        }));
        assert_eq!(f.read().keys("w", "processor:llm").unwrap(), ["f-big"]);
        ok(f.flows.handle(FlowRequest { flow_id: "f".into(), ..request("stop-flow") }));
        assert!(f.read().keys("w", "processor:llm").unwrap().is_empty());
        assert!(!f.read().all().unwrap()["w"].contains_key(FLOW_TYPE));
    }

    #[test]
    fn workspaces_are_separate() {
        let f = with_blueprint();
        ok(start(&f, "f1", &[]));
        let other = FlowRequest { workspace: "other".into(), ..request("list-flows") };
        assert!(ok(f.flows.handle(other)).flow_ids.is_empty());
        let other = FlowRequest {
            workspace: "other".into(),
            blueprint_name: "doc-rag".into(),
            flow_id: "f1".into(),
            ..request("start-flow")
        };
        assert_eq!(flow_error(f.flows.handle(other)), "Blueprint does not exist");
    }

    #[test]
    fn error_records() {
        let f = fixture();
        let no_workspace = f.flows.handle(FlowRequest { workspace: String::new(), ..request("list-flows") });
        assert_eq!(no_workspace.error, Some(WireError::new("bad-request", "Workspace is required")));
        let bad = f.flows.handle(request("fly"));
        assert_eq!(bad.error, Some(WireError::new("bad-operation", "Bad operation")));
    }

    #[test]
    fn wire_json_matches_upstream_field_names() {
        let f = with_blueprint();
        let request: FlowRequest = serde_json::from_str(
            r#"{"operation": "start-flow", "workspace": "w", "blueprint_name": "doc-rag",
                "flow_id": "f1", "description": "d", "parameters": {"model": "m"}}"#,
        )
        .unwrap();
        ok(f.flows.handle(request));
        let got: FlowRequest =
            serde_json::from_str(r#"{"operation": "get-flow", "workspace": "w", "flow_id": "f1"}"#).unwrap();
        let answer = serde_json::to_value(f.flows.handle(got)).unwrap();
        assert_eq!(answer["description"], "d");
        assert_eq!(answer["parameters"]["model"], "m");
        assert_eq!(answer["error"], serde_json::Value::Null);
        assert!(answer["flow"].as_str().unwrap().starts_with(r#"{"description": "d", "blueprint-name": "doc-rag""#));
        for field in ["blueprint_names", "flow_ids", "blueprint_definition"] {
            assert!(answer.get(field).is_some(), "{field} missing from {answer}");
        }

        let refused =
            serde_json::to_value(f.flows.handle(FlowRequest { flow_id: "nope".into(), ..request_stop() })).unwrap();
        assert_eq!(refused["error"], serde_json::json!({"type": "flow-error", "message": "Flow ID invalid"}));
    }

    fn request_stop() -> FlowRequest {
        request("stop-flow")
    }

    #[test]
    fn flows_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.redb");
        {
            let flows = FlowService::new(Arc::new(ConfigStore::open(&path).unwrap()));
            ok(flows.handle(FlowRequest {
                blueprint_name: "bp".into(),
                blueprint_definition: r#"{"blueprint": {}, "flow": {"p:{id}": {}}}"#.into(),
                ..request("put-blueprint")
            }));
            ok(flows.handle(FlowRequest { blueprint_name: "bp".into(), flow_id: "f".into(), ..request("start-flow") }));
        }
        let flows = FlowService::new(Arc::new(ConfigStore::open(&path).unwrap()));
        assert_eq!(ok(flows.handle(request("list-flows"))).flow_ids, ["f"]);
        ok(flows.handle(FlowRequest { flow_id: "f".into(), ..request("stop-flow") }));
    }
}
