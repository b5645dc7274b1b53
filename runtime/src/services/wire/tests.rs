//! Property tests: decoding whatever arrives from a broker never panics, and every record
//! survives an encode and decode unchanged. 256 cases each; `PROPTEST_CASES` raises it.

use proptest::prelude::*;
use serde::de::DeserializeOwned;

use super::*;

/// Decode `bytes` as each record; only that it returns matters.
fn decode_all(bytes: &[u8]) {
    fn decode<T: DeserializeOwned>(bytes: &[u8]) {
        let _ = serde_json::from_slice::<T>(bytes);
    }
    decode::<ConfigRequest>(bytes);
    decode::<ConfigResponse>(bytes);
    decode::<FlowRequest>(bytes);
    decode::<FlowResponse>(bytes);
    decode::<IamRequest>(bytes);
    decode::<IamResponse>(bytes);
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z-]{0,12}"]
}

fn map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(text(), text(), 0..3)
}

fn error() -> impl Strategy<Value = Option<WireError>> {
    prop::option::of((text(), text()).prop_map(|(kind, message)| WireError { kind, message }))
}

fn config_value() -> impl Strategy<Value = ConfigValue> {
    (text(), text(), prop::option::of(text()), text()).prop_map(|(kind, key, value, workspace)| ConfigValue {
        kind,
        key,
        value,
        workspace,
    })
}

fn config_request() -> impl Strategy<Value = ConfigRequest> {
    let key = (text(), text()).prop_map(|(kind, key)| ConfigKey { kind, key });
    (text(), text(), prop::collection::vec(key, 0..3), text(), prop::collection::vec(config_value(), 0..3)).prop_map(
        |(operation, workspace, keys, kind, values)| ConfigRequest { operation, workspace, keys, kind, values },
    )
}

fn config_response() -> impl Strategy<Value = ConfigResponse> {
    let config = prop::collection::btree_map(text(), map(), 0..3);
    (any::<u64>(), prop::collection::vec(config_value(), 0..3), prop::collection::vec(text(), 0..3), config, error())
        .prop_map(|(version, values, directory, config, error)| ConfigResponse {
            version,
            values,
            directory,
            config,
            error,
        })
}

fn flow_request() -> impl Strategy<Value = FlowRequest> {
    (text(), text(), text(), text(), text(), text(), map()).prop_map(
        |(operation, workspace, blueprint_name, blueprint_definition, description, flow_id, parameters)| FlowRequest {
            operation,
            workspace,
            blueprint_name,
            blueprint_definition,
            description,
            flow_id,
            parameters,
        },
    )
}

fn flow_response() -> impl Strategy<Value = FlowResponse> {
    let names = || prop::collection::vec(text(), 0..3);
    (names(), names(), prop::option::of(text()), prop::option::of(text()), text(), map(), error()).prop_map(
        |(blueprint_names, flow_ids, blueprint_definition, flow, description, parameters, error)| FlowResponse {
            blueprint_names,
            flow_ids,
            blueprint_definition,
            flow,
            description,
            parameters,
            error,
        },
    )
}

/// JSON text that looks like a record: its field names, with values of every type.
fn record_like() -> impl Strategy<Value = Vec<u8>> {
    let field = prop::sample::select(vec![
        "operation",
        "workspace",
        "keys",
        "type",
        "key",
        "value",
        "values",
        "version",
        "directory",
        "config",
        "error",
        "message",
        "blueprint_names",
        "flow_ids",
        "blueprint_name",
        "blueprint_definition",
        "flow",
        "description",
        "flow_id",
        "parameters",
    ]);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        text().prop_map(serde_json::Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(field.clone().prop_map(str::to_owned), inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    value.prop_map(|v| serde_json::to_vec(&v).unwrap())
}

/// Encode, decode, compare.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(record: T) -> Result<(), TestCaseError> {
    let bytes = serde_json::to_vec(&record).unwrap();
    prop_assert_eq!(serde_json::from_slice::<T>(&bytes).unwrap(), record);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn decoding_record_like_json_never_panics(bytes in record_like()) {
        decode_all(&bytes);
    }

    #[test]
    fn config_requests_round_trip(record in config_request()) {
        round_trip(record)?;
    }

    #[test]
    fn config_responses_round_trip(record in config_response()) {
        round_trip(record)?;
    }

    #[test]
    fn flow_requests_round_trip(record in flow_request()) {
        round_trip(record)?;
    }

    #[test]
    fn flow_responses_round_trip(record in flow_response()) {
        round_trip(record)?;
    }
}

#[test]
fn every_operation_is_parsed_from_its_wire_name_and_nothing_else() {
    for operation in ConfigOperation::ALL {
        assert_eq!(ConfigOperation::parse(operation.as_str()), Some(*operation));
    }
    for operation in FlowOperation::ALL {
        assert_eq!(FlowOperation::parse(operation.as_str()), Some(*operation));
    }
    assert_eq!(ConfigOperation::parse("Get"), None);
    assert_eq!(FlowOperation::parse("get"), None);
    let reads: Vec<&str> = FlowOperation::ALL.iter().filter(|op| op.only_reads()).map(|op| op.as_str()).collect();
    assert_eq!(reads, ["list-blueprints", "get-blueprint", "list-flows", "get-flow"]);
}

#[test]
fn a_create_workspace_request_is_upstreams_body() {
    let request = IamRequest {
        operation: IamOperation::CreateWorkspace.as_str().into(),
        workspace_record: Some(WorkspaceInput { id: "acme".into(), name: "Acme".into(), enabled: true }),
    };
    let body = serde_json::to_value(&request).unwrap();
    let expected = serde_json::json!({
        "operation": "create-workspace",
        "workspace_record": {"id": "acme", "name": "Acme", "enabled": true},
    });
    assert_eq!(body, expected);
    assert_eq!(IamOperation::parse("create-workspace"), Some(IamOperation::CreateWorkspace));
}

#[test]
fn an_iam_answer_is_read_with_the_fields_this_runtime_does_not_use() {
    // What upstream's `dataclass_to_dict` makes of an `IamResponse` refusing a duplicate: every
    // field, `None` as null.
    let body = r#"{"user": null, "users": [], "workspace": null, "workspaces": [], "jwt": "",
        "decision_allow": false, "decision_ttl_seconds": 0,
        "error": {"type": "duplicate", "message": "workspace acme exists"}}"#;
    let response: IamResponse = serde_json::from_str(body).unwrap();
    assert_eq!(response.error, Some(WireError::new("duplicate", "workspace acme exists")));
    assert_eq!(response.workspace, None);

    let created = r#"{"workspace": {"id": "acme", "name": "Acme", "enabled": true, "created": "2026-12-03"}}"#;
    let response: IamResponse = serde_json::from_str(created).unwrap();
    assert_eq!(response.workspace.map(|w| w.id), Some("acme".to_owned()));
    assert_eq!(response.error, None);
}
