//! An initialiser's parameters: the init-file entry's `params` mapping, parsed from the
//! JSON text the runtime passes, with errors that name the offending parameter and warnings
//! that name the unknown ones.

use crate::field_names::field_names;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::fmt;

/// The init-file entry's `params` mapping (an empty mapping when the entry has none).
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    mapping: Map<String, Value>,
}

/// A type an initialiser reads its parameters into: a `#[derive(Deserialize)]` struct,
/// with `#[serde(default)]` on optional fields, plus any check serde cannot express.
///
/// [`Params::read`] parses and checks it; [`Params::validate_as`] does the same and warns
/// about every parameter none of its fields (or their renames and aliases) takes.
pub trait Parameters: DeserializeOwned {
    /// Checks beyond types and presence, such as "must not be empty". None by default.
    fn check(&self) -> Result<(), ParamsError> {
        Ok(())
    }
}

/// Why [`Params::parse`] failed: which parameter, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamsError {
    parameter: Option<String>,
    problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    /// A required parameter is absent.
    Missing,
    /// The explanation of what is wrong.
    Invalid(String),
}

impl ParamsError {
    /// An error about `parameter`, for checks serde cannot express (an empty string, say).
    pub fn new(parameter: impl Into<String>, problem: impl Into<String>) -> Self {
        ParamsError { parameter: Some(parameter.into()), problem: Problem::Invalid(problem.into()) }
    }

    /// The parameter at fault (a dotted path such as `parameters.model` when nested), if the
    /// error concerns one.
    pub fn parameter(&self) -> Option<&str> {
        self.parameter.as_deref()
    }
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.parameter, &self.problem) {
            (Some(parameter), Problem::Missing) => {
                write!(f, "missing required parameter `{parameter}`")
            }
            (Some(parameter), Problem::Invalid(problem)) => {
                write!(f, "parameter `{parameter}`: {problem}")
            }
            (None, Problem::Missing) => f.write_str("missing required parameter"),
            (None, Problem::Invalid(problem)) => f.write_str(problem),
        }
    }
}

impl std::error::Error for ParamsError {}

impl Params {
    /// Parses the JSON text the runtime passes. `null` or empty text is an empty mapping;
    /// anything that is not a JSON mapping is an error that says so.
    pub fn from_json(text: &str) -> Result<Params, String> {
        if text.trim().is_empty() {
            return Ok(Params::default());
        }
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(mapping)) => Ok(Params { mapping }),
            Ok(Value::Null) => Ok(Params::default()),
            Ok(other) => Err(format!("params must be a mapping, got {}", json_kind(&other))),
            Err(error) => Err(format!("params are not valid JSON: {error}")),
        }
    }

    /// The parameters as a JSON mapping.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.mapping
    }

    /// The value of parameter `name`, if given.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.mapping.get(name)
    }

    /// Deserializes the parameters into `T` (typically a `#[derive(Deserialize)]` struct with
    /// `#[serde(default)]` for optional fields). The error names the offending parameter:
    /// ``parameter `overwrite`: invalid type: string "yes", expected a boolean`` or
    /// ``missing required parameter `blueprint` ``. Unknown parameters are ignored here;
    /// report them with [`Params::unknown_parameter_warnings`].
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ParamsError> {
        let mapping = Value::Object(self.mapping.clone());
        serde_path_to_error::deserialize(&mapping).map_err(|error| {
            // serde_path_to_error writes the top level as ".".
            let path = Some(error.path().to_string()).filter(|path| path != ".");
            let problem = error.into_inner().to_string();
            let missing = problem.strip_prefix("missing field `").and_then(|rest| rest.strip_suffix('`'));
            match missing {
                // serde reports a missing field against its parent, not by its own path.
                Some(field) => ParamsError {
                    parameter: Some(match path {
                        Some(parent) => format!("{parent}.{field}"),
                        None => field.to_string(),
                    }),
                    problem: Problem::Missing,
                },
                None => ParamsError { parameter: path, problem: Problem::Invalid(problem) },
            }
        })
    }

    /// Parses the parameters into `P` and runs its [`Parameters::check`].
    pub fn read<P: Parameters>(&self) -> Result<P, ParamsError> {
        let parameters: P = self.parse()?;
        parameters.check()?;
        Ok(parameters)
    }

    /// What [`Initialiser::validate`] usually is: [`read`](Params::read) `P`, failing with a
    /// message that names the parameter at fault, and warn about each given parameter that
    /// `P` does not take (a `P` that is not a plain struct draws no warnings).
    ///
    /// [`Initialiser::validate`]: crate::Initialiser::validate
    pub fn validate_as<P: Parameters>(&self) -> Result<Vec<String>, String> {
        self.read::<P>().map_err(|error| error.to_string())?;
        Ok(match field_names::<P>() {
            Some(known) => self.unknown_parameter_warnings(known),
            None => Vec::new(),
        })
    }

    /// The names of the given parameters that are not in `known`, in sorted order.
    pub fn unknown_keys(&self, known: &[&str]) -> Vec<String> {
        self.mapping.keys().filter(|key| !known.contains(&key.as_str())).cloned().collect()
    }

    /// One warning per parameter not in `known`, for [`Initialiser::validate`] to return, so
    /// a typo (`overwrite` as `overwirte`) is reported instead of silently ignored.
    ///
    /// [`Initialiser::validate`]: crate::Initialiser::validate
    pub fn unknown_parameter_warnings(&self, known: &[&str]) -> Vec<String> {
        self.unknown_keys(known)
            .into_iter()
            .map(|key| format!("unknown parameter `{key}` is ignored (known: {})", known.join(", ")))
            .collect()
    }
}

