//! `trustgraph:bootstrap/log`: a guest's log lines, under its name, in the runtime's log.

use crate::sandbox::bindings::log::{self, Level};

use super::HostState;

impl log::Host for HostState {
    async fn log(&mut self, level: Level, message: String) {
        let initialiser = &*self.initialiser;
        match level {
            Level::Trace => tracing::trace!(initialiser, "{message}"),
            Level::Debug => tracing::debug!(initialiser, "{message}"),
            Level::Info => tracing::info!(initialiser, "{message}"),
            Level::Warn => tracing::warn!(initialiser, "{message}"),
            Level::Error => tracing::error!(initialiser, "{message}"),
        }
    }
}
