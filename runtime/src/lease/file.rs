//! The embedded backend's lease: an exclusive lock on `<state>.lock`, beside the state file.
//!
//! The lock (`flock` on Linux, std's `File::lock`) belongs to the open file; the kernel
//! releases it when the holder exits, SIGKILL included, and a standby blocked in `lock` gets
//! it at once. It must be taken before the store is opened: redb itself refuses a second
//! opener with an error rather than waiting. The lock is never lost while held, so a held
//! file lease stays [`LeaseState::Held`] until dropped.
//!
//! The blocking wait runs on a thread of its own rather than tokio's blocking pool: the
//! runtime waits for its blocking tasks when it shuts down, and a standby asked to stop
//! while waiting must exit at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use tokio::sync::{oneshot, watch};

use super::{Lease, LeaseError, LeaseState};

/// The lock file for the store at `state`: `state.redb` → `state.redb.lock`.
pub fn lock_path(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Start taking the lease on the store at `state`. Fails only if the lock file cannot be
/// opened; waiting for another holder happens in the background.
pub fn lease(state: &Path) -> Result<Lease, LeaseError> {
    let path = lock_path(state);
    let failed = |source: std::io::Error| LeaseError::LockFile { path: path.clone(), source };
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(failed)?;
    let (sender, receiver) = watch::channel(LeaseState::Unknown);
    let immediate = match file.try_lock() {
        Ok(()) => true,
        Err(TryLockError::WouldBlock) => false,
        Err(TryLockError::Error(e)) => return Err(failed(e)),
    };
    let keeper = tokio::spawn(async move {
        let file = if immediate {
            file
        } else {
            sender.send_replace(LeaseState::Standby);
            match wait_for_lock(file).await {
                Ok(file) => file,
                Err(e) => {
                    sender.send_replace(LeaseState::Lapsed(format!("cannot lock the lock file: {e}")));
                    return;
                }
            }
        };
        sender.send_replace(LeaseState::Held);
        // Hold the lock (the open file) until the lease is dropped, which aborts this task.
        std::future::pending::<()>().await;
        drop(file);
    });
    Ok(Lease::new(receiver, keeper, format!("file lock {}", path.display())))
}

/// Lock `file`, waiting as long as another process holds it.
async fn wait_for_lock(file: File) -> std::io::Result<File> {
    let (done, result) = oneshot::channel();
    std::thread::Builder::new().name("lease-lock".into()).spawn(move || {
        let _ = done.send(file.lock().map(|()| file));
    })?;
    result.await.unwrap_or_else(|_| Err(std::io::Error::other("the locking thread ended")))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_lock_file_sits_beside_the_store() {
        assert_eq!(lock_path(Path::new("/data/state.redb")), Path::new("/data/state.redb.lock"));
    }

    #[tokio::test]
    async fn a_second_lease_waits_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.redb");
        let mut first = lease(&state).unwrap();
        first.acquired().await;

        // A lock belongs to its open file, so a second open in this process is refused too.
        let mut second = lease(&state).unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(200), second.acquired()).await;
        assert!(waited.is_err(), "the second lease was granted while the first was held");
        assert_eq!(*second.state.borrow(), LeaseState::Standby);

        drop(first);
        // A guard against hanging, not a timing assertion.
        tokio::time::timeout(Duration::from_secs(30), second.acquired()).await.expect("the second lease never came");
    }
}
