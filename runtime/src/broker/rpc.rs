//! A request/response client on one pair of queues: correlation by id, timeouts, reconnects.
//!
//! Before the first request it subscribes to the response queue (answers published before a
//! subscription exists are lost, so it must come first) and starts a pump that hands each
//! answer to the request waiting for its `id`. Answers for other ids, other clients' traffic
//! on the shared response queue, are ignored; an answer that is not JSON is logged and dropped.
//! When the subscription dies (the broker went away), waiting requests fail at once as
//! unavailable, and the next request subscribes again.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::waiters::{Unanswered, Waiters};
use super::{Envelope, Queue, Subscription, Transport};
use crate::services::ServiceError;

/// The longest [`RequestResponse::request_resending`] waits before sending again.
const RESEND_WAIT_CAP: Duration = Duration::from_secs(1);

/// Requests waiting for their answer, by correlation id; shared with the pump.
type Waiting = Arc<Waiters<String, Vec<u8>>>;

/// A client of one service.
pub struct RequestResponse {
    transport: Arc<dyn Transport>,
    request_queue: Queue,
    response_queue: Queue,
    subscription: String,
    timeout: Duration,
    waiting: Waiting,
    /// The pump reading the response queue, while it runs.
    pump: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl RequestResponse {
    pub fn new(
        transport: Arc<dyn Transport>,
        request_queue: Queue,
        response_queue: Queue,
        subscription: String,
        timeout: Duration,
    ) -> Self {
        Self {
            transport,
            request_queue,
            response_queue,
            subscription,
            timeout,
            waiting: Arc::default(),
            pump: tokio::sync::Mutex::new(None),
        }
    }

    /// Send `request` and wait for its answer.
    pub async fn request<Req: Serialize, Resp: DeserializeOwned>(&self, request: &Req) -> Result<Resp, ServiceError> {
        self.exchange(request, None).await
    }

    /// The same, publishing the request again, under the same id, until it is answered or
    /// times out: first after `first_wait`, then after twice as long each time, at most
    /// a second. For a read sent to a queue whose service may not have subscribed
    /// yet, where the broker drops what nobody subscribed to. Two answers may come; the first
    /// is taken and the second ignored, as any answer for an id no longer awaited.
    pub async fn request_resending<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        request: &Req,
        first_wait: Duration,
    ) -> Result<Resp, ServiceError> {
        self.exchange(request, Some(first_wait)).await
    }

    async fn exchange<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        request: &Req,
        mut resend_after: Option<Duration>,
    ) -> Result<Resp, ServiceError> {
        self.listen().await?;
        let id = uuid::Uuid::new_v4().to_string();
        // Forgotten however the request ends (answer, timeout, cancellation).
        let mut waiter = self.waiting.register(id.clone());

        let body = serde_json::to_vec(request).expect("request records always serialise");
        let envelope = Envelope { id: Some(id.clone()), body };
        self.publish(&envelope).await?;

        let deadline = Instant::now() + self.timeout;
        let body = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match waiter.wait(resend_after.map_or(left, |wait| wait.min(left))).await {
                Ok(body) => break body,
                Err(Unanswered::TimedOut) if resend_after.is_some() && Instant::now() < deadline => {
                    tracing::debug!(queue = %self.request_queue, %id, "no answer yet; sending again");
                    self.publish(&envelope).await?;
                    resend_after = resend_after.map(|wait| (wait * 2).min(RESEND_WAIT_CAP));
                }
                Err(Unanswered::TimedOut) => return Err(ServiceError::Timeout(self.timeout)),
                Err(Unanswered::Abandoned) => {
                    return Err(ServiceError::Unavailable(format!("lost the subscription to {}", self.response_queue)));
                }
            }
        };
        serde_json::from_slice(&body)
            .map_err(|e| ServiceError::BadAnswer(format!("answer on {} does not fit: {e}", self.response_queue)))
    }

    /// Publish `envelope` to the request queue, trying twice.
    async fn publish(&self, envelope: &Envelope) -> Result<(), ServiceError> {
        if let Err(first) = self.transport.publish(&self.request_queue, envelope.clone()).await {
            tracing::debug!(queue = %self.request_queue, "publish failed ({first}); retrying once");
            self.transport
                .publish(&self.request_queue, envelope.clone())
                .await
                .map_err(|e| ServiceError::Unavailable(format!("cannot publish to {}: {e}", self.request_queue)))?;
        }
        Ok(())
    }

    /// Make sure the response pump runs.
    async fn listen(&self) -> Result<(), ServiceError> {
        let mut pump = self.pump.lock().await;
        if pump.as_ref().is_some_and(|running| !running.is_finished()) {
            return Ok(());
        }
        let subscription = self.transport.subscribe(&self.response_queue, &self.subscription).await.map_err(|e| {
            ServiceError::Unavailable(format!(
                "cannot subscribe to {} on {}: {e}",
                self.response_queue,
                self.transport.describe()
            ))
        })?;
        *pump = Some(tokio::spawn(deliver(subscription, self.waiting.clone(), self.response_queue.clone())));
        Ok(())
    }
}

impl RequestResponse {
    /// Stop the pump and drop its subscription (the transport then ends that subscription);
    /// requests in flight fail as unavailable.
    pub async fn stop_listening(&self) {
        if let Some(pump) = self.pump.lock().await.take() {
            pump.abort();
            let _ = pump.await;
        }
        self.waiting.abandon_all();
    }
}

impl Drop for RequestResponse {
    fn drop(&mut self) {
        if let Some(pump) = self.pump.get_mut().take() {
            pump.abort();
        }
    }
}

/// Hand each answer to the request waiting for its id, until the subscription closes.
async fn deliver(mut subscription: Subscription, waiting: Waiting, queue: Queue) {
    while let Some(Envelope { id, body }) = subscription.recv().await {
        let Some(id) = id else {
            tracing::debug!(%queue, "ignored an answer without an id");
            continue;
        };
        if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
            tracing::warn!(%queue, %id, "dropped an answer that is not JSON: {:?}", String::from_utf8_lossy(&body));
            continue;
        }
        if !waiting.answer(&id, body) {
            tracing::trace!(%queue, %id, "ignored an answer for another client");
        }
    }
    tracing::warn!(%queue, "subscription closed; requests in flight fail and the next one resubscribes");
    // Wakes every waiting request with "unavailable".
    waiting.abandon_all();
}
