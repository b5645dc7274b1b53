//! Prometheus metrics (`--metrics`, `--metrics-port`): what the reconcile loop did, served as
//! text on `GET /metrics`.
//!
//! The loop knows nothing of Prometheus: after each wake it hands its [`WakeReport`] (outcomes,
//! per-run stats, wake duration, requests) to a callback, and [`Metrics::record`] turns that
//! into the registry's counters, gauges and histograms. [`serve`] answers scrapes with hyper 1
//! on the process's tokio runtime. docs/operations.md lists every metric.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::reconcile::{Outcome, WakeReport};

/// The content type of the text format [`prometheus_client::encoding::text`] writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One initialiser.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InitialiserLabel {
    initialiser: String,
}

/// One initialiser's runs by how they ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    initialiser: String,
    /// `ok` or `failed`.
    result: String,
    /// Empty for `ok`; else `guest_error`, `out_of_fuel`, `deadline`, `memory`,
    /// `stack_overflow`, `trap` or `setup`.
    failure: String,
}

/// One tenant.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

/// Durations from 1 ms to about 65 s, by factors of four: a run of a core initialiser on the
/// embedded backend takes milliseconds, a tenant's slow one up to its timeout (30 s default).
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 9))
}

/// The registry and the metrics in it.
pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    run_duration: Family<InitialiserLabel, Histogram, fn() -> Histogram>,
    fuel_used: Family<InitialiserLabel, Counter>,
    memory_refused: Family<InitialiserLabel, Counter>,
    flag_current: Family<InitialiserLabel, Gauge>,
    gate_open: Gauge,
    wake_duration: Histogram,
    requests: Counter,
    tenant_entries: Family<TenantLabel, Gauge>,
    tenant_refused: Family<TenantLabel, Gauge>,
    tenant_reloads: Family<TenantLabel, Counter>,
    tenant_components_read: Counter,
    /// The initialisers of the last wake: a tenant's entry removed from its file must not
    /// leave its `flag_current` behind.
    initialisers: Mutex<HashSet<Arc<str>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bootstrap");
        let runs = Family::<RunLabels, Counter>::default();
        registry.register("runs", "Initialiser runs, by initialiser and result", runs.clone());
        let run_duration = Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register("run_duration_seconds", "How long each run took, by initialiser", run_duration.clone());
        let fuel_used = Family::<InitialiserLabel, Counter>::default();
        registry.register(
            "fuel_used",
            "Fuel (wasmtime's units of guest work) burned by each initialiser's runs, failed ones included",
            fuel_used.clone(),
        );
        let memory_refused = Family::<InitialiserLabel, Counter>::default();
        registry.register(
            "memory_limit_reached",
            "Runs in which the guest met limits.memory (a growth refused), failed or not",
            memory_refused.clone(),
        );
        let flag_current = Family::<InitialiserLabel, Gauge>::default();
        registry.register(
            "flag_current",
            "1 when the initialiser's stored flag equals its configured one, 0 when it will run again",
            flag_current.clone(),
        );
        let gate_open = Gauge::default();
        registry.register("gate_open", "1 when config-svc and flow-svc answered at the last wake", gate_open.clone());
        let wake_duration = duration_histogram();
        registry.register("wake_duration_seconds", "How long each wake took, runs included", wake_duration.clone());
        let requests = Counter::default();
        registry.register("service_requests", "Requests sent to config-svc and flow-svc", requests.clone());
        let tenant_entries = Family::<TenantLabel, Gauge>::default();
        registry.register("tenant_entries", "A tenant's initialisers in service", tenant_entries.clone());
        let tenant_refused = Family::<TenantLabel, Gauge>::default();
        registry.register(
            "tenant_entries_refused",
            "A tenant's entries refused by its last load (a file that could not be read counts 1)",
            tenant_refused.clone(),
        );
        let tenant_reloads = Family::<TenantLabel, Counter>::default();
        registry.register(
            "tenant_reloads",
            "Loads of a tenant's files: the first, then one per change or SIGHUP",
            tenant_reloads.clone(),
        );
        let tenant_components_read = Counter::default();
        registry.register(
            "tenant_components_read",
            "Tenants' component files read and hashed (an unchanged one is not read again)",
            tenant_components_read.clone(),
        );
        Self {
            registry,
            initialisers: Mutex::default(),
            tenant_entries,
            tenant_refused,
            tenant_reloads,
            tenant_components_read,
            runs,
            run_duration,
            fuel_used,
            memory_refused,
            flag_current,
            gate_open,
            wake_duration,
            requests,
        }
    }

    /// Add what one wake did.
    pub fn record(&self, report: &WakeReport) {
        for run in &report.runs {
            let initialiser = InitialiserLabel { initialiser: run.initialiser.to_string() };
            let (result, failure) = match run.failure {
                None => ("ok", ""),
                Some(kind) => ("failed", kind),
            };
            let labels = RunLabels {
                initialiser: initialiser.initialiser.clone(),
                result: result.into(),
                failure: failure.into(),
            };
            self.runs.get_or_create(&labels).inc();
            self.run_duration.get_or_create(&initialiser).observe(run.duration.as_secs_f64());
            self.fuel_used.get_or_create(&initialiser).inc_by(run.fuel_used);
            if run.memory_refused {
                self.memory_refused.get_or_create(&initialiser).inc();
            }
        }
        for (name, outcome) in &report.outcomes {
            let current = match outcome {
                Outcome::Skipped | Outcome::Ran => 1,
                Outcome::RanUnrecorded | Outcome::FlagNotStored(_) | Outcome::Failed(_) => 0,
                // The gate was closed: the stored flag was not read, so what was known stands.
                Outcome::Waiting => continue,
            };
            self.flag_current.get_or_create(&InitialiserLabel { initialiser: name.to_string() }).set(current);
        }
        self.forget_removed(report);
        self.gate_open.set(i64::from(report.gate_open));
        self.wake_duration.observe(report.duration.as_secs_f64());
        self.requests.inc_by(report.requests);
        if let Some(tenants) = &report.tenants {
            self.tenant_components_read.inc_by(tenants.components_read);
            for tenant in &tenants.tenants {
                let label = TenantLabel { tenant: tenant.name.to_string() };
                self.tenant_entries.get_or_create(&label).set(tenant.entries as i64);
                self.tenant_refused.get_or_create(&label).set(tenant.refused as i64);
                let reloads = self.tenant_reloads.get_or_create(&label);
                if tenant.reloaded {
                    reloads.inc();
                }
            }
        }
    }

    /// Drop the `flag_current` of initialisers gone since the last wake (a tenant's removed
    /// entry); their counters stay, as counters of a finished job do.
    fn forget_removed(&self, report: &WakeReport) {
        let now: HashSet<Arc<str>> = report.outcomes.iter().map(|(name, _)| name.clone()).collect();
        let mut last = self.initialisers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for gone in last.difference(&now) {
            self.flag_current.remove(&InitialiserLabel { initialiser: gone.to_string() });
        }
        *last = now;
    }

    /// The registry in Prometheus's text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// Answer `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                tracing::warn!("metrics endpoint: cannot accept a connection: {e}");
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = respond(&metrics, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!("metrics endpoint: connection ended: {e}");
            }
        });
    }
}

