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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::group_commit::{DEFAULT_SYNC_WINDOW, GroupCommit};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

/// The most of the store's pages redb keeps in memory (docs/operations.md, "Memory").
pub const STORE_CACHE_BYTES: usize = 16 << 20;

/// `(workspace, type, key)`. redb orders tuple keys element by element and `&str` by bytes, so a
/// range scan from `(ws, type, "")` walks one type's keys in sorted order.
type EntryKey = (&'static str, &'static str, &'static str);

const ENTRIES: TableDefinition<EntryKey, &str> = TableDefinition::new("config");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const VERSION: &str = "version";

/// `{type: {key: value}}` of one workspace.
pub type WorkspaceConfig = BTreeMap<String, BTreeMap<String, String>>;

/// Why the store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (or another handle in this one) has the file open.
    #[error(
        "config store {} is in use by another process (redb allows one writer per file): stop \
         that process or choose another path",
        path.display()
    )]
    Locked { path: PathBuf },
    /// The file exists but is not a redb database, is damaged, or is a redb database with
    /// tables of other types under our table names.
    #[error("{} is not a config store: {reason}", path.display())]
    NotAStore { path: PathBuf, reason: String },
    /// Any other failure to open (missing directory, permissions, I/O).
    #[error("cannot open config store {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    /// A read or write on an open store failed.
    #[error("config store failure: {0}")]
    Storage(#[source] redb::Error),
}

