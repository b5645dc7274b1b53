//! The flags of a wake's clean runs, stored in batches: one `put` for many.
//!
//! A batch is stored as soon as its oldest flag has waited [`FLAG_BATCH_WINDOW`] or it holds
//! [`FLAG_BATCH_MAX`] flags, and at the end of the wake; why, see [`crate::reconcile`]. Each
//! flag's outcome is logged inside its run's span, so "completed" reads as part of the run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};

use super::Outcome;
use crate::flag::FlagStore;
use crate::initialiser::Initialiser;
use crate::services::{ConfigClient, ServiceError};

/// How long a clean run's flag may wait to be stored with others.
pub const FLAG_BATCH_WINDOW: Duration = Duration::from_secs(1);

/// The most flags stored in one `put`.
const FLAG_BATCH_MAX: usize = 500;

/// Clean runs of this wake whose flags are not stored yet, each with its run's span (so that
/// "completed" is logged as part of the run).
#[derive(Default)]
pub(super) struct PendingFlags {
    runs: Vec<(usize, tracing::Span)>,
    oldest: Option<Instant>,
}

impl PendingFlags {
    pub(super) fn add(&mut self, index: usize, span: tracing::Span) {
        self.oldest.get_or_insert_with(Instant::now);
        self.runs.push((index, span));
    }

    /// When the oldest will have waited the window; `None` while nothing is pending.
    pub(super) fn flush_at(&self) -> Option<Instant> {
        self.oldest.map(|oldest| oldest + FLAG_BATCH_WINDOW)
    }

    /// Whether to store them before the next run.
    pub(super) fn due(&self) -> bool {
        self.runs.len() >= FLAG_BATCH_MAX || self.oldest.is_some_and(|oldest| oldest.elapsed() >= FLAG_BATCH_WINDOW)
    }

    /// Store every pending flag in one `put`, and put each run's outcome in `outcomes`, while
    /// the runs in flight go on: a run may hold what the `put` needs (a transport's lock, held
    /// across a publish), and lets go of it only if it is polled. Returns the runs that
    /// finished meanwhile, for the caller to take in as if they finished after.
    pub(super) async fn flush<R: Stream + Unpin>(
        &mut self,
        config: ConfigClient<'_>,
        initialisers: &[Arc<Initialiser>],
        outcomes: &mut [Option<Outcome>],
        running: &mut R,
    ) -> Vec<R::Item> {
        let store = std::mem::take(self).store(config, initialisers);
        tokio::pin!(store);
        let mut finished = Vec::new();
        let stored = loop {
            tokio::select! {
                stored = &mut store => break stored,
                Some(run) = running.next() => finished.push(run),
            }
        };
        for (index, outcome) in stored {
            outcomes[index] = Some(outcome);
        }
        finished
    }

    /// Store every pending flag in one `put`; returns each run's outcome.
    pub(super) async fn store(
        self,
        config: ConfigClient<'_>,
        initialisers: &[Arc<Initialiser>],
    ) -> Vec<(usize, Outcome)> {
        if self.runs.is_empty() {
            return Vec::new();
        }
        let flags = self.runs.iter().map(|(index, _)| &initialisers[*index]).map(|init| (&*init.name, &init.flag));
        let result = FlagStore(config).store(flags).await;
        let outcome = |(index, span): (usize, tracing::Span)| {
            let init = &initialisers[index];
            (index, span.in_scope(|| stored_outcome(init, &result)))
        };
        self.runs.into_iter().map(outcome).collect()
    }
}

pub(super) async fn store_flag(config: ConfigClient<'_>, init: &Initialiser) -> Outcome {
    stored_outcome(init, &FlagStore(config).store([(&*init.name, &init.flag)]).await)
}

/// What storing `init`'s flag came to, logged.
fn stored_outcome(init: &Initialiser, result: &Result<(), ServiceError>) -> Outcome {
    match result {
        Ok(()) => {
            tracing::info!(initialiser = %init.name, "completed (flag={:?})", init.flag.to_string());
            Outcome::Ran
        }
        Err(e) => {
            tracing::warn!(initialiser = %init.name, "completed but could not store its flag ({e}); it will run again");
            Outcome::FlagNotStored(e.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_flags_are_due_after_the_window_or_at_the_batch_limit() {
        let mut pending = PendingFlags::default();
        assert!(!pending.due(), "nothing pending");
        pending.add(0, tracing::Span::none());
        assert!(!pending.due(), "fresh");
        pending.oldest = Instant::now().checked_sub(FLAG_BATCH_WINDOW);
        assert!(pending.due(), "waited the window");

        let mut many = PendingFlags::default();
        for index in 0..FLAG_BATCH_MAX {
            assert!(!many.due(), "due at {index}");
            many.add(index, tracing::Span::none());
        }
        assert!(many.due());
    }
}
