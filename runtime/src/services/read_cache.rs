//! A per-wake read cache in front of the services: what one wake has read, it does not ask for
//! again, until it writes there itself.
//!
//! Thousands of initialisers often read the same thing: every WorkspaceInit reads the whole
//! `__template__` workspace. Without a cache each of them costs a round trip and the service a
//! full workspace read; with it, a wake reads the template once. The cache is a [`Services`]
//! decorator, so neither the loop nor the host functions know it is there:
//! - config-svc reads (`get`, `list`, `getvalues`, `config`) are answered from the cache when
//!   the same request was answered earlier in this wake, or wait for its answer when it is
//!   already on its way (initialisers running side by side ask the same at once); errors are
//!   never kept;
//! - every write (config `put` and `delete`, and every flow-svc operation other than a read,
//!   since flow-svc writes config in its workspace) drops what was cached for its workspace
//!   *before* it is sent, so a write whose outcome is unknown cannot leave a stale answer;
//! - [`WakeReadCache::begin_wake`] empties the cache: what other writers (TrustGraph itself, an
//!   operator) changed between wakes is seen by the next wake.
//!
//! What the cache keeps is bounded ([`KEPT_BYTES`]): an answer that would take it past the
//! bound is handed to whoever asked for it and not kept, so a tenant that reads a large
//! workspace pays for the copy in its own run's memory budget and leaves nothing behind.
//!
//! Within a wake the runtime is taken to be the only writer of what its initialisers read; a
//! change made by someone else during a wake is seen on the next one. It also counts the
//! requests that reach the services, which the wake reports.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::wire::WORKSPACE_REGISTRY;
use super::{
    ConfigOperation, ConfigRequest, ConfigResponse, FlowOperation, FlowRequest, FlowResponse, IamRequest, IamResponse,
    Protocol, ServiceError, Services,
};

/// Whether the cache keeps the answer to `operation`: the config-svc reads of one workspace.
/// (`getvalues-all-ws` reads every workspace, so no write of one could tell it is stale.)
fn kept(operation: &str) -> bool {
    use ConfigOperation::{Config, Get, GetValues, List};
    matches!(ConfigOperation::parse(operation), Some(Get | List | GetValues | Config))
}

/// The most the cache keeps of one wake's answers, in bytes of their text. Thousands of
/// tenants' answers, and a large `__template__`, fit; a tenant's giant workspace does not.
pub const KEPT_BYTES: usize = 32 << 20;

/// One read's answer, once it has one; those asking meanwhile wait for it.
type Answer = Arc<OnceCell<ConfigResponse>>;

/// A read asked this wake, its answer, and what keeping the answer costs.
struct Cached {
    request: ConfigRequest,
    answer: Answer,
    bytes: usize,
}

/// The services, with reads remembered for the length of one wake.
pub struct WakeReadCache {
    inner: Arc<dyn Services>,
    /// Answers by workspace, then by request.
    answers: Mutex<HashMap<String, Vec<Cached>>>,
    /// The bytes of the answers kept.
    kept: AtomicUsize,
    /// Requests that reached the services since the wake began.
    sent: AtomicU64,
}

impl WakeReadCache {
    pub fn new(inner: Arc<dyn Services>) -> Self {
        Self { inner, answers: Mutex::new(HashMap::new()), kept: AtomicUsize::new(0), sent: AtomicU64::new(0) }
    }

    /// Forget every answer and restart the request count: a new wake reads afresh.
    pub fn begin_wake(&self) {
        self.answers().clear();
        self.kept.store(0, Ordering::Relaxed);
        self.sent.store(0, Ordering::Relaxed);
    }

    /// Requests sent to the services since [`begin_wake`](Self::begin_wake).
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Cached>>> {
        // A panic while holding the lock cannot leave the map inconsistent; carry on with it.
        self.answers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The answer to `request` this wake: the one it has or will have, or a new empty one.
    fn answer_for(&self, request: &ConfigRequest) -> Answer {
        let mut answers = self.answers();
        let in_workspace = answers.entry(request.workspace.clone()).or_default();
        match in_workspace.iter().find(|cached| cached.request == *request) {
            Some(cached) => cached.answer.clone(),
            None => {
                let answer = Answer::default();
                in_workspace.push(Cached { request: request.clone(), answer: answer.clone(), bytes: 0 });
                answer
            }
        }
    }

    /// Count `bytes` against [`KEPT_BYTES`]; `false` (and nothing counted) past it.
    fn make_room(&self, bytes: usize) -> bool {
        self.kept
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |kept| {
                kept.checked_add(bytes).filter(|total| *total <= KEPT_BYTES)
            })
            .is_ok()
    }

    /// Record what keeping `answer` costs, or drop it if it did not fit.
    fn settle(&self, request: &ConfigRequest, answer: &Answer, kept: Option<usize>) {
        let mut answers = self.answers();
        let Some(in_workspace) = answers.get_mut(&request.workspace) else { return };
        let Some(at) = in_workspace.iter().position(|cached| Arc::ptr_eq(&cached.answer, answer)) else { return };
        match kept {
            Some(bytes) => in_workspace[at].bytes = bytes,
            None => drop(in_workspace.swap_remove(at)),
        }
    }

