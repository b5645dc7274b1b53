//! A run's log budget, shared by the `log` import and the guest's stdout and stderr.
//!
//! Every line a guest sends to the runtime's log, through `log` or its output streams, goes
//! through one [`GuestLog`]: under the initialiser's name, at most `limits.log_line_size` bytes
//! (a longer line is cut and marked), at most `limits.log_lines` lines per run. Past that the
//! rest is dropped and one notice says so. Within a line, control and bidirectional characters
//! are escaped ([`crate::guest_text`]). Lines at a level the log filter hides cost nothing.
//! The sandbox owns it because the output streams are WASI's; the `log` import gets it with
//! the rest of a call's state ([`super::Imports::for_call`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::guest_text::{clip, one_line};
use crate::policy::Limits;
use crate::wit::log::Level;

/// Where a guest's line came from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    Log,
    Stdout,
    Stderr,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Log => "log",
            Source::Stdout => "stdout",
            Source::Stderr => "stderr",
        }
    }
}

/// One run's log budget, shared by the `log` interface and both output streams.
pub struct GuestLog {
    initialiser: Arc<str>,
    max_lines: usize,
    line_size: usize,
    lines_left: AtomicUsize,
    exhausted_noticed: AtomicBool,
}

impl GuestLog {
    pub fn new(initialiser: Arc<str>, limits: &Limits) -> Arc<Self> {
        Arc::new(Self {
            initialiser,
            max_lines: limits.log_lines,
            line_size: limits.log_line_size,
            lines_left: AtomicUsize::new(limits.log_lines),
            exhausted_noticed: AtomicBool::new(false),
        })
    }

    /// The most bytes of one line that reach the log.
    pub fn line_size(&self) -> usize {
        self.line_size
    }

    /// Whether the run has lines left. Once it has not, everything more is dropped, and the
    /// first time this is asked then, one notice says so.
    pub fn has_room(&self, source: Source) -> bool {
        if self.lines_left.load(Ordering::Relaxed) > 0 {
            return true;
        }
        if !self.exhausted_noticed.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                initialiser = %self.initialiser,
                function = source.name(),
                limit = "limits.log_lines",
                "log limit of {} lines per run reached; the rest of this run's log lines are dropped",
                self.max_lines
            );
        }
        false
    }

    /// Log one line of guest text (without its newline) at `level`. `cut` counts bytes the
    /// caller already dropped from its end; the line is cut further to `line_size`.
    pub fn line(&self, level: Level, source: Source, text: &str, cut: usize) {
        if !level_enabled(level) {
            return;
        }
        let taken = self.lines_left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1));
        if taken.is_err() {
            // Another stream took the last line meanwhile.
            self.has_room(source);
            return;
        }
        let line = clip(text, self.line_size, cut);
        let line = one_line(&line);
        let initialiser = &*self.initialiser;
        let stream = match source {
            Source::Log => None,
            Source::Stdout | Source::Stderr => Some(source.name()),
        };
        match level {
            Level::Trace => tracing::trace!(initialiser, stream, "{line}"),
            Level::Debug => tracing::debug!(initialiser, stream, "{line}"),
            Level::Info => tracing::info!(initialiser, stream, "{line}"),
            Level::Warn => tracing::warn!(initialiser, stream, "{line}"),
            Level::Error => tracing::error!(initialiser, stream, "{line}"),
        }
    }
}

fn level_enabled(level: Level) -> bool {
    match level {
        Level::Trace => tracing::enabled!(tracing::Level::TRACE),
        Level::Debug => tracing::enabled!(tracing::Level::DEBUG),
        Level::Info => tracing::enabled!(tracing::Level::INFO),
        Level::Warn => tracing::enabled!(tracing::Level::WARN),
        Level::Error => tracing::enabled!(tracing::Level::ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_across_sources_until_the_budget_is_spent() {
        let limits = Limits { log_lines: 3, ..Limits::default() };
        let log = GuestLog::new("t".into(), &limits);
        // Without a subscriber every level is disabled, and costs nothing.
        log.line(Level::Info, Source::Stdout, "free", 0);
        assert_eq!(log.lines_left.load(Ordering::Relaxed), 3);

        let _guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt().with_max_level(tracing::Level::INFO).with_writer(std::io::sink).finish(),
        );
        log.line(Level::Debug, Source::Log, "hidden by the filter", 0);
        log.line(Level::Info, Source::Log, "one", 0);
        log.line(Level::Warn, Source::Stderr, "two", 0);
        assert!(log.has_room(Source::Log));
        log.line(Level::Info, Source::Stdout, "three", 0);
        assert!(!log.exhausted_noticed.load(Ordering::Relaxed));
        log.line(Level::Error, Source::Log, "dropped", 0);
        assert!(log.exhausted_noticed.load(Ordering::Relaxed));
        assert!(!log.has_room(Source::Stdout));
        assert_eq!(log.lines_left.load(Ordering::Relaxed), 0);
    }
}
