//! Go durations: `time.ParseDuration` and `Duration.String()`, byte for byte.
//!
//! Knative's annotations and `config-autoscaler` keys (`window`, `scale-down-delay`,
//! `stable-window`, ...) are Go durations, and Knative's error texts print durations the Go
//! way (`expected 6s <= 1s <= 1h0m0s`). Both directions therefore follow Go's `time` package
//! exactly, including its quirks: a bare `0` is the only number allowed without a unit,
//! fractions are converted through `float64`, and error texts quote the input with the `time`
//! package's own quoting (non-ASCII bytes become `\xNN`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Go `time.Duration`: a signed count of nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(pub i64);

/// Why a string is not a Go duration; `Display` is Go's error text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// `time: invalid duration "<input>"`.
    #[error("time: invalid duration {}", go_quote(.input))]
    Invalid {
        /// The whole input.
        input: String,
    },
    /// `time: missing unit in duration "<input>"`.
    #[error("time: missing unit in duration {}", go_quote(.input))]
    MissingUnit {
        /// The whole input.
        input: String,
    },
    /// `time: unknown unit "<unit>" in duration "<input>"`.
    #[error("time: unknown unit {} in duration {}", go_quote(.unit), go_quote(.input))]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
}

impl GoDuration {
    /// One nanosecond.
    pub const NANOSECOND: GoDuration = GoDuration(1);
    /// One microsecond.
    pub const MICROSECOND: GoDuration = GoDuration(1_000);
    /// One millisecond.
    pub const MILLISECOND: GoDuration = GoDuration(1_000_000);
    /// One second.
    pub const SECOND: GoDuration = GoDuration(1_000_000_000);
    /// One minute.
    pub const MINUTE: GoDuration = GoDuration(60 * 1_000_000_000);
    /// One hour.
    pub const HOUR: GoDuration = GoDuration(3_600 * 1_000_000_000);
    /// Zero.
    pub const ZERO: GoDuration = GoDuration(0);

    /// Parses a duration exactly as Go's `time.ParseDuration`: a possibly signed sequence of
    /// decimal numbers, each with an optional fraction and a unit (`ns`, `us`, `µs`, `μs`,
    /// `ms`, `s`, `m`, `h`), such as `300ms`, `-1.5h` or `2h45m`. `0` alone needs no unit.
    pub fn parse(s: &str) -> Result<GoDuration, DurationError> {
        parse_go_duration(s)
    }

    /// `secs` seconds (saturating at the bounds of `i64` nanoseconds).
    pub const fn from_secs(secs: i64) -> GoDuration {
        GoDuration(secs.saturating_mul(1_000_000_000))
    }

    /// `ms` milliseconds (saturating).
    pub const fn from_millis(ms: i64) -> GoDuration {
        GoDuration(ms.saturating_mul(1_000_000))
    }

    /// The duration in nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// The duration in seconds as a float, like Go's `Duration.Seconds()`.
    pub fn as_secs_f64(self) -> f64 {
        let sec = self.0 / 1_000_000_000;
        let nsec = self.0 % 1_000_000_000;
        sec as f64 + nsec as f64 / 1e9
    }

    /// The standard-library duration, or `None` when negative.
    pub fn to_std(self) -> Option<std::time::Duration> {
        u64::try_from(self.0)
            .ok()
            .map(std::time::Duration::from_nanos)
    }

    /// Go's `Duration.Round(m)`: rounds to the nearest multiple of `m`, halves away from zero;
    /// `m <= 0` returns the duration unchanged; saturates instead of overflowing.
    pub fn round(self, m: GoDuration) -> GoDuration {
        let (d, m) = (self.0, m.0);
        if m <= 0 {
            return self;
        }
        let less_than_half = |x: i64| (x as u64).wrapping_add(x as u64) < m as u64;
        // Go computes in wrapping int64 and detects overflow by the direction of the result;
        // i128 gives the same answers without wrapping.
        let mut r = d % m;
        if d < 0 {
            r = -r;
            if less_than_half(r) {
                return GoDuration(d + r);
            }
            let d1 = i128::from(d) - i128::from(m) + i128::from(r);
            return GoDuration(i64::try_from(d1).unwrap_or(i64::MIN));
        }
        if less_than_half(r) {
            return GoDuration(d - r);
        }
        let d1 = i128::from(d) + i128::from(m) - i128::from(r);
        GoDuration(i64::try_from(d1).unwrap_or(i64::MAX))
    }

    /// Go's `Duration.Truncate(m)`: rounds toward zero to a multiple of `m`; `m <= 0` returns
    /// the duration unchanged.
    pub fn truncate(self, m: GoDuration) -> GoDuration {
        if m.0 <= 0 {
            return self;
        }
        GoDuration(self.0 - self.0 % m.0)
    }
}

impl FromStr for GoDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GoDuration::parse(s)
    }
}

