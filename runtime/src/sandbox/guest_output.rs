//! A guest's stdout and stderr, sent line by line to the runtime's log under its name.
//!
//! Output shares the run's log budget with the `log` interface ([`GuestLog`]): each line counts
//! towards `limits.log_lines` and is cut to `limits.log_line_size`. A line is held only up to
//! that size while it waits for its newline, so a guest writing one endless line costs the
//! runtime no more memory than a short one, and however many handles it opens on a stream they
//! share that one line.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use super::guest_log::{GuestLog, Source};
use crate::wit::log::Level;

/// One output stream of one run. Every handle the guest opens on it (each `get-stdout` makes
/// one) writes into the same line, so the stream holds one line's worth however many it opens.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    line: Arc<Mutex<LineWriter>>,
}

impl GuestOutput {
    /// Stdout (logged at info) or stderr (at warn) of the run whose budget is `log`.
    pub fn new(source: Source, log: Arc<GuestLog>) -> Self {
        Self { line: Arc::new(Mutex::new(LineWriter { source, log, pending: Vec::new(), cut: 0 })) }
    }

    fn write(&self, buf: &[u8]) {
        // A panic while holding the lock leaves at worst a partial line: carry on with it.
        self.line.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).write_bytes(buf);
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// Splits what the guest writes into lines; a partial line waits for its end (or the stream's,
/// when the run's store and every handle are gone).
struct LineWriter {
    source: Source,
    log: Arc<GuestLog>,
    /// The current line, up to the line size.
    pending: Vec<u8>,
    /// Bytes of the current line past the line size, dropped.
    cut: usize,
}

impl LineWriter {
    fn write_bytes(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            if !self.log.has_room(self.source) {
                // Nothing more reaches the log this run: hold nothing.
                self.pending.clear();
                self.cut = 0;
                return;
            }
            let (chunk, rest, ended) = match buf.iter().position(|b| *b == b'\n') {
                Some(end) => (&buf[..end], &buf[end + 1..], true),
                None => (buf, &[][..], false),
            };
            let room = self.log.line_size().saturating_sub(self.pending.len());
            let kept = chunk.len().min(room);
            self.pending.extend_from_slice(&chunk[..kept]);
            self.cut += chunk.len() - kept;
            if ended {
                self.flush_line();
            }
            buf = rest;
        }
    }

    fn flush_line(&mut self) {
        let line = self.pending.strip_suffix(b"\r").unwrap_or(&self.pending);
        // A line cut at the size limit may end inside a character: drop the partial one.
        let (line, partial) = match std::str::from_utf8(line) {
            Err(e) if e.error_len().is_none() => (&line[..e.valid_up_to()], line.len() - e.valid_up_to()),
            _ => (line, 0),
        };
        let level = match self.source {
            Source::Stderr => Level::Warn,
            Source::Stdout | Source::Log => Level::Info,
        };
        self.log.line(level, self.source, &String::from_utf8_lossy(line), self.cut + partial);
        self.pending.clear();
        self.cut = 0;
    }

    fn flush_partial(&mut self) {
        if !self.pending.is_empty() || self.cut > 0 {
            self.flush_line();
        }
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // Accept everything, so a guest never blocks or fails on its own output.
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.line.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).flush_partial();
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
    use crate::policy::Limits;

    fn writer(limits: Limits) -> LineWriter {
        LineWriter { source: Source::Stdout, log: GuestLog::new("t".into(), &limits), pending: Vec::new(), cut: 0 }
    }

    #[test]
    fn lines_are_split_and_a_partial_line_waits() {
        let mut writer = writer(Limits::default());
        writer.write_bytes(b"abc\nde");
        assert_eq!(writer.pending, b"de");
        writer.write_bytes(b"fg\nhi\n\nj");
        assert_eq!(writer.pending, b"j");
    }

    #[test]
    fn a_long_line_is_held_only_up_to_the_line_size() {
        let mut writer = writer(Limits { log_line_size: 8, ..Limits::default() });
        for _ in 0..1000 {
            writer.write_bytes(b"0123456789");
        }
        assert_eq!(writer.pending, b"01234567");
        assert_eq!(writer.cut, 10_000 - 8);
        writer.write_bytes(b"\nnext");
        assert_eq!((writer.pending.as_slice(), writer.cut), (&b"next"[..], 0));
    }

    #[test]
    fn nothing_is_held_once_the_budget_is_spent() {
        let _guard = tracing::subscriber::set_default(tracing_subscriber::fmt().with_writer(std::io::sink).finish());
        let mut writer = writer(Limits { log_lines: 2, ..Limits::default() });
        writer.write_bytes(b"one\ntwo\nthree");
        assert!(!writer.log.has_room(Source::Stdout));
        assert!(writer.pending.is_empty());
        writer.write_bytes(b"more and more");
        assert!(writer.pending.is_empty());
    }

    #[test]
    fn every_handle_on_a_stream_writes_into_one_line() {
        let output = GuestOutput::new(Source::Stdout, GuestLog::new("t".into(), &Limits::default()));
        let (first, second) = (output.async_stream(), output.async_stream());
        drop((first, second));
        output.write(b"ab");
        output.clone().write(b"cd");
        assert_eq!(output.line.lock().unwrap().pending, b"abcd");
    }
}
