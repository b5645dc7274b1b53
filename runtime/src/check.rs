//! `bootstrap-wasm check`: what each initialiser of a valid init file is, and what it may do,
//! written for an operator to review before deploying it.
//!
//! The report is built from a file that has gone through the whole start-up check (loaded,
//! pins verified, components compiled, described and validated), so everything it shows is
//! what a run would use: the effective limits (defaults filled in) and the effective grants
//! (a builtin's derived from its params, unless the entry has its own `grants:`).
//!
//! Each tenant follows the operator's entries: its file, its keys, its ceiling, its entries in
//! service (reviewed as the operator's are) and those refused, each with why.

use std::fmt;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::init_file::{Code, ConfigError, InitFile, InitialiserSpec};
use crate::initialiser::Initialiser;
use crate::policy::{Ceiling, Grants, Limits, WorkspacePattern};
use crate::services::{Protocol, ProtocolChoice};
use crate::tenants::{Tenant, Tenants};

/// The review of a whole init file.
pub struct Report {
    pub file: PathBuf,
    /// What `--protocol` says: check touches no service, so it cannot detect one.
    pub protocol: ProtocolChoice,
    pub entries: Vec<Entry>,
    /// One per tenant, in the operator's order.
    pub tenants: Vec<TenantReview>,
}

/// The review of one tenant, as its last load found it.
pub struct TenantReview {
    pub name: String,
    pub path: PathBuf,
    /// Its keys as written; its components must be signed by one of them, if any.
    pub keys: Vec<String>,
    pub ceiling: Ceiling,
    /// Its entries in service, named `tenant/name`.
    pub entries: Vec<Entry>,
    /// Its entries refused, each with why.
    pub refused: Vec<ConfigError>,
    /// Why its file could not be read, if it could not.
    pub error: Option<ConfigError>,
}

/// The review of one initialiser.
pub struct Entry {
    pub name: String,
    pub position: usize,
    /// The flag as it is stored (its JSON text).
    pub flag: String,
    pub code: Code,
    /// The field that named the code, and for `class:` the class path as written.
    pub class: Option<String>,
    pub sha256: String,
    /// Whether the entry pins its code with `sha256:`.
    pub pinned: bool,
    pub pre_gate: bool,
    /// The component's own one-line description (control characters escaped at load).
    pub summary: String,
    pub limits: Limits,
    pub grants: Grants,
    /// Where the grants come from.
    pub grants_source: GrantsSource,
}

/// Where an initialiser's grants come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantsSource {
    /// The entry's `grants:`.
    InitFile,
    /// A builtin's params (the entry has no `grants:`).
    Params,
    /// Nothing: a component without `grants:` gets none.
    Nothing,
}

impl GrantsSource {
    fn as_str(self) -> &'static str {
        match self {
            GrantsSource::InitFile => "grants",
            GrantsSource::Params => "params",
            GrantsSource::Nothing => "none",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            GrantsSource::InitFile => "from the entry's grants:",
            GrantsSource::Params => "derived from the builtin's params",
            GrantsSource::Nothing => "none: no grants: in the entry",
        }
    }
}

impl Report {
    /// The review of `file`, whose entries `initialisers` are, in file order (as
    /// [`Initialiser::prepare_all`] returns them).
    pub fn new(file: &InitFile, initialisers: &[Initialiser], protocol: ProtocolChoice) -> Self {
        assert_eq!(file.initialisers.len(), initialisers.len(), "one initialiser per entry");
        let entries = file.initialisers.iter().zip(initialisers).map(|(spec, init)| Entry::new(spec, init)).collect();
        Self { file: file.path.clone(), protocol, entries, tenants: Vec::new() }
    }

    /// With the review of `tenants` (refreshed: loaded at least once).
    pub fn with_tenants(mut self, tenants: &Tenants) -> Self {
        self.tenants = tenants.tenants().iter().map(TenantReview::new).collect();
        self
    }

