//! Where flags are kept: config-svc's `__system__` workspace, type `init-state`, one key per
//! initialiser, the flag's JSON encoding as the value, exactly where and as upstream keeps them.
//!
//! Every read is one `getvalues` for all of them, and every write one `put` for as many as
//! are ready: the reconcile loop batches its writes (see [`crate::reconcile`]), `status`
//! reads them for the operator.

use std::collections::HashMap;

use super::Flag;
use crate::policy::SYSTEM_WORKSPACE;
use crate::services::{ConfigClient, ServiceError};

/// The config type under which flags are stored, one key per initialiser.
pub const INIT_STATE_TYPE: &str = "init-state";

/// The stored flags, through config-svc.
#[derive(Clone, Copy)]
pub struct FlagStore<'a>(pub ConfigClient<'a>);

impl FlagStore<'_> {
    /// Every stored flag, by initialiser name, in one round trip.
    pub async fn read_all(self) -> Result<HashMap<String, Flag>, ServiceError> {
        let values = self.0.values(SYSTEM_WORKSPACE, INIT_STATE_TYPE).await?;
        Ok(values.into_iter().map(|(name, stored)| (name, Flag::from_stored(&stored))).collect())
    }

    /// Store each initialiser's flag, in one `put`.
    pub async fn store<'f>(self, flags: impl IntoIterator<Item = (&'f str, &'f Flag)>) -> Result<(), ServiceError> {
        let entries =
            flags.into_iter().map(|(name, flag)| (INIT_STATE_TYPE.to_owned(), name.to_owned(), flag.to_stored()));
        self.0.put(SYSTEM_WORKSPACE, entries.collect()).await
    }

    /// Each `(name, configured flag)`, in the order given, beside its stored flag: one round
    /// trip, nothing run.
    pub async fn status<'f>(
        self,
        configured: impl IntoIterator<Item = (&'f str, &'f Flag)>,
    ) -> Result<Vec<StatusRow>, ServiceError> {
        let mut stored = self.read_all().await?;
        let row = |(name, flag): (&str, &Flag)| StatusRow {
            name: name.to_owned(),
            configured: flag.clone(),
            stored: stored.remove(name),
        };
        Ok(configured.into_iter().map(row).collect())
    }
}

/// One initialiser's standing, as `bootstrap-wasm status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRow {
    pub name: String,
    pub configured: Flag,
    pub stored: Option<Flag>,
}

impl StatusRow {
    /// It will run on the next wake.
    pub fn pending(&self) -> bool {
        self.stored.as_ref() != Some(&self.configured)
    }
}
