//! TrustGraph's config service (config-svc): read and write config items, each call scoped
//! to one workspace. Values are strings; by TrustGraph convention they are JSON text, which
//! [`get_json`] and [`put_json`] handle for you.

use crate::bindings::trustgraph::bootstrap::{config as host, types};
use crate::{Context, Error, HostError};
use serde::{Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;

/// One config item: `value` stored under `key` within config type `config_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The config type, such as `prompt` or `flow-blueprint`.
    pub config_type: String,
    /// The key within the type.
    pub key: String,
    /// The value, JSON text by convention.
    pub value: String,
}

impl ConfigEntry {
    /// An entry storing `value` at `config_type` / `key`.
    pub fn new(config_type: impl Into<String>, key: impl Into<String>, value: impl Into<String>) -> Self {
        ConfigEntry { config_type: config_type.into(), key: key.into(), value: value.into() }
    }
}

/// The address of one config item, for [`delete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigKey {
    /// The config type.
    pub config_type: String,
    /// The key within the type.
    pub key: String,
}

impl ConfigKey {
    /// The address `config_type` / `key`.
    pub fn new(config_type: impl Into<String>, key: impl Into<String>) -> Self {
        ConfigKey { config_type: config_type.into(), key: key.into() }
    }
}

/// The value at `workspace` / `config_type` / `key`, or `None` if there is none.
pub fn get(workspace: &str, config_type: &str, key: &str) -> Result<Option<String>, HostError> {
    Ok(host::get(workspace, config_type, key)?)
}

/// The value at `workspace` / `config_type` / `key` parsed from JSON, or `None` if there is
/// none. A value that is not valid JSON for `T` is an error naming the item.
pub fn get_json<T: DeserializeOwned>(workspace: &str, config_type: &str, key: &str) -> Result<Option<T>, Error> {
    match get(workspace, config_type, key)? {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text).map(Some).context(format!("config {workspace}/{config_type}/{key}")),
    }
}

/// The keys stored under `config_type` in `workspace`, in the service's order.
pub fn list_keys(workspace: &str, config_type: &str) -> Result<Vec<String>, HostError> {
    Ok(host::list_keys(workspace, config_type)?)
}

/// Every `(key, value)` stored under `config_type` in `workspace`.
pub fn get_values(workspace: &str, config_type: &str) -> Result<Vec<(String, String)>, HostError> {
    Ok(host::get_values(workspace, config_type)?)
}

/// Everything stored in `workspace`, as `type -> key -> value`.
pub fn get_workspace(workspace: &str) -> Result<BTreeMap<String, BTreeMap<String, String>>, HostError> {
    let mut tree: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for entry in get_workspace_entries(workspace)? {
        tree.entry(entry.config_type).or_default().insert(entry.key, entry.value);
    }
    Ok(tree)
}

/// Everything stored in `workspace`, as entries in the service's order.
pub fn get_workspace_entries(workspace: &str) -> Result<Vec<ConfigEntry>, HostError> {
    Ok(host::get_workspace(workspace)?
        .into_iter()
        .map(|entry| ConfigEntry { config_type: entry.type_, key: entry.key, value: entry.value })
        .collect())
}

/// Stores all `entries` in `workspace` in one request, replacing existing values.
pub fn put(workspace: &str, entries: &[ConfigEntry]) -> Result<(), HostError> {
    let entries: Vec<types::ConfigEntry> = entries
        .iter()
        .map(|entry| types::ConfigEntry {
            type_: entry.config_type.clone(),
            key: entry.key.clone(),
            value: entry.value.clone(),
        })
        .collect();
    Ok(host::put(workspace, &entries)?)
}

/// Stores `value`, encoded as JSON, at `workspace` / `config_type` / `key`.
pub fn put_json<T: Serialize + ?Sized>(workspace: &str, config_type: &str, key: &str, value: &T) -> Result<(), Error> {
    let text = serde_json::to_string(value)?;
    Ok(put(workspace, &[ConfigEntry::new(config_type, key, text)])?)
}

/// Deletes `keys` from `workspace` in one request; a missing key is not an error.
pub fn delete(workspace: &str, keys: &[ConfigKey]) -> Result<(), HostError> {
    let keys: Vec<types::ConfigKey> =
        keys.iter().map(|key| types::ConfigKey { type_: key.config_type.clone(), key: key.key.clone() }).collect();
    Ok(host::delete(workspace, &keys)?)
}
