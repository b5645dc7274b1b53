//! What a blueprint says, read as upstream reads it, and what it makes of one flow: the
//! processor entries of its `blueprint` and `flow` sections ([`processors`]), each turned into
//! a config entry ([`Processor::config_entry`]), and its interfaces ([`templated_interfaces`]),
//! all through upstream's template substitution ([`Templates`]).
//!
//! Upstream fails with a Python exception's text on a malformed blueprint; these refuse with a
//! message that says what is wrong (see the module doc of [`flow_svc`](super)).

use bootstrap_upstream::pyjson::{self, Mapping, Value};

use super::{FlowError, refuse};

/// A stored blueprint or flow record as the JSON object it must be; `what` names it in the
/// refusal.
pub(super) fn parse_object(text: &str, what: &str) -> Result<Mapping, FlowError> {
    match pyjson::loads(text) {
        Ok(Value::Mapping(object)) => Ok(object),
        Ok(_) => refuse(format!("{what} is not a JSON object")),
        Err(err) => refuse(format!("{what} is not valid JSON: {err}")),
    }
}

/// Upstream's template substitution: `{workspace}`, `{blueprint}`, `{id}`, then each parameter
/// in order, each a plain replace of the text so far.
pub(super) struct Templates<'a> {
    workspace: &'a str,
    blueprint: &'a str,
    flow_id: &'a str,
    /// `("{name}", value)`.
    parameters: Vec<(String, String)>,
}

impl<'a> Templates<'a> {
    /// The substitution for flow `flow_id` of `blueprint` in `workspace`, whose parameters are
    /// `parameters` (each value as Python's `str()` of it).
    pub(super) fn new(workspace: &'a str, blueprint: &'a str, flow_id: &'a str, parameters: &Mapping) -> Self {
        let parameters = parameters.iter().map(|(name, value)| (format!("{{{name}}}"), value.py_str())).collect();
        Self { workspace, blueprint, flow_id, parameters }
    }

    pub(super) fn apply(&self, template: &str) -> String {
        let mut text = template
            .replace("{workspace}", self.workspace)
            .replace("{blueprint}", self.blueprint)
            .replace("{id}", self.flow_id);
        for (placeholder, value) in &self.parameters {
            text = text.replace(placeholder.as_str(), value);
        }
        text
    }
}

/// One entry of a blueprint section: `"<name>:<variant>": {topics, parameters}`.
pub(super) struct Processor<'a> {
    entry: &'a str,
    name: &'a str,
    variant: &'a str,
    spec: &'a Mapping,
}

impl Processor<'_> {
    /// The config type of its entries: `processor:<name>`.
    pub(super) fn kind(&self) -> String {
        format!("processor:{}", self.name)
    }

    /// The key of its entry for one flow: the variant, templated.
    pub(super) fn key(&self, templates: &Templates<'_>) -> String {
        templates.apply(self.variant)
    }

    /// Its config entry for one flow, as `(type, key, value)`: the value is its `topics` and
    /// `parameters`, templated, as `json.dumps` writes them.
    pub(super) fn config_entry(&self, templates: &Templates<'_>) -> Result<(String, String, String), FlowError> {
        let mut value = Mapping::new();
        for field in ["topics", "parameters"] {
            let templated = templated_strings(self.spec, field, templates)
                .map_err(|problem| FlowError(format!("Blueprint entry '{}': {problem}", self.entry)))?;
            value.insert(field, Value::Mapping(templated));
        }
        Ok((self.kind(), self.key(templates), Value::Mapping(value).dumps()))
    }
}

/// The processor entries of `blueprint`'s `section`; refuses a section or entry of the wrong
/// shape.
pub(super) fn processors<'a>(blueprint: &'a Mapping, section: &str) -> Result<Vec<Processor<'a>>, FlowError> {
    let Some(entries) = blueprint.get(section) else {
        return refuse(format!("Blueprint has no '{section}' section"));
    };
    let Some(entries) = entries.as_mapping() else {
        return refuse(format!("Blueprint's '{section}' section is not an object"));
    };
    entries
        .iter()
        .map(|(entry, spec)| {
            let Some((name, variant)) = entry.split_once(':') else {
                return refuse(format!("Blueprint entry '{entry}' is not of the form processor:variant"));
            };
            let Some(spec) = spec.as_mapping() else {
                return refuse(format!("Blueprint entry '{entry}' is not an object"));
            };
            Ok(Processor { entry, name, variant, spec })
        })
        .collect()
}

/// `spec[field]` (absent: empty) with templates applied to its keys and values.
fn templated_strings(spec: &Mapping, field: &str, templates: &Templates<'_>) -> Result<Mapping, String> {
    match spec.get(field) {
        None => Ok(Mapping::new()),
        Some(Value::Mapping(items)) => {
            templated(items, templates, true).map_err(|key| format!("{field} '{key}' is not a string"))
        }
        Some(_) => Err(format!("'{field}' is not an object")),
    }
}

/// `items` with templates applied to their values, and with `keys_too` to their keys; the key
/// of the first value that is not a string is the error.
fn templated(items: &Mapping, templates: &Templates<'_>, keys_too: bool) -> Result<Mapping, String> {
    let mut out = Mapping::new();
    for (key, value) in items.iter() {
        let Some(value) = value.as_str() else {
            return Err(key.to_owned());
        };
        let key = if keys_too { templates.apply(key) } else { key.to_owned() };
        out.insert(key, Value::String(templates.apply(value)));
    }
    Ok(out)
}

/// `blueprint`'s interfaces (absent: none) with templates applied to their values: what the
/// flow record lists as the flow's interfaces.
pub(super) fn templated_interfaces(blueprint: &Mapping, templates: &Templates<'_>) -> Result<Mapping, FlowError> {
    let mut interfaces = Mapping::new();
    match blueprint.get("interfaces") {
        None => {}
        Some(Value::Mapping(declared)) => {
            for (name, interface) in declared.iter() {
                let Some(interface) = interface.as_mapping() else {
                    return refuse(format!("Interface '{name}' is not an object"));
                };
                let templated = templated(interface, templates, false)
                    .map_err(|key| FlowError(format!("Interface '{name}': '{key}' is not a string")))?;
                interfaces.insert(name, Value::Mapping(templated));
            }
        }
        Some(_) => return refuse("Blueprint's 'interfaces' is not an object"),
    }
    Ok(interfaces)
}
