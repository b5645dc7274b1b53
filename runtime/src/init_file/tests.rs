//! Loading init files: the upstream shape, our additions, and every error an operator can make.

use std::path::PathBuf;

use super::*;

/// Write `text` as `name` in a fresh directory and load it.
fn load(name: &str, text: &str) -> (tempfile::TempDir, Result<InitFile, ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let loaded = InitFile::load(&path);
    (dir, loaded)
}

fn error_of(name: &str, text: &str) -> String {
    let (_dir, loaded) = load(name, text);
    loaded.expect_err("expected a configuration error").to_string()
}

#[test]
fn loads_an_upstream_init_file_unchanged() {
    let (dir, loaded) = load(
        "init.yaml",
        r#"
initialisers:
  - class: trustgraph.bootstrap.initialisers.PulsarTopology
    name: pulsar-topology
    flag: v1
    params:
      admin_url: http://pulsar:8080
      tenant: tg
  - class: trustgraph.bootstrap.initialisers.TemplateSeed
    name: template-seed
    flag: 2
    params:
      config_file: seed.json
"#,
    );
    let file = loaded.unwrap();
    assert_eq!(file.initialisers.len(), 2);
    let seed = &file.initialisers[1];
    assert_eq!(seed.code, Code::Builtin(Builtin::TemplateSeed));
    assert_eq!(seed.code_field, "class");
    assert_eq!(seed.flag.to_stored(), "2");
    assert_eq!(seed.params["config_file"], "seed.json");
    assert_eq!(seed.limits, Limits::default());
    assert!(seed.grants.is_none());
    drop(dir);
}

#[test]
fn json_files_load_too() {
    let (_dir, loaded) = load(
        "init.json",
        r#"{"initialisers": [{"builtin": "default-flow-start", "name": "flow", "flag": "v1", "params": {"blueprint": "x"}}]}"#,
    );
    assert_eq!(loaded.unwrap().initialisers[0].code, Code::Builtin(Builtin::DefaultFlowStart));
}

#[test]
fn components_limits_and_grants_resolve_against_the_file() {
    let (dir, loaded) = load(
        "init.yaml",
        r#"
initialisers:
  - name: acme
    flag: v1
    component: components/acme.wasm
    limits: {fuel: 1000, timeout: 2s, memory: 16MiB}
    grants:
      config: {read: [acme, __template__], write: [acme]}
      flow: {workspaces: ["acme-*"]}
      iam: {workspaces: [acme, "tenant-*"]}
      http: ["http://pulsar:8080"]
      files: [seed/acme.json]
"#,
    );
    let spec = &loaded.unwrap().initialisers[0];
    let base = std::path::absolute(dir.path()).unwrap();
    assert_eq!(spec.code, Code::Component(base.join("components/acme.wasm")));
    assert_eq!(
        spec.limits,
        Limits { fuel: 1000, timeout: std::time::Duration::from_secs(2), memory: 16 << 20, ..Limits::default() }
    );
    let grants = spec.grants.as_ref().unwrap();
    assert!(grants.may_read_config("__template__") && grants.may_write_config("acme"));
    assert!(!grants.may_write_config("__template__"));
    assert!(grants.may_use_flow("acme-7"));
    assert!(grants.may_register("acme") && grants.may_register("tenant-1") && !grants.may_register("acme-7"));
    assert_eq!(grants.files, vec![base.join("seed/acme.json")]);
    assert_eq!(grants.http, vec![Origin::parse("http://pulsar:8080").unwrap()]);
}

#[test]
fn unreadable_file_names_the_file() {
    let message = InitFile::load(&PathBuf::from("/no/such/init.yaml")).unwrap_err().to_string();
    assert!(message.starts_with("/no/such/init.yaml: cannot read"), "{message}");
}

#[test]
fn bad_yaml_gives_line_and_column() {
    let message = error_of("init.yaml", "initialisers:\n  - name: a\n    flag: [unclosed\n");
    assert!(message.contains("init.yaml") && message.contains("line"), "{message}");
}

#[test]
fn duplicate_yaml_keys_are_refused() {
    let message =
        error_of("init.yaml", "initialisers:\n  - name: a\n    name: b\n    flag: v1\n    builtin: template-seed\n");
    assert!(message.contains("duplicate"), "{message}");
}

#[test]
fn missing_fields_name_entry_and_field() {
    let message = error_of("init.yaml", "initialisers:\n  - name: seed\n    builtin: template-seed\n");
    assert!(message.ends_with("init.yaml: initialiser 'seed' (entry 1), field 'flag': missing"), "{message}");

    let message = error_of("init.yaml", "initialisers:\n  - flag: v1\n    builtin: template-seed\n");
    assert!(message.ends_with("initialiser entry 1, field 'name': missing"), "{message}");

    let message = error_of("init.yaml", "initialisers:\n  - name: seed\n    flag: v1\n");
    assert!(message.contains("'seed' (entry 1), field 'component': missing"), "{message}");
}

#[test]
fn duplicate_names_are_refused() {
    let message = error_of(
        "init.yaml",
        "initialisers:\n  - {name: a, flag: v1, builtin: template-seed}\n  - {name: a, flag: v1, builtin: workspace-init}\n",
    );
    assert!(message.contains("initialiser 'a' (entry 2), field 'name': duplicate name"), "{message}");
}

