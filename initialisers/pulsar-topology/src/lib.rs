//! PulsarTopology: creates the Pulsar tenant and the namespaces TrustGraph's queues live in,
//! with their retention policies, through Pulsar's admin REST API. It runs before the
//! services gate (config-svc and flow-svc cannot start until these namespaces exist), and
//! every step checks before it creates, so it is safe to repeat.
//!
//! Parameters:
//! - `admin_url` (default `"http://pulsar:8080"`, trailing `/` ignored): the operator must
//!   grant this origin for HTTP.
//! - `tenant` (default `"tg"`).
//!
//! Matches TrustGraph 2.11.1 (and 2.4.4, which lacks one check): an empty cluster list from
//! the admin API means the broker is not ready, so the run fails (and is retried) instead of
//! creating a tenant that may use no cluster.

use bootstrap_guest::http::{self, Response};
use bootstrap_guest::{Context, Description, Error, Initialiser, Parameters, Params};
use bootstrap_guest::{bail, debug, export_initialiser, info};
use bootstrap_upstream::builtins::pulsar_topology::{ADMIN_URL, TENANT};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// The parameters this initialiser reads.
#[derive(Debug, Deserialize, PartialEq)]
struct Settings {
    #[serde(default = "default_admin_url")]
    admin_url: String,
    #[serde(default = "default_tenant")]
    tenant: String,
}

impl Parameters for Settings {}

fn default_admin_url() -> String {
    ADMIN_URL.into()
}

fn default_tenant() -> String {
    TENANT.into()
}