    /// Whether some tenant's entry or file is refused.
    pub fn refusals(&self) -> usize {
        self.tenants.iter().map(TenantReview::refusals).sum()
    }

    /// The report as JSON: `{file, protocol, initialisers: [{name, entry, flag, code, sha256,
    /// pinned, pre_gate, summary, limits: {name: value}, grants: {source, config_read, ...}}]}`.
    pub fn to_json(&self) -> Value {
        json!({
            "file": self.file,
            "protocol": self.protocol.name(),
            "initialisers": self.entries.iter().map(Entry::to_json).collect::<Vec<_>>(),
            "tenants": self.tenants.iter().map(TenantReview::to_json).collect::<Vec<_>>(),
        })
    }
}

impl TenantReview {
    /// Its entries refused, and its file if that could not be read.
    pub fn refusals(&self) -> usize {
        self.refused.len() + usize::from(self.error.is_some())
    }

    pub fn new(tenant: &Tenant) -> Self {
        let spec = tenant.spec();
        let entries = tenant
            .running()
            .iter()
            .map(|running| Entry::new(&running.spec, &running.initialiser))
            .map(|entry| Entry { name: spec.scoped(&entry.name), ..entry })
            .collect();
        Self {
            name: spec.name.clone(),
            path: spec.path.clone(),
            keys: spec.keys.iter().map(|key| key.as_str().to_owned()).collect(),
            ceiling: spec.ceiling.clone(),
            entries,
            refused: tenant.refused().to_vec(),
            error: tenant.file_error().cloned(),
        }
    }

    fn to_json(&self) -> Value {
        let refusal = |error: &ConfigError| {
            let (entry, position) = error.entry.clone().unzip();
            json!({"entry": entry, "position": position, "field": error.field, "file": error.file, "message": error.to_string()})
        };
        json!({
            "name": self.name,
            "path": self.path,
            "keys": self.keys,
            "ceiling": {"grants": grants_json(&self.ceiling.grants), "limits": limits_json(&self.ceiling.limits)},
            "initialisers": self.entries.iter().map(Entry::to_json).collect::<Vec<_>>(),
            "refused": self.refused.iter().map(refusal).collect::<Vec<_>>(),
            "error": self.error.as_ref().map(ToString::to_string),
        })
    }
}

impl fmt::Display for TenantReview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (count, refused) = (self.entries.len(), self.refused.len());
        writeln!(f, "tenant {}: {count} in service, {refused} refused", self.name)?;
        writeln!(f, "  path     {}", self.path.display())?;
        match self.keys.as_slice() {
            [] => writeln!(f, "  keys     none: its components need no signature")?,
            keys => writeln!(f, "  keys     {} (its components must be signed by one)", keys.join(", "))?,
        }
        writeln!(f, "  ceiling")?;
        for (name, values) in grant_rows(&self.ceiling.grants) {
            let values = if values.is_empty() { "none".to_owned() } else { values.join(", ") };
            writeln!(f, "    {:<14} {values}", name.replace('_', " "))?;
        }
        for (name, value) in self.ceiling.limits.rows() {
            writeln!(f, "    {name:<14} {value}")?;
        }
        if let Some(error) = &self.error {
            writeln!(f, "  file refused: {error}")?;
        }
        for error in &self.refused {
            writeln!(f, "  refused: {error}")?;
        }
        Ok(())
    }
}

impl TenantReview {
    /// The tenant in a few lines, for `status`: its ceiling's grants and limits, each entry in
    /// service with what it is granted, and each refusal.
    pub fn compact(&self) -> impl fmt::Display + '_ {
        CompactTenant(self)
    }
}

struct CompactTenant<'a>(&'a TenantReview);