    fn forget_workspace(&self, workspace: &str) {
        let forgotten = self.answers().remove(workspace).unwrap_or_default();
        let bytes: usize = forgotten.iter().map(|cached| cached.bytes).sum();
        let _ = self.kept.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |kept| Some(kept.saturating_sub(bytes)));
    }
}

#[async_trait]
impl Services for WakeReadCache {
    async fn config(&self, request: ConfigRequest) -> Result<ConfigResponse, ServiceError> {
        if !kept(&request.operation) {
            self.forget_workspace(&request.workspace);
            self.sent.fetch_add(1, Ordering::Relaxed);
            return self.inner.config(request).await;
        }
        // An error leaves the answer empty: whoever waits, or asks next, sends the read again.
        let answer = self.answer_for(&request);
        let mut settled = None;
        let read = answer.get_or_try_init(|| async {
            self.sent.fetch_add(1, Ordering::Relaxed);
            let response = self.inner.config(request.clone()).await?;
            let bytes = answer_bytes(&response);
            settled = Some(self.make_room(bytes).then_some(bytes));
            Ok(response)
        });
        read.await?;
        if let Some(kept) = settled {
            self.settle(&request, &answer, kept);
        }
        // An answer not kept, that nobody else waits for, is handed over rather than copied.
        let answer = match Arc::try_unwrap(answer) {
            Ok(cell) => cell.into_inner(),
            Err(shared) => shared.get().cloned(),
        };
        Ok(answer.expect("the read above set it"))
    }

