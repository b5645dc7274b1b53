//! What one run may still push through the host: the caps of [`Limits`], counted call by call.
//!
//! [`Usage`] counts one run's host calls and the bytes it has written, and refuses a call that
//! would go over a cap with `host-error::invalid-request`, whose message names the cap
//! (`limits.put_entries`). Nothing of a refused call is sent or charged. The first refusal of
//! each cap in a run is logged with the initialiser, the function and the target; later ones
//! only at debug level, so a guest looping on a refused call cannot flood the log. Past
//! `limits.host_calls` every further call is refused (a `log` call is dropped): the run goes
//! on, and ends by its own error, its fuel or its deadline.

use std::sync::Arc;

use crate::guest_text::{QUOTED_CHARS, abbreviate};
use crate::policy::{Limits, format_bytes};
use crate::wit::HostError;

/// One run's use of the host, against its limits.
pub(crate) struct Usage {
    initialiser: Arc<str>,
    limits: Limits,
    calls: usize,
    written: usize,
    /// The caps already refused (and logged) in this run.
    reported: Vec<&'static str>,
}

impl Usage {
    pub fn new(initialiser: Arc<str>, limits: Limits) -> Self {
        Self { initialiser, limits, calls: 0, written: 0, reported: Vec::new() }
    }

    /// Count one host call; refuse it once the run has made `limits.host_calls`.
    pub fn call(&mut self, function: &str, target: &str) -> Result<(), HostError> {
        if self.calls >= self.limits.host_calls {
            let message = format!(
                "{function} exceeds this initialiser's limit of {} host calls per run (limits.host_calls)",
                self.limits.host_calls
            );
            return Err(self.refuse("host_calls", function, target, message));
        }
        self.calls += 1;
        Ok(())
    }

    /// Refuse a list of `count` `items` (entries, keys) past `limits.put_entries`.
    pub fn entries(&mut self, function: &str, target: &str, count: usize, items: &str) -> Result<(), HostError> {
        if count > self.limits.put_entries {
            let message = format!(
                "{function} of {count} {items} exceeds this initialiser's limit of {} (limits.put_entries)",
                self.limits.put_entries
            );
            return Err(self.refuse("put_entries", function, target, message));
        }
        Ok(())
    }

    /// The most bytes one value may have (`limits.value_size`).
    pub fn value_size(&self) -> usize {
        self.limits.value_size
    }

    /// Refuse `what` (a value, a key, a definition), `len` bytes long, past `limits.value_size`.
    pub fn value(&mut self, function: &str, target: &str, what: &str, len: usize) -> Result<(), HostError> {
        if len > self.limits.value_size {
            let message = format!(
                "{function} {what} of {} exceeds this initialiser's limit of {} (limits.value_size)",
                format_bytes(len),
                format_bytes(self.limits.value_size)
            );
            return Err(self.refuse("value_size", function, target, message));
        }
        Ok(())
    }

    /// Charge `bytes` to the run's writes; refuse (charging nothing) past `limits.written`.
    pub fn write(&mut self, function: &str, target: &str, bytes: usize) -> Result<(), HostError> {
        let total = self.written.saturating_add(bytes);
        if total > self.limits.written {
            let message = format!(
                "{function} of {} would bring this run's writes to {}, over this initialiser's limit of {} \
                 (limits.written)",
                format_bytes(bytes),
                format_bytes(total),
                format_bytes(self.limits.written)
            );
            return Err(self.refuse("written", function, target, message));
        }
        self.written = total;
        Ok(())
    }

    fn refuse(&mut self, cap: &'static str, function: &str, target: &str, message: String) -> HostError {
        let initialiser = &*self.initialiser;
        let target = abbreviate(target, QUOTED_CHARS);
        let limit = format!("limits.{cap}");
        if self.reported.contains(&cap) {
            tracing::debug!(initialiser, function, target, limit, "refused again: {message}");
        } else {
            self.reported.push(cap);
            tracing::warn!(initialiser, function, target, limit, "refused: {message}");
        }
        HostError::InvalidRequest(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(limits: Limits) -> Usage {
        Usage::new("t".into(), limits)
    }

    fn refusal(result: Result<(), HostError>) -> String {
        match result {
            Err(HostError::InvalidRequest(message)) => message,
            other => panic!("expected invalid-request, got {other:?}"),
        }
    }

    #[test]
    fn host_calls_are_counted_and_refused_past_the_limit() {
        let mut usage = usage(Limits { host_calls: 2, ..Limits::default() });
        assert!(usage.call("config.get", "acme").is_ok());
        assert!(usage.call("log", "info").is_ok());
        let message = refusal(usage.call("config.get", "acme"));
        assert_eq!(message, "config.get exceeds this initialiser's limit of 2 host calls per run (limits.host_calls)");
        // Refused calls stay refused.
        assert!(usage.call("config.get", "acme").is_err());
    }

    #[test]
    fn lists_over_put_entries_are_refused() {
        let mut usage = usage(Limits::default());
        assert!(usage.entries("config.put", "acme", 10_000, "entries").is_ok());
        let message = refusal(usage.entries("config.put", "acme", 20_000, "entries"));
        assert_eq!(
            message,
            "config.put of 20000 entries exceeds this initialiser's limit of 10000 (limits.put_entries)"
        );
    }

    #[test]
    fn values_over_value_size_are_refused() {
        let mut usage = usage(Limits::default());
        assert!(usage.value("config.put", "acme", "value at 't/k'", 1 << 20).is_ok());
        let message = refusal(usage.value("config.put", "acme", "value at 't/k'", 2 << 20));
        assert_eq!(
            message,
            "config.put value at 't/k' of 2 MiB exceeds this initialiser's limit of 1 MiB (limits.value_size)"
        );
    }

    #[test]
    fn writes_add_up_and_a_refused_write_charges_nothing() {
        let mut usage = usage(Limits { written: 100, ..Limits::default() });
        assert!(usage.write("config.put", "acme", 60).is_ok());
        let message = refusal(usage.write("config.put", "acme", 50));
        assert_eq!(
            message,
            "config.put of 50 bytes would bring this run's writes to 110 bytes, over this initialiser's limit of \
             100 bytes (limits.written)"
        );
        assert!(usage.write("flow.put-blueprint", "acme", 40).is_ok());
        assert!(usage.write("config.delete", "acme", 1).is_err());
    }

    #[test]
    fn each_cap_is_reported_once() {
        let mut usage = usage(Limits { written: 1, put_entries: 1, ..Limits::default() });
        for _ in 0..3 {
            let _ = usage.write("config.put", "acme", 2);
            let _ = usage.entries("config.put", "acme", 2, "entries");
        }
        assert_eq!(usage.reported, ["written", "put_entries"]);
    }
}
