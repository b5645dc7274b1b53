//! Parameter resolution for start-flow: upstream's `resolve_parameters`, which turns the
//! parameters a blueprint declares, the `parameter-type` definitions in the workspace and the
//! user's values into the flow's parameters, as strings in the order upstream builds them.
//!
//! Three passes. Declared parameters take the user's value, else their `parameter-type`'s
//! default (a missing required one is refused); then a still-unset parameter with
//! `controlled-by` copies its controller; then the user's undeclared parameters are kept.
//! The order matters: it is the order of the stored record, and of the placeholders
//! [`Templates`](super::blueprint::Templates) replaces.

use std::collections::BTreeMap;

use bootstrap_upstream::pyjson::{self, Mapping, Value};
use tracing::warn;

use super::{FlowError, PARAMETER_TYPE, refuse};
use crate::embedded::Update;

/// `parameter-type` definitions by name, read once each per resolution.
type TypeDefinitions = BTreeMap<String, Mapping>;

/// The flow's parameters: `blueprint`'s declared ones resolved against `user`'s values and
/// `workspace`'s `parameter-type` definitions (read inside `update`), then `user`'s others.
pub(super) fn resolve_parameters(
    update: &Update<'_>,
    workspace: &str,
    blueprint: &Mapping,
    user: &BTreeMap<String, String>,
) -> Result<Mapping, FlowError> {
    let mut resolved = Mapping::new();
    if let Some(declared) = blueprint.get("parameters") {
        let Some(declared) = declared.as_mapping() else {
            return refuse("Blueprint's 'parameters' is not an object");
        };
        let definitions = given_or_default(update, workspace, declared, user, &mut resolved)?;
        controlled(declared, &definitions, &mut resolved);
    }
    for (name, value) in user {
        if !resolved.contains_key(name) {
            resolved.insert(name.clone(), Value::String(value.clone()));
        }
    }
    Ok(resolved)
}

/// The first pass: each declared parameter's user value, else its type's default; refuses a
/// required one with neither. Returns the type definitions it read.
fn given_or_default(
    update: &Update<'_>,
    workspace: &str,
    declared: &Mapping,
    user: &BTreeMap<String, String>,
    resolved: &mut Mapping,
) -> Result<TypeDefinitions, FlowError> {
    let mut definitions = TypeDefinitions::new();
    for (name, meta) in declared.iter() {
        if let Some(value) = user.get(name) {
            resolved.insert(name, Value::String(value.clone()));
            continue;
        }
        let Some(meta) = meta.as_mapping() else {
            return refuse(format!("Blueprint parameter '{name}' is not an object"));
        };
        let Some(type_name) = meta.get("type").and_then(Value::as_str).filter(|t| !t.is_empty()) else {
            continue;
        };
        let definition =
            definitions.entry(type_name.to_owned()).or_insert_with(|| parameter_type(update, workspace, type_name));
        if let Some(default) = definition.get("default") {
            resolved.insert(name, Value::String(default_string(default)));
        } else if definition.get("required").is_some_and(Value::is_truthy) {
            return refuse(format!("Required parameter '{name}' not provided and has no default"));
        }
    }
    Ok(definitions)
}

/// The second pass: a still-unset parameter with `controlled-by` copies its controller's value,
/// else takes its type's default.
fn controlled(declared: &Mapping, definitions: &TypeDefinitions, resolved: &mut Mapping) {
    for (name, meta) in declared.iter() {
        if resolved.contains_key(name) {
            continue;
        }
        // Every unset parameter's meta is an object: the first pass refused the others.
        let Some(controller) = meta.as_mapping().and_then(|meta| meta.get("controlled-by")) else {
            continue;
        };
        if let Some(value) = controller.as_str().and_then(|c| resolved.get(c)).cloned() {
            resolved.insert(name, value);
        } else if let Some(default) = meta
            .as_mapping()
            .and_then(|meta| meta.get("type"))
            .and_then(Value::as_str)
            .and_then(|type_name| definitions.get(type_name))
            .and_then(|definition| definition.get("default"))
        {
            // Upstream has this fallback too; the first pass has already used any default.
            resolved.insert(name, Value::String(default_string(default)));
        }
    }
}

/// A `parameter-type` definition; an empty one if it is missing or unreadable, which upstream
/// logs and carries on with.
fn parameter_type(update: &Update<'_>, workspace: &str, type_name: &str) -> Mapping {
    match update.get(workspace, PARAMETER_TYPE, type_name) {
        Ok(Some(text)) if !text.is_empty() => match pyjson::loads(&text) {
            Ok(Value::Mapping(definition)) => definition,
            Ok(_) => {
                warn!(type_name, "parameter type definition is not a JSON object");
                Mapping::new()
            }
            Err(err) => {
                warn!(type_name, %err, "parameter type definition is not valid JSON");
                Mapping::new()
            }
        },
        Ok(_) => {
            warn!(type_name, "parameter type not found in config");
            Mapping::new()
        }
        Err(err) => {
            warn!(type_name, %err, "cannot read parameter type");
            Mapping::new()
        }
    }
}

/// A default as upstream stores it: booleans as JSON spells them, anything else as `str()`.
fn default_string(default: &Value) -> String {
    match default {
        Value::Bool(true) => "true".to_owned(),
        Value::Bool(false) => "false".to_owned(),
        other => other.py_str(),
    }
}