// redb has one error type per kind of call; they all fold into `redb::Error`.
macro_rules! storage_error_from {
    ($($ty:ty),*) => {$(
        impl From<$ty> for StoreError {
            fn from(err: $ty) -> Self {
                StoreError::Storage(err.into())
            }
        }
    )*};
}
storage_error_from!(
    redb::Error,
    redb::StorageError,
    redb::TransactionError,
    redb::TableError,
    redb::CommitError,
    redb::SetDurabilityError
);

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
        Ok(Snapshot { entries: txn.open_table(ENTRIES)?, meta: txn.open_table(META)? })
    }

    /// One value, `None` if the key does not exist.
    pub fn get(&self, workspace: &str, kind: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.snapshot()?.get(workspace, kind, key)
    }

    /// The keys of one type in one workspace, sorted.
    pub fn keys(&self, workspace: &str, kind: &str) -> Result<Vec<String>, StoreError> {
        self.snapshot()?.keys(workspace, kind)
    }

    /// `(key, value)` of one type in one workspace, sorted by key.
    pub fn values(&self, workspace: &str, kind: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.snapshot()?.values(workspace, kind)
    }

    /// `(workspace, key, value)` of one type across every workspace, sorted.
    pub fn values_all_workspaces(&self, kind: &str) -> Result<Vec<(String, String, String)>, StoreError> {
        self.snapshot()?.values_all_workspaces(kind)
    }

    /// Everything in one workspace; empty for an unknown workspace.
    pub fn workspace(&self, workspace: &str) -> Result<WorkspaceConfig, StoreError> {
        self.snapshot()?.workspace(workspace)
    }

    /// Everything: `{workspace: {type: {key: value}}}`.
    pub fn all(&self) -> Result<BTreeMap<String, WorkspaceConfig>, StoreError> {
        self.snapshot()?.all()
    }

    /// The config version: how many writes have been committed.
    pub fn version(&self) -> Result<u64, StoreError> {
        self.snapshot()?.version()
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

    fn write<T, E>(&self, always_bump: bool, body: impl FnOnce(&mut Update<'_>) -> Result<T, E>) -> Result<T, E>
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
            let mut update = Update { entries, meta, wrote: always_bump, bumped: false };
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

impl Drop for ConfigStore {
    fn drop(&mut self) {
        if let Err(error) = self.group_commit.close(&self.db) {
            tracing::error!("config store {}: the last writes could not be made durable: {error}", self.path.display());
        }
    }
}

/// Create a new store at `path` whole: set up in a temporary file beside it, then renamed into
/// place. redb writes a new file's header in several steps, and a process killed between them
/// (SIGKILL, found by tests/crash.rs) left a file that is not a redb database, which no later
/// start could open.
fn create(path: &Path) -> Result<(), StoreError> {
    let failed =
        |err: std::io::Error| StoreError::Open { path: path.to_owned(), source: redb::StorageError::Io(err).into() };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let staged =
        tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".creating").tempfile_in(dir).map_err(failed)?;
    let db = redb::Database::create(staged.path()).map_err(|err| open_error(path, err))?;
    create_tables(&db, path)?;
    drop(db);
    staged.as_file().sync_all().map_err(failed)?;
    let placed = if path.exists() {
        // An empty file (nothing was ever stored in it): replace it.
        staged.persist(path).map(drop)
    } else {
        staged.persist_noclobber(path).map(drop)
    };
    match placed {
        Ok(()) => {}
        // Another process created it meanwhile: theirs stands (the staged file is removed).
        Err(err) if err.error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(failed(err.error)),
    }
    // The rename itself must survive a machine crash too.
    std::fs::File::open(dir).and_then(|dir| dir.sync_all()).map_err(failed)
}

/// Create both tables if missing, so reads never meet a missing table.
fn create_tables(db: &redb::Database, path: &Path) -> Result<(), StoreError> {
    let open_failed = |err: redb::Error| StoreError::Open { path: path.to_owned(), source: err };
    let txn = db.begin_write().map_err(|err| open_failed(err.into()))?;
    txn.open_table(ENTRIES).map_err(|err| table_error(path, err))?;
    txn.open_table(META).map_err(|err| table_error(path, err))?;
    txn.commit().map_err(|err| open_failed(err.into()))
}

fn open_error(path: &Path, err: redb::DatabaseError) -> StoreError {
    let path = path.to_owned();
    match err {
        redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch => {
            StoreError::Locked { path }
        }
        redb::DatabaseError::UpgradeRequired(format) => StoreError::NotAStore {
            path,
            reason: format!("it is in redb file format {format}, which this redb cannot read"),
        },
        // redb reports a file that is not a redb database as InvalidData.
        redb::DatabaseError::Storage(redb::StorageError::Io(err)) if err.kind() == std::io::ErrorKind::InvalidData => {
            StoreError::NotAStore { path, reason: err.to_string() }
        }
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(reason)) => {
            StoreError::NotAStore { path, reason: format!("a damaged redb database ({reason})") }
        }
        other => StoreError::Open { path, source: other.into() },
    }
}

fn table_error(path: &Path, err: redb::TableError) -> StoreError {
    match err {
        redb::TableError::TableTypeMismatch { .. } | redb::TableError::TableIsMultimap(_) => StoreError::NotAStore {
            path: path.to_owned(),
            reason: format!("a redb database with other tables ({err})"),
        },
        other => StoreError::Open { path: path.to_owned(), source: other.into() },
    }
}

/// A read-only view of the store at one instant.
pub struct Snapshot {
    entries: redb::ReadOnlyTable<EntryKey, &'static str>,
    meta: redb::ReadOnlyTable<&'static str, u64>,
}

impl Snapshot {
    pub fn get(&self, workspace: &str, kind: &str, key: &str) -> Result<Option<String>, StoreError> {
        read_get(&self.entries, workspace, kind, key)
    }

    pub fn keys(&self, workspace: &str, kind: &str) -> Result<Vec<String>, StoreError> {
        Ok(read_values(&self.entries, workspace, kind)?.into_iter().map(|(key, _)| key).collect())
    }

    pub fn values(&self, workspace: &str, kind: &str) -> Result<Vec<(String, String)>, StoreError> {
        read_values(&self.entries, workspace, kind)
    }

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

    pub fn version(&self) -> Result<u64, StoreError> {
        read_version(&self.meta)
    }
}

/// The inside of one write transaction (see [`ConfigStore::update`]).
pub struct Update<'txn> {
    entries: redb::Table<'txn, EntryKey, &'static str>,
    meta: redb::Table<'txn, &'static str, u64>,
    wrote: bool,
    bumped: bool,
}

