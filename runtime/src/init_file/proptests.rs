//! Property tests: whatever an init file holds, loading it never panics, and a refusal is a
//! `ConfigError` that starts with the file's path. 256 cases each; `PROPTEST_CASES` raises it.
//!
//! Three kinds of input, from shallow to deep: arbitrary bytes (mostly stopped by UTF-8 or the
//! parser), arbitrary text, and documents built from the init file's own field names and
//! plausible values, which get past the parser into every entry check.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::InitFile;
use crate::builtins::Builtin;

/// Load `contents` as `init.<extension>` in a fresh directory; check the outcome's shape.
fn load_checked(extension: &str, contents: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("init.{extension}"));
    std::fs::write(&path, contents).unwrap();
    if let Err(error) = InitFile::load(&path) {
        let message = error.to_string();
        prop_assert!(message.starts_with(&path.display().to_string()), "{message}");
        prop_assert!(message.len() > path.display().to_string().len() + 2, "no reason given: {message}");
    }
    Ok(())
}

const EXTENSIONS: [&str; 3] = ["yaml", "json", "yml"];

/// The fields of `limits:`.
const LIMIT_FIELDS: [&str; 9] =
    ["fuel", "timeout", "memory", "value_size", "put_entries", "written", "host_calls", "log_lines", "log_line_size"];

/// The other keys an init file uses, at any level, and a few it does not.
const OTHER_KEYS: [&str; 22] = [
    "initialisers",
    "name",
    "flag",
    "class",
    "builtin",
    "component",
    "sha256",
    "params",
    "limits",
    "grants",
    "config",
    "read",
    "write",
    "flow",
    "iam",
    "workspaces",
    "http",
    "files",
    "config_file",
    "workspace",
    "bogus",
    "",
];

/// Keys an init file uses, at any level, and a few it does not.
fn key() -> impl Strategy<Value = String> {
    prop::sample::select([OTHER_KEYS.as_slice(), LIMIT_FIELDS.as_slice()].concat()).prop_map(str::to_owned)
}

/// Scalars an init file's fields take, and wrong ones.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        4 => word(),
    ]
}

/// Strings an init file's fields take (names, code, units, origins, workspaces, digests), and
/// arbitrary short ones.
fn word() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "v1", "template-seed", "pulsar-topology", "workspace-init", "default-flow-start",
            "trustgraph.bootstrap.initialisers.TemplateSeed", "trustgraph.bootstrap.initialisers.x.Y",
            "missing.wasm", "/", ".", "30s", "500ms", "1.5", "-1", "64MiB", "0", "1 GiB", "99999999999TiB",
            "http://pulsar:8080", "https://x", "ftp://x", "http://", "acme-*", "*", "__system__",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        ])
        .prop_map(Value::from),
        1 => ".{0,12}".prop_map(Value::from),
    ]
}

/// Nested values made of those keys and scalars.
fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6).prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// `Some(value)` most of the time: a field present.
fn mostly<T: std::fmt::Debug>(strategy: impl Strategy<Value = T>) -> impl Strategy<Value = Option<T>> {
    prop::option::weighted(0.8, strategy)
}

/// Mostly `right`, sometimes any scalar: most fields get past the parser's type checks.
fn usually(right: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![9 => right, 1 => scalar()].boxed()
}

/// One of `choices`, or any word.
fn one_of(choices: Vec<&'static str>) -> impl Strategy<Value = Value> {
    prop_oneof![3 => prop::sample::select(choices).prop_map(Value::from), 1 => word()]
}

/// A list of strings, now and then something else.
fn list() -> impl Strategy<Value = Value> {
    prop::collection::vec(usually(word()), 0..3).prop_map(Value::Array)
}

/// `limits:` with some of its fields, each mostly of the right type.
fn limits() -> impl Strategy<Value = Value> {
    let count = || prop_oneof![Just(0u64), 1..100_000u64, any::<u64>()].prop_map(Value::from);
    let fields: Vec<_> = LIMIT_FIELDS
        .iter()
        .map(|&field| {
            let value = match field {
                "fuel" | "put_entries" | "host_calls" | "log_lines" => count().boxed(),
                _ => prop_oneof![count(), word()].boxed(),
            };
            prop::option::weighted(0.3, usually(value)).prop_map(move |value| value.map(|v| (field.to_owned(), v)))
        })
        .collect();
    fields.prop_map(|fields| Value::Object(fields.into_iter().flatten().collect()))
}