fn respond<B>(metrics: &Metrics, request: &Request<B>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, CONTENT_TYPE, metrics.encode()),
        (&Method::GET, _) => (StatusCode::NOT_FOUND, "text/plain", "not found: try /metrics\n".to_owned()),
        _ => (StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET\n".to_owned()),
    };
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a response of static parts")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::reconcile::RunStats;

    fn report(outcomes: Vec<(&str, Outcome)>, runs: Vec<(&str, Option<&'static str>, u64)>) -> WakeReport {
        WakeReport {
            gate_open: true,
            requests: 3,
            outcomes: outcomes.into_iter().map(|(name, outcome)| (name.into(), outcome)).collect(),
            runs: runs
                .into_iter()
                .map(|(name, failure, fuel_used)| RunStats {
                    initialiser: name.into(),
                    failure,
                    duration: Duration::from_millis(5),
                    fuel_used,
                    memory_refused: failure == Some("memory"),
                })
                .collect(),
            duration: Duration::from_millis(20),
            tenants: None,
        }
    }

    #[test]
    fn a_wake_is_recorded_as_counts_gauges_and_histograms() {
        let metrics = Metrics::new();
        metrics.record(&report(
            vec![
                ("seed", Outcome::Ran),
                ("tenant", Outcome::Failed(crate::sandbox::RunFailure::OutOfFuel(500))),
                ("hoarder", Outcome::Ran),
            ],
            vec![("seed", None, 1000), ("tenant", Some("out_of_fuel"), 500), ("hoarder", Some("memory"), 9)],
        ));
        metrics.record(&report(vec![("seed", Outcome::Skipped), ("tenant", Outcome::Waiting)], vec![]));
        let text = metrics.encode();
        for line in [
            r#"bootstrap_runs_total{initialiser="seed",result="ok",failure=""} 1"#,
            r#"bootstrap_runs_total{initialiser="tenant",result="failed",failure="out_of_fuel"} 1"#,
            r#"bootstrap_fuel_used_total{initialiser="seed"} 1000"#,
            r#"bootstrap_fuel_used_total{initialiser="tenant"} 500"#,
            r#"bootstrap_memory_limit_reached_total{initialiser="hoarder"} 1"#,
            r#"bootstrap_flag_current{initialiser="seed"} 1"#,
            // Waiting leaves the last known state.
            r#"bootstrap_flag_current{initialiser="tenant"} 0"#,
            r#"bootstrap_run_duration_seconds_count{initialiser="seed"} 1"#,
            "bootstrap_gate_open 1",
            "bootstrap_wake_duration_seconds_count 2",
            "bootstrap_service_requests_total 6",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
        }
        // Gone from the second wake (a tenant's entry removed): its gauge goes, its counts stay.
        assert!(!text.contains(r#"bootstrap_flag_current{initialiser="hoarder"}"#), "{text}");
    }

    #[tokio::test]
    async fn the_endpoint_serves_the_registry_on_get_metrics_only() {
        let metrics = Arc::new(Metrics::new());
        metrics.record(&report(vec![("seed", Outcome::Ran)], vec![("seed", None, 7)]));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, metrics));
        let get = |path: &str| {
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
                stream.write_all(request.as_bytes()).await.unwrap();
                let mut answer = String::new();
                stream.read_to_string(&mut answer).await.unwrap();
                answer
            }
        };
        let found = get("/metrics").await;
        assert!(found.starts_with("HTTP/1.1 200"), "{found}");
        assert!(found.contains(r#"bootstrap_fuel_used_total{initialiser="seed"} 7"#), "{found}");
        assert!(get("/").await.starts_with("HTTP/1.1 404"));
        server.abort();
    }
}
