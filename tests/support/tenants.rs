//! The benches' many-tenant init files: one TemplateSeed, then for each of N tenants a
//! WorkspaceInit (from the template) and a DefaultFlowStart, 1 + 2N initialisers in all, as
//! both bootstrap-wasm and upstream's bootstrapper take them.

use std::path::Path;

use bootstrap_wasm::builtins::Builtin;
use serde_json::{Value, json};

/// A TemplateSeed, then a WorkspaceInit and a DefaultFlowStart per tenant.
pub fn entries(tenants: usize) -> Vec<Value> {
    let mut entries = vec![json!({
        "class": Builtin::TemplateSeed.class(), "name": "template-seed", "flag": "v1",
        "params": {"config_file": super::example_seed()},
    })];
    for tenant in (0..tenants).map(|i| format!("tenant-{i:04}")) {
        entries.push(json!({
            "class": Builtin::WorkspaceInit.class(), "name": format!("{tenant}-init"), "flag": "v1",
            "params": {"workspace": tenant},
        }));
        entries.push(json!({
            "class": Builtin::DefaultFlowStart.class(), "name": format!("{tenant}-flow"), "flag": "v1",
            "params": {"workspace": tenant, "blueprint": "document-rag"},
        }));
    }
    entries
}

/// Fill the compile cache, so the figures show running, not compiling.
pub fn warm_compile_cache(init: &Path, cache: &Path) {
    let output = super::bin().arg("check").arg("-c").arg(init).arg("--compile-cache").arg(cache).output().unwrap();
    assert!(output.status.success(), "check failed: {}", super::stderr(&output));
}
