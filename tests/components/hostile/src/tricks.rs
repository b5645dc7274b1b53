//! `hostile`'s attacks on names and addresses: workspace names that only look granted, separator
//! characters in config types and keys, and flow calls outside the grants.

use std::collections::BTreeMap;

use bootstrap_guest::config::{ConfigEntry, ConfigKey};
use bootstrap_guest::{Error, HostError, bail, config, flow, info};

use crate::{BLUEPRINT, Settings, outcome};

/// A name as a report shows it: quoted and escaped, and cut after 24 characters.
fn shown(name: &str) -> String {
    let start: String = name.chars().take(24).collect();
    match name.chars().count() {
        n if n > 24 => format!("{start:?}... ({n} chars)"),
        _ => format!("{start:?}"),
    }
}

pub(crate) fn workspace_tricks(settings: &Settings, new_flag: &str) -> Result<(), Error> {
    let (mut written, mut read) = (Vec::new(), Vec::new());
    for workspace in &settings.workspaces {
        if config::put_json(workspace, &settings.config_type, &settings.key, new_flag).is_ok() {
            written.push(shown(workspace));
        }
        if config::get_workspace(workspace).is_ok() {
            read.push(shown(workspace));
        }
    }
    let tried = settings.workspaces.len();
    bail!(
        "{} of {tried} puts and {} of {tried} reads went through: written [{}], read [{}]",
        written.len(),
        read.len(),
        written.join(", "),
        read.join(", ")
    )
}

/// What `separators` stores at `config_type` / `key`: the pair itself, as JSON.
fn separated_value(config_type: &str, key: &str) -> String {
    serde_json::to_string(&(config_type, key)).expect("strings serialise")
}

pub(crate) fn separators(settings: &Settings) -> Result<(), Error> {
    let workspace = settings.workspace.as_deref().unwrap_or_default();
    let entries: Vec<ConfigEntry> =
        settings.entries.iter().map(|(t, k)| ConfigEntry::new(t, k, separated_value(t, k))).collect();
    config::put(workspace, &entries)?;
    let mut problems = read_back(workspace, &settings.entries, &[])?;
    if !settings.delete.is_empty() {
        let keys: Vec<ConfigKey> = settings.delete.iter().map(|(t, k)| ConfigKey::new(t, k)).collect();
        config::delete(workspace, &keys)?;
        let kept: Vec<(String, String)> =
            settings.entries.iter().filter(|pair| !settings.delete.contains(pair)).cloned().collect();
        problems.extend(read_back(workspace, &kept, &settings.delete)?);
    }
    if !problems.is_empty() {
        bail!("{} differences: {}", problems.len(), problems.join("; "));
    }
    info!("read back {} entries exactly as written", settings.entries.len());
    Ok(())
}

/// Reads `workspace` every way the host offers and lists how it differs from holding exactly
/// `expected` (each valued by [`separated_value`]), with none of `gone`.
fn read_back(
    workspace: &str,
    expected: &[(String, String)],
    gone: &[(String, String)],
) -> Result<Vec<String>, HostError> {
    let mut problems = Vec::new();
    let mut by_type: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
    for (t, k) in expected {
        by_type.entry(t).or_default().insert(k, separated_value(t, k));
        let got = config::get(workspace, t, k)?;
        if got.as_deref() != Some(separated_value(t, k).as_str()) {
            problems.push(format!("get {t:?}/{k:?} found {got:?}"));
        }
    }
    for (t, k) in gone {
        if let Some(value) = config::get(workspace, t, k)? {
            problems.push(format!("get {t:?}/{k:?} still found {value:?} after its delete"));
        }
    }
    for (t, keys) in &by_type {
        let mut listed = config::list_keys(workspace, t)?;
        listed.sort();
        let wanted: Vec<&str> = keys.keys().copied().collect();
        if listed != wanted {
            problems.push(format!("list-keys {t:?} found {listed:?}, not {wanted:?}"));
        }
        let values: BTreeMap<String, String> = config::get_values(workspace, t)?.into_iter().collect();
        let wanted: BTreeMap<String, String> = keys.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        if values != wanted {
            problems.push(format!("get-values {t:?} found {values:?}, not {wanted:?}"));
        }
    }
    let everything = config::get_workspace(workspace)?;
    let wanted: BTreeMap<String, BTreeMap<String, String>> = by_type
        .iter()
        .map(|(t, keys)| {
            let keys = keys.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
            ((*t).to_owned(), keys)
        })
        .collect();
    if everything != wanted {
        problems.push(format!("get-workspace found {everything:?}, not {wanted:?}"));
    }
    Ok(problems)
}

pub(crate) fn flow_start(settings: &Settings) -> Result<(), Error> {
    let (workspace, key) = (settings.workspace.as_deref().unwrap_or_default(), &settings.key);
    flow::put_blueprint(workspace, key, BLUEPRINT)?;
    flow::start_flow(workspace, key, key, "started by its owner", &[])?;
    info!("started flow {key} in {workspace}");
    Ok(())
}

pub(crate) fn flow_calls(settings: &Settings) -> Result<(), Error> {
    let key = &settings.key;
    let hijacked = r#"{"blueprint": {}, "flow": {}, "hijacked": true}"#;
    let mut through = Vec::new();
    for workspace in &settings.workspaces {
        let ws = workspace.as_str();
        let outcomes = [
            ("flow.list-blueprints", outcome(flow::list_blueprints(ws))),
            ("flow.get-blueprint", outcome(flow::get_blueprint(ws, key))),
            ("flow.put-blueprint", outcome(flow::put_blueprint(ws, key, hijacked))),
            ("flow.list-flows", outcome(flow::list_flows(ws))),
            ("flow.get-flow", outcome(flow::get_flow(ws, key))),
            ("flow.start-flow", outcome(flow::start_flow(ws, &format!("{key}-hijack"), key, "hijacked", &[]))),
            ("flow.stop-flow", outcome(flow::stop_flow(ws, key))),
            ("flow.delete-blueprint", outcome(flow::delete_blueprint(ws, key))),
        ];
        for (call, seen) in outcomes {
            info!("{call} on {}: {seen}", shown(ws));
            if !seen.starts_with("denied: ") {
                through.push(format!("{call} on {}", shown(ws)));
            }
        }
    }
    let tried = 8 * settings.workspaces.len();
    bail!("{} of {tried} flow calls went through: [{}]", through.len(), through.join(", "))
}