/// Go's `Duration.String()`: `1h0m0s`, `1.5s`, `100ms`, `1µs`, `0s`.
impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_go_duration(self.0))
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        GoDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

const UNITS: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
];

const ONE_63: u64 = 1 << 63;

fn parse_go_duration(orig: &str) -> Result<GoDuration, DurationError> {
    let invalid = || DurationError::Invalid {
        input: orig.to_string(),
    };
    let mut s = orig.as_bytes();
    let mut neg = false;
    if let Some(&c) = s.first() {
        if c == b'-' || c == b'+' {
            neg = c == b'-';
            s = &s[1..];
        }
    }
    if s == b"0" {
        return Ok(GoDuration(0));
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut d: u64 = 0;
    while !s.is_empty() {
        // The next character must be [0-9.].
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // [0-9]*
        let before = s.len();
        let (mut v, rest) = leading_int(s).ok_or_else(invalid)?;
        s = rest;
        let pre = before != s.len();
        // (\.[0-9]*)?
        let mut post = false;
        let (mut f, mut scale) = (0u64, 1f64);
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let before = s.len();
            let (ff, sc, rest) = leading_fraction(s);
            (f, scale, s) = (ff, sc, rest);
            post = before != s.len();
        }
        if !pre && !post {
            return Err(invalid());
        }
        // The unit: everything up to the next '.' or digit.
        let i = s
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if i == 0 {
            return Err(DurationError::MissingUnit {
                input: orig.to_string(),
            });
        }
        let (u, rest) = s.split_at(i);
        s = rest;
        let unit = UNITS
            .iter()
            .find(|(name, _)| name.as_bytes() == u)
            .map(|&(_, n)| n);
        let Some(unit) = unit else {
            return Err(DurationError::UnknownUnit {
                // Unit boundaries are ASCII bytes, so the slice is valid UTF-8.
                unit: String::from_utf8_lossy(u).into_owned(),
                input: orig.to_string(),
            });
        };
        if v > ONE_63 / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            // Go goes through float64 here (nanosecond-accurate for fractions of hours).
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > ONE_63 {
                return Err(invalid());
            }
        }
        d = d.wrapping_add(v);
        if d > ONE_63 {
            return Err(invalid());
        }
    }
    if neg {
        return Ok(GoDuration((d as i64).wrapping_neg()));
    }
    if d > ONE_63 - 1 {
        return Err(invalid());
    }
    Ok(GoDuration(d as i64))
}

/// Go's `leadingInt`: consumes `[0-9]*`; `None` on overflow past 2^63.
fn leading_int(s: &[u8]) -> Option<(u64, &[u8])> {
    let mut x: u64 = 0;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        if x > ONE_63 / 10 {
            return None;
        }
        x = x * 10 + u64::from(s[i] - b'0');
        if x > ONE_63 {
            return None;
        }
        i += 1;
    }
    Some((x, &s[i..]))
}

