//! The workspace registry of the workspace protocol (TrustGraph 2.4.13 on), as the embedded
//! services keep it: which workspaces are registered (config workspace `__workspaces__`, type
//! `workspace`, one key per workspace), and what registering one does.
//!
//! In TrustGraph 2.11.1, config-svc reacts to a `put` that registers a workspace it has not
//! seen before by copying `__template__` into it, missing keys only
//! (`config/service/service.py`, `_handle_workspace_changes`; `config.py`,
//! `provision_from_template`): a workspace registered again, or found registered at start, is
//! not copied into again. [`put_registering`] does the same for a put into the registry, with
//! one difference, deliberate: upstream copies after it has answered the put, in a write of
//! its own (the version rises twice), once its own config push comes back to it; a crash in
//! between leaves the workspace registered without its template for good, since a restart
//! does not copy into workspaces already registered. Here the copy is in the put's own
//! transaction: the registration and the copy land together (the version rises once), and
//! before the put is answered.

use super::store::{ConfigStore, StoreError};
use crate::services::wire::{TEMPLATE_WORKSPACE, WORKSPACE_REGISTRY};

/// Whether `entries` (of a put into `workspace`) register any workspace.
pub(super) fn registers(workspace: &str, entries: &[(&str, &str, &str)]) -> bool {
    let (registry, kind) = WORKSPACE_REGISTRY;
    workspace == registry && entries.iter().any(|(entry_kind, _, _)| *entry_kind == kind)
}

/// Whether `workspace` is registered in the store now.
pub(super) fn is_registered(store: &ConfigStore, workspace: &str) -> Result<bool, StoreError> {
    let (registry, kind) = WORKSPACE_REGISTRY;
    Ok(store.snapshot()?.get(registry, kind, workspace)?.is_some())
}

/// A put of `entries` into the registry, in one transaction with the template's copy into
/// each workspace it registers that was not registered before (see the module doc).
pub(super) fn put_registering(store: &ConfigStore, entries: &[(&str, &str, &str)]) -> Result<(), StoreError> {
    let (registry, kind) = WORKSPACE_REGISTRY;
    store.update(|update| {
        let mut new = Vec::new();
        for &(entry_kind, key, _) in entries {
            if entry_kind == kind && !new.contains(&key) && update.get(registry, kind, key)?.is_none() {
                new.push(key);
            }
        }
        for &(entry_kind, key, value) in entries {
            update.put(registry, entry_kind, key, value)?;
        }
        if new.is_empty() {
            return Ok(());
        }
        let template = update.workspace(TEMPLATE_WORKSPACE)?;
        for workspace in new {
            for (template_kind, values) in &template {
                for (key, value) in values {
                    if update.get(workspace, template_kind, key)?.is_none() {
                        update.put(workspace, template_kind, key, value)?;
                    }
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::embedded::ConfigService;
    use crate::services::Protocol;
    use crate::services::wire::{ConfigRequest, ConfigValue, REGISTERED_WORKSPACE};

    fn service() -> (tempfile::TempDir, Arc<ConfigStore>, ConfigService) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ConfigStore::open(&dir.path().join("config.redb")).unwrap());
        (dir, store.clone(), ConfigService::new(store, Protocol::Workspaces))
    }

    /// config-svc's answer to a put of `workspace` keys into the registry, with `extra` beside.
    fn register(service: &ConfigService, workspaces: &[&str], extra: &[(&str, &str, &str)]) {
        let (registry, kind) = WORKSPACE_REGISTRY;
        let registrations = workspaces.iter().map(|workspace| (kind, *workspace, REGISTERED_WORKSPACE));
        let values = registrations
            .chain(extra.iter().copied())
            .map(|(kind, key, value)| ConfigValue {
                kind: kind.into(),
                key: key.into(),
                value: Some(value.into()),
                ..Default::default()
            })
            .collect();
        let request =
            ConfigRequest { operation: "put".into(), workspace: registry.into(), values, ..Default::default() };
        assert_eq!(service.handle(request).error, None);
    }

    fn config(store: &ConfigStore, workspace: &str) -> serde_json::Value {
        serde_json::to_value(store.snapshot().unwrap().workspace(workspace).unwrap()).unwrap()
    }

    #[test]
    fn registering_copies_the_template_keys_the_workspace_lacks_in_the_same_write() {
        let (_dir, store, service) = service();
        store.put_many(TEMPLATE_WORKSPACE, [("prompt", "a", "template-a"), ("prompt", "b", "template-b")]).unwrap();
        store.put_many(TEMPLATE_WORKSPACE, [("schema", "s", "template-s")]).unwrap();
        store.put_many("acme", [("prompt", "a", "acme's own")]).unwrap();
        let before = store.snapshot().unwrap().version().unwrap();

        register(&service, &["acme", "fresh"], &[]);

        assert_eq!(store.snapshot().unwrap().version().unwrap(), before + 1);
        assert!(is_registered(&store, "acme").unwrap() && is_registered(&store, "fresh").unwrap());
        assert_eq!(
            config(&store, "acme"),
            serde_json::json!({"prompt": {"a": "acme's own", "b": "template-b"}, "schema": {"s": "template-s"}})
        );
        assert_eq!(config(&store, "fresh"), config(&store, TEMPLATE_WORKSPACE));
    }

    #[test]
    fn a_workspace_registered_already_is_not_copied_into_again() {
        let (_dir, store, service) = service();
        register(&service, &["acme"], &[]);
        // The template arrives later (TemplateSeed after the registration) ...
        store.put_many(TEMPLATE_WORKSPACE, [("prompt", "a", "1")]).unwrap();
        // ... and registering again, as a second create-workspace does, copies nothing.
        register(&service, &["acme"], &[]);
        assert_eq!(config(&store, "acme"), serde_json::json!({}));
    }

    #[test]
    fn only_workspace_keys_of_the_registry_register() {
        let (_dir, store, service) = service();
        store.put_many(TEMPLATE_WORKSPACE, [("prompt", "a", "1")]).unwrap();
        // Another type in the registry, and a `workspace` key in another workspace.
        register(&service, &[], &[("other", "acme", "x")]);
        let put = ConfigRequest {
            operation: "put".into(),
            workspace: "elsewhere".into(),
            values: vec![ConfigValue {
                kind: WORKSPACE_REGISTRY.1.into(),
                key: "acme".into(),
                value: Some(REGISTERED_WORKSPACE.into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(service.handle(put).error, None);
        assert!(!is_registered(&store, "acme").unwrap());
        assert_eq!(config(&store, "acme"), serde_json::json!({}));
    }
}