impl fmt::Display for CompactTenant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenant = self.0;
        let signed = if tenant.keys.is_empty() { "unsigned" } else { "signed" };
        let (count, refused) = (tenant.entries.len(), tenant.refusals());
        writeln!(
            f,
            "tenant {} ({}, {signed}): {count} in service, {refused} refused",
            tenant.name,
            tenant.path.display()
        )?;
        writeln!(f, "  ceiling  {}", one_line(&tenant.ceiling.grants, Some(&tenant.ceiling.limits)))?;
        let width = tenant.entries.iter().map(|entry| entry.name.len()).max().unwrap_or(0);
        for entry in &tenant.entries {
            writeln!(f, "  {:width$}  {}", entry.name, one_line(&entry.grants, None))?;
        }
        for error in tenant.error.iter().chain(&tenant.refused) {
            writeln!(f, "  refused  {error}")?;
        }
        Ok(())
    }
}

/// Grants (and the limits that differ from the defaults) on one line: `config write acme-*;
/// http https://x:443; fuel 1000`, or `nothing`.
fn one_line(grants: &Grants, limits: Option<&Limits>) -> String {
    let granted = grant_rows(grants)
        .into_iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(name, values)| format!("{} {}", name.replace('_', " "), values.join(", ")));
    let defaults = Limits::default().rows();
    let limits = limits.map(Limits::rows).unwrap_or_default().into_iter().zip(defaults);
    let limited = limits.filter(|(row, default)| row != default).map(|((name, value), _)| format!("{name} {value}"));
    let parts: Vec<String> = granted.chain(limited).collect();
    if parts.is_empty() { "nothing".to_owned() } else { parts.join("; ") }
}

/// Each grant as `(name, values)`, in a fixed order.
fn grant_rows(grants: &Grants) -> [(&'static str, Vec<String>); 6] {
    let patterns = |list: &[WorkspacePattern]| list.iter().map(|p| p.as_str().to_owned()).collect();
    let files = grants.files.iter().map(|f| f.display().to_string()).collect();
    [
        ("config_read", patterns(&grants.config_read)),
        ("config_write", patterns(&grants.config_write)),
        ("flow", patterns(&grants.flow)),
        ("iam", patterns(&grants.iam)),
        ("http", grants.http.iter().map(ToString::to_string).collect()),
        ("files", files),
    ]
}

fn grants_json(grants: &Grants) -> serde_json::Map<String, Value> {
    grant_rows(grants).into_iter().map(|(name, values)| (name.to_owned(), json!(values))).collect()
}

fn limits_json(limits: &Limits) -> serde_json::Map<String, Value> {
    limits.rows().into_iter().map(|(name, value)| (name.to_owned(), Value::String(value))).collect()
}

impl Entry {
    fn new(spec: &InitialiserSpec, init: &Initialiser) -> Self {
        let grants_source = match (&spec.grants, &spec.code) {
            (Some(_), _) => GrantsSource::InitFile,
            (None, Code::Builtin(_)) => GrantsSource::Params,
            (None, Code::Component(_)) => GrantsSource::Nothing,
        };
        let class = match spec.code {
            Code::Builtin(builtin) if spec.code_field == "class" => Some(builtin.class().to_owned()),
            _ => None,
        };
        Self {
            name: spec.name.clone(),
            position: spec.position,
            flag: spec.flag.to_stored(),
            code: spec.code.clone(),
            class,
            sha256: init.sha256.to_string(),
            pinned: spec.sha256.is_some(),
            pre_gate: init.pre_gate,
            summary: init.summary.clone(),
            limits: init.limits,
            grants: (*init.grants).clone(),
            grants_source,
        }
    }

    /// The code as the operator named it: `class X (builtin y)`, `builtin y`, `component /p`.
    fn code_text(&self) -> String {
        match &self.class {
            Some(class) => format!("class {class} ({})", self.code),
            None => self.code.to_string(),
        }
    }

    fn to_json(&self) -> Value {
        let code = match &self.code {
            Code::Builtin(builtin) => json!({"builtin": builtin.name(), "class": self.class}),
            Code::Component(path) => json!({"component": path}),
        };
        let limits = limits_json(&self.limits);
        let mut grants = grants_json(&self.grants);
        grants.insert("source".into(), json!(self.grants_source.as_str()));
        json!({
            "name": self.name,
            "entry": self.position,
            // The flag as the JSON value it is stored as: `"v1"` as a string, `2` as a number.
            "flag": serde_json::from_str::<Value>(&self.flag).unwrap_or_else(|_| json!(self.flag)),
            "code": code,
            "sha256": self.sha256,
            "pinned": self.pinned,
            "pre_gate": self.pre_gate,
            "summary": self.summary,
            "limits": limits,
            "grants": grants,
        })
    }
}

impl fmt::Display for Report {
    /// One block per initialiser, in file order; limits that differ from the defaults and
    /// granted files that do not exist are marked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.entries.len();
        let plural = if count == 1 { "" } else { "s" };
        writeln!(f, "{}: valid, {count} initialiser{plural}", self.file.display())?;
        let protocol = match self.protocol {
            ProtocolChoice::Detect => "auto: detected once config-svc answers (docs/design.md, \"Two protocols\")",
            ProtocolChoice::Speak(Protocol::Legacy) => "legacy: TrustGraph 2.4.4 to 2.4.10, no IAM",
            ProtocolChoice::Speak(Protocol::Workspaces) => "workspaces: TrustGraph 2.4.13 and later",
        };
        writeln!(f, "protocol: {protocol}")?;
        let legacy = self.protocol == ProtocolChoice::Speak(Protocol::Legacy);
        self.entries.iter().try_for_each(|entry| write!(f, "\n{}", EntryIn { entry, legacy }))?;
        for tenant in &self.tenants {
            write!(f, "\n{tenant}")?;
            tenant.entries.iter().try_for_each(|entry| write!(f, "\n{}", EntryIn { entry, legacy }))?;
        }
        Ok(())
    }
}

