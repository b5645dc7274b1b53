//! The workspace protocol's flow-svc clients (TrustGraph 2.4.13 and later): one per workspace,
//! on `request:tg:flow:<ws>` / `response:tg:flow:<ws>`, made on first use.
//!
//! flow-svc serves a workspace only once IAM has registered it in config-svc (`__workspaces__`,
//! type `workspace`); a request for any other goes unanswered. So before the first call for a
//! workspace its registration is read from config-svc, and an unregistered workspace's call
//! fails at once with an error that says so, instead of waiting out the request timeout. A
//! registration, once seen, is remembered: TrustGraph does not unregister workspaces.
//!
//! flow-svc subscribes to a newly registered workspace's queue only after it has acted on
//! config-svc's push of the registration, about a second later against TrustGraph 2.11.1 (it
//! acts on pushes one at a time), and the broker drops a request published before that. So
//! until flow-svc has answered on a workspace's queue once, a read sent there is sent again
//! until answered (after [`FIRST_CONTACT_WAIT`], then at doubling waits up to a second); a
//! write goes out only after such a read (`list-blueprints`) has been answered, since a write
//! must not be sent twice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Queue, RequestResponse, Transport, client};
use crate::services::wire::WORKSPACE_REGISTRY;
use crate::services::{ConfigClient, FlowOperation, FlowRequest, FlowResponse, ServiceError, Services};

/// How long a read to a workspace's queue that flow-svc has not answered on yet waits before
/// it is first sent again.
const FIRST_CONTACT_WAIT: Duration = Duration::from_millis(250);

/// The per-workspace flow-svc clients, the workspaces known to be registered, and those whose
/// queue flow-svc is known to serve.
#[derive(Default)]
pub(super) struct WorkspaceFlows {
    clients: Mutex<HashMap<String, Arc<RequestResponse>>>,
    registered: Mutex<HashSet<String>>,
    served: Mutex<HashSet<String>>,
}

impl WorkspaceFlows {
    /// Send `request` to flow-svc on its workspace's queue, once `config` shows the workspace
    /// registered; the first contact with a workspace as the module's documentation says.
    pub(super) async fn request(
        &self,
        config: &dyn Services,
        transport: &Arc<dyn Transport>,
        request: &FlowRequest,
        timeout: Duration,
    ) -> Result<FlowResponse, ServiceError> {
        let workspace = &request.workspace;
        let client = self.client(config, transport, workspace, timeout).await?;
        if lock(&self.served).contains(workspace) {
            return client.request(request).await;
        }
        let reads = FlowOperation::parse(&request.operation).is_some_and(FlowOperation::only_reads);
        let probe = FlowRequest { operation: FlowOperation::ListBlueprints.as_str().into(), ..request.clone() };
        let first = if reads { request } else { &probe };
        let answer: FlowResponse = client.request_resending(first, FIRST_CONTACT_WAIT).await?;
        lock(&self.served).insert(workspace.clone());
        if reads { Ok(answer) } else { client.request(request).await }
    }

    /// The client for `workspace`, once `config` shows it registered.
    async fn client(
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
