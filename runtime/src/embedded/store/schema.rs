//! The store's two tables, and how a new store file is made.
//!
//! `config` holds every item as `(workspace, type, key) -> value`, as upstream's Cassandra
//! `config` table does; `meta` holds the config version under `"version"`, as upstream's
//! `version` table does. [`create`] makes a new file whole, so that a process killed while
//! making it never leaves a file no later start can open.

use std::path::Path;

use redb::TableDefinition;

use super::error::{StoreError, open_error, table_error};

/// `(workspace, type, key)`. redb orders tuple keys element by element and `&str` by bytes, so a
/// range scan from `(ws, type, "")` walks one type's keys in sorted order.
pub(super) type EntryKey = (&'static str, &'static str, &'static str);

pub(super) const ENTRIES: TableDefinition<EntryKey, &str> = TableDefinition::new("config");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The key of the config version in [`META`].
pub(super) const VERSION: &str = "version";

/// Create a new store at `path` whole: set up in a temporary file beside it, then renamed into
/// place. redb writes a new file's header in several steps, and a process killed between them
/// (SIGKILL, found by tests/crash.rs) left a file that is not a redb database, which no later
/// start could open.
pub(super) fn create(path: &Path) -> Result<(), StoreError> {
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
pub(super) fn create_tables(db: &redb::Database, path: &Path) -> Result<(), StoreError> {
    let open_failed = |err: redb::Error| StoreError::Open { path: path.to_owned(), source: err };
    let txn = db.begin_write().map_err(|err| open_failed(err.into()))?;
    txn.open_table(ENTRIES).map_err(|err| table_error(path, err))?;
    txn.open_table(META).map_err(|err| table_error(path, err))?;
    txn.commit().map_err(|err| open_failed(err.into()))
}
