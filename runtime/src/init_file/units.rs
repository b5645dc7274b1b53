//! Durations and byte sizes as operators write them in `limits:` (and durations as they write
//! them on the command line: [`parse_duration`] serves both).

use std::time::Duration;

use serde_json::Value;

/// The longest duration accepted: 100 years.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `30s`, `1m 30s`, `500ms` (humantime's forms), or a plain number of seconds, written as text.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let parsed = match text.trim().parse::<f64>() {
        Ok(seconds) => Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string()),
        Err(_) => humantime::parse_duration(text).map_err(|e| e.to_string()),
    };
    parsed.map_err(|e| format!("'{text}' is not a duration like 30s, 500ms or a number of seconds: {e}"))
}

/// A `limits:` duration: [`parse_duration`]'s forms, or a JSON number of seconds; more than 0
/// and at most 100 years.
pub(super) fn duration(value: &Value) -> Result<Duration, String> {
    let duration = match value {
        Value::Number(n) => n
            .as_f64()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| format!("'{n}' is not a number of seconds"))?,
        Value::String(text) => parse_duration(text)?,
        other => return Err(format!("{other} is not a duration like 30s or 500ms")),
    };
    if duration.is_zero() {
        return Err("must be more than 0".into());
    }
    // A run's deadline is `now + timeout`: past this the addition would overflow (a panic at
    // start-up). No real limit comes near it.
    if duration > MAX_DURATION {
        return Err(format!("{} is too large: at most 100 years", humantime::format_duration(duration)));
    }
    Ok(duration)
}

/// `64MiB`, `512 KiB`, `1GB`, or a plain number of bytes.
pub(super) fn bytes(value: &Value) -> Result<usize, String> {
    let size = match value {
        Value::Number(n) => n.as_u64().ok_or_else(|| format!("'{n}' is not a number of bytes"))?,
        Value::String(text) => {
            parse_size(text).ok_or_else(|| format!("'{text}' is not a size like 64MiB or 512KiB"))?
        }
        other => return Err(format!("{other} is not a size like 64MiB")),
    };
    if size == 0 {
        return Err("must be more than 0".into());
    }
    usize::try_from(size).map_err(|_| format!("{size} bytes is too large"))
}

fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(duration(&json!("30s")).unwrap(), Duration::from_secs(30));
        assert_eq!(duration(&json!("500ms")).unwrap(), Duration::from_millis(500));
        assert_eq!(duration(&json!(2)).unwrap(), Duration::from_secs(2));
        assert_eq!(duration(&json!("1.5")).unwrap(), Duration::from_millis(1500));
        assert!(duration(&json!("soon")).is_err());
        assert!(duration(&json!(0)).is_err());
        // Found by the property tests: too large for a Duration is an error, not a panic.
        assert!(duration(&json!(3.07e33)).is_err());
        assert!(duration(&json!(1.5e19)).unwrap_err().contains("too large"));
        assert!(duration(&json!("400000000000years")).unwrap_err().contains("too large"));
        assert!(duration(&json!(-1.5)).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(bytes(&json!("64MiB")).unwrap(), 64 << 20);
        assert_eq!(bytes(&json!("512 KiB")).unwrap(), 512 << 10);
        assert_eq!(bytes(&json!("1GB")).unwrap(), 1_000_000_000);
        assert_eq!(bytes(&json!(4096)).unwrap(), 4096);
        assert!(bytes(&json!("lots")).is_err());
        assert!(bytes(&json!("64XB")).is_err());
    }
}