/// Bounds connecting and each wait for response bytes, per request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The namespaces to create, in order, with the policies each is created with: `flow` and
/// `request` take the broker's defaults; `response` and `notify` carry only short-lived
/// traffic, so they keep little.
fn namespace_policies() -> [(&'static str, Value); 4] {
    [
        ("flow", json!({})),
        ("request", json!({})),
        (
            "response",
            json!({"retention_policies": {
                "retentionSizeInMB": -1,
                "retentionTimeInMinutes": 3,
                "subscriptionExpirationTimeMinutes": 30,
            }}),
        ),
        (
            "notify",
            json!({"retention_policies": {
                "retentionSizeInMB": -1,
                "retentionTimeInMinutes": 3,
                "subscriptionExpirationTimeMinutes": 5,
            }}),
        ),
    ]
}

/// Pulsar's admin API at one URL, for one tenant.
struct Admin {
    base_url: String,
    tenant: String,
}

impl Admin {
    fn new(settings: Settings) -> Admin {
        Admin { base_url: settings.admin_url.trim_end_matches('/').to_string(), tenant: settings.tenant }
    }

    fn tenant_url(&self) -> String {
        format!("{}/admin/v2/tenants/{}", self.base_url, self.tenant)
    }

    fn namespace_url(&self, namespace: &str) -> String {
        format!("{}/admin/v2/namespaces/{}/{namespace}", self.base_url, self.tenant)
    }

    fn clusters(&self) -> Result<Vec<String>, Error> {
        let url = format!("{}/admin/v2/clusters", self.base_url);
        let response = http::get(&url, REQUEST_TIMEOUT)?;
        if !(200..300).contains(&response.status) {
            bail!("GET {url} failed: {} {}", response.status, response.text());
        }
        response.json().context(format!("GET {url}: not a list of clusters"))
    }

    fn ensure_tenant(&self) -> Result<(), Error> {
        let tenant = &self.tenant;
        if http::get(&self.tenant_url(), REQUEST_TIMEOUT)?.status == 200 {
            debug!("Tenant '{tenant}' already exists");
            return Ok(());
        }
        let clusters = self.clusters()?;
        let body = tenant_body(&clusters)?;
        info!("Creating tenant '{tenant}' with clusters {clusters:?}");
        let response = http::put_json(&self.tenant_url(), &body, REQUEST_TIMEOUT)?;
        expect_created(&response, || format!("Tenant '{tenant}'"))
    }

    fn ensure_namespace(&self, namespace: &str, policies: &Value) -> Result<(), Error> {
        let name = format!("{}/{namespace}", self.tenant);
        let url = self.namespace_url(namespace);
        if http::get(&url, REQUEST_TIMEOUT)?.status == 200 {
            debug!("Namespace {name} already exists");
            return Ok(());
        }
        info!("Creating namespace {name}");
        let response = http::put_json(&url, policies, REQUEST_TIMEOUT)?;
        expect_created(&response, || format!("Namespace {name}"))
    }
}

/// The tenant to create, allowed on `clusters`; refused when there are none (the broker has not
/// registered its cluster yet), as upstream refuses it.
fn tenant_body(clusters: &[String]) -> Result<Value, Error> {
    if clusters.is_empty() {
        bail!("Pulsar cluster list is empty — broker not ready yet");
    }
    Ok(json!({"adminRoles": [], "allowedClusters": clusters}))
}

/// Pulsar answers a successful create with 204 No Content; anything else is a failure.
fn expect_created(response: &Response, what: impl FnOnce() -> String) -> Result<(), Error> {
    if response.status != 204 {
        bail!("{} create failed: {} {}", what(), response.status, response.text());
    }
    Ok(())
}

struct PulsarTopology;

impl Initialiser for PulsarTopology {
    fn describe() -> Description {
        Description::new("Creates the Pulsar tenant and namespaces TrustGraph's queues use").before_services()
    }

    fn validate(params: &Params) -> Result<Vec<String>, String> {
        params.validate_as::<Settings>()
    }

    fn run(params: &Params, _old_flag: Option<&str>, _new_flag: &str) -> Result<(), Error> {
        let admin = Admin::new(params.read()?);
        admin.ensure_tenant()?;
        for (namespace, policies) in namespace_policies() {
            admin.ensure_namespace(namespace, &policies)?;
        }
        Ok(())
    }
}

export_initialiser!(PulsarTopology);

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(json: &str) -> Admin {
        Admin::new(Params::from_json(json).unwrap().read().unwrap())
    }

    #[test]
    fn defaults_match_upstream() {
        let admin = admin("{}");
        assert_eq!(admin.tenant_url(), "http://pulsar:8080/admin/v2/tenants/tg");
        assert_eq!(admin.namespace_url("flow"), "http://pulsar:8080/admin/v2/namespaces/tg/flow");
    }

    #[test]
    fn trailing_slashes_are_stripped() {
        let admin = admin(r#"{"admin_url": "http://localhost:8080//", "tenant": "t1"}"#);
        assert_eq!(admin.tenant_url(), "http://localhost:8080/admin/v2/tenants/t1");
    }

    #[test]
    fn namespaces_and_policies_match_upstream() {
        let policies = namespace_policies();
        let names: Vec<_> = policies.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["flow", "request", "response", "notify"]);
        assert_eq!(policies[0].1, json!({}));
        assert_eq!(policies[1].1, json!({}));
        assert_eq!(
            policies[2].1["retention_policies"],
            json!({"retentionSizeInMB": -1, "retentionTimeInMinutes": 3, "subscriptionExpirationTimeMinutes": 30})
        );
        assert_eq!(
            policies[3].1["retention_policies"],
            json!({"retentionSizeInMB": -1, "retentionTimeInMinutes": 3, "subscriptionExpirationTimeMinutes": 5})
        );
    }

    #[test]
    fn a_tenant_is_created_on_the_clusters_listed_and_never_on_none() {
        let body = tenant_body(&["standalone".to_owned()]).unwrap();
        assert_eq!(body, json!({"adminRoles": [], "allowedClusters": ["standalone"]}));
        let refused = tenant_body(&[]).unwrap_err().to_string();
        assert_eq!(refused, "Pulsar cluster list is empty — broker not ready yet");
    }

    #[test]
    fn only_204_counts_as_created() {
        let created = Response { status: 204, body: vec![] };
        assert!(expect_created(&created, || "Tenant 'tg'".into()).is_ok());
        let conflict = Response { status: 409, body: b"exists".to_vec() };
        assert_eq!(
            expect_created(&conflict, || "Tenant 'tg'".into()).unwrap_err().to_string(),
            "Tenant 'tg' create failed: 409 exists"
        );
    }

    #[test]
    fn validation_names_bad_parameters_and_warns_on_unknown_ones() {
        let bad = Params::from_json(r#"{"tenant": 5}"#).unwrap();
        let error = PulsarTopology::validate(&bad).unwrap_err();
        assert!(error.starts_with("parameter `tenant`: invalid type"), "{error}");
        let typo = Params::from_json(r#"{"admin_url": "http://p", "tenant": "t", "admin-url": "x"}"#).unwrap();
        let warnings = PulsarTopology::validate(&typo).unwrap();
        assert!(matches!(&warnings[..], [only] if only.starts_with("unknown parameter `admin-url`")), "{warnings:?}");
        assert!(!PulsarTopology::describe().wait_for_services);
    }
}
