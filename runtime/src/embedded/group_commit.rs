//! Group commit: every write commits at once, and the writes of a short window are made
//! durable together with one `fsync`.
//!
//! Why: with one `fsync` per write, converging many tenants spends almost all its time waiting
//! for the disk (docs/performance.md, "Scale and steady state"). TrustGraph's own config store (Cassandra) does not sync
//! each write either; it syncs its commit log every 10 s by default.
//!
//! What a crash can lose, and why that is safe: a write is committed with redb's
//! `Durability::None` (visible to every later read at once), and a background thread makes it
//! durable within the sync window ([`DEFAULT_SYNC_WINDOW`]) by an empty `Durability::Immediate` commit, which
//! persists every commit before it. Closing the store does the same. redb's commits are
//! ordered and, after a crash, the file holds exactly the commits up to the last durable one:
//! a prefix of the history. The loop stores a flag only after its initialiser's work is
//! committed, so a crash can lose the last moments of work and flags together, never a flag
//! without its work; the initialiser then runs again on the next start. A window of zero
//! makes every write durable before it returns, as a plain redb commit does.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a committed write may wait before it is durable, unless the operator says otherwise
/// (`--state-sync`).
pub const DEFAULT_SYNC_WINDOW: Duration = Duration::from_millis(200);

/// Whether there are committed writes not yet durable, shared with the syncing thread.
pub(super) struct GroupCommit {
    window: Duration,
    state: Mutex<State>,
    changed: Condvar,
    /// The syncing thread, joined on close so that the file is released when the store is.
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    /// When the oldest write not yet durable was committed.
    dirty_since: Option<Instant>,
    /// The store is closing: the thread ends.
    closed: bool,
}

impl GroupCommit {
    /// Start the thread that makes writes durable, for as long as `db` lives.
    pub(super) fn start(db: Weak<redb::Database>, window: Duration) -> Arc<Self> {
        let group =
            Arc::new(Self { window, state: Mutex::default(), changed: Condvar::new(), thread: Mutex::default() });
        let shared = group.clone();
        let thread = std::thread::Builder::new()
            .name("bootstrap-wasm-store-sync".into())
            .spawn(move || shared.sync_loop(&db))
            .expect("cannot start the config store's sync thread");
        *group.thread.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(thread);
        group
    }

    /// Whether writes are made durable one by one, as they commit.
    pub(super) fn syncs_each_write(&self) -> bool {
        self.window.is_zero()
    }

    /// A non-durable write was just committed.
    pub(super) fn wrote(&self) {
        let mut state = self.state();
        if state.dirty_since.is_none() {
            state.dirty_since = Some(Instant::now());
            self.changed.notify_one();
        }
    }

    /// Make every write so far durable now, if any is not yet; then stop the thread.
    pub(super) fn close(&self, db: &redb::Database) -> Result<(), redb::Error> {
        let result = self.sync(db);
        self.state().closed = true;
        self.changed.notify_one();
        let thread = self.thread.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join(); // A panic there was already reported on stderr.
        }
        result
    }

    /// Make every write so far durable, if any is not yet.
    pub(super) fn sync(&self, db: &redb::Database) -> Result<(), redb::Error> {
        // Taking the write transaction first holds off other writers: no write can commit
        // between clearing the mark and the durable commit.
        let mut txn = db.begin_write()?;
        if self.state().dirty_since.take().is_none() {
            return Ok(()); // Dropping the empty transaction aborts it.
        }
        txn.set_durability(redb::Durability::Immediate)?;
        txn.commit().inspect_err(|_| self.wrote())?;
        Ok(())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is two plain fields: a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a committed write is not yet durable.
    #[cfg(test)]
    pub(super) fn is_dirty(&self) -> bool {
        self.state().dirty_since.is_some()
    }

    fn sync_loop(&self, db: &Weak<redb::Database>) {
        loop {
            let mut state = self.state();
            while !state.closed && state.dirty_since.is_none() {
                state = self.changed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            let Some(since) = state.dirty_since.filter(|_| !state.closed) else { return };
            let due = since + self.window;
            while let Some(left) = due.checked_duration_since(Instant::now()).filter(|left| !left.is_zero()) {
                if state.closed {
                    return;
                }
                state = self.changed.wait_timeout(state, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
            }
            drop(state);
            let Some(db) = db.upgrade() else { return };
            if let Err(error) = self.sync(&db) {
                tracing::error!("config store: cannot make writes durable: {error}");
                std::thread::sleep(self.window); // Then try again; the mark is still set.
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ConfigStore;

    #[test]
    fn writes_are_synced_without_a_close_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = ConfigStore::open(&path).unwrap();
        store.put_many("w", [("t", "k", "\"v\"")]).unwrap();
        assert!(store.group_commit.is_dirty());
        // The sync thread clears the mark once the write is durable (a hang guard, not a timing).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while store.group_commit.is_dirty() {
            assert!(std::time::Instant::now() < deadline, "the write was never synced");
            std::thread::sleep(super::DEFAULT_SYNC_WINDOW / 4);
        }
        store.put_many("w", [("t", "k2", "\"v2\"")]).unwrap();
        drop(store);
        let reopened = ConfigStore::open(&path).unwrap();
        assert_eq!(reopened.snapshot().unwrap().get("w", "t", "k2").unwrap().as_deref(), Some("\"v2\""));
    }
}
