//! Durations as flags take them: a number and a unit, repeated (`250ms`, `2s`, `1.5s`,
//! `1m30s`), as Go and Kubernetes write them. A bare number counts seconds.

use std::time::Duration;

/// Parses `text` as a duration, or says what was expected.
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!("invalid duration {text:?}: expected a number and a unit (ns, us, ms, s, m, h), like 250ms, 2s or 1m30s")
    };
    let text_trimmed = text.trim();
    if text_trimmed.is_empty() {
        return Err(invalid());
    }
    if let Ok(seconds) = text_trimmed.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|_| invalid());
    }
    let mut total = Duration::ZERO;
    let mut rest = text_trimmed;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let unit_len = rest[number_len..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len() - number_len);
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        let unit_seconds = match &rest[number_len..number_len + unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += Duration::try_from_secs_f64(number * unit_seconds).map_err(|_| invalid())?;
        rest = &rest[number_len + unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<Duration, ()>) {
        assert_eq!(parse(text).map_err(|_| ()), expected, "parse({text:?})");
    }

    #[test]
    fn durations() {
        check("0", Ok(Duration::ZERO));
        check("2", Ok(Duration::from_secs(2)));
        check("0.5", Ok(Duration::from_millis(500)));
        check("250ms", Ok(Duration::from_millis(250)));
        check("2s", Ok(Duration::from_secs(2)));
        check("1.5s", Ok(Duration::from_millis(1500)));
        check("1m30s", Ok(Duration::from_secs(90)));
        check("1h", Ok(Duration::from_secs(3600)));
        check("100us", Ok(Duration::from_micros(100)));
        check("7ns", Ok(Duration::from_nanos(7)));
        check(" 3s ", Ok(Duration::from_secs(3)));
        check("", Err(()));
        check("s", Err(()));
        check("5 s", Err(()));
        check("5x", Err(()));
        check("-1s", Err(()));
        check("-1", Err(()));
        check("1..2s", Err(()));
    }
}
