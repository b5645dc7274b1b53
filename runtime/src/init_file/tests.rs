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

/// An operator's file declaring `tenants`, beside a tenant file `acme.yaml` of `acme_entries`,
/// in a fresh directory; the operator's file loaded.
fn with_tenant(tenants: &str, acme_entries: &str) -> (tempfile::TempDir, Result<InitFile, ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("acme.yaml"), format!("initialisers:\n{acme_entries}")).unwrap();
    std::fs::write(dir.path().join("probe.wasm"), b"not compiled here").unwrap();
    let path = dir.path().join("init.yaml");
    std::fs::write(&path, format!("initialisers: []\ntenants:\n{tenants}")).unwrap();
    let loaded = InitFile::load(&path);
    (dir, loaded)
}

#[test]
fn tenants_are_declared_with_a_path_keys_and_a_ceiling() {
    let tenants = "  - name: acme\n    path: acme.yaml\n    ceiling:\n      grants: {config: {write: [acme-*]}, files: [seed/]}\n      limits: {fuel: 1000, memory: 1MiB}\n  - {name: beta, path: beta}\n";
    let (dir, loaded) = with_tenant(tenants, "  []\n");
    let file = loaded.unwrap();
    let acme = &file.tenants[0];
    assert_eq!((acme.name.as_str(), acme.position), ("acme", 1));
    assert_eq!(acme.path, dir.path().join("acme.yaml"));
    assert_eq!(acme.ceiling.grants.config_write, vec![WorkspacePattern::new("acme-*")]);
    assert!(acme.ceiling.grants.files[0].to_string_lossy().ends_with("seed/"), "a directory keeps its '/'");
    assert_eq!((acme.ceiling.limits.fuel, acme.ceiling.limits.memory), (1000, 1 << 20));
    assert_eq!(acme.scoped("seed"), "acme/seed");
    let beta = &file.tenants[1];
    assert_eq!(beta.ceiling, crate::policy::Ceiling::default(), "no ceiling: no grants, the default limits");
    assert!(beta.keys.is_empty());
}

#[test]
fn a_bad_tenant_declaration_is_the_operators_error() {
    let error = |tenants: &str| with_tenant(tenants, "  []\n").1.unwrap_err().to_string();
    assert!(error("  - {name: Acme, path: a}\n").contains("tenant 'Acme' (tenant 1), field 'name'"));
    assert!(error("  - {name: a/b, path: a}\n").contains("field 'name'"));
    assert!(error("  - {name: acme}\n").contains("field 'path': missing"));
    assert!(error("  - {name: acme, path: a}\n  - {name: acme, path: b}\n").contains("duplicate tenant"));
    assert!(error("  - {name: acme, path: a, keys: [nope]}\n").contains("field 'keys'"));
    let message = error("  - {name: acme, path: a, ceiling: {grants: {http: [ftp://x]}}}\n");
    assert!(message.contains("field 'ceiling.grants.http'"), "{message}");
    let message = error("  - {name: acme, path: a, ceiling: {limits: {fuel: 0}}}\n");
    assert!(message.contains("field 'ceiling.limits.fuel'"), "{message}");
    let message = error("  - {name: acme, path: a, ceiling: {grants: {wat: 1}}}\n");
    assert!(message.contains("unknown field"), "{message}");
}

#[test]
fn operator_entries_keep_out_of_a_tenants_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("init.yaml");
    let text = "initialisers:\n  - {name: acme/seed, flag: v1, builtin: template-seed}\ntenants:\n  - {name: acme, path: acme.yaml}\n";
    std::fs::write(&path, text).unwrap();
    let message = InitFile::load(&path).unwrap_err().to_string();
    assert!(
        message.contains(
            "initialiser 'acme/seed' (entry 1), field 'name': names beginning 'acme/' belong to tenant 'acme'"
        ),
        "{message}"
    );
}

