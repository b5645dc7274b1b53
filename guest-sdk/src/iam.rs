//! Workspaces as TrustGraph's IAM knows them: register one, or ask whether it is registered.
//!
//! From TrustGraph 2.4.13 on, the services serve a workspace only once IAM has registered it
//! (in config workspace `__workspaces__`, which no initialiser may read or write directly):
//! config-svc then copies the `__template__` workspace into it and flow-svc starts serving its
//! flows. TrustGraph 2.4.4 to 2.4.10 have no IAM, and a workspace exists as soon as it has
//! config. So an initialiser that makes a workspace registers it first when
//! [`registers_workspaces`] says the deployment does:
//!
//! ```no_run
//! use bootstrap_guest::{Error, iam, info};
//!
//! fn make_workspace(workspace: &str) -> Result<(), Error> {
//!     if iam::registers_workspaces() {
//!         let name = bootstrap_guest::pystr::title(workspace);
//!         match iam::create_workspace(workspace, &name, None)? {
//!             iam::Registration::AlreadyRegistered => info!("{workspace} was registered already"),
//!             iam::Registration::Registered => info!("{workspace} registered"),
//!         }
//!     }
//!     // ... then fill the workspace's config, start its flows.
//!     Ok(())
//! }
//! ```
//!
//! Grants: [`create_workspace`] needs an `iam` grant for the workspace (`grants: {iam:
//! {workspaces: [acme, "tenant-*"]}}`); [`is_registered`] needs that or a `flow` grant for it;
//! [`registers_workspaces`] needs none. The interface came with `trustgraph:bootstrap@0.1.1`;
//! components built against 0.1.0, which lacks it, still run.

use std::time::Duration;

use crate::HostError;
use crate::bindings::trustgraph::bootstrap::iam as host;

/// What IAM said to [`create_workspace`]. Either way the workspace is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// IAM took the request. TrustGraph 2.11's IAM services answer so whether or not the
    /// workspace existed: registering is idempotent.
    Registered,
    /// IAM answered that the workspace is registered already (its error `duplicate`, which
    /// TrustGraph's own bootstrapper counts as success too).
    AlreadyRegistered,
}

/// Whether the deployment's services register workspaces: `true` on TrustGraph 2.4.13 and
/// later, `false` on 2.4.4 to 2.4.10 (and in `describe` and `validate`, which run without
/// the services). Sends nothing.
///
/// ```no_run
/// if bootstrap_guest::iam::registers_workspaces() {
///     // register workspaces with IAM before using them
/// }
/// ```
pub fn registers_workspaces() -> bool {
    host::registers_workspaces()
}

/// Registers workspace `id` with IAM as `name` (for people; TrustGraph's own WorkspaceInit
/// uses [`pystr::title`](crate::pystr::title) of the id), enabled.
///
/// `timeout`: how long to wait for IAM's answer (rounded up to whole milliseconds); `None`
/// waits as long as any service call, the runtime's `--request-timeout` (10 s by default),
/// which also bounds a longer `timeout`.
///
/// config-svc and flow-svc act on a registration shortly after it, not necessarily before
/// this returns: a flow call right after may still fail, and succeed on a later wake.
///
/// Fails with [`HostError::Denied`] without an `iam` grant for `id`;
/// [`HostError::InvalidRequest`] for an id that is empty or begins with `_`, a zero
/// `timeout`, or IAM's `invalid-argument`; [`HostError::Timeout`] when IAM does not answer in
/// time (the workspace may be registered nonetheless); [`HostError::ServiceError`] for IAM's
/// other errors, and on TrustGraph before 2.4.13, which has no IAM.
///
/// ```no_run
/// use std::time::Duration;
/// use bootstrap_guest::iam;
///
/// # fn run() -> Result<(), bootstrap_guest::Error> {
/// iam::create_workspace("acme-corp", "Acme-Corp", Some(Duration::from_secs(10)))?;
/// # Ok(()) }
/// ```
pub fn create_workspace(id: &str, name: &str, timeout: Option<Duration>) -> Result<Registration, HostError> {
    let timeout_ms = timeout.map(|timeout| u32::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(u32::MAX));
    match host::create_workspace(id, name, timeout_ms)? {
        true => Ok(Registration::Registered),
        false => Ok(Registration::AlreadyRegistered),
    }
}

/// Whether workspace `id` is registered with IAM, so that flow-svc serves it. Needs an `iam`
/// or a `flow` grant for `id`. On TrustGraph before 2.4.13, where every workspace is served
/// without registration, always `true`, and nothing is sent.
///
/// ```no_run
/// use bootstrap_guest::{Error, bail, iam};
///
/// # fn run() -> Result<(), Error> {
/// if !iam::is_registered("acme")? {
///     bail!("Workspace 'acme' does not exist yet");
/// }
/// # Ok(()) }
/// ```
pub fn is_registered(id: &str) -> Result<bool, HostError> {
    Ok(host::is_registered(id)?)
}
