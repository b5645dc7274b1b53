//! One value per key, made once however many ask for it at the same time: the client's
//! connections by broker, the transport's producers by topic.
//!
//! Making a value (opening a connection, creating a producer) is I/O that may take up to a
//! timeout, so no lock is held meanwhile: making one key's value never delays the users of
//! another key. Whoever asks for a key while its value is being made waits for that one attempt
//! and shares its outcome, success or failure, as Pulsar's Java client shares a connection's
//! pending future. If the one making it gives up (its future is dropped), the next waiter makes
//! it instead. A value no longer usable (a connection that ended, a producer the broker closed)
//! and a failed attempt are replaced by the next caller's attempt.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::error::PulsarError;

/// The values, by key; see the module's documentation.
pub(crate) struct Pool<K, V> {
    entries: Mutex<HashMap<K, Arc<Entry<V>>>>,
}

/// A key's value: being made while empty, then made or failed.
type Entry<V> = OnceCell<Result<V, PulsarError>>;

impl<K: Eq + Hash + Clone, V: Clone> Pool<K, V> {
    /// `key`'s value if it is made and `usable`, else the one being made, else the one `make`
    /// makes.
    pub(crate) async fn get_or_make<F>(
        &self,
        key: &K,
        usable: impl Fn(&V) -> bool,
        make: impl FnOnce() -> F,
    ) -> Result<V, PulsarError>
    where
        F: Future<Output = Result<V, PulsarError>>,
    {
        let entry = self.entry(key, usable);
        entry.get_or_init(make).await.clone()
    }

    /// `key`'s entry, a fresh one in place of a failed attempt or a value no longer `usable`.
    fn entry(&self, key: &K, usable: impl Fn(&V) -> bool) -> Arc<Entry<V>> {
        let mut entries = self.entries.lock().unwrap();
        let entry = entries.entry(key.clone()).or_default();
        if entry.get().is_some_and(|made| !made.as_ref().is_ok_and(&usable)) {
            *entry = Arc::default();
        }
        entry.clone()
    }

    /// Forget `key`'s value if it is the one `is_it` recognises (and not a newer one), so that
    /// the next caller makes another.
    pub(crate) fn forget(&self, key: &K, is_it: impl Fn(&V) -> bool) {
        let mut entries = self.entries.lock().unwrap();
        if entries.get(key).and_then(|entry| entry.get()).is_some_and(|made| made.as_ref().is_ok_and(is_it)) {
            entries.remove(key);
        }
    }

    /// Every value made, leaving the pool empty. Attempts under way are left to their waiters.
    pub(crate) fn drain(&self) -> Vec<V> {
        let entries = std::mem::take(&mut *self.entries.lock().unwrap());
        entries.into_values().filter_map(|entry| entry.get().and_then(|made| made.clone().ok())).collect()
    }
}

impl<K, V> Default for Pool<K, V> {
    fn default() -> Self {
        Self { entries: Mutex::default() }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn making_one_key_does_not_delay_another() {
        let pool = Pool::<&str, u32>::default();
        let slow = pool.get_or_make(&"slow", |_| true, std::future::pending);
        let quick =
            tokio::time::timeout(Duration::from_secs(5), pool.get_or_make(&"quick", |_| true, || async { Ok(1) }));
        tokio::select! {
            _ = slow => unreachable!("never made"),
            quick = quick => assert_eq!(quick, Ok(Ok(1)), "made while the other key is being made"),
        }
    }

    #[tokio::test]
    async fn callers_at_the_same_time_share_one_attempt_and_its_failure() {
        let pool = Pool::<&str, u32>::default();
        let attempts = AtomicUsize::new(0);
        let fail = || async {
            attempts.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(PulsarError::Timeout(Duration::from_millis(50)))
        };
        let (one, two) = tokio::join!(pool.get_or_make(&"k", |_| true, fail), pool.get_or_make(&"k", |_| true, fail));
        assert!(one.is_err() && two.is_err());
        assert_eq!(attempts.load(Ordering::Relaxed), 1, "the second caller waited for the first's attempt");

        let made = pool.get_or_make(&"k", |_| true, || async { Ok(7) }).await;
        assert_eq!(made, Ok(7), "a failed attempt is not kept");
    }

    #[tokio::test]
    async fn a_value_no_longer_usable_or_forgotten_is_made_anew() {
        let pool = Pool::<&str, u32>::default();
        assert_eq!(pool.get_or_make(&"k", |_| true, || async { Ok(1) }).await, Ok(1));
        assert_eq!(pool.get_or_make(&"k", |_| true, || async { Ok(2) }).await, Ok(1), "kept");
        assert_eq!(pool.get_or_make(&"k", |v| *v != 1, || async { Ok(2) }).await, Ok(2), "replaced");
        pool.forget(&"k", |v| *v == 1);
        assert_eq!(pool.get_or_make(&"k", |_| true, || async { Ok(3) }).await, Ok(2), "not the one forgotten");
        pool.forget(&"k", |v| *v == 2);
        assert_eq!(pool.get_or_make(&"k", |_| true, || async { Ok(3) }).await, Ok(3));
        assert_eq!(pool.drain(), [3]);
        assert!(pool.drain().is_empty());
    }
}
