//! Requests waiting for their answer, by key: the one pattern behind the request/response
//! client's correlation ids and the Pulsar connection's request ids, send receipts and pings.
//!
//! A caller [`register`](Waiters::register)s its key before the request goes out (so that an
//! answer arriving at once finds it), then [`wait`](Waiter::wait)s with a timeout. Whoever reads
//! the answers hands each to its waiter with [`answer`](Waiters::answer). However the wait ends
//! (answer, timeout, the caller's future dropped) the key is forgotten, and when the answers
//! stop coming (the connection or subscription ended) [`abandon_all`](Waiters::abandon_all)
//! wakes every waiter at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

/// The waiters, by key; see the module's documentation.
pub struct Waiters<K, T> {
    waiting: Mutex<HashMap<K, oneshot::Sender<T>>>,
}

/// Why a wait ended without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// No answer within the timeout.
    TimedOut,
    /// The waiter was abandoned: nothing will answer it any more.
    Abandoned,
}

/// One registered key; forgets it when dropped.
pub struct Waiter<'a, K: Eq + Hash, T> {
    waiters: &'a Waiters<K, T>,
    key: K,
    answer: oneshot::Receiver<T>,
}

impl<K: Eq + Hash + Clone, T> Waiters<K, T> {
    /// Wait for the answer to `key`, replacing whoever waited for it before.
    pub fn register(&self, key: K) -> Waiter<'_, K, T> {
        let (sender, answer) = oneshot::channel();
        self.waiting.lock().unwrap().insert(key.clone(), sender);
        Waiter { waiters: self, key, answer }
    }

    /// Hand `value` to the waiter for `key`; whether there was one.
    pub fn answer(&self, key: &K, value: T) -> bool {
        let Some(waiter) = self.waiting.lock().unwrap().remove(key) else {
            return false;
        };
        // It may have given up meanwhile; it was waiting all the same.
        let _ = waiter.send(value);
        true
    }

    /// Hand each waiter whose key `matches` the value `make` makes.
    pub fn answer_where(&self, mut matches: impl FnMut(&K) -> bool, make: impl Fn() -> T) {
        let answered: Vec<_> = self.waiting.lock().unwrap().extract_if(|key, _| matches(key)).collect();
        for (_, waiter) in answered {
            let _ = waiter.send(make());
        }
    }

    /// Wake every waiter with [`Unanswered::Abandoned`].
    pub fn abandon_all(&self) {
        self.waiting.lock().unwrap().clear();
    }
}

impl<K, T> Default for Waiters<K, T> {
    fn default() -> Self {
        Self { waiting: Mutex::default() }
    }
}

impl<K: Eq + Hash, T> Waiter<'_, K, T> {
    /// The answer, if it comes within `timeout`; a wait that times out may wait again.
    pub async fn wait(&mut self, timeout: Duration) -> Result<T, Unanswered> {
        match tokio::time::timeout(timeout, &mut self.answer).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_abandoned)) => Err(Unanswered::Abandoned),
            Err(_elapsed) => Err(Unanswered::TimedOut),
        }
    }
}

impl<K: Eq + Hash, T> Drop for Waiter<'_, K, T> {
    fn drop(&mut self) {
        self.waiters.waiting.lock().unwrap().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOON: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn an_answer_reaches_its_waiter_only() {
        let waiters = Waiters::default();
        let (mut one, mut two) = (waiters.register(1), waiters.register(2));
        assert!(waiters.answer(&2, "two"));
        assert!(!waiters.answer(&3, "nobody"));
        assert_eq!(two.wait(SOON).await, Ok("two"));
        waiters.answer_where(|key| *key <= 1, || "one");
        assert_eq!(one.wait(SOON).await, Ok("one"));
    }

    #[tokio::test]
    async fn a_wait_that_ends_forgets_its_key() {
        let waiters = Waiters::<u64, ()>::default();
        assert_eq!(waiters.register(1).wait(Duration::from_millis(1)).await, Err(Unanswered::TimedOut));
        drop(waiters.register(2));
        assert!(!waiters.answer(&1, ()) && !waiters.answer(&2, ()), "both keys are forgotten");
    }

    #[tokio::test]
    async fn a_wait_that_timed_out_may_wait_again() {
        let waiters = Waiters::default();
        let mut waiter = waiters.register(1);
        assert_eq!(waiter.wait(Duration::from_millis(1)).await, Err(Unanswered::TimedOut));
        assert!(waiters.answer(&1, "late"), "the key is still awaited");
        assert_eq!(waiter.wait(SOON).await, Ok("late"));
    }

    #[tokio::test]
    async fn abandoning_wakes_every_waiter() {
        let waiters = Waiters::<u64, ()>::default();
        let mut waiting = waiters.register(1);
        waiters.abandon_all();
        assert_eq!(waiting.wait(SOON).await, Err(Unanswered::Abandoned));
    }
}
