//! Kubernetes resource quantities (`500m`, `6Gi`, `1e9`), parsed exactly as
//! `k8s.io/apimachinery/pkg/api/resource.ParseQuantity` parses them.
//!
//! The grammar (from `quantity.go`):
//!
//! ```text
//! <quantity>        ::= <signedNumber><suffix>
//! <signedNumber>    ::= <number> | <sign><number>
//! <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
//! <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
//! <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
//! <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>
//! ```
//!
//! Kubernetes' scanner is more lenient than the grammar, and this one is the same scanner:
//! an empty number counts as zero (`"."`, `"+"`, `"Ki"` and `"m"` all parse as 0), and `1.G`
//! is accepted. Values finer than a nano are rounded away from zero to the next nano
//! (`0.1n` is `1n`), binary-suffixed values are capped at 2^63 - 1, and decimal values are
//! kept exactly (here: within ±1.7·10^29, beyond which they saturate).

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The regular expression Kubernetes names in its syntax error.
const SPLIT_RE: &str = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

/// Nano units per unit.
const NANO: i128 = 1_000_000_000;

/// Where huge values saturate: the largest whole number of units an `i128` of nanos holds
/// (about 1.7·10^29).
const SATURATED: i128 = i128::MAX - i128::MAX % NANO;

/// A resource quantity: its text as written and its exact value.
///
/// Equality, ordering and hashing compare values (`1Gi == 1024Mi`, `1 == 1000m`), like
/// Kubernetes' `Quantity.Cmp`; `Display` and serialisation give the text as written.
#[derive(Debug, Clone)]
pub struct Quantity {
    text: String,
    /// The value in units of 10^-9.
    nanos: i128,
}

/// Why a string is not a quantity; `Display` is Kubernetes' error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text does not have the shape of a quantity (`abc`, `1GB`, `1gi`, `1.2.3`, ``).
    #[error("quantities must match the regular expression '{}'", SPLIT_RE)]
    Format,
    /// The number part has no digit where Kubernetes needs one (`e-10`).
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    /// The suffix is made of suffix letters but is not a suffix (`1K`, `1iG`, `1e`, `1m3`).
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

/// How a suffix scales the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    /// × 10^exponent (`k`, `m`, `e3`, ...).
    Decimal(i32),
    /// × 2^exponent (`Ki`, `Mi`, ...).
    Binary(u32),
}

impl Quantity {
    /// Parses a quantity exactly as Kubernetes' `ParseQuantity` (no surrounding whitespace).
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let nanos = parse_nanos(s)?;
        Ok(Quantity {
            text: s.to_string(),
            nanos,
        })
    }

    /// The value × 1000, rounded away from zero to an integer (Kubernetes' `MilliValue()`:
    /// `500m` → 500, `0.1m` → 1); saturates at the bounds of `i64`.
    pub fn milli_value(&self) -> i64 {
        saturate_i64(div_away_from_zero(self.nanos, 1_000_000))
    }

    /// The value rounded away from zero to an integer (Kubernetes' `Value()`: `500m` → 1,
    /// `6Gi` → 6442450944); saturates at the bounds of `i64`.
    pub fn value(&self) -> i64 {
        saturate_i64(div_away_from_zero(self.nanos, NANO))
    }

    /// The exact value in units of 10^-9 (`1n` → 1, `1` → 10^9).
    pub fn nano_value(&self) -> i128 {
        self.nanos
    }

    /// Whether the value is a whole number (`2`, `1Ki`, `1000m`; not `500m` or `2.5`).
    pub fn is_integer(&self) -> bool {
        self.nanos % NANO == 0
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.nanos.hash(state);
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// Accepts a string (trimmed, as Kubernetes' `UnmarshalJSON` does), an integer or a float
/// (written the shortest way that reads back the same: `0.5`, `1000000000`).
impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(QuantityVisitor)
    }
}

struct QuantityVisitor;

impl QuantityVisitor {
    fn parse<E: de::Error>(text: &str) -> Result<Quantity, E> {
        Quantity::parse(text).map_err(E::custom)
    }
}