#[test]
fn a_tenants_entries_are_checked_one_by_one() {
    let tenants = "  - {name: acme, path: acme.yaml, ceiling: {limits: {fuel: 1000}}}\n";
    let entries = "  - {name: good, flag: v1, component: probe.wasm}\n  - {name: no-flag, component: probe.wasm}\n  - {name: a/b, flag: v1, component: probe.wasm}\n  - {name: good, flag: v2, component: probe.wasm}\n";
    let (_dir, loaded) = with_tenant(tenants, entries);
    let file = loaded.unwrap();
    let tenant = TenantFile::load(&file.tenants[0]).unwrap();
    let results: Vec<_> =
        tenant.entries.iter().map(|entry| entry.checked.as_ref().map_err(ToString::to_string)).collect();
    let good = results[0].as_ref().unwrap();
    assert_eq!(good.limits.fuel, 1000, "an omitted limit is the default capped by the ceiling");
    let refused = |index: usize, field: &str| {
        let message = results[index].as_ref().unwrap_err();
        assert!(message.starts_with("tenant 'acme': "), "{message}");
        assert!(message.contains(&format!("field '{field}'")), "{message}");
    };
    refused(1, "flag");
    refused(2, "name");
    refused(3, "name"); // a duplicate
}

#[test]
fn a_tenant_file_that_cannot_be_read_or_declares_tenants_fails_whole() {
    let tenants = "  - {name: acme, path: acme.yaml}\n";
    let (dir, loaded) = with_tenant(tenants, "  - {name: a, flag: v1, component: probe.wasm\n");
    let file = loaded.unwrap();
    let message = TenantFile::load(&file.tenants[0]).unwrap_err().to_string();
    assert!(message.starts_with(&format!("tenant 'acme': {}", dir.path().join("acme.yaml").display())), "{message}");
    std::fs::write(dir.path().join("acme.yaml"), "initialisers: []\ntenants: []\n").unwrap();
    let message = TenantFile::load(&file.tenants[0]).unwrap_err().to_string();
    assert!(message.contains("only the operator's"), "{message}");
}

#[test]
fn a_tenant_directory_is_its_tenant_files_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let tenant_dir = dir.path().join("acme");
    std::fs::create_dir_all(tenant_dir.join("..data")).unwrap();
    std::fs::write(tenant_dir.join("b.yaml"), "initialisers:\n  - {name: second, flag: v1, builtin: template-seed}\n")
        .unwrap();
    std::fs::write(
        tenant_dir.join("a.json"),
        r#"{"initialisers": [{"name": "first", "flag": "v1", "builtin": "template-seed"}]}"#,
    )
    .unwrap();
    std::fs::write(tenant_dir.join(".hidden.yaml"), "not: read").unwrap();
    std::fs::write(tenant_dir.join("notes.txt"), "not read").unwrap();
    let path = dir.path().join("init.yaml");
    std::fs::write(&path, "initialisers: []\ntenants:\n  - {name: acme, path: acme}\n").unwrap();
    let file = InitFile::load(&path).unwrap();
    assert_eq!(file.tenants[0].directory(), tenant_dir);
    let tenant = TenantFile::load(&file.tenants[0]).unwrap();
    assert_eq!(tenant.files, vec![tenant_dir.join("a.json"), tenant_dir.join("b.yaml")]);
    let names: Vec<_> = tenant.entries.iter().map(|e| e.checked.as_ref().unwrap().name.as_str()).collect();
    assert_eq!(names, ["first", "second"]);
}

#[test]
fn a_tenants_file_or_component_over_its_size_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, vec![b'#'; 2049]).unwrap();
    assert_eq!(read_at_most(&path, 2048).unwrap_err(), "2049 bytes, over the limit of 2 KiB");
    assert_eq!(read_at_most(&path, 2049).unwrap().len(), 2049);
    assert!(read_at_most(&dir.path().join("gone"), 1).unwrap_err().starts_with("cannot read"));
    assert_eq!(MAX_TENANT_FILE_BYTES, 16 << 20);
}
