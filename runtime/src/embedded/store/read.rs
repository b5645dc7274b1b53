//! Reads, written once. [`Tables`] is the store's two tables as one transaction sees them;
//! every read is a method of it, whatever the transaction: a [`Snapshot`] (a read transaction,
//! the store at one instant) and an [`Update`](super::Update) (a write transaction, which sees
//! its own writes) answer the very same reads.

use std::collections::BTreeMap;

use redb::ReadableTable;

use super::StoreError;
use super::schema::{EntryKey, VERSION};

/// `{type: {key: value}}` of one workspace.
pub type WorkspaceConfig = BTreeMap<String, BTreeMap<String, String>>;

/// The store's tables as one transaction sees them: `entries` (the config items) and `meta`
/// (the version).
pub struct Tables<E, M> {
    pub(super) entries: E,
    pub(super) meta: M,
}

/// A read-only view of the store at one instant ([`ConfigStore::snapshot`](super::ConfigStore::snapshot)).
pub type Snapshot = Tables<redb::ReadOnlyTable<EntryKey, &'static str>, redb::ReadOnlyTable<&'static str, u64>>;

impl<E, M> Tables<E, M>
where
    E: ReadableTable<EntryKey, &'static str>,
    M: ReadableTable<&'static str, u64>,
{
    /// One value, `None` if the key does not exist.
    pub fn get(&self, workspace: &str, kind: &str, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.entries.get((workspace, kind, key))?.map(|value| value.value().to_owned()))
    }

    /// The keys of one type in one workspace, sorted.
    pub fn keys(&self, workspace: &str, kind: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.values(workspace, kind)?.into_iter().map(|(key, _)| key).collect())
    }

    /// `(key, value)` of one type in one workspace, sorted by key.
    pub fn values(&self, workspace: &str, kind: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::new();
        for item in self.entries.range((workspace, kind, "")..)? {
            let (entry_key, value) = item?;
            let (entry_workspace, entry_kind, key) = entry_key.value();
            if entry_workspace != workspace || entry_kind != kind {
                break;
            }
            out.push((key.to_owned(), value.value().to_owned()));
        }
        Ok(out)
    }

    /// `(workspace, key, value)` of one type across every workspace, sorted.
    pub fn values_all_workspaces(&self, kind: &str) -> Result<Vec<(String, String, String)>, StoreError> {
        // A full scan: the table is keyed workspace-first, and config stores are small.
        let mut out = Vec::new();
        for item in self.entries.iter()? {
            let (entry_key, value) = item?;
            let (workspace, entry_kind, key) = entry_key.value();
            if entry_kind == kind {
                out.push((workspace.to_owned(), key.to_owned(), value.value().to_owned()));
            }
        }
        Ok(out)
    }

    /// Everything in one workspace; empty for an unknown workspace.
    pub fn workspace(&self, workspace: &str) -> Result<WorkspaceConfig, StoreError> {
        let mut out = WorkspaceConfig::new();
        for item in self.entries.range((workspace, "", "")..)? {
            let (entry_key, value) = item?;
            let (entry_workspace, kind, key) = entry_key.value();
            if entry_workspace != workspace {
                break;
            }
            out.entry(kind.to_owned()).or_default().insert(key.to_owned(), value.value().to_owned());
        }
        Ok(out)
    }

    /// Everything: `{workspace: {type: {key: value}}}`.
    pub fn all(&self) -> Result<BTreeMap<String, WorkspaceConfig>, StoreError> {
        let mut out = BTreeMap::<String, WorkspaceConfig>::new();
        for item in self.entries.iter()? {
            let (entry_key, value) = item?;
            let (workspace, kind, key) = entry_key.value();
            out.entry(workspace.to_owned())
                .or_default()
                .entry(kind.to_owned())
                .or_default()
                .insert(key.to_owned(), value.value().to_owned());
        }
        Ok(out)
    }

    /// The config version: how many writes have been committed (inside an update, counting
    /// its own once it has written).
    pub fn version(&self) -> Result<u64, StoreError> {
        Ok(self.meta.get(VERSION)?.map(|version| version.value()).unwrap_or(0))
    }
}