impl Visitor<'_> for QuantityVisitor {
    type Value = Quantity;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a quantity such as 500m, 2, 1.5 or 6Gi")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
        Self::parse(&v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
        Self::parse(&v.to_string())
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Quantity, E> {
        Self::parse(&v.to_string())
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Quantity, E> {
        Self::parse(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
        // Rust's `Display` for f64 is the shortest text that reads back as the same float,
        // without an exponent (`1e9` → `1000000000`, `0.5` → `0.5`).
        Self::parse(&v.to_string())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
        Self::parse(v.trim())
    }
}

fn saturate_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// `n / d` rounded away from zero (`d > 0`).
fn div_away_from_zero(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d == 0 {
        q
    } else if n < 0 {
        q - 1
    } else {
        q + 1
    }
}

/// The parts Kubernetes' `parseQuantityString` scans.
struct Scanned<'a> {
    positive: bool,
    /// The integer digits, leading zeros stripped.
    num: &'a str,
    /// The fraction digits.
    denom: &'a str,
    suffix: &'a str,
}

/// Kubernetes' `parseQuantityString`, a hand-written scanner that is laxer than its regex.
fn scan(s: &str) -> Result<Scanned<'_>, QuantityError> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos += 1;
        }
        Some(b'+') => pos += 1,
        _ => {}
    }
    // Leading zeros; a string of only zeros (or nothing) after the sign is zero.
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Ok(Scanned {
            positive,
            num: "",
            denom: "",
            suffix: "",
        });
    }
    let num_start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = &s[num_start..pos];
    let mut denom = "";
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let denom_start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[denom_start..pos];
    }
    // The suffix: letters from "eEinumkKMGTP", then an optional sign, then digits.
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return Err(QuantityError::Format);
    }
    Ok(Scanned {
        positive,
        num,
        denom,
        suffix: &s[suffix_start..],
    })
}

