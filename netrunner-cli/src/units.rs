//! Parsing durations (`500ms`, `10s`, `2m`) and sizes (`64KiB`, `10MB`).

use std::time::Duration;

/// Parses `500ms`, `10s`, `1.5s`, `2m`, `1h`; a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 500ms, 10s, 2m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "invalid duration unit {other:?} in {text:?}: use ms, s, m or h"
            ))
        }
    };
    if !(0.0..=1e9).contains(&seconds) {
        return Err(format!("duration {text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses byte sizes: `1000`, `64KiB` (= 65536), `10MB` (= 10,000,000),
/// `1GiB`; units are case-insensitive, `B` optional.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("invalid size {text:?}: expected e.g. 65536, 64KiB, 10MB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size unit {other:?} in {text:?}: use B, KB, KiB, MB, MiB, GB or GiB"
            ))
        }
    };
    value
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size {text:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("1gib"), Ok(1 << 30));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("1.5MB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
        assert!(parse_size("5 furlongs").is_err());
    }
}