impl Update<'_> {
    pub fn get(&self, workspace: &str, kind: &str, key: &str) -> Result<Option<String>, StoreError> {
        read_get(&self.entries, workspace, kind, key)
    }

    pub fn keys(&self, workspace: &str, kind: &str) -> Result<Vec<String>, StoreError> {
        Ok(read_values(&self.entries, workspace, kind)?.into_iter().map(|(key, _)| key).collect())
    }

    pub fn put(&mut self, workspace: &str, kind: &str, key: &str, value: &str) -> Result<(), StoreError> {
        self.bump()?;
        self.entries.insert((workspace, kind, key), value)?;
        Ok(())
    }

    /// Deletes one key; deleting a missing key is not an error (as in Cassandra).
    pub fn delete(&mut self, workspace: &str, kind: &str, key: &str) -> Result<(), StoreError> {
        self.bump()?;
        self.entries.remove((workspace, kind, key))?;
        Ok(())
    }

    /// The version as this transaction sees it: bumped once it has written.
    pub fn version(&self) -> Result<u64, StoreError> {
        read_version(&self.meta)
    }

    // Once per transaction: a write of many keys is one config change, as upstream counts it.
    fn bump(&mut self) -> Result<(), StoreError> {
        if !self.bumped {
            let next = read_version(&self.meta)? + 1;
            self.meta.insert(VERSION, next)?;
            self.bumped = true;
            self.wrote = true;
        }
        Ok(())
    }
}

fn read_get(
    entries: &impl ReadableTable<EntryKey, &'static str>,
    workspace: &str,
    kind: &str,
    key: &str,
) -> Result<Option<String>, StoreError> {
    Ok(entries.get((workspace, kind, key))?.map(|value| value.value().to_owned()))
}

fn read_values(
    entries: &impl ReadableTable<EntryKey, &'static str>,
    workspace: &str,
    kind: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut out = Vec::new();
    for item in entries.range((workspace, kind, "")..)? {
        let (entry_key, value) = item?;
        let (entry_workspace, entry_kind, key) = entry_key.value();
        if entry_workspace != workspace || entry_kind != kind {
            break;
        }
        out.push((key.to_owned(), value.value().to_owned()));
    }
    Ok(out)
}

