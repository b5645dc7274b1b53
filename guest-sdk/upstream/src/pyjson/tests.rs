use super::*;

// From the runtime's former copy (runtime/src/embedded/python_json.rs).

#[test]
fn loads_keeps_order_and_python_duplicate_rules() {
    let value = loads(r#"{"b": 1, "a": {"y": true, "x": null}, "b": 2}"#).unwrap();
    let mapping = value.as_mapping().unwrap();
    let keys: Vec<_> = mapping.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["b", "a"]);
    assert_eq!(mapping.get("b"), Some(&Value::Int(2)));
}

#[test]
fn dumps_matches_python_defaults() {
    let value = loads(r#"{"z": "caf\u00e9 \ud83d\ude00", "a": [1, 2.5, true, null], "q": "\"\\\n\u007f"}"#).unwrap();
    // json.dumps(json.loads(same text)) in CPython 3.11:
    assert_eq!(value.dumps(), r#"{"z": "caf\u00e9 \ud83d\ude00", "a": [1, 2.5, true, null], "q": "\"\\\n\u007f"}"#);
    assert_eq!(Value::Mapping(Mapping::new()).dumps(), "{}");
}

#[test]
fn str_matches_python() {
    let cases = [
        ("\"text\"", "text"),
        ("true", "True"),
        ("null", "None"),
        ("-17", "-17"),
        ("0.5", "0.5"),
        ("1.0", "1.0"),
        ("100", "100"),
        ("1e2", "100.0"),
        ("1e16", "1e+16"),
        ("1e15", "1000000000000000.0"),
        ("0.0001", "0.0001"),
        ("0.00001", "1e-05"),
        ("-1.5e-7", "-1.5e-07"),
        ("123456789.125", "123456789.125"),
        ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ("-0.0", "-0.0"),
        (r#"["a", "it's", 1]"#, r#"['a', "it's", 1]"#),
        (r#"{"k": {"n": [false]}}"#, r#"{'k': {'n': [False]}}"#),
    ];
    for (json, expected) in cases {
        assert_eq!(loads(json).unwrap().py_str(), expected, "str(json.loads({json:?}))");
    }
}

#[test]
fn truthiness() {
    for (json, truthy) in [
        ("true", true),
        ("false", false),
        ("0", false),
        ("2", true),
        ("\"\"", false),
        ("\"x\"", true),
        ("null", false),
        ("[]", false),
        ("{}", false),
        ("0.0", false),
    ] {
        assert_eq!(loads(json).unwrap().is_truthy(), truthy, "{json}");
    }
}

// From the guest SDK's former copy (guest-sdk/src/pyjson.rs).

#[test]
fn dumps_matches_python_separators_and_keeps_order() {
    let value = loads(r#"{"b":1,"a":[true,null,"x"],"c":{}}"#).unwrap();
    assert_eq!(value.dumps(), r#"{"b": 1, "a": [true, null, "x"], "c": {}}"#);
    assert_eq!(loads("[]").unwrap().dumps(), "[]");
}

#[test]
fn repeated_keys_keep_first_place_and_last_value() {
    assert_eq!(loads(r#"{"a":1,"b":2,"a":3}"#).unwrap().dumps(), r#"{"a": 3, "b": 2}"#);
}

#[test]
fn strings_are_escaped_like_ensure_ascii() {
    let value = Value::String("é \"q\" \\ \n\t\u{7f}\u{1}/😀".into());
    assert_eq!(value.dumps(), r#""\u00e9 \"q\" \\ \n\t\u007f\u0001/\ud83d\ude00""#);
}

#[test]
fn floats_are_written_like_python_repr() {
    let cases = [
        (1.0, "1.0"),
        (100.0, "100.0"),
        (1.5, "1.5"),
        (-0.0, "-0.0"),
        (0.1, "0.1"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (123456.789, "123456.789"),
        (1e15, "1000000000000000.0"),
        (1e16, "1e+16"),
        (1.2345e100, "1.2345e+100"),
        (-2.5e-300, "-2.5e-300"),
    ];
    for (number, python) in cases {
        assert_eq!(Value::Float(number).dumps(), python, "{number}");
    }
    assert_eq!(loads("1e2").unwrap().dumps(), "100.0");
    assert_eq!(loads("-7").unwrap().dumps(), "-7");
    assert_eq!(loads("18446744073709551615").unwrap().dumps(), "18446744073709551615");
}

#[test]
fn serde_json_values_convert() {
    let value = Value::from(serde_json::json!({"n": 2, "f": 0.5, "s": "t", "l": [null]}));
    // serde_json's own map is sorted, so the converted order is too.
    assert_eq!(value.dumps(), r#"{"f": 0.5, "l": [null], "n": 2, "s": "t"}"#);
}

#[test]
fn invalid_json_is_an_error() {
    assert!(loads("not json").is_err());
    assert!(loads("NaN").is_err());
}

// New with the merge: what each copy had alone, now one code path.

/// `json.dumps` and `str()` of the floats JSON cannot spell, which only a converted
/// `serde_json` value or a value built in Rust can hold.
#[test]
fn non_finite_floats_are_spelled_as_python_does() {
    for (number, dumps, str) in
        [(f64::NAN, "NaN", "nan"), (f64::INFINITY, "Infinity", "inf"), (f64::NEG_INFINITY, "-Infinity", "-inf")]
    {
        assert_eq!(Value::Float(number).dumps(), dumps);
        assert_eq!(Value::Float(number).py_str(), str);
        assert_eq!(Value::List(vec![Value::Float(number)]).py_str(), format!("[{str}]"));
    }
}

#[test]
fn a_mapping_is_a_python_dict() {
    let mut mapping: Mapping = [("b".to_owned(), Value::Int(1)), ("a".to_owned(), Value::Int(2))].into_iter().collect();
    mapping.insert("b", Value::Int(3));
    mapping.insert("c", Value::Null);
    assert!(mapping.contains_key("a") && !mapping.contains_key("z"));
    assert_eq!(Value::Mapping(mapping.clone()).dumps(), r#"{"b": 3, "a": 2, "c": null}"#);
    let owned: Vec<_> = mapping.into_iter().map(|(key, _)| key).collect();
    assert_eq!(owned, ["b", "a", "c"]);
}
