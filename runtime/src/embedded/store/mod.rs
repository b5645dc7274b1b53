//! The durable store behind the embedded config-svc and flow-svc: one redb file holding every
//! config item as `(workspace, type, key) -> value`, plus the config version counter.
//!
//! It plays the part of upstream's Cassandra `config` and `version` tables
//! (`trustgraph/tables/config.py`). Reads see one consistent snapshot ([`Snapshot`]); every
//! write is one redb write transaction ([`ConfigStore::update`]), so a multi-key put or delete
//! lands whole or not at all. It is durable within 200 ms (the sync window, which the
//! operator may change), or when the store is closed: writes
//! are synced to disk in groups, and a crash loses at most the last of them, never an earlier
//! write while keeping a later one (see [`group_commit`](super::group_commit)). The version is
//! bumped inside the same transaction as the write, so a reader never sees new data with an
//! old version or the reverse.
//!
//! redb locks the file for its one writer: a second process opening the same path gets
//! [`StoreError::Locked`] instead of corrupting it.
//!
//! The parts: [`schema`] is the two tables and how a new file is made; [`read`] is every read,
//! the same on a [`Snapshot`] and inside an [`Update`]; [`write`] runs a write transaction and
//! is the [`Update`]; [`error`] is [`StoreError`]. This module opens the store and holds it.

mod error;
mod read;
mod schema;
#[cfg(test)]
mod tests;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redb::ReadableDatabase;

use super::group_commit::{DEFAULT_SYNC_WINDOW, GroupCommit};

pub use error::StoreError;
use error::open_error;
pub use read::{Snapshot, Tables, WorkspaceConfig};
use schema::{ENTRIES, META, create, create_tables};
pub use write::Update;

/// The most of the store's pages redb keeps in memory (docs/operations.md, "Memory").
pub const STORE_CACHE_BYTES: usize = 16 << 20;

/// The config store. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct ConfigStore {
    db: Arc<redb::Database>,
    path: PathBuf,
    pub(super) group_commit: Arc<GroupCommit>,
}

impl std::fmt::Debug for ConfigStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl ConfigStore {
    /// Opens the store at `path`, creating the file (not its directory) if it does not exist;
    /// writes are durable within [`DEFAULT_SYNC_WINDOW`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_sync_window(path, DEFAULT_SYNC_WINDOW)
    }

    /// [`open`](Self::open), with writes durable within `window` (zero: before each returns).
    pub fn open_with_sync_window(path: &Path, window: Duration) -> Result<Self, StoreError> {
        // Missing, or empty: nothing was ever stored in it.
        if std::fs::metadata(path).map_or(true, |file| file.len() == 0) {
            create(path)?;
        }
        let db = redb::Builder::new()
            // Without it redb trusts a file that claims a clean shutdown and may panic on one
            // damaged outside redb; the check is cheap at config-store sizes.
            .set_check_integrity_on_open(true)
            // The pages it keeps in memory: redb's default (1 GiB) would let the runtime grow
            // with every large workspace a tenant reads; a config store's hot set is small.
            .set_cache_size(STORE_CACHE_BYTES)
            .create(path)
            .map_err(|err| open_error(path, err))?;
        // Also for a file made elsewhere: a redb file whose tables have other types is refused
        // now rather than on first use.
        create_tables(&db, path)?;
        let db = Arc::new(db);
        let group_commit = GroupCommit::start(Arc::downgrade(&db), window);
        Ok(Self { db, path: path.to_owned(), group_commit })
    }

    /// Make every write so far durable now (they all are within the sync window anyway).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.group_commit.sync(&self.db).map_err(StoreError::Storage)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A consistent read view of the whole store.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(Tables { entries: txn.open_table(ENTRIES)?, meta: txn.open_table(META)? })
    }

    /// Writes `(type, key, value)` entries into `workspace` in one transaction and bumps the
    /// version once, even for no entries (as upstream's `put` does). Later entries win over
    /// earlier ones with the same key. Returns the new version.
    pub fn put_many<I, T, K, V>(&self, workspace: &str, entries: I) -> Result<u64, StoreError>
    where
        I: IntoIterator<Item = (T, K, V)>,
        T: AsRef<str>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.write(true, |update| {
            for (kind, key, value) in entries {
                update.put(workspace, kind.as_ref(), key.as_ref(), value.as_ref())?;
            }
            update.version()
        })
    }

    /// Deletes `(type, key)` entries from `workspace` in one transaction and bumps the version
    /// once, even if none existed (as upstream's `delete` does). Returns the new version.
    pub fn delete_many<I, T, K>(&self, workspace: &str, keys: I) -> Result<u64, StoreError>
    where
        I: IntoIterator<Item = (T, K)>,
        T: AsRef<str>,
        K: AsRef<str>,
    {
        self.write(true, |update| {
            for (kind, key) in keys {
                update.delete(workspace, kind.as_ref(), key.as_ref())?;
            }
            update.version()
        })
    }

    /// Runs `body` inside one write transaction: it may read (seeing its own writes), check, and
    /// write. If it returns `Ok` the writes commit together and the version is bumped once
    /// (if it wrote anything); if it returns `Err` nothing is written. Writers are serialised,
    /// so a check made in `body` still holds when its writes commit.
    pub fn update<T, E>(&self, body: impl FnOnce(&mut Update<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.write(false, body)
    }
}

impl Drop for ConfigStore {
    fn drop(&mut self) {
        if let Err(error) = self.group_commit.close(&self.db) {
            tracing::error!("config store {}: the last writes could not be made durable: {error}", self.path.display());
        }
    }
}
