//! `trustgraph:bootstrap/config`: config-svc, within the initialiser's config grants and limits.
//!
//! `put` and `delete` take lists, and wasmtime would copy a whole list out of the guest before
//! the host function could look at its length: a million tiny entries cost the runtime over
//! 100 MB. [`add_list_checks`] replaces the two generated functions with ones that take the list
//! as a [`WasmList`] (still in guest memory), refuse it past `limits.put_entries` before
//! copying anything, and only then hand it to the same code as the trait methods below.

use std::future::Future;
use std::pin::Pin;

use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentType, Lift, Linker, LinkerInstance, WasmList};

use crate::services::ConfigClient;
use crate::wit::{ConfigEntry, ConfigKey, HostError, config};

use super::HostState;
use crate::guest_text::{QUOTED_CHARS, abbreviate};

const PUT: &str = "config.put";
/// What a string costs beyond its bytes, in the host's copy and in the guest's (a pointer and
/// a length each).
const WIT_STRING: usize = 24;
const DELETE: &str = "config.delete";

impl config::Host for HostState {
    async fn get(&mut self, workspace: String, kind: String, key: String) -> Result<Option<String>, HostError> {
        let services = self.services_if(self.grants.may_read_config(&workspace), "config.get", &workspace)?;
        let value = ConfigClient(&*services).get(&workspace, &kind, &key).await?;
        let bytes = value.as_ref().map_or(0, String::len);
        self.hand_over(value, bytes, "config.get's answer")
    }

    async fn list_keys(&mut self, workspace: String, kind: String) -> Result<Vec<String>, HostError> {
        let services = self.services_if(self.grants.may_read_config(&workspace), "config.list-keys", &workspace)?;
        let keys = ConfigClient(&*services).keys(&workspace, &kind).await?;
        let bytes = keys.iter().map(|key| key.len() + WIT_STRING).sum();
        self.hand_over(keys, bytes, "config.list-keys's answer")
    }

    async fn get_values(&mut self, workspace: String, kind: String) -> Result<Vec<(String, String)>, HostError> {
        let services = self.services_if(self.grants.may_read_config(&workspace), "config.get-values", &workspace)?;
        let values = ConfigClient(&*services).values(&workspace, &kind).await?;
        let bytes = values.iter().map(|(key, value)| key.len() + value.len() + 2 * WIT_STRING).sum();
        self.hand_over(values, bytes, "config.get-values's answer")
    }

    async fn get_workspace(&mut self, workspace: String) -> Result<Vec<ConfigEntry>, HostError> {
        let services = self.services_if(self.grants.may_read_config(&workspace), "config.get-workspace", &workspace)?;
        let tree = ConfigClient(&*services).workspace(&workspace).await?;
        let entries: Vec<ConfigEntry> = tree
            .into_iter()
            .flat_map(|(kind, entries)| {
                entries.into_iter().map(move |(key, value)| ConfigEntry { type_: kind.clone(), key, value })
            })
            .collect();
        let bytes = entries.iter().map(|e| e.type_.len() + e.key.len() + e.value.len() + 3 * WIT_STRING).sum();
        self.hand_over(entries, bytes, "config.get-workspace's answer")
    }

    /// Unused at run time (see `add_list_checks`), but the same checks.
    async fn put(&mut self, workspace: String, entries: Vec<ConfigEntry>) -> Result<(), HostError> {
        self.usage.call(PUT, &workspace)?;
        self.put_counted(workspace, entries).await
    }

    /// Unused at run time (see `add_list_checks`), but the same checks.
    async fn delete(&mut self, workspace: String, keys: Vec<ConfigKey>) -> Result<(), HostError> {
        self.usage.call(DELETE, &workspace)?;
        self.delete_counted(workspace, keys).await
    }
}

