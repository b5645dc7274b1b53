//! `bootstrap-wasm check`: what each initialiser of a valid init file is, and what it may do,
//! written for an operator to review before deploying it.
//!
//! The report is built from a file that has gone through the whole start-up check (loaded,
//! pins verified, components compiled, described and validated), so everything it shows is
//! what a run would use: the effective limits (defaults filled in) and the effective grants
//! (a builtin's derived from its params, unless the entry has its own `grants:`).

use std::fmt;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::init_file::{Code, InitFile, InitialiserSpec};
use crate::initialiser::Initialiser;
use crate::policy::{Grants, Limits, WorkspacePattern};
use crate::services::{Protocol, ProtocolChoice};

/// The review of a whole init file.
pub struct Report {
    pub file: PathBuf,
    /// What `--protocol` says: check touches no service, so it cannot detect one.
    pub protocol: ProtocolChoice,
    pub entries: Vec<Entry>,
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
        Self { file: file.path.clone(), protocol, entries }
    }

    /// The report as JSON: `{file, protocol, initialisers: [{name, entry, flag, code, sha256,
    /// pinned, pre_gate, summary, limits: {name: value}, grants: {source, config_read, ...}}]}`.
    pub fn to_json(&self) -> Value {
        json!({
            "file": self.file,
            "protocol": self.protocol.name(),
            "initialisers": self.entries.iter().map(Entry::to_json).collect::<Vec<_>>(),
        })
    }
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

    /// Each grant as `(name, values)`, in a fixed order.
    fn grant_rows(&self) -> [(&'static str, Vec<String>); 6] {
        let patterns = |list: &[WorkspacePattern]| list.iter().map(|p| p.as_str().to_owned()).collect();
        let files = self.grants.files.iter().map(|f| f.display().to_string()).collect();
        [
            ("config_read", patterns(&self.grants.config_read)),
            ("config_write", patterns(&self.grants.config_write)),
            ("flow", patterns(&self.grants.flow)),
            ("iam", patterns(&self.grants.iam)),
            ("http", self.grants.http.iter().map(ToString::to_string).collect()),
            ("files", files),
        ]
    }

    fn to_json(&self) -> Value {
        let code = match &self.code {
            Code::Builtin(builtin) => json!({"builtin": builtin.name(), "class": self.class}),
            Code::Component(path) => json!({"component": path}),
        };
        let limits: serde_json::Map<String, Value> =
            self.limits.rows().into_iter().map(|(name, value)| (name.to_owned(), Value::String(value))).collect();
        let mut grants: serde_json::Map<String, Value> =
            self.grant_rows().into_iter().map(|(name, values)| (name.to_owned(), json!(values))).collect();
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
        self.entries.iter().try_for_each(|entry| write!(f, "\n{}", EntryIn { entry, legacy }))
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
        for (name, values) in this.grant_rows() {
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
