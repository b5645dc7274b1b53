//! JSON as Python's `json` module reads and writes it, so the config values these
//! initialisers store are byte-for-byte what TrustGraph's Python bootstrapper stored:
//! mappings keep their order (a repeated key keeps its first place and last value), and
//! [`Value::dumps`] writes like `json.dumps` with its defaults — `", "` and `": "`
//! separators, non-ASCII escaped as `\uXXXX`, floats as Python's `repr`.
//!
//! Two differences remain: an integer beyond 64 bits is read as a float, and `NaN` /
//! `Infinity` (which Python reads, outside the JSON standard) are rejected.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt::{self, Write};

/// A JSON value whose mappings keep their order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// An integer (Python `int`).
    Int(i128),
    /// A number written with a fraction or exponent (Python `float`).
    Float(f64),
    /// A string.
    String(String),
    /// A list.
    List(Vec<Value>),
    /// A mapping, in the order its keys first appeared.
    Mapping(Vec<(String, Value)>),
}

/// Parses JSON text, like Python's `json.loads`.
pub fn loads(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str(text)
}

impl Value {
    /// The JSON text Python's `json.dumps(value)` writes for this value.
    pub fn dumps(&self) -> String {
        let mut out = String::new();
        self.write_to(&mut out);
        out
    }

    fn write_to(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(true) => out.push_str("true"),
            Value::Bool(false) => out.push_str("false"),
            Value::Int(number) => {
                let _ = write!(out, "{number}");
            }
            Value::Float(number) => out.push_str(&float_repr(*number)),
            Value::String(text) => write_string(text, out),
            Value::List(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    item.write_to(out);
                }
                out.push(']');
            }
            Value::Mapping(entries) => {
                out.push('{');
                for (index, (key, value)) in entries.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    write_string(key, out);
                    out.push_str(": ");
                    value.write_to(out);
                }
                out.push('}');
            }
        }
    }
}

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

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, flag: bool) -> Result<Value, E> {
        Ok(Value::Bool(flag))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Value, E> {
        Ok(Value::Int(number.into()))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Value, E> {
        Ok(Value::Int(number.into()))
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Value, E> {
        Ok(Value::Float(number))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Value, E> {
        Ok(Value::String(text.to_owned()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Value, E> {
        Ok(Value::String(text))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries: Vec<(String, Value)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            // Python's dict: a repeated key keeps its first position and takes the last value.
            match entries.iter_mut().find(|(existing, _)| *existing == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key, value)),
            }
        }
        Ok(Value::Mapping(entries))
    }
}

/// Writes `text` as a JSON string the way `json.dumps` does with `ensure_ascii=True`:
/// everything outside printable ASCII escaped, astral characters as surrogate pairs.
fn write_string(text: &str, out: &mut String) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(character),
            _ => {
                let mut units = [0u16; 2];
                for unit in character.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest digits that round-trip, in positional notation
/// when the decimal exponent is in -4..16, otherwise as `d.ddde+XX`.
fn float_repr(number: f64) -> String {
    if number.is_nan() {
        return "NaN".into();
    }
    if number.is_infinite() {
        return if number > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    // Rust's `{:e}` gives the same shortest round-trip digits, as `d.ddde-7`.
    let scientific = format!("{:e}", number.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if number.is_sign_negative() { "-" } else { "" };

    let body = if (-4..16).contains(&exponent) {
        if exponent < 0 {
            format!("0.{}{digits}", "0".repeat((-exponent - 1) as usize))
        } else {
            let integer_len = exponent as usize + 1;
            if digits.len() > integer_len {
                format!("{}.{}", &digits[..integer_len], &digits[integer_len..])
            } else {
                format!("{digits}{}.0", "0".repeat(integer_len - digits.len()))
            }
        }
    } else {
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{exponent_sign}{:02}", exponent.abs())
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_matches_python_separators_and_keeps_order() {
        let value = loads(r#"{"b":1,"a":[true,null,"x"],"c":{}}"#).unwrap();
        assert_eq!(value.dumps(), r#"{"b": 1, "a": [true, null, "x"], "c": {}}"#);
        assert_eq!(loads("[]").unwrap().dumps(), "[]");
    }

    #[test]
    fn repeated_keys_keep_first_place_and_last_value() {
        assert_eq!(loads(r#"{"a":1,"b":2,"a":3}"#).unwrap().dumps(), r#"{"a": 3, "b": 2}"#);
    }

    #[test]
    fn strings_are_escaped_like_ensure_ascii() {
        let value = Value::String("é \"q\" \\ \n\t\u{7f}\u{1}/😀".into());
        assert_eq!(value.dumps(), r#""\u00e9 \"q\" \\ \n\t\u007f\u0001/\ud83d\ude00""#);
    }

    #[test]
    fn floats_are_written_like_python_repr() {
        let cases = [
            (1.0, "1.0"),
            (100.0, "100.0"),
            (1.5, "1.5"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123456.789, "123456.789"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345e100, "1.2345e+100"),
            (-2.5e-300, "-2.5e-300"),
        ];
        for (number, python) in cases {
            assert_eq!(Value::Float(number).dumps(), python, "{number}");
        }
        assert_eq!(loads("1e2").unwrap().dumps(), "100.0");
        assert_eq!(loads("-7").unwrap().dumps(), "-7");
        assert_eq!(loads("18446744073709551615").unwrap().dumps(), "18446744073709551615");
    }

    #[test]
    fn serde_json_values_convert() {
        let value = Value::from(serde_json::json!({"n": 2, "f": 0.5, "s": "t", "l": [null]}));
        // serde_json's own map is sorted, so the converted order is too.
        assert_eq!(value.dumps(), r#"{"f": 0.5, "l": [null], "n": 2, "s": "t"}"#);
    }

    #[test]
    fn invalid_json_is_an_error() {
        assert!(loads("not json").is_err());
        assert!(loads("NaN").is_err());
    }
}