impl Default for Params {
    fn default() -> Self {
        Params { mapping: Map::new() }
    }
}

impl From<Map<String, Value>> for Params {
    fn from(mapping: Map<String, Value>) -> Self {
        Params { mapping }
    }
}

/// How a JSON value's kind reads in a message: "a list", "a string", ...
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Settings {
        blueprint: String,
        #[serde(default)]
        overwrite: bool,
        #[serde(default)]
        parameters: BTreeMap<String, Value>,
        #[serde(default)]
        nested: Option<Nested>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Nested {
        #[allow(dead_code)]
        name: String,
    }

    #[test]
    fn empty_and_null_params_are_an_empty_mapping() {
        for text in ["", "  ", "null", "{}"] {
            assert_eq!(Params::from_json(text).unwrap(), Params::default(), "{text:?}");
        }
    }

    #[test]
    fn invalid_or_non_mapping_json_is_a_clear_error() {
        assert!(Params::from_json("{").unwrap_err().starts_with("params are not valid JSON: "));
        assert_eq!(Params::from_json("[1]").unwrap_err(), "params must be a mapping, got a list");
        assert_eq!(Params::from_json("\"x\"").unwrap_err(), "params must be a mapping, got a string");
    }

    #[test]
    fn parse_fills_defaults() {
        let params = Params::from_json(r#"{"blueprint": "everything"}"#).unwrap();
        let settings: Settings = params.parse().unwrap();
        assert_eq!(
            settings,
            Settings { blueprint: "everything".into(), overwrite: false, parameters: BTreeMap::new(), nested: None }
        );
    }

    #[test]
    fn parse_errors_name_the_parameter() {
        let wrong_type = Params::from_json(r#"{"blueprint": "b", "overwrite": "yes"}"#).unwrap();
        let error = wrong_type.parse::<Settings>().unwrap_err();
        assert_eq!(error.parameter(), Some("overwrite"));
        assert_eq!(error.to_string(), "parameter `overwrite`: invalid type: string \"yes\", expected a boolean");

        let missing = Params::from_json(r#"{"overwrite": true}"#).unwrap();
        let error = missing.parse::<Settings>().unwrap_err();
        assert_eq!(error.parameter(), Some("blueprint"));
        assert_eq!(error.to_string(), "missing required parameter `blueprint`");

        let nested_missing = Params::from_json(r#"{"blueprint": "b", "nested": {}}"#).unwrap();
        assert_eq!(
            nested_missing.parse::<Settings>().unwrap_err().to_string(),
            "missing required parameter `nested.name`"
        );

        let wrong_string = Params::from_json(r#"{"blueprint": 3}"#).unwrap();
        assert_eq!(
            wrong_string.parse::<Settings>().unwrap_err().to_string(),
            "parameter `blueprint`: invalid type: integer `3`, expected a string"
        );
    }

    #[test]
    fn unknown_keys_lists_what_is_not_known() {
        let params = Params::from_json(r#"{"blueprint": "b", "overwirte": true, "extra": 1}"#).unwrap();
        assert_eq!(params.unknown_keys(&["blueprint", "overwrite"]), ["extra", "overwirte"]);
        assert!(params.unknown_keys(&["blueprint", "overwirte", "extra"]).is_empty());
        assert_eq!(
            params.unknown_parameter_warnings(&["blueprint"]),
            [
                "unknown parameter `extra` is ignored (known: blueprint)",
                "unknown parameter `overwirte` is ignored (known: blueprint)"
            ]
        );
    }

    #[derive(Debug, Deserialize)]
    struct Checked {
        #[serde(default)]
        config_file: String,
        #[serde(default, rename = "over-write")]
        #[allow(dead_code)]
        overwrite: bool,
    }

    impl Parameters for Checked {
        fn check(&self) -> Result<(), ParamsError> {
            if self.config_file.is_empty() {
                return Err(ParamsError::new("config_file", "must not be empty"));
            }
            Ok(())
        }
    }

    #[test]
    fn read_runs_the_check() {
        let params = Params::from_json(r#"{"config_file": ""}"#).unwrap();
        assert_eq!(params.read::<Checked>().unwrap_err().to_string(), "parameter `config_file`: must not be empty");
        let params = Params::from_json(r#"{"config_file": "/s"}"#).unwrap();
        assert_eq!(params.read::<Checked>().unwrap().config_file, "/s");
    }

    #[test]
    fn validate_as_fails_on_bad_params_and_warns_on_unknown_ones() {
        let params = Params::from_json(r#"{"config_file": 1}"#).unwrap();
        assert!(params.validate_as::<Checked>().unwrap_err().starts_with("parameter `config_file`"));

        let params = Params::from_json(r#"{"config_file": "/s", "over-write": true, "overwrite": true}"#).unwrap();
        assert_eq!(
            params.validate_as::<Checked>().unwrap(),
            ["unknown parameter `overwrite` is ignored (known: config_file, over-write)"]
        );
    }

    #[test]
    fn get_and_as_map_expose_the_values() {
        let params = Params::from_json(r#"{"tenant": "tg"}"#).unwrap();
        assert_eq!(params.get("tenant"), Some(&Value::from("tg")));
        assert_eq!(params.get("other"), None);
        assert_eq!(params.as_map().len(), 1);
    }
}