fn read_version(meta: &impl ReadableTable<&'static str, u64>) -> Result<u64, StoreError> {
    Ok(meta.get(VERSION)?.map(|version| version.value()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_temp() -> (tempfile::TempDir, ConfigStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ConfigStore::open(&dir.path().join("config.redb")).unwrap();
        (dir, store)
    }

    #[test]
    fn put_get_list_and_version() {
        let (_dir, store) = open_temp();
        assert_eq!(store.version().unwrap(), 0);
        let version = store.put_many("w", [("prompt", "b", "2"), ("prompt", "a", "1"), ("schema", "s", "x")]).unwrap();
        assert_eq!(version, 1);
        assert_eq!(store.version().unwrap(), 1);
        assert_eq!(store.get("w", "prompt", "a").unwrap().as_deref(), Some("1"));
        assert_eq!(store.get("w", "prompt", "zz").unwrap(), None);
        assert_eq!(store.get("other", "prompt", "a").unwrap(), None);
        assert_eq!(store.keys("w", "prompt").unwrap(), ["a", "b"]);
        assert_eq!(
            store.values("w", "prompt").unwrap(),
            [("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned())]
        );
        assert!(store.keys("w", "missing").unwrap().is_empty());
    }

    #[test]
    fn prefix_scans_do_not_leak_into_neighbours() {
        let (_dir, store) = open_temp();
        // Workspaces and types that are prefixes of one another must stay apart.
        store.put_many("w", [("t", "k", "1"), ("tt", "k", "2")]).unwrap();
        store.put_many("ww", [("t", "k", "3")]).unwrap();
        store.put_many("", [("t", "k", "4")]).unwrap();
        assert_eq!(store.values("w", "t").unwrap(), [("k".to_owned(), "1".to_owned())]);
        let ws = store.workspace("w").unwrap();
        assert_eq!(ws.len(), 2);
        assert_eq!(ws["tt"]["k"], "2");
        assert!(store.workspace("nope").unwrap().is_empty());
        let all = store.all().unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["", "w", "ww"]);
        assert_eq!(
            store.values_all_workspaces("t").unwrap(),
            [
                ("".to_owned(), "k".to_owned(), "4".to_owned()),
                ("w".to_owned(), "k".to_owned(), "1".to_owned()),
                ("ww".to_owned(), "k".to_owned(), "3".to_owned()),
            ]
        );
    }

    #[test]
    fn delete_many_and_version_counting() {
        let (_dir, store) = open_temp();
        store.put_many("w", [("t", "a", "1"), ("t", "b", "2"), ("t", "c", "3")]).unwrap();
        assert_eq!(store.delete_many("w", [("t", "a"), ("t", "c"), ("t", "missing")]).unwrap(), 2);
        assert_eq!(store.keys("w", "t").unwrap(), ["b"]);
        // Upstream bumps the version for every put/delete request, even an empty one.
        assert_eq!(store.put_many("w", Vec::<(&str, &str, &str)>::new()).unwrap(), 3);
        assert_eq!(store.delete_many("w", Vec::<(&str, &str)>::new()).unwrap(), 4);
    }

    #[test]
    fn a_refused_update_writes_nothing() {
        let (_dir, store) = open_temp();
        store.put_many("w", [("t", "keep", "old")]).unwrap();
        let result: Result<(), StoreError> = store.update(|update| {
            update.put("w", "t", "new", "1")?;
            update.put("w", "t", "keep", "changed")?;
            update.delete("w", "t", "keep")?;
            // Reads inside the transaction see its own writes...
            assert_eq!(update.get("w", "t", "new")?.as_deref(), Some("1"));
            // ...and a failure part-way through throws them all away.
            Err(StoreError::Storage(redb::Error::TransactionInProgress))
        });
        assert!(result.is_err());
        assert_eq!(store.keys("w", "t").unwrap(), ["keep"]);
        assert_eq!(store.get("w", "t", "keep").unwrap().as_deref(), Some("old"));
        assert_eq!(store.version().unwrap(), 1);
    }

    #[test]
    fn update_without_writes_keeps_the_version() {
        let (_dir, store) = open_temp();
        let keys = store.update(|update| update.keys("w", "t")).unwrap();
        assert!(keys.is_empty());
        assert_eq!(store.version().unwrap(), 0);
    }

    #[test]
    fn survives_close_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.redb");
        {
            let store = ConfigStore::open(&path).unwrap();
            store.put_many("w", [("t", "k", "v")]).unwrap();
            store.delete_many("w", [("t", "gone")]).unwrap();
        }
        let store = ConfigStore::open(&path).unwrap();
        assert_eq!(store.get("w", "t", "k").unwrap().as_deref(), Some("v"));
        assert_eq!(store.version().unwrap(), 2);
    }

    #[test]
    fn a_second_open_is_refused_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.redb");
        let _first = ConfigStore::open(&path).unwrap();
        let err = ConfigStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
        assert!(err.to_string().contains("in use by another process"), "{err}");
    }

    #[test]
    fn a_foreign_file_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in [
            ("short.txt", b"hi\n".to_vec()),
            ("notes.txt", b"this is not a database\n".repeat(400)),
            ("zeros.bin", vec![0u8; 8192]),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, &content).unwrap();
            let err = ConfigStore::open(&path).unwrap_err();
            assert!(matches!(err, StoreError::NotAStore { .. }), "{name}: {err:?}");
            assert!(err.to_string().contains("is not a config store"), "{err}");
            assert_eq!(std::fs::read(&path).unwrap(), content, "{name} was modified");
        }
    }

    #[test]
    fn a_redb_file_with_other_tables_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.redb");
        {
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(TableDefinition::<u64, u64>::new("config")).unwrap();
            txn.commit().unwrap();
        }
        let err = ConfigStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::NotAStore { .. }), "{err:?}");
    }

    #[test]
    fn a_new_store_appears_whole_and_an_empty_file_is_taken_as_new() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.redb");
        drop(ConfigStore::open(&path).unwrap());
        // Only the store itself: the staged file was renamed into place.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["config.redb"]);

        let empty = dir.path().join("empty.redb");
        std::fs::write(&empty, b"").unwrap();
        let store = ConfigStore::open(&empty).unwrap();
        store.put_many("ws", [("t", "k", "v")]).unwrap();
        assert_eq!(store.get("ws", "t", "k").unwrap().as_deref(), Some("v"));
    }

    #[test]
    fn a_missing_directory_is_an_open_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = ConfigStore::open(&dir.path().join("no/such/dir/config.redb")).unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    }
}
