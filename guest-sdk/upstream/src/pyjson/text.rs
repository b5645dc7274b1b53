//! How Python writes a [`Value`]: `json.dumps` with its defaults ([`Value::dumps`]) and `str()`
//! ([`Value::py_str`]). The two differ only in how they spell the scalars and strings, so one
//! writer serves both, told which [`Style`] to use.

use std::fmt::Write;

use super::Value;

impl Value {
    /// The JSON text Python's `json.dumps(value)` writes for this value.
    pub fn dumps(&self) -> String {
        let mut out = String::new();
        write_value(&mut out, self, Style::Json);
        out
    }

    /// Python's `str(value)`: a string as itself, anything else as its `repr`.
    pub fn py_str(&self) -> String {
        match self {
            Value::String(text) => text.clone(),
            other => {
                let mut out = String::new();
                write_value(&mut out, other, Style::Repr);
                out
            }
        }
    }
}

/// `json.dumps` or `repr`.
#[derive(Clone, Copy, PartialEq)]
enum Style {
    Json,
    Repr,
}

impl Style {
    fn spell(self, json: &'static str, repr: &'static str) -> &'static str {
        match self {
            Style::Json => json,
            Style::Repr => repr,
        }
    }
}

fn write_value(out: &mut String, value: &Value, style: Style) {
    match value {
        Value::Null => out.push_str(style.spell("null", "None")),
        Value::Bool(true) => out.push_str(style.spell("true", "True")),
        Value::Bool(false) => out.push_str(style.spell("false", "False")),
        Value::Int(number) => write!(out, "{number}").expect("writing to a String cannot fail"),
        Value::Float(number) if number.is_nan() => out.push_str(style.spell("NaN", "nan")),
        Value::Float(number) if number.is_infinite() => {
            out.push_str(if *number > 0.0 { style.spell("Infinity", "inf") } else { style.spell("-Infinity", "-inf") })
        }
        Value::Float(number) => out.push_str(&float_repr(*number)),
        Value::String(text) => write_string(out, text, style),
        Value::List(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_value(out, item, style);
            }
            out.push(']');
        }
        Value::Mapping(mapping) => {
            out.push('{');
            for (index, (key, item)) in mapping.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_string(out, key, style);
                out.push_str(": ");
                write_value(out, item, style);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, text: &str, style: Style) {
    match style {
        Style::Json => write_json_string(out, text),
        Style::Repr => write_str_repr(out, text),
    }
}

/// A JSON string the way `json.dumps` writes it with `ensure_ascii=True`: everything outside
/// printable ASCII escaped as `\uXXXX`, astral characters as surrogate pairs.
fn write_json_string(out: &mut String, text: &str) {
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
                    write!(out, "\\u{unit:04x}").expect("writing to a String cannot fail");
                }
            }
        }
    }
    out.push('"');
}

/// A string's `repr`: Python's choice of quote and its escapes for the characters a config is
/// likely to hold; other non-printable Unicode (which Python also escapes) is passed through.
fn write_str_repr(out: &mut String, text: &str) {
    let quote = if text.contains('\'') && !text.contains('"') { '"' } else { '\'' };
    out.push(quote);
    for character in text.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                write!(out, "\\x{:02x}", c as u32).expect("writing to a String cannot fail")
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python's `repr(float)` of a finite float: the shortest digits that round-trip, positional
/// when the decimal exponent is in -4..16, otherwise as `d.ddde+XX`.
fn float_repr(number: f64) -> String {
    // Rust's `{:e}` gives the same shortest round-trip digits, as `d.ddde-7`.
    let scientific = format!("{:e}", number.abs());
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` has an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` has an integer exponent");
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
