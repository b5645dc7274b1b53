//! A guest's stdout and stderr, sent line by line to the runtime's log under its name.
//!
//! Output is bounded per run: past `budget` bytes the rest is dropped and one notice says so,
//! so a guest cannot flood the operator's log.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Which of the guest's two output streams.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// One stream of one run. Clones share the budget with each other and the other stream.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    initialiser: Arc<str>,
    stream: Stream,
    budget: Arc<OutputBudget>,
}

/// Bytes a run may still write to its log, shared by stdout and stderr.
pub(crate) struct OutputBudget {
    remaining: AtomicUsize,
    exhausted_noticed: AtomicBool,
}

impl OutputBudget {
    pub fn new(bytes: usize) -> Arc<Self> {
        Arc::new(Self { remaining: AtomicUsize::new(bytes), exhausted_noticed: AtomicBool::new(false) })
    }

    /// Take up to `wanted` bytes from the budget; returns how many were granted.
    fn take(&self, wanted: usize) -> usize {
        let mut granted = 0;
        let _ = self.remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            granted = left.min(wanted);
            Some(left - granted)
        });
        granted
    }
}

impl GuestOutput {
    pub fn new(initialiser: Arc<str>, stream: Stream, budget: Arc<OutputBudget>) -> Self {
        Self { initialiser, stream, budget }
    }

    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches(['\r', '\n']);
        match self.stream {
            Stream::Stdout => tracing::info!(initialiser = %self.initialiser, "{line}"),
            Stream::Stderr => tracing::warn!(initialiser = %self.initialiser, stream = "stderr", "{line}"),
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter { output: self.clone(), pending: Vec::new() })
    }
}

/// Splits what the guest writes into lines; a partial line waits for its end (or the stream's).
struct LineWriter {
    output: GuestOutput,
    pending: Vec<u8>,
}

impl LineWriter {
    fn write_bytes(&mut self, buf: &[u8]) {
        let granted = self.output.budget.take(buf.len());
        if granted < buf.len() && !self.output.budget.exhausted_noticed.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                initialiser = %self.output.initialiser,
                "guest output exceeds this run's log budget; the rest is dropped"
            );
        }
        self.pending.extend_from_slice(&buf[..granted]);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.output.emit(&line);
        }
    }

    fn flush_partial(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.output.emit(&line);
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // Accept everything, so a guest never blocks or fails on its own output.
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.flush_partial();
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.flush_partial();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_shared_and_never_overdrawn() {
        let budget = OutputBudget::new(10);
        assert_eq!(budget.take(6), 6);
        assert_eq!(budget.take(6), 4);
        assert_eq!(budget.take(1), 0);
    }

    #[test]
    fn lines_are_split_and_budget_applies() {
        let output = GuestOutput::new("t".into(), Stream::Stdout, OutputBudget::new(8));
        let mut writer = LineWriter { output, pending: Vec::new() };
        writer.write_bytes(b"abc\nde");
        assert_eq!(writer.pending, b"de");
        writer.write_bytes(b"fghij\n");
        // Only 8 bytes were allowed: "abc\n" + "defg"; the newline never came.
        assert_eq!(writer.pending, b"defg");
    }
}
