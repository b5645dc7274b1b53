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
    let missing_blueprint =
        f.flows.handle(FlowRequest { blueprint_name: "nope".into(), flow_id: "f9".into(), ..request("start-flow") });
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
            [(BLUEPRINT_TYPE, "bp", r#"{"blueprint": {"ok:{id}": {"topics": {"t": "x"}}}, "flow": {"no-colon": {}}}"#)],
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
