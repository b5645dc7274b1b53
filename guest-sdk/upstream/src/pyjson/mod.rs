//! JSON as Python's `json` module reads and writes it, and Python's `str()` of what it reads.
//!
//! [`loads`] parses like `json.loads`: a mapping keeps its order, as a Python `dict` does (a
//! repeated key keeps its first place and its last value), where `serde_json::Value` would sort
//! it. [`Value::dumps`] writes like `json.dumps` with its defaults: `", "` and `": "` separators,
//! non-ASCII escaped as `\uXXXX`, floats as Python's `repr`. [`Value::py_str`] is `str(value)`:
//! a string as itself, anything else as Python's `repr` of it.
//!
//! The guests store config values with it, byte for byte what TrustGraph's Python bootstrapper
//! stored. The runtime's embedded flow-svc parses blueprints with it, so that parameters resolve
//! in upstream's order, renders parameter defaults with `str()`, and writes its records with
//! `dumps`, byte for byte what upstream's flow-svc writes.
//!
//! Two differences from Python remain: an integer beyond 64 bits is read as a float, and `NaN`
//! and `Infinity` (which Python reads, outside the JSON standard) are refused.
//!
//! This module is the value and how it is read; `text` is how it is written.

#[cfg(test)]
mod tests;
mod text;

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value as Python's `json.loads` returns it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null` (Python `None`).
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer (Python `int`).
    Int(i128),
    /// A number written with a fraction or exponent (Python `float`).
    Float(f64),
    /// A string.
    String(String),
    /// A list.
    List(Vec<Value>),
    /// A mapping (Python `dict`), in the order its keys first appeared.
    Mapping(Mapping),
}

/// A JSON object as a Python `dict` holds it: its keys in the order they first appeared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapping(Vec<(String, Value)>);

/// Parses JSON text, like Python's `json.loads`.
pub fn loads(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str(text)
}

impl Mapping {
    /// An empty mapping.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// `dict[key] = value`: replaces the value in place if the key exists, else appends.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((key, value)),
        }
    }

    /// The keys and values, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Whether it has no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl IntoIterator for Mapping {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;

    /// The keys and values, in order.
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// `dict(pairs)`: a repeated key keeps its first place and takes its last value.
impl FromIterator<(String, Value)> for Mapping {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(pairs: I) -> Self {
        let mut mapping = Mapping::new();
        for (key, value) in pairs {
            mapping.insert(key, value);
        }
        mapping
    }
}

impl Value {
    /// The mapping, if this is one.
    pub fn as_mapping(&self) -> Option<&Mapping> {
        match self {
            Value::Mapping(mapping) => Some(mapping),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// Python's truth value of it: false for `None`, `False`, zero and empty containers.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(flag) => *flag,
            Value::Int(number) => *number != 0,
            Value::Float(number) => *number != 0.0,
            Value::String(text) => !text.is_empty(),
            Value::List(items) => !items.is_empty(),
            Value::Mapping(mapping) => !mapping.is_empty(),
        }
    }
}

/// The same value; a `serde_json` map is sorted, so the mapping is too.
impl From<serde_json::Value> for Value {
    fn from(value: serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(flag) => Value::Bool(flag),
            serde_json::Value::Number(number) => {
                if let Some(integer) = number.as_i64() {
                    Value::Int(integer.into())
                } else if let Some(integer) = number.as_u64() {
                    Value::Int(integer.into())
                } else {
                    Value::Float(number.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(text) => Value::String(text),
            serde_json::Value::Array(items) => Value::List(items.into_iter().map(Value::from).collect()),
            serde_json::Value::Object(entries) => {
                Value::Mapping(entries.into_iter().map(|(key, value)| (key, Value::from(value))).collect())
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_bool<E>(self, flag: bool) -> Result<Value, E> {
        Ok(Value::Bool(flag))
    }

    fn visit_i64<E>(self, number: i64) -> Result<Value, E> {
        Ok(Value::Int(number.into()))
    }

    fn visit_u64<E>(self, number: u64) -> Result<Value, E> {
        Ok(Value::Int(number.into()))
    }

    fn visit_f64<E>(self, number: f64) -> Result<Value, E> {
        Ok(Value::Float(number))
    }

    fn visit_str<E>(self, text: &str) -> Result<Value, E> {
        Ok(Value::String(text.to_owned()))
    }

    fn visit_string<E>(self, text: String) -> Result<Value, E> {
        Ok(Value::String(text))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    // Python's dict: a repeated key keeps its first place and takes its last value.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut mapping = Mapping::new();
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            mapping.insert(key, value);
        }
        Ok(Value::Mapping(mapping))
    }
}