/// Kubernetes' `suffixHandler.interpret`.
fn interpret(suffix: &str) -> Option<Scale> {
    let decimal = match suffix {
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "" => Some(0),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(e) = decimal {
        return Some(Scale::Decimal(e));
    }
    let binary = match suffix {
        "Ki" => Some(10),
        "Mi" => Some(20),
        "Gi" => Some(30),
        "Ti" => Some(40),
        "Pi" => Some(50),
        "Ei" => Some(60),
        _ => None,
    };
    if let Some(e) = binary {
        return Some(Scale::Binary(e));
    }
    let bytes = suffix.as_bytes();
    if bytes.len() > 1 && (bytes[0] == b'e' || bytes[0] == b'E') {
        // strconv.ParseInt(_, 10, 64), then Go's int32() conversion (which wraps).
        return suffix[1..]
            .parse::<i64>()
            .ok()
            .map(|e| Scale::Decimal(e as i32));
    }
    None
}

fn parse_nanos(s: &str) -> Result<i128, QuantityError> {
    if s.is_empty() {
        return Err(QuantityError::Format);
    }
    let scanned = scan(s)?;
    let scale = interpret(scanned.suffix).ok_or(QuantityError::Suffix)?;
    // Kubernetes takes a slow path (through inf.Dec) for decimal scales finer than a nano,
    // and there a number without any digit is a numeric error. Other digit-less numbers
    // are zero. Leading zeros were stripped, so look at the raw text for digits.
    let number_part = &s[..s.len() - scanned.suffix.len()];
    let has_digit = number_part.bytes().any(|c| c.is_ascii_digit());
    if let Scale::Decimal(e) = scale {
        if !has_digit && i64::from(e) - (scanned.denom.len() as i64) < -9 {
            return Err(QuantityError::Numeric);
        }
    }
    let magnitude = match scale {
        Scale::Decimal(e) => {
            let exp10 = i64::from(e) - scanned.denom.len() as i64;
            magnitude_nanos(scanned.num, scanned.denom, exp10, 0).min(SATURATED)
        }
        Scale::Binary(e) => {
            let exp10 = -(scanned.denom.len() as i64);
            let m = magnitude_nanos(scanned.num, scanned.denom, exp10, e);
            // Binary-suffixed amounts are capped at 2^63 - 1 (silently, as Kubernetes does).
            m.min(i128::from(i64::MAX) * NANO)
        }
    };
    Ok(if scanned.positive {
        magnitude
    } else {
        -magnitude
    })
}

/// `(num ++ denom) × 10^exp10 × 2^exp2`, in nanos, rounded away from zero; saturates at
/// [`SATURATED`]. Works on decimal digit strings so that any input length is exact.
fn magnitude_nanos(num: &str, denom: &str, exp10: i64, exp2: u32) -> i128 {
    let mut digits: Vec<u8> = num
        .bytes()
        .chain(denom.bytes())
        .skip_while(|&c| c == b'0')
        .map(|c| c - b'0')
        .collect();
    if digits.is_empty() {
        return 0;
    }
    for _ in 0..exp2 / 10 {
        mul_small(&mut digits, 1024);
    }
    let e = exp10.saturating_add(9);
    // i128::MAX has 39 digits.
    const MAX_DIGITS: i64 = 39;
    if e >= 0 {
        if digits.len() as i64 + e > MAX_DIGITS {
            return SATURATED;
        }
        digits.extend(std::iter::repeat_n(0, e as usize));
        return digits_to_i128(&digits);
    }
    let cut = e.unsigned_abs();
    if cut >= digits.len() as u64 {
        // Below one nano but not zero: rounds up to 1n.
        return 1;
    }
    let split = digits.len() - cut as usize;
    let (int_part, frac) = digits.split_at(split);
    if int_part.len() as i64 > MAX_DIGITS {
        return SATURATED;
    }
    let whole = digits_to_i128(int_part);
    if frac.iter().any(|&d| d != 0) {
        (whole + 1).min(SATURATED)
    } else {
        whole
    }
}

/// Multiplies a big-endian vector of decimal digits by `m`.
fn mul_small(digits: &mut Vec<u8>, m: u32) {
    let mut carry: u32 = 0;
    for d in digits.iter_mut().rev() {
        let v = u32::from(*d) * m + carry;
        *d = (v % 10) as u8;
        carry = v / 10;
    }
    while carry > 0 {
        digits.insert(0, (carry % 10) as u8);
        carry /= 10;
    }
}

fn digits_to_i128(digits: &[u8]) -> i128 {
    let mut v: i128 = 0;
    for &d in digits {
        v = match v.checked_mul(10).and_then(|x| x.checked_add(i128::from(d))) {
            Some(x) => x,
            None => return SATURATED,
        };
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deserialisation outcome: Ok((text kept, nanos)) or Err(start of the message).
    type Outcome = Result<(&'static str, i128), &'static str>;

    const FORMAT: &str = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
    const SUFFIX: &str = "unable to parse quantity's suffix";
    const NUMERIC: &str = "unable to parse numeric part of quantity";

    /// Expected: Ok(nanos) or Err(message).
    fn check(input: &str, expected: Result<i128, &str>) {
        let got = Quantity::parse(input)
            .map(|q| q.nano_value())
            .map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(str::to_string), "parse({input:?})");
    }

    const G: i128 = 1_000_000_000;
    const KI: i128 = 1024 * G;
    const MI: i128 = 1024 * KI;
    const GI: i128 = 1024 * MI;

    #[test]
    fn error_text_names_the_kubernetes_regex() {
        assert_eq!(
            FORMAT,
            format!("quantities must match the regular expression '{SPLIT_RE}'")
        );
    }

    #[test]
    fn parses_like_kubernetes() {
        let table: &[(&str, i128)] = &[
            ("0", 0),
            ("500m", 500_000_000),
            ("1", G),
            ("2.5", 2_500_000_000),
            ("6Gi", 6 * GI),
            ("512Mi", 512 * MI),
            ("1e9", G * G),
            ("1E3", 1000 * G),
            ("1e+3", 1000 * G),
            ("1e-3", 1_000_000),
            ("0.1", 100_000_000),
            (".5", 500_000_000),
            ("5.", 5 * G),
            ("+1", G),
            ("-1", -G),
            ("-500m", -500_000_000),
            ("1.5Gi", 3 * GI / 2),
            ("100k", 100_000 * G),
            ("1Ki", KI),
            ("1n", 1),
            ("1u", 1_000),
            ("1k", 1_000 * G),
            ("1M", 1_000_000 * G),
            ("1G", G * G),
            ("1T", 1_000 * G * G),
            ("1P", 1_000_000 * G * G),
            ("1E", G * G * G),
            ("1Mi", MI),
            ("1Ti", 1024 * GI),
            ("1Pi", 1024 * 1024 * GI),
            ("1Ei", 1024 * 1024 * 1024 * GI),
            ("7Ei", 7 * 1024 * 1024 * 1024 * GI),
            ("0.5Ki", 512 * G),
            (".5Mi", 512 * KI),
            ("1.G", G * G),
            ("0001", G),
            ("000", 0),
            ("-0", 0),
            ("+0", 0),
            ("0.0", 0),
            ("1.000000000", G),
            ("1.0000000001", G + 1),
            ("0.1n", 1),
            ("0.9n", 1),
            ("1.5n", 2),
            ("-0.1n", -1),
            ("1e-10", 1),
            ("0.000000001", 1),
            (
                "123456789012345678901234567890",
                123_456_789_012_345_678_901_234_567_890 * G,
            ),
            ("1234567890123456789012345678901", SATURATED),
            ("12345678901234567890", 12_345_678_901_234_567_890 * G),
            ("18446744073709551616", 18_446_744_073_709_551_616 * G),
            ("8Ei", i128::from(i64::MAX) * G),
            ("-8Ei", -i128::from(i64::MAX) * G),
            ("100000000000000000000Ki", i128::from(i64::MAX) * G),
            ("1e4294967296", G), // the exponent wraps to 0 in Go's int32()
            ("1e40", SATURATED),
            // Kubernetes' scanner reads a number without digits as zero.
            (".", 0),
            ("+", 0),
            ("-", 0),
            ("Ki", 0),
            ("m", 0),
            ("e5", 0),
            (".e-9", 0),
        ];
        for &(input, nanos) in table {
            check(input, Ok(nanos));
        }
    }

    #[test]
    fn errors_like_kubernetes() {
        let table: &[(&str, &str)] = &[
            ("", FORMAT),
            ("abc", FORMAT),
            ("1GB", FORMAT),
            ("1gi", FORMAT),
            ("1.2.3", FORMAT),
            ("1 Gi", FORMAT),
            (" 1", FORMAT),
            ("1Gi ", FORMAT),
            ("1,5", FORMAT),
            ("1e1.5", FORMAT),
            ("1x", FORMAT),
            ("--1", SUFFIX),
            ("1-", SUFFIX),
            ("1K", SUFFIX),
            ("1iG", SUFFIX),
            ("1e", SUFFIX),
            ("1E+", SUFFIX),
            ("1m3", SUFFIX),
            ("1Gi3", SUFFIX),
            ("1KiB", FORMAT),
            ("1ee3", SUFFIX),
            ("1e99999999999999999999", SUFFIX),
            ("e-10", NUMERIC),
            (".e-10", NUMERIC),
            ("-e-12", NUMERIC),
        ];
        for &(input, message) in table {
            check(input, Err(message));
        }
    }

    fn check_values(input: &str, milli: i64, value: i64, integer: bool) {
        let q = Quantity::parse(input).unwrap();
        assert_eq!(q.milli_value(), milli, "MilliValue({input})");
        assert_eq!(q.value(), value, "Value({input})");
        assert_eq!(q.is_integer(), integer, "is_integer({input})");
    }

    #[test]
    fn int64_accessors_round_away_from_zero() {
        let table: &[(&str, i64, i64, bool)] = &[
            ("500m", 500, 1, false),
            ("1", 1000, 1, true),
            ("2.5", 2500, 3, false),
            ("1000m", 1000, 1, true),
            ("1001m", 1001, 2, false),
            ("0.1m", 1, 1, false),
            ("1n", 1, 1, false),
            ("0", 0, 0, true),
            ("6Gi", 6_442_450_944_000, 6_442_450_944, true),
            ("512Mi", 536_870_912_000, 536_870_912, true),
            ("1e9", 1_000_000_000_000, 1_000_000_000, true),
            ("1.5Gi", 1_610_612_736_000, 1_610_612_736, true),
            ("100k", 100_000_000, 100_000, true),
            ("1Ki", 1_024_000, 1024, true),
            ("-1", -1000, -1, true),
            ("-1.5", -1500, -2, false),
            ("-500m", -500, -1, false),
            ("1E", i64::MAX, 1_000_000_000_000_000_000, true),
            ("1e30", i64::MAX, i64::MAX, true),
        ];
        for &(input, milli, value, integer) in table {
            check_values(input, milli, value, integer);
        }
    }

    #[test]
    fn keeps_text_and_compares_values() {
        let q = Quantity::parse("1.5Gi").unwrap();
        assert_eq!(q.as_str(), "1.5Gi");
        assert_eq!(q.to_string(), "1.5Gi");
        assert_eq!(
            Quantity::parse("1Gi").unwrap(),
            Quantity::parse("1024Mi").unwrap()
        );
        assert_eq!(
            Quantity::parse("1").unwrap(),
            Quantity::parse("1000m").unwrap()
        );
        assert!(Quantity::parse("500m").unwrap() < Quantity::parse("1").unwrap());
        assert_eq!(serde_json::to_string(&q).unwrap(), r#""1.5Gi""#);
    }

    /// Expected: Ok((text, nanos)) or Err(start of the error message).
    fn check_json(json: &str, expected: Outcome) {
        match (serde_json::from_str::<Quantity>(json), expected) {
            (Ok(q), Ok((text, nanos))) => {
                assert_eq!((q.as_str(), q.nano_value()), (text, nanos), "{json}")
            }
            (Err(e), Err(message)) => {
                assert!(e.to_string().starts_with(message), "{json}: {e}")
            }
            (got, want) => panic!("{json}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn deserializes_json_integers_floats_and_strings() {
        let table: &[(&str, Outcome)] = &[
            ("1", Ok(("1", G))),
            ("-2", Ok(("-2", -2 * G))),
            ("0.5", Ok(("0.5", G / 2))),
            ("1.0", Ok(("1", G))),
            ("1e9", Ok(("1000000000", G * G))),
            ("2.5e-1", Ok(("0.25", G / 4))),
            (r#""500m""#, Ok(("500m", G / 2))),
            (r#""6Gi""#, Ok(("6Gi", 6 * GI))),
            (r#"" 1Gi ""#, Ok(("1Gi", GI))),
            (r#""1e3""#, Ok(("1e3", 1000 * G))),
            (r#""1GB""#, Err(FORMAT)),
            (r#""1K""#, Err(SUFFIX)),
            (r#""""#, Err(FORMAT)),
            (
                "true",
                Err("invalid type: boolean `true`, expected a quantity"),
            ),
            ("null", Err("invalid type: null, expected a quantity")),
        ];
        for (json, expected) in table {
            check_json(json, *expected);
        }
    }

    fn check_yaml(yaml: &str, expected: Outcome) {
        match (serde_yaml::from_str::<Quantity>(yaml), expected) {
            (Ok(q), Ok((text, nanos))) => {
                assert_eq!((q.as_str(), q.nano_value()), (text, nanos), "{yaml}")
            }
            (Err(e), Err(message)) => {
                assert!(e.to_string().starts_with(message), "{yaml}: {e}")
            }
            (got, want) => panic!("{yaml}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn deserializes_yaml_integers_floats_and_strings() {
        let table: &[(&str, Outcome)] = &[
            ("1", Ok(("1", G))),
            ("0.5", Ok(("0.5", G / 2))),
            ("500m", Ok(("500m", G / 2))),
            ("6Gi", Ok(("6Gi", 6 * GI))),
            ("'2'", Ok(("2", 2 * G))),
            ("\"100k\"", Ok(("100k", 100_000 * G))),
            ("1.5Gi", Ok(("1.5Gi", 3 * GI / 2))),
            ("1GB", Err(FORMAT)),
            ("1gi", Err(FORMAT)),
            ("''", Err(FORMAT)),
            ("1.2.3", Err(FORMAT)),
            ("abc", Err(FORMAT)),
        ];
        for (yaml, expected) in table {
            check_yaml(yaml, *expected);
        }
    }

    #[test]
    fn deserializes_in_a_struct() {
        #[derive(Debug, Deserialize)]
        struct Resources {
            cpu: Quantity,
            memory: Quantity,
            #[serde(rename = "nvidia.com/gpu")]
            gpu: Quantity,
        }
        let r: Resources =
            serde_yaml::from_str("cpu: 500m\nmemory: 6Gi\nnvidia.com/gpu: 1\n").unwrap();
        assert_eq!(r.cpu.milli_value(), 500);
        assert_eq!(r.memory.value(), 6 * 1024 * 1024 * 1024);
        assert_eq!(r.gpu.value(), 1);
        let err = serde_yaml::from_str::<Resources>("cpu: 1x\nmemory: 1\nnvidia.com/gpu: 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(&format!("cpu: {FORMAT}")), "{err}");
    }
}