#[test]
fn unknown_class_and_builtin_list_the_known_ones() {
    let message = error_of("init.yaml", "initialisers:\n  - {name: a, flag: v1, class: acme.Thing}\n");
    assert!(message.contains("field 'class': unknown class 'acme.Thing'"), "{message}");
    assert!(message.contains("trustgraph.bootstrap.initialisers.TemplateSeed"), "{message}");

    let message = error_of("init.yaml", "initialisers:\n  - {name: a, flag: v1, builtin: seed}\n");
    assert!(message.contains("field 'builtin': unknown builtin 'seed'"), "{message}");
}

#[test]
fn two_kinds_of_code_are_refused() {
    let message =
        error_of("init.yaml", "initialisers:\n  - {name: a, flag: v1, builtin: template-seed, component: x.wasm}\n");
    assert!(message.contains("give only one of"), "{message}");
}

#[test]
fn misspelt_fields_are_refused() {
    let message = error_of("init.yaml", "initialisers:\n  - {name: a, flag: v1, builtin: template-seed, parmas: {}}\n");
    assert!(message.contains("parmas"), "{message}");
}

#[test]
fn bad_limits_and_grants_name_the_field() {
    let message = error_of(
        "init.yaml",
        "initialisers:\n  - {name: a, flag: v1, builtin: template-seed, limits: {timeout: soon}}\n",
    );
    assert!(message.contains("field 'limits.timeout'"), "{message}");

    let message = error_of(
        "init.yaml",
        "initialisers:\n  - {name: a, flag: v1, component: a.wasm, grants: {http: [\"pulsar:8080\"]}}\n",
    );
    assert!(message.contains("field 'grants.http'"), "{message}");

    for (workspace, why) in [("__workspaces__", "beginning with '_' are reserved"), ("", "must not be empty")] {
        let message = error_of(
            "init.yaml",
            &format!(
                "initialisers:\n  - {{name: a, flag: v1, component: a.wasm, grants: {{iam: {{workspaces: [acme, '{workspace}']}}}}}}\n"
            ),
        );
        let expected = "init.yaml: initialiser 'a' (entry 1), field 'grants.iam.workspaces': ";
        assert!(message.contains(expected) && message.contains(why), "{message}");
    }
}

#[test]
fn every_limit_can_be_set_and_the_rest_keep_their_defaults() {
    let (_dir, loaded) = load(
        "init.yaml",
        r#"
initialisers:
  - name: a
    flag: v1
    builtin: template-seed
    limits: {value_size: 64KiB, put_entries: 500, written: 8MiB, host_calls: 2000, log_lines: 50, log_line_size: 1KiB}
"#,
    );
    let limits = loaded.unwrap().initialisers[0].limits;
    let expected = Limits {
        value_size: 64 << 10,
        put_entries: 500,
        written: 8 << 20,
        host_calls: 2000,
        log_lines: 50,
        log_line_size: 1 << 10,
        ..Limits::default()
    };
    assert_eq!(limits, expected);
}

#[test]
fn bad_caps_name_the_field() {
    for (limits, field) in [
        ("{value_size: lots}", "limits.value_size"),
        ("{put_entries: 0}", "limits.put_entries"),
        ("{written: 0}", "limits.written"),
        ("{host_calls: 0}", "limits.host_calls"),
        ("{log_lines: 0}", "limits.log_lines"),
        ("{log_line_size: 4XB}", "limits.log_line_size"),
    ] {
        let message = error_of(
            "init.yaml",
            &format!("initialisers:\n  - {{name: a, flag: v1, builtin: template-seed, limits: {limits}}}\n"),
        );
        assert!(message.contains(&format!("field '{field}'")), "{limits}: {message}");
    }
    let message = error_of(
        "init.yaml",
        "initialisers:\n  - {name: a, flag: v1, builtin: template-seed, limits: {log_lines: -1}}\n",
    );
    assert!(message.contains("log_lines"), "{message}");
}

#[test]
fn oversized_params_and_flags_are_refused_at_load() {
    let big = "x".repeat(crate::policy::MAX_PARAMS_BYTES);
    let text = format!(
        r#"{{"initialisers": [{{"name": "a", "flag": "v1", "builtin": "template-seed", "params": {{"blob": "{big}"}}}}]}}"#
    );
    let message = error_of("init.json", &text);
    assert!(
        message.contains("initialiser 'a' (entry 1), field 'params': 1048587 bytes of JSON, over the limit of 1 MiB"),
        "{}",
        &message[..200.min(message.len())]
    );

    let flag = "v".repeat(crate::policy::MAX_FLAG_BYTES);
    let message =
        error_of("init.yaml", &format!("initialisers:\n  - {{name: a, flag: {flag}, builtin: template-seed}}\n"));
    assert!(message.contains("field 'flag': 1026 bytes, over the limit of 1 KiB"), "{message}");
    // Up to the limit is fine: the stored flag is its JSON text, quotes included.
    let flag = "v".repeat(crate::policy::MAX_FLAG_BYTES - 2);
    let (_dir, loaded) =
        load("init.yaml", &format!("initialisers:\n  - {{name: a, flag: {flag}, builtin: template-seed}}\n"));
    assert!(loaded.is_ok());
}

#[test]
fn flags_must_be_scalars_and_params_a_mapping() {
    let message = error_of("init.yaml", "initialisers:\n  - {name: a, flag: [1], builtin: template-seed}\n");
    assert!(message.contains("field 'flag': must be a string"), "{message}");

    let message =
        error_of("init.yaml", "initialisers:\n  - {name: a, flag: v1, builtin: template-seed, params: [1]}\n");
    assert!(message.contains("field 'params': must be a mapping"), "{message}");
}