/// `grants:` with some of its parts.
fn grants() -> impl Strategy<Value = Value> {
    let lists = (mostly(list()), mostly(list()), mostly(list()), mostly(list()));
    (mostly((mostly(list()), mostly(list()))), lists).prop_map(|(config, (flow, iam, http, files))| {
        let mut grants = serde_json::Map::new();
        if let Some((read, write)) = config {
            grants.insert("config".into(), json!({"read": read, "write": write}));
        }
        if let Some(flow) = flow {
            grants.insert("flow".into(), json!({"workspaces": flow}));
        }
        if let Some(iam) = iam {
            grants.insert("iam".into(), json!({"workspaces": iam}));
        }
        if let Some(http) = http {
            grants.insert("http".into(), http);
        }
        if let Some(files) = files {
            grants.insert("files".into(), files);
        }
        Value::Object(grants)
    })
}

/// One entry, mostly with the right fields and plausible values, so that most cases get past
/// the parser into the entry checks (names, flags, code, pins, params, limits, grants).
fn entry() -> impl Strategy<Value = Value> {
    let field = |name: &str| Just(name.to_owned());
    let classes = Builtin::ALL.map(Builtin::class).to_vec();
    let names = Builtin::ALL.map(Builtin::name).to_vec();
    let code = prop_oneof![
        4 => (field("class"), usually(one_of(classes))),
        4 => (field("builtin"), usually(one_of(names))),
        2 => (field("component"), usually(one_of(vec!["component.wasm", "/nonexistent/x.wasm"]))),
    ];
    let extra = prop::option::weighted(0.1, prop_oneof![(key(), value()), code.clone()]);
    let params = prop_oneof![
        8 => prop::collection::btree_map(key(), scalar(), 0..4).prop_map(|map| Value::Object(map.into_iter().collect())),
        1 => value(),
    ];
    let name = usually(one_of(vec!["a", "b", "seed", " ", ""]));
    let sha256 = prop::option::weighted(0.2, usually(word()));
    (mostly(name), mostly(scalar()), code, extra, sha256, mostly(params), mostly(limits()), mostly(grants())).prop_map(
        |(name, flag, code, extra, sha256, params, limits, grants)| {
            let mut entry = serde_json::Map::new();
            let mut set = |key: &str, value: Option<Value>| {
                if let Some(value) = value {
                    entry.insert(key.into(), value);
                }
            };
            set("name", name);
            set("flag", flag);
            set("sha256", sha256);
            set("params", params);
            set("limits", limits);
            set("grants", grants);
            entry.extend([code].into_iter().chain(extra));
            Value::Object(entry)
        },
    )
}

/// A document shaped like an init file: mostly a list of plausible entries.
fn init_document() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => value(),
        8 => prop::collection::vec(entry(), 1..4).prop_map(|entries| json!({"initialisers": entries})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_load_or_are_refused(
        extension in prop::sample::select(&EXTENSIONS[..]),
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        load_checked(extension, &bytes)?;
    }

    #[test]
    fn arbitrary_text_loads_or_is_refused(extension in prop::sample::select(&EXTENSIONS[..]), text in "\\PC{0,300}") {
        load_checked(extension, text.as_bytes())?;
    }

    #[test]
    fn init_file_shaped_documents_load_or_are_refused(
        extension in prop::sample::select(&EXTENSIONS[..]),
        document in init_document(),
        style in 0..3u8,
    ) {
        // JSON text is also YAML: the same document exercises both parsers, and so does YAML's
        // own block style (which the JSON parser refuses).
        let text = match style {
            0 => serde_json::to_string(&document).unwrap(),
            1 => serde_json::to_string_pretty(&document).unwrap(),
            _ => serde_saphyr::to_string(&document).unwrap(),
        };
        load_checked(extension, text.as_bytes())?;
    }
}