/// An entry as the report shows it, knowing whether the protocol is the legacy one (which has
/// no IAM for an `iam` grant to reach).
struct EntryIn<'a> {
    entry: &'a Entry,
    legacy: bool,
}

impl fmt::Display for EntryIn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { entry: this, legacy } = *self;
        this.fmt_head(f)?;
        writeln!(f, "  grants   {}", this.grants_source.describe())?;
        for (name, values) in grant_rows(&this.grants) {
            let mut line = String::new();
            if values.is_empty() {
                line.push_str("none");
            } else if name == "iam" && legacy {
                line.push_str("(no IAM in the legacy protocol: create-workspace will fail) ");
            }
            for (i, value) in values.iter().enumerate() {
                line.push_str(if i == 0 { "" } else { ", " });
                line.push_str(value);
                let path = std::path::Path::new(value);
                if name == "files" && !path.exists() {
                    line.push_str(" (not found)");
                } else if name == "files" && !path.is_file() {
                    line.push_str(" (not a file)");
                }
            }
            writeln!(f, "    {:<14} {line}", name.replace('_', " "))?;
        }
        Ok(())
    }
}

impl Entry {
    /// Everything above the grants.
    fn fmt_head(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pin = if self.pinned { "pinned" } else { "not pinned" };
        let stage =
            if self.pre_gate { "pre-gate: before config-svc and flow-svc answer" } else { "after the service gate" };
        writeln!(f, "{} (entry {})", self.name, self.position)?;
        writeln!(f, "  code     {}", self.code_text())?;
        writeln!(f, "  sha256   {} ({pin})", self.sha256)?;
        writeln!(f, "  flag     {}", self.flag)?;
        writeln!(f, "  runs     {stage}")?;
        writeln!(f, "  summary  {}", self.summary)?;

        writeln!(f, "  limits")?;
        let defaults = Limits::default().rows();
        for ((name, value), (_, default)) in self.limits.rows().into_iter().zip(defaults) {
            let note = if value == default { String::new() } else { format!("  (default {default})") };
            writeln!(f, "    {name:<14} {value}{note}")?;
        }

        Ok(())
    }
}
