//! The workspace protocol's flow-svc clients (TrustGraph 2.4.13 and later): one per workspace,
//! on `request:tg:flow:<ws>` / `response:tg:flow:<ws>`, made on first use.
//!
//! flow-svc serves a workspace only once IAM has registered it in config-svc (`__workspaces__`,
//! type `workspace`); a request for any other goes unanswered. So before the first call for a
//! workspace its registration is read from config-svc, and an unregistered workspace's call
//! fails at once with an error that says so, instead of waiting out the request timeout. A
//! registration, once seen, is remembered: TrustGraph does not unregister workspaces.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Queue, RequestResponse, Transport, client};
use crate::services::wire::WORKSPACE_REGISTRY;
use crate::services::{ConfigClient, ServiceError, Services};

/// The per-workspace flow-svc clients, and the workspaces known to be registered.
#[derive(Default)]
pub(super) struct WorkspaceFlows {
    clients: Mutex<HashMap<String, Arc<RequestResponse>>>,
    registered: Mutex<HashSet<String>>,
}

impl WorkspaceFlows {
    /// The client for `workspace`, once `config` shows it registered.
    pub(super) async fn client(
        &self,
        config: &dyn Services,
        transport: &Arc<dyn Transport>,
        workspace: &str,
        timeout: Duration,
    ) -> Result<Arc<RequestResponse>, ServiceError> {
        if !lock(&self.registered).contains(workspace) {
            let (registry, kind) = WORKSPACE_REGISTRY;
            if ConfigClient(config).get(registry, kind, workspace).await?.is_none() {
                return Err(ServiceError::not_registered(workspace));
            }
            lock(&self.registered).insert(workspace.to_owned());
        }
        let made = || {
            let (request, response) = (Queue::request_for("flow", workspace), Queue::response_for("flow", workspace));
            Arc::new(client(transport, request, response, timeout))
        };
        Ok(lock(&self.clients).entry(workspace.to_owned()).or_insert_with(made).clone())
    }

    /// Every client made so far.
    pub(super) fn clients(&self) -> Vec<Arc<RequestResponse>> {
        lock(&self.clients).values().cloned().collect()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
