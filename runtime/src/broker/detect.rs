//! `--protocol auto`: which generation of TrustGraph's protocol the services on the broker
//! speak, found by asking them once config-svc answers (the gate asks, through
//! [`crate::services::Services::settle_protocol`]).
//!
//! Three questions go out at once, and the first answered decides:
//! - flow-svc's `list-blueprints` on the shared queue `request:tg:flow`: only TrustGraph
//!   2.4.4 to 2.4.10 listen there (legacy);
//! - IAM's `bootstrap-status` on `request:tg:iam`, a read that both of current TrustGraph's
//!   IAMs (iam-svc, no-auth-svc) answer and that changes nothing: only 2.4.13 and later have
//!   an IAM (workspaces);
//! - config-svc's list of registered workspaces (`__workspaces__`): only IAM writes there, so
//!   an entry means 2.4.13 or later even while IAM is down (workspaces).
//!
//! Any answer counts, an error answer too: it shows that someone listens. When none comes
//! within the request timeout the protocol stays unknown and the gate closed, and the next
//! wake asks again. Once found, the protocol is kept for the life of the process: an upgrade
//! of TrustGraph restarts its services, and the bootstrapper with them.

use std::future::Future;
use std::pin::Pin;

use futures_util::future::select_ok;

use super::BrokerServices;
use crate::policy::SYSTEM_WORKSPACE;
use crate::services::ServiceError;
use crate::services::wire::{IamOperation, WORKSPACE_REGISTRY};
use crate::services::{ConfigClient, FlowOperation, FlowRequest, FlowResponse, IamRequest, IamResponse, Protocol};

/// A protocol, and the answer that showed it (for the log).
pub(super) type Detected = (Protocol, &'static str);

type Question<'a> = Pin<Box<dyn Future<Output = Result<Detected, ServiceError>> + Send + 'a>>;

/// Ask the three questions at once; the first answer decides.
pub(super) async fn detect(services: &BrokerServices) -> Result<Detected, ServiceError> {
    let shared_flow_queue: Question<'_> = Box::pin(async {
        let request = FlowRequest {
            operation: FlowOperation::ListBlueprints.as_str().into(),
            workspace: SYSTEM_WORKSPACE.into(),
            ..Default::default()
        };
        services.flow.request::<_, FlowResponse>(&request).await?;
        Ok((Protocol::Legacy, "flow-svc answered on the shared queue request:tg:flow (TrustGraph 2.4.4 to 2.4.10)"))
    });
    let iam: Question<'_> = Box::pin(async {
        let request = IamRequest { operation: IamOperation::BootstrapStatus.as_str().into(), ..Default::default() };
        services.iam.request::<_, IamResponse>(&request).await?;
        Ok((Protocol::Workspaces, "IAM answered on request:tg:iam (TrustGraph 2.4.13 or later)"))
    });
    let registry: Question<'_> = Box::pin(async {
        let (registry, kind) = WORKSPACE_REGISTRY;
        if ConfigClient(services).keys(registry, kind).await?.is_empty() {
            // Says nothing: a new deployment of either generation has no entry yet.
            return Err(ServiceError::BadAnswer(format!("{registry} is empty")));
        }
        Ok((Protocol::Workspaces, "config-svc lists workspaces registered by IAM (TrustGraph 2.4.13 or later)"))
    });
    match select_ok([shared_flow_queue, iam, registry]).await {
        Ok((detected, _still_asking)) => Ok(detected),
        Err(_) => Err(ServiceError::Unavailable(format!(
            "cannot tell which protocol the services speak: neither flow-svc on the shared queue (TrustGraph \
             2.4.4 to 2.4.10) nor IAM (2.4.13 and later) answered within {:?}, and no workspace is registered; \
             --protocol legacy or workspaces says it instead",
            services.timeout
        ))),
    }
}