    async fn flow(&self, request: FlowRequest) -> Result<FlowResponse, ServiceError> {
        if !FlowOperation::parse(&request.operation).is_some_and(FlowOperation::only_reads) {
            self.forget_workspace(&request.workspace);
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.inner.flow(request).await
    }

    /// An IAM call may register a workspace: it writes `__workspaces__`, and config-svc then
    /// fills the workspace from the template.
    async fn iam(&self, request: IamRequest) -> Result<IamResponse, ServiceError> {
        self.forget_workspace(WORKSPACE_REGISTRY.0);
        if let Some(workspace) = &request.workspace_record {
            self.forget_workspace(&workspace.id);
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.inner.iam(request).await
    }

    fn protocol(&self) -> Option<Protocol> {
        self.inner.protocol()
    }

    async fn settle_protocol(&self) -> Result<Protocol, ServiceError> {
        self.inner.settle_protocol().await
    }
}

/// The bytes of an answer's text, about what keeping it costs.
fn answer_bytes(response: &ConfigResponse) -> usize {
    let values: usize =
        response.values.iter().map(|v| v.kind.len() + v.key.len() + v.value.as_ref().map_or(0, String::len)).sum();
    let directory: usize = response.directory.iter().map(String::len).sum();
    let config: usize = response
        .config
        .iter()
        .map(|(kind, entries)| kind.len() + entries.iter().map(|(key, value)| key.len() + value.len()).sum::<usize>())
        .sum();
    values + directory + config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedServices;
    use crate::services::ConfigClient;

    /// A cache over embedded services speaking the legacy protocol (flow-svc serves any
    /// workspace).
    fn cache() -> (tempfile::TempDir, WakeReadCache) {
        cache_speaking(crate::services::Protocol::Legacy)
    }

    fn cache_speaking(protocol: crate::services::Protocol) -> (tempfile::TempDir, WakeReadCache) {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedServices::open(&dir.path().join("state.redb")).unwrap().speaking(protocol);
        (dir, WakeReadCache::new(Arc::new(store)))
    }

    fn entry(kind: &str, key: &str, value: &str) -> (String, String, String) {
        (kind.into(), key.into(), value.into())
    }

    #[tokio::test]
    async fn a_repeated_read_is_answered_once_per_wake() {
        let (_dir, cache) = cache();
        let config = ConfigClient(&cache);
        config.put("__template__", vec![entry("prompt", "a", "\"x\"")]).await.unwrap();
        cache.begin_wake();
        let first = config.workspace("__template__").await.unwrap();
        let second = config.workspace("__template__").await.unwrap();
        assert_eq!(first, second);
        assert_eq!(cache.requests_sent(), 1);

        cache.begin_wake();
        config.workspace("__template__").await.unwrap();
        assert_eq!(cache.requests_sent(), 1, "a new wake reads afresh");
    }

    /// The embedded store, answering only after a pause, as a service over a broker does.
    struct Slow(EmbeddedServices);

    #[async_trait]
    impl Services for Slow {
        async fn config(&self, request: ConfigRequest) -> Result<ConfigResponse, ServiceError> {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            self.0.config(request).await
        }
        async fn flow(&self, request: FlowRequest) -> Result<FlowResponse, ServiceError> {
            self.0.flow(request).await
        }
    }

    #[tokio::test]
    async fn reads_asked_at_once_are_sent_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedServices::open(&dir.path().join("state.redb")).unwrap();
        let cache = WakeReadCache::new(Arc::new(Slow(store)));
        let config = ConfigClient(&cache);
        config.put("__template__", vec![entry("prompt", "a", "\"x\"")]).await.unwrap();
        cache.begin_wake();
        let (first, second, third) = tokio::join!(
            config.workspace("__template__"),
            config.workspace("__template__"),
            config.workspace("__template__")
        );
        assert_eq!(first.unwrap(), second.unwrap());
        assert!(third.is_ok());
        assert_eq!(cache.requests_sent(), 1);
    }

    #[tokio::test]
    async fn a_write_drops_what_was_read_in_its_workspace_only() {
        let (_dir, cache) = cache();
        let config = ConfigClient(&cache);
        config.get("w", "prompt", "a").await.unwrap();
        config.get("other", "prompt", "a").await.unwrap();
        config.put("w", vec![entry("prompt", "a", "\"new\"")]).await.unwrap();

        assert_eq!(config.get("w", "prompt", "a").await.unwrap().as_deref(), Some("\"new\""));
        config.get("other", "prompt", "a").await.unwrap();
        assert_eq!(cache.requests_sent(), 4, "2 reads, the put, the re-read of w; `other` cached");
    }

    #[tokio::test]
    async fn flow_writes_drop_their_workspace_and_flow_reads_are_not_kept() {
        let (_dir, cache) = cache();
        let config = ConfigClient(&cache);
        let flow = crate::services::FlowClient(&cache);
        config.keys("w", "flow").await.unwrap();
        flow.list_flows("w").await.unwrap();
        flow.list_flows("w").await.unwrap();
        flow.put_blueprint("w", "bp", "{}").await.unwrap();
        config.keys("w", "flow").await.unwrap();
        assert_eq!(cache.requests_sent(), 5);
    }

    #[tokio::test]
    async fn an_iam_call_drops_the_registry_and_the_workspace_it_names() {
        let (_dir, cache) = cache_speaking(crate::services::Protocol::Workspaces);
        let config = ConfigClient(&cache);
        for workspace in [WORKSPACE_REGISTRY.0, "acme", "other"] {
            config.keys(workspace, "workspace").await.unwrap();
        }
        let record = crate::services::wire::WorkspaceInput { id: "acme".into(), ..Default::default() };
        let register = IamRequest { operation: "create-workspace".into(), workspace_record: Some(record) };
        assert_eq!(cache.iam(register).await.unwrap().error, None);
        // What was read of the registry is dropped: the re-read sees the registration.
        assert_eq!(config.keys(WORKSPACE_REGISTRY.0, WORKSPACE_REGISTRY.1).await.unwrap(), ["acme"]);
        for workspace in ["acme", "other"] {
            config.keys(workspace, "workspace").await.unwrap();
        }
        assert_eq!(cache.requests_sent(), 6, "3 reads, the IAM call, the re-reads of the registry and acme");
    }

    /// Answers `get` with an error the first time, then from the embedded store.
    struct FailsOnce {
        store: EmbeddedServices,
        failed: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl Services for FailsOnce {
        async fn config(&self, request: ConfigRequest) -> Result<ConfigResponse, ServiceError> {
            if !self.failed.swap(true, Ordering::Relaxed) {
                return Err(ServiceError::Unavailable("down".into()));
            }
            self.store.config(request).await
        }
        async fn flow(&self, request: FlowRequest) -> Result<FlowResponse, ServiceError> {
            self.store.flow(request).await
        }
    }

    #[tokio::test]
    async fn an_answer_past_the_bound_is_handed_over_and_not_kept() {
        let (_dir, cache) = cache();
        let config = ConfigClient(&cache);
        let big = "x".repeat(1 << 20);
        let entries = (0..KEPT_BYTES >> 20).map(|i| entry("t", &format!("k{i}"), &big)).collect();
        config.put("big", entries).await.unwrap();
        config.put("small", vec![entry("t", "k", "v")]).await.unwrap();
        cache.begin_wake();
        for _ in 0..2 {
            assert_eq!(config.workspace("big").await.unwrap()["t"].len(), KEPT_BYTES >> 20);
            config.workspace("small").await.unwrap();
        }
        assert_eq!(cache.requests_sent(), 3, "the big workspace read twice, the small one once");
        assert!(cache.kept.load(Ordering::Relaxed) < 1024);
    }

    #[tokio::test]
    async fn errors_are_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedServices::open(&dir.path().join("state.redb")).unwrap();
        let cache = WakeReadCache::new(Arc::new(FailsOnce { store, failed: Default::default() }));
        let config = ConfigClient(&cache);
        assert!(config.get("w", "prompt", "a").await.is_err());
        assert_eq!(config.get("w", "prompt", "a").await.unwrap(), None);
        assert_eq!(cache.requests_sent(), 2);
    }
}
