//! Just enough of Python's `json` module and `str()` for flow-svc to behave, and write the very
//! bytes, that upstream's flow-svc does.
//!
//! Upstream parses blueprints with `json.loads` (objects keep their key order, a repeated key
//! keeps its first position and its last value), resolves parameters in that order, renders
//! parameter defaults with `str()`, and stores its records with `json.dumps` (`", "` and `": "`
//! separators, non-ASCII escaped). `serde_json::Value` sorts keys, which would change the order
//! `controlled-by` chains resolve in and the stored text, so flow-svc uses [`PyValue`] instead.

use std::fmt::{self, Write};

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value as Python's `json.loads` returns it.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    String(String),
    Array(Vec<PyValue>),
    Object(PyObject),
}

/// A JSON object that keeps insertion order, like a Python `dict`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PyObject(Vec<(String, PyValue)>);

impl PyObject {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, key: &str) -> Option<&PyValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// `dict[key] = value`: replaces the value in place if the key exists, else appends.
    pub fn insert(&mut self, key: impl Into<String>, value: PyValue) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &PyValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl PyValue {
    pub fn as_object(&self) -> Option<&PyObject> {
        match self {
            PyValue::Object(object) => Some(object),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            PyValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// Python's truth value of the parsed object.
    pub fn is_truthy(&self) -> bool {
        match self {
            PyValue::Null => false,
            PyValue::Bool(b) => *b,
            PyValue::Int(i) => *i != 0,
            PyValue::Float(f) => *f != 0.0,
            PyValue::String(s) => !s.is_empty(),
            PyValue::Array(a) => !a.is_empty(),
            PyValue::Object(o) => !o.0.is_empty(),
        }
    }
}

/// `json.loads(text)`.
pub fn loads(text: &str) -> Result<PyValue, serde_json::Error> {
    serde_json::from_str(text)
}

/// `json.dumps(value)` with Python's defaults.
pub fn dumps(value: &PyValue) -> String {
    let mut out = String::new();
    write_json(&mut out, value);
    out
}

/// `str(value)` of the parsed object: a string as itself, anything else as its `repr`.
pub fn py_str(value: &PyValue) -> String {
    match value {
        PyValue::String(s) => s.clone(),
        other => {
            let mut out = String::new();
            write_repr(&mut out, other);
            out
        }
    }
}

fn write_json(out: &mut String, value: &PyValue) {
    match value {
        PyValue::Null => out.push_str("null"),
        PyValue::Bool(true) => out.push_str("true"),
        PyValue::Bool(false) => out.push_str("false"),
        PyValue::Int(i) => write!(out, "{i}").unwrap(),
        PyValue::Float(f) if f.is_nan() => out.push_str("NaN"),
        PyValue::Float(f) if f.is_infinite() => out.push_str(if *f > 0.0 { "Infinity" } else { "-Infinity" }),
        PyValue::Float(f) => out.push_str(&float_repr(*f)),
        PyValue::String(s) => write_json_string(out, s),
        PyValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json(out, item);
            }
            out.push(']');
        }
        PyValue::Object(object) => {
            out.push('{');
            for (i, (key, item)) in object.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json_string(out, key);
                out.push_str(": ");
                write_json(out, item);
            }
            out.push('}');
        }
    }
}

// ensure_ascii=True: everything outside printable ASCII becomes \uXXXX (UTF-16 units).
fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(out, "\\u{unit:04x}").unwrap();
                }
            }
        }
    }
    out.push('"');
}

fn write_repr(out: &mut String, value: &PyValue) {
    match value {
        PyValue::Null => out.push_str("None"),
        PyValue::Bool(true) => out.push_str("True"),
        PyValue::Bool(false) => out.push_str("False"),
        PyValue::Int(i) => write!(out, "{i}").unwrap(),
        PyValue::Float(f) if f.is_nan() => out.push_str("nan"),
        PyValue::Float(f) if f.is_infinite() => out.push_str(if *f > 0.0 { "inf" } else { "-inf" }),
        PyValue::Float(f) => out.push_str(&float_repr(*f)),
        PyValue::String(s) => write_str_repr(out, s),
        PyValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, item);
            }
            out.push(']');
        }
        PyValue::Object(object) => {
            out.push('{');
            for (i, (key, item)) in object.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str_repr(out, key);
                out.push_str(": ");
                write_repr(out, item);
            }
            out.push('}');
        }
    }
}