impl HostState {
    /// `config.put`, its call already counted.
    async fn put_counted(&mut self, workspace: String, entries: Vec<ConfigEntry>) -> Result<(), HostError> {
        let services = self.granted(self.grants.may_write_config(&workspace), PUT, &workspace)?;
        self.usage.entries(PUT, &workspace, entries.len(), "entries")?;
        let mut bytes = 0usize;
        for entry in &entries {
            for (part, text) in [("type", &entry.type_), ("key", &entry.key), ("value", &entry.value)] {
                if text.len() > self.usage.value_size() {
                    let at = format!(
                        "{part} at '{}/{}'",
                        abbreviate(&entry.type_, QUOTED_CHARS),
                        abbreviate(&entry.key, QUOTED_CHARS)
                    );
                    self.usage.value(PUT, &workspace, &at, text.len())?;
                }
            }
            bytes = bytes.saturating_add(entry.type_.len() + entry.key.len() + entry.value.len());
        }
        self.usage.write(PUT, &workspace, bytes)?;
        let entries = entries.into_iter().map(|e| (e.type_, e.key, e.value)).collect();
        Ok(ConfigClient(&*services).put(&workspace, entries).await?)
    }

    /// `config.delete`, its call already counted.
    async fn delete_counted(&mut self, workspace: String, keys: Vec<ConfigKey>) -> Result<(), HostError> {
        let services = self.granted(self.grants.may_write_config(&workspace), DELETE, &workspace)?;
        self.usage.entries(DELETE, &workspace, keys.len(), "keys")?;
        let bytes = keys.iter().fold(0usize, |sum, k| sum.saturating_add(k.type_.len() + k.key.len()));
        self.usage.write(DELETE, &workspace, bytes)?;
        let keys = keys.into_iter().map(|k| (k.type_, k.key)).collect();
        Ok(ConfigClient(&*services).delete(&workspace, keys).await?)
    }

    /// Count a call carrying a list of `len` items, and refuse the list if it is too long.
    fn admit_list(&mut self, function: &str, workspace: &str, len: usize, items: &str) -> Result<(), HostError> {
        self.usage.call(function, workspace)?;
        self.usage.entries(function, workspace, len, items)
    }
}

/// Replace the generated `config.put` and `config.delete` in `linker` with ones that refuse an
/// oversized list before copying it out of the guest. `host` finds the [`HostState`] in the
/// store's data.
pub(crate) fn add_list_checks<T: Send + 'static>(
    linker: &mut Linker<T>,
    host: fn(&mut T) -> &mut HostState,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut config = linker.instance(&format!("trustgraph:bootstrap/config@{}", crate::wit::VERSION))?;
    checked_list(&mut config, host, PUT, "entries", |state, workspace, entries| {
        Box::pin(state.put_counted(workspace, entries))
    })?;
    checked_list(&mut config, host, DELETE, "keys", |state, workspace, keys| {
        Box::pin(state.delete_counted(workspace, keys))
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// What a list-taking call does once its list is admitted and copied.
type ListCall<E> =
    for<'a> fn(&'a mut HostState, String, Vec<E>) -> Pin<Box<dyn Future<Output = Result<(), HostError>> + Send + 'a>>;

/// Define `function` (`config.put`) in `instance`: count the call, refuse a list of more than
/// `limits.put_entries` `items` while it is still in guest memory, then copy it and `call`.
fn checked_list<T: Send + 'static, E: ComponentType + Lift + Send + 'static>(
    instance: &mut LinkerInstance<'_, T>,
    host: fn(&mut T) -> &mut HostState,
    function: &'static str,
    items: &'static str,
    call: ListCall<E>,
) -> wasmtime::Result<()> {
    let name = function.strip_prefix("config.").expect("a config function");
    instance.func_wrap_async(
        name,
        move |mut store: StoreContextMut<'_, T>, (workspace, list): (String, WasmList<E>)| {
            Box::new(async move {
                if let Err(refusal) = host(store.data_mut()).admit_list(function, &workspace, list.len(), items) {
                    return Ok((Err(refusal),));
                }
                let list = list.iter(&mut store)?.collect::<wasmtime::Result<Vec<_>>>()?;
                Ok((call(host(store.data_mut()), workspace, list).await,))
            })
        },
    )
}
