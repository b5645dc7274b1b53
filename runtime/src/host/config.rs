//! `trustgraph:bootstrap/config`: config-svc, within the initialiser's config grants.

use crate::sandbox::bindings::{ConfigEntry, ConfigKey, HostError, config};
use crate::services::ConfigClient;

use super::HostState;

impl config::Host for HostState {
    async fn get(&mut self, workspace: String, kind: String, key: String) -> Result<Option<String>, HostError> {
        let services = self.services_if(self.grants.may_read_config(&workspace), "config.get", &workspace)?;
        Ok(ConfigClient(services).get(&workspace, &kind, &key).await?)
    }

    async fn list_keys(&mut self, workspace: String, kind: String) -> Result<Vec<String>, HostError> {
        let services = self.services_if(self.grants.may_read_config(&workspace), "config.list-keys", &workspace)?;
        Ok(ConfigClient(services).keys(&workspace, &kind).await?)
    }

    async fn get_values(&mut self, workspace: String, kind: String) -> Result<Vec<(String, String)>, HostError> {
        let services = self.services_if(self.grants.may_read_config(&workspace), "config.get-values", &workspace)?;
        Ok(ConfigClient(services).values(&workspace, &kind).await?)
    }

    async fn get_workspace(&mut self, workspace: String) -> Result<Vec<ConfigEntry>, HostError> {
        let services =
            self.services_if(self.grants.may_read_config(&workspace), "config.get-workspace", &workspace)?;
        let tree = ConfigClient(services).workspace(&workspace).await?;
        Ok(tree
            .into_iter()
            .flat_map(|(kind, entries)| {
                entries.into_iter().map(move |(key, value)| ConfigEntry { type_: kind.clone(), key, value })
            })
            .collect())
    }

    async fn put(&mut self, workspace: String, entries: Vec<ConfigEntry>) -> Result<(), HostError> {
        let services = self.services_if(self.grants.may_write_config(&workspace), "config.put", &workspace)?;
        let entries = entries.into_iter().map(|e| (e.type_, e.key, e.value)).collect();
        Ok(ConfigClient(services).put(&workspace, entries).await?)
    }

    async fn delete(&mut self, workspace: String, keys: Vec<ConfigKey>) -> Result<(), HostError> {
        let services = self.services_if(self.grants.may_write_config(&workspace), "config.delete", &workspace)?;
        let keys = keys.into_iter().map(|k| (k.type_, k.key)).collect();
        Ok(ConfigClient(services).delete(&workspace, keys).await?)
    }
}
