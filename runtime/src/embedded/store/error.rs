//! [`StoreError`]: why the store could not be opened, read or written, and how redb's many
//! error types fold into it. Opening tells a file in use, a file that is not a store and any
//! other failure apart ([`open_error`], [`table_error`]); once open, every failure is
//! [`StoreError::Storage`].

use std::path::{Path, PathBuf};

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

/// Why redb could not open the file at `path`.
pub(super) fn open_error(path: &Path, err: redb::DatabaseError) -> StoreError {
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

/// Why one of our tables could not be opened in the file at `path`.
pub(super) fn table_error(path: &Path, err: redb::TableError) -> StoreError {
    match err {
        redb::TableError::TableTypeMismatch { .. } | redb::TableError::TableIsMultimap(_) => StoreError::NotAStore {
            path: path.to_owned(),
            reason: format!("a redb database with other tables ({err})"),
        },
        other => StoreError::Open { path: path.to_owned(), source: other.into() },
    }
}