// Python's quote choice and escapes for the characters a config is likely to hold; other
// non-printable Unicode (which Python also escapes) is passed through.
fn write_str_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => write!(out, "\\x{:02x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// `repr(float)` for a finite float: the shortest digits that round-trip, positional when the
/// decimal exponent is in -4..16, else scientific with a signed two-digit exponent.
fn float_repr(value: f64) -> String {
    if value == 0.0 {
        return if value.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits, as d.ddde±x.
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` has an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` exponent is an integer");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let point = exponent + 1; // digits are 0.ddd × 10^point
    let sign = if value < 0.0 { "-" } else { "" };
    if -4 < point && point <= 16 {
        if point <= 0 {
            format!("{sign}0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else if point as usize >= digits.len() {
            format!("{sign}{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            let (whole, fraction) = digits.split_at(point as usize);
            format!("{sign}{whole}.{fraction}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{first}{fraction}e{exponent_sign}{:02}", exponent.unsigned_abs())
    }
}

impl<'de> Deserialize<'de> for PyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PyValueVisitor)
    }
}

struct PyValueVisitor;

impl<'de> Visitor<'de> for PyValueVisitor {
    type Value = PyValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<PyValue, E> {
        Ok(PyValue::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<PyValue, E> {
        Ok(PyValue::Int(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<PyValue, E> {
        Ok(PyValue::Int(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<PyValue, E> {
        Ok(PyValue::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<PyValue, E> {
        Ok(PyValue::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<PyValue, E> {
        Ok(PyValue::String(v))
    }

    fn visit_unit<E>(self) -> Result<PyValue, E> {
        Ok(PyValue::Null)
    }

    fn visit_none<E>(self) -> Result<PyValue, E> {
        Ok(PyValue::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<PyValue, D::Error> {
        PyValue::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PyValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(PyValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PyValue, A::Error> {
        let mut object = PyObject::new();
        while let Some((key, value)) = map.next_entry::<String, PyValue>()? {
            object.insert(key, value);
        }
        Ok(PyValue::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_keeps_order_and_python_duplicate_rules() {
        let value = loads(r#"{"b": 1, "a": {"y": true, "x": null}, "b": 2}"#).unwrap();
        let object = value.as_object().unwrap();
        let keys: Vec<_> = object.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["b", "a"]);
        assert_eq!(object.get("b"), Some(&PyValue::Int(2)));
    }

    #[test]
    fn dumps_matches_python_defaults() {
        let value =
            loads(r#"{"z": "caf\u00e9 \ud83d\ude00", "a": [1, 2.5, true, null], "q": "\"\\\n\u007f"}"#).unwrap();
        // json.dumps(json.loads(same text)) in CPython 3.11:
        assert_eq!(dumps(&value), r#"{"z": "caf\u00e9 \ud83d\ude00", "a": [1, 2.5, true, null], "q": "\"\\\n\u007f"}"#);
        assert_eq!(dumps(&PyValue::Object(PyObject::new())), "{}");
    }

    #[test]
    fn str_matches_python() {
        let cases = [
            ("\"text\"", "text"),
            ("true", "True"),
            ("null", "None"),
            ("-17", "-17"),
            ("0.5", "0.5"),
            ("1.0", "1.0"),
            ("100", "100"),
            ("1e2", "100.0"),
            ("1e16", "1e+16"),
            ("1e15", "1000000000000000.0"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("-1.5e-7", "-1.5e-07"),
            ("123456789.125", "123456789.125"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("-0.0", "-0.0"),
            (r#"["a", "it's", 1]"#, r#"['a', "it's", 1]"#),
            (r#"{"k": {"n": [false]}}"#, r#"{'k': {'n': [False]}}"#),
        ];
        for (json, expected) in cases {
            assert_eq!(py_str(&loads(json).unwrap()), expected, "str(json.loads({json:?}))");
        }
    }

    #[test]
    fn truthiness() {
        for (json, truthy) in [
            ("true", true),
            ("false", false),
            ("0", false),
            ("2", true),
            ("\"\"", false),
            ("\"x\"", true),
            ("null", false),
            ("[]", false),
            ("{}", false),
            ("0.0", false),
        ] {
            assert_eq!(loads(json).unwrap().is_truthy(), truthy, "{json}");
        }
    }
}