/// Go's `leadingFraction`: consumes `[0-9]*`, stops accumulating precision on overflow.
fn leading_fraction(s: &[u8]) -> (u64, f64, &[u8]) {
    let mut x: u64 = 0;
    let mut scale = 1f64;
    let mut overflow = false;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        let c = s[i];
        i += 1;
        if overflow {
            continue;
        }
        if x > (ONE_63 - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(c - b'0');
        if y > ONE_63 {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[i..])
}

/// The `time` package's `quote`: like `strconv.Quote` for printable ASCII, but every byte of
/// a non-ASCII or control character is written as `\xNN`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c as u32 >= 0x80 || c < ' ' {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

fn format_go_duration(d: i64) -> String {
    // Built right to left, as Go does.
    let mut buf: Vec<u8> = Vec::with_capacity(32);
    let neg = d < 0;
    let mut u = d.unsigned_abs();
    if u < 1_000_000_000 {
        // Less than a second: a smaller unit, like 1.2ms.
        if u == 0 {
            return "0s".to_string();
        }
        let prec;
        buf.push(b's');
        if u < 1_000 {
            prec = 0;
            buf.push(b'n');
        } else if u < 1_000_000 {
            prec = 3;
            // "µ" (U+00B5) reversed.
            buf.extend_from_slice(&[0xB5, 0xC2]);
        } else {
            prec = 6;
            buf.push(b'm');
        }
        u = fmt_frac(&mut buf, u, prec);
        fmt_int(&mut buf, u);
    } else {
        buf.push(b's');
        u = fmt_frac(&mut buf, u, 9);
        fmt_int(&mut buf, u % 60);
        u /= 60;
        if u > 0 {
            buf.push(b'm');
            fmt_int(&mut buf, u % 60);
            u /= 60;
            if u > 0 {
                buf.push(b'h');
                fmt_int(&mut buf, u);
            }
        }
    }
    if neg {
        buf.push(b'-');
    }
    buf.reverse();
    String::from_utf8(buf).expect("ASCII and µ only")
}

/// Appends (reversed) the fraction of `v / 10^prec` without trailing zeros, and the point
/// when anything was printed; returns `v / 10^prec`.
fn fmt_frac(buf: &mut Vec<u8>, mut v: u64, prec: u32) -> u64 {
    let mut print = false;
    for _ in 0..prec {
        let digit = (v % 10) as u8;
        print = print || digit != 0;
        if print {
            buf.push(b'0' + digit);
        }
        v /= 10;
    }
    if print {
        buf.push(b'.');
    }
    v
}

/// Appends (reversed) the decimal digits of `v`.
fn fmt_int(buf: &mut Vec<u8>, mut v: u64) {
    if v == 0 {
        buf.push(b'0');
        return;
    }
    while v > 0 {
        buf.push(b'0' + (v % 10) as u8);
        v /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<i64, &str>) {
        let got = GoDuration::parse(input)
            .map(|d| d.0)
            .map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(str::to_string), "parse({input:?})");
    }

    const NS: i64 = 1;
    const US: i64 = 1_000;
    const MS: i64 = 1_000_000;
    const S: i64 = 1_000_000_000;
    const M: i64 = 60 * S;
    const H: i64 = 60 * M;

    #[test]
    fn parses_like_go() {
        // Go's own TestParseDuration table (time/time_test.go), plus Knative's values.
        let table: &[(&str, i64)] = &[
            ("0", 0),
            ("5s", 5 * S),
            ("30s", 30 * S),
            ("1478s", 1478 * S),
            ("-5s", -5 * S),
            ("+5s", 5 * S),
            ("-0", 0),
            ("+0", 0),
            ("5.0s", 5 * S),
            ("5.6s", 5 * S + 600 * MS),
            ("5.s", 5 * S),
            (".5s", 500 * MS),
            ("1.0s", S),
            ("1.00s", S),
            ("1.004s", S + 4 * MS),
            ("1.0040s", S + 4 * MS),
            ("100.00100s", 100 * S + MS),
            ("10ns", 10 * NS),
            ("11us", 11 * US),
            ("12µs", 12 * US),
            ("12μs", 12 * US),
            ("13ms", 13 * MS),
            ("14s", 14 * S),
            ("15m", 15 * M),
            ("16h", 16 * H),
            ("3h30m", 3 * H + 30 * M),
            ("10.5s4m", 4 * M + 10 * S + 500 * MS),
            ("-2m3.4s", -(2 * M + 3 * S + 400 * MS)),
            (
                "1h2m3s4ms5us6ns",
                H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS,
            ),
            ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
            ("52763797000ns", 52763797000 * NS),
            ("0.3333333333333333333h", 20 * M),
            ("9007199254740993ns", (1 << 53) + 1),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("9223372036s854ms775us807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036854775.808us", i64::MIN),
            ("-9223372036s854ms775us808ns", i64::MIN),
            ("-2562047h47m16.854775808s", i64::MIN),
            ("0.100000000000000000000h", 6 * M),
            ("0.830103483285477580700h", 49 * M + 48 * S + 372539827 * NS),
            ("1h30m", 90 * M),
            ("1.5h", 90 * M),
            ("168h", 168 * H),
            ("21m31s", 21 * M + 31 * S),
            ("1984s", 1984 * S),
            ("311m", 311 * M),
            ("0s", 0),
        ];
        for &(input, nanos) in table {
            check(input, Ok(nanos));
        }
    }

    #[test]
    fn errors_like_go() {
        let table: &[(&str, &str)] = &[
            ("", r#"time: invalid duration """#),
            ("3", r#"time: missing unit in duration "3""#),
            ("10", r#"time: missing unit in duration "10""#),
            ("-", r#"time: invalid duration "-""#),
            ("s", r#"time: invalid duration "s""#),
            (".", r#"time: invalid duration ".""#),
            ("-.", r#"time: invalid duration "-.""#),
            (".s", r#"time: invalid duration ".s""#),
            ("+.s", r#"time: invalid duration "+.s""#),
            ("1d", r#"time: unknown unit "d" in duration "1d""#),
            ("5x", r#"time: unknown unit "x" in duration "5x""#),
            ("1 s", r#"time: unknown unit " s" in duration "1 s""#),
            ("1..5s", r#"time: missing unit in duration "1..5s""#),
            ("1s ", r#"time: unknown unit "s " in duration "1s ""#),
            (
                "jerry-seinfeld",
                r#"time: invalid duration "jerry-seinfeld""#,
            ),
            ("-1", r#"time: missing unit in duration "-1""#),
            ("\"s", r#"time: invalid duration "\"s""#),
            ("\u{663}s", r#"time: invalid duration "\xd9\xa3s""#),
            (
                "5µx",
                r#"time: unknown unit "\xc2\xb5x" in duration "5\xc2\xb5x""#,
            ),
            (
                "9223372036854775810ns",
                r#"time: invalid duration "9223372036854775810ns""#,
            ),
            (
                "9223372036854775808ns",
                r#"time: invalid duration "9223372036854775808ns""#,
            ),
            (
                "-9223372036854775809ns",
                r#"time: invalid duration "-9223372036854775809ns""#,
            ),
            (
                "9223372036854776us",
                r#"time: invalid duration "9223372036854776us""#,
            ),
            ("3000000h", r#"time: invalid duration "3000000h""#),
            (
                "9223372036854775.808us",
                r#"time: invalid duration "9223372036854775.808us""#,
            ),
            (
                "9223372036854ms775us808ns",
                r#"time: invalid duration "9223372036854ms775us808ns""#,
            ),
        ];
        for &(input, message) in table {
            check(input, Err(message));
        }
    }

    fn check_display(nanos: i64, expected: &str) {
        assert_eq!(GoDuration(nanos).to_string(), expected, "String({nanos})");
    }

    #[test]
    fn displays_like_go() {
        // Go's TestDurationString table plus the strings Knative's messages print.
        let table: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1100, "1.1µs"),
            (1000, "1µs"),
            (2200 * US, "2.2ms"),
            (100 * MS, "100ms"),
            (3300 * MS, "3.3s"),
            (1500 * MS, "1.5s"),
            (6 * S, "6s"),
            (4 * M + 5 * S, "4m5s"),
            (4 * M + 5001 * MS, "4m5.001s"),
            (5 * H + 6 * M + 7001 * MS, "5h6m7.001s"),
            (8 * M + 1, "8m0.000000001s"),
            (H, "1h0m0s"),
            (M, "1m0s"),
            (311 * M, "5h11m0s"),
            (35 * S, "35s"),
            (1234567890, "1.23456789s"),
            (-2 * S, "-2s"),
            (-1, "-1ns"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for &(nanos, expected) in table {
            check_display(nanos, expected);
        }
    }

    fn check_round(d: i64, m: i64, round: i64, truncate: i64) {
        assert_eq!(
            GoDuration(d).round(GoDuration(m)).0,
            round,
            "{d}.Round({m})"
        );
        assert_eq!(
            GoDuration(d).truncate(GoDuration(m)).0,
            truncate,
            "{d}.Truncate({m})"
        );
    }

    #[test]
    fn rounds_like_go() {
        // (d, m, Round, Truncate), from Go's TestDurationRound / TestDurationTruncate.
        let table: &[(i64, i64, i64, i64)] = &[
            (0, S, 0, 0),
            (M, -7 * S, M, M),
            (M, 0, M, M),
            (M, 1, M, M),
            (M + 10 * S, 10 * S, M + 10 * S, M + 10 * S),
            (2 * M, 2 * M, 2 * M, 2 * M),
            (10 * M + 10 * S, 3 * M, 9 * M, 9 * M),
            (M + 10 * S, M + 10 * S + 1, M + 10 * S + 1, 0),
            (M + 10 * S, H, 0, 0),
            (-M, S, -M, -M),
            (-10 * M, 3 * M, -9 * M, -9 * M),
            (-10 * M, H, 0, 0),
            (23_400 * MS, S, 23 * S, 23 * S),
            (1_500 * MS, S, 2 * S, S),
            (-1_500 * MS, S, -2 * S, -S),
            (i64::MAX, S, i64::MAX, i64::MAX - i64::MAX % S),
            (i64::MIN, S, i64::MIN, i64::MIN - i64::MIN % S),
            (i64::MAX, 3 * H, i64::MAX, i64::MAX - i64::MAX % (3 * H)),
        ];
        for &(d, m, round, truncate) in table {
            check_round(d, m, round, truncate);
        }
    }

    #[test]
    fn conversions() {
        assert_eq!(GoDuration::from_secs(6).as_nanos(), 6 * S);
        assert_eq!(
            GoDuration::from_secs(2).to_std(),
            Some(std::time::Duration::from_secs(2))
        );
        assert_eq!(GoDuration(-1).to_std(), None);
        assert_eq!(GoDuration(1500 * MS).as_secs_f64(), 1.5);
        assert_eq!("90s".parse::<GoDuration>(), Ok(GoDuration(90 * S)));
        assert_eq!(
            serde_json::to_string(&GoDuration(H)).unwrap(),
            r#""1h0m0s""#
        );
        let d: GoDuration = serde_json::from_str(r#""1m30s""#).unwrap();
        assert_eq!(d, GoDuration(90 * S));
        let err = serde_json::from_str::<GoDuration>(r#""10""#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(r#"time: missing unit in duration "10""#),
            "{err}"
        );
    }
}
