//! Writes. Every write is one redb write transaction, run by [`ConfigStore::write`]: the body
//! gets an [`Update`], which reads (seeing its own writes, through the same [`Tables`] a
//! [`Snapshot`](super::Snapshot) reads) and writes; the version is bumped once, in the same
//! transaction, when it first writes; and the transaction commits only if the body succeeds.
//! Commits are made durable in groups by [`group_commit`](super::super::group_commit).

use std::ops::Deref;

use super::read::Tables;
use super::schema::{ENTRIES, EntryKey, META, VERSION};
use super::{ConfigStore, StoreError};

/// The inside of one write transaction (see [`ConfigStore::update`]). It reads as a
/// [`Snapshot`](super::Snapshot) does (it derefs to the same [`Tables`]), seeing its own writes.
pub struct Update<'txn> {
    tables: Tables<redb::Table<'txn, EntryKey, &'static str>, redb::Table<'txn, &'static str, u64>>,
    wrote: bool,
    bumped: bool,
}

impl<'txn> Deref for Update<'txn> {
    type Target = Tables<redb::Table<'txn, EntryKey, &'static str>, redb::Table<'txn, &'static str, u64>>;

    fn deref(&self) -> &Self::Target {
        &self.tables
    }
}

impl Update<'_> {
    pub fn put(&mut self, workspace: &str, kind: &str, key: &str, value: &str) -> Result<(), StoreError> {
        self.bump()?;
        self.tables.entries.insert((workspace, kind, key), value)?;
        Ok(())
    }

    /// Deletes one key; deleting a missing key is not an error (as in Cassandra).
    pub fn delete(&mut self, workspace: &str, kind: &str, key: &str) -> Result<(), StoreError> {
        self.bump()?;
        self.tables.entries.remove((workspace, kind, key))?;
        Ok(())
    }

    // Once per transaction: a write of many keys is one config change, as upstream counts it.
    fn bump(&mut self) -> Result<(), StoreError> {
        if !self.bumped {
            let next = self.tables.version()? + 1;
            self.tables.meta.insert(VERSION, next)?;
            self.bumped = true;
            self.wrote = true;
        }
        Ok(())
    }
}

impl ConfigStore {
    /// Runs `body` in one write transaction (see [`ConfigStore::update`]); with `always_bump`
    /// the version is bumped, and the transaction committed, even if `body` writes nothing.
    pub(super) fn write<T, E>(
        &self,
        always_bump: bool,
        body: impl FnOnce(&mut Update<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut txn = self.db.begin_write().map_err(StoreError::from)?;
        if !self.group_commit.syncs_each_write() {
            txn.set_durability(redb::Durability::None).map_err(StoreError::from)?;
        }
        let (outcome, wrote) = {
            let entries = txn.open_table(ENTRIES).map_err(StoreError::from)?;
            let meta = txn.open_table(META).map_err(StoreError::from)?;
            let mut update = Update { tables: Tables { entries, meta }, wrote: always_bump, bumped: false };
            if always_bump {
                update.bump().map_err(E::from)?;
            }
            let outcome = body(&mut update);
            (outcome, update.wrote)
        };
        match outcome {
            Ok(value) if wrote => {
                txn.commit().map_err(StoreError::from)?;
                if !self.group_commit.syncs_each_write() {
                    self.group_commit.wrote();
                }
                Ok(value)
            }
            // Nothing to commit, or the body refused: dropping the transaction aborts it.
            Ok(value) => Ok(value),
            Err(err) => Err(err),
        }
    }
}
