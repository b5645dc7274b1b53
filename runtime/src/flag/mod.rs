//! Initialiser flags: what the operator configured and what the runtime stored.
//!
//! A flag is any scalar the operator writes in the init file (`v1`, `2`, `true`). It is stored
//! in config-svc (`__system__` / `init-state` / `<name>`) as its JSON encoding, exactly as the
//! Python bootstrapper stores it (`json.dumps(flag)`), and compared as a JSON value, so state
//! written by either bootstrapper reads back the same. [`FlagStore`] is where they are kept.

mod store;

use std::fmt;

pub use store::{FlagStore, INIT_STATE_TYPE, StatusRow};

use serde_json::Value;

/// A configured or stored flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag(Value);

impl Flag {
    /// A flag from the init file. Only scalars make sense as flags.
    pub fn from_config(value: Value) -> Result<Self, &'static str> {
        match value {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(Self(value)),
            Value::Null => Err("must not be empty"),
            Value::Array(_) | Value::Object(_) => Err("must be a string, a number or a boolean"),
        }
    }

    /// A flag read back from config-svc: JSON text, or (as upstream tolerates) a raw string.
    pub fn from_stored(stored: &str) -> Self {
        Self(serde_json::from_str(stored).unwrap_or_else(|_| Value::String(stored.to_owned())))
    }

    /// The text stored in config-svc.
    pub fn to_stored(&self) -> String {
        self.0.to_string()
    }
}

/// What an initialiser sees: a string flag as it is, anything else as its JSON text.
impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Value::String(s) => f.write_str(s),
            other => write!(f, "{other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_as_upstream_json_dumps() {
        assert_eq!(Flag::from_config(json!("v1")).unwrap().to_stored(), r#""v1""#);
        assert_eq!(Flag::from_config(json!(2)).unwrap().to_stored(), "2");
        assert_eq!(Flag::from_config(json!(true)).unwrap().to_stored(), "true");
    }

    #[test]
    fn reads_upstream_state_and_raw_strings() {
        assert_eq!(Flag::from_stored(r#""v1""#), Flag::from_config(json!("v1")).unwrap());
        assert_eq!(Flag::from_stored("2"), Flag::from_config(json!(2)).unwrap());
        // Not JSON: taken as a raw string, as upstream's `_stored_flag` does.
        assert_eq!(Flag::from_stored("v1"), Flag::from_config(json!("v1")).unwrap());
    }

    #[test]
    fn a_string_two_is_not_the_number_two() {
        assert_ne!(Flag::from_stored("2"), Flag::from_config(json!("2")).unwrap());
    }

    #[test]
    fn guests_see_strings_bare_and_other_scalars_as_json() {
        assert_eq!(Flag::from_config(json!("v1")).unwrap().to_string(), "v1");
        assert_eq!(Flag::from_config(json!(2)).unwrap().to_string(), "2");
    }

    #[test]
    fn rejects_non_scalars() {
        assert!(Flag::from_config(json!(null)).is_err());
        assert!(Flag::from_config(json!([1])).is_err());
    }
}
