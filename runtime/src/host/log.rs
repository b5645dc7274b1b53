//! `trustgraph:bootstrap/log`: a guest's log lines, within the run's log budget.
//!
//! A message of several lines counts as that many lines of the budget ([`crate::sandbox::GuestLog`]), which
//! the guest's stdout and stderr share.

use crate::sandbox::Source;
use crate::wit::log::{self, Level};

use super::HostState;

impl log::Host for HostState {
    async fn log(&mut self, level: Level, message: String) {
        // A log call cannot fail: over `host_calls`, the message is dropped (and the refusal
        // logged once).
        if self.usage.call("log", level_name(level)).is_err() {
            return;
        }
        for line in message.split('\n') {
            if !self.log.has_room(Source::Log) {
                break;
            }
            self.log.line(level, Source::Log, line.strip_suffix('\r').unwrap_or(line), 0);
        }
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}
