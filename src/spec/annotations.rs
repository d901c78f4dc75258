//! Knative's `autoscaling.knative.dev/*` annotations: keys, aliases and validation, exactly as
//! `pkg/apis/autoscaling/annotation_validation.go` (knative-autoscaler.md §7).
//!
//! Every key that has a camelCase alias accepts it; when both spellings are set the kebab-case
//! key wins and the alias is ignored (Knative's `kmap.KeyPriority`). Error messages are
//! Knative's, and the list is ordered as Knative prints it: sorted by message, with the keys
//! of errors that share a message merged into one error.

use std::collections::BTreeMap;
use std::fmt;

use super::autoscaling::AutoscalingDefaults;
use super::duration::GoDuration;

/// `autoscaling.knative.dev/class`.
pub const CLASS_KEY: &str = "autoscaling.knative.dev/class";
/// `autoscaling.knative.dev/metric`.
pub const METRIC_KEY: &str = "autoscaling.knative.dev/metric";
/// `autoscaling.knative.dev/target`.
pub const TARGET_KEY: &str = "autoscaling.knative.dev/target";
/// `autoscaling.knative.dev/target-utilization-percentage`.
pub const TARGET_UTILIZATION_PERCENTAGE_KEY: &str =
    "autoscaling.knative.dev/target-utilization-percentage";
/// `autoscaling.knative.dev/window`.
pub const WINDOW_KEY: &str = "autoscaling.knative.dev/window";
/// `autoscaling.knative.dev/panic-window-percentage`.
pub const PANIC_WINDOW_PERCENTAGE_KEY: &str = "autoscaling.knative.dev/panic-window-percentage";
/// `autoscaling.knative.dev/panic-threshold-percentage`.
pub const PANIC_THRESHOLD_PERCENTAGE_KEY: &str =
    "autoscaling.knative.dev/panic-threshold-percentage";
/// `autoscaling.knative.dev/min-scale`.
pub const MIN_SCALE_KEY: &str = "autoscaling.knative.dev/min-scale";
/// `autoscaling.knative.dev/max-scale`.
pub const MAX_SCALE_KEY: &str = "autoscaling.knative.dev/max-scale";
/// `autoscaling.knative.dev/initial-scale`.
pub const INITIAL_SCALE_KEY: &str = "autoscaling.knative.dev/initial-scale";
/// `autoscaling.knative.dev/activation-scale`.
pub const ACTIVATION_SCALE_KEY: &str = "autoscaling.knative.dev/activation-scale";
/// `autoscaling.knative.dev/scale-down-delay`.
pub const SCALE_DOWN_DELAY_KEY: &str = "autoscaling.knative.dev/scale-down-delay";
/// `autoscaling.knative.dev/scale-to-zero-pod-retention-period`.
pub const SCALE_TO_ZERO_POD_RETENTION_PERIOD_KEY: &str =
    "autoscaling.knative.dev/scale-to-zero-pod-retention-period";
/// `autoscaling.knative.dev/target-burst-capacity`.
pub const TARGET_BURST_CAPACITY_KEY: &str = "autoscaling.knative.dev/target-burst-capacity";
/// `autoscaling.knative.dev/metric-aggregation-algorithm`.
pub const METRIC_AGGREGATION_ALGORITHM_KEY: &str =
    "autoscaling.knative.dev/metric-aggregation-algorithm";

/// The Knative Pod Autoscaler class (the default).
pub const KPA_CLASS: &str = "kpa.autoscaling.knative.dev";
/// The Kubernetes HPA class.
pub const HPA_CLASS: &str = "hpa.autoscaling.knative.dev";
/// Classes ending in this domain must be [`KPA_CLASS`] or [`HPA_CLASS`].
const CLASS_DOMAIN: &str = ".knative.dev";
/// The concurrency metric (KPA default).
pub const CONCURRENCY: &str = "concurrency";
/// The requests-per-second metric.
pub const RPS: &str = "rps";
/// The CPU metric (HPA default).
pub const CPU: &str = "cpu";
/// The default metric aggregation algorithm.
pub const LINEAR: &str = "linear";
/// The weighted-exponential metric aggregation algorithm.
pub const WEIGHTED_EXPONENTIAL: &str = "weighted-exponential";
/// The camelCase spelling Knative also accepts for [`WEIGHTED_EXPONENTIAL`].
pub const WEIGHTED_EXPONENTIAL_ALT: &str = "weightedExponential";

/// An annotation and its aliases, highest priority first (Knative's `kmap.KeyPriority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnotationKey {
    /// The canonical (kebab-case) key first, then the lower-priority aliases.
    pub keys: &'static [&'static str],
}

impl AnnotationKey {
    /// The canonical key.
    pub fn key(&self) -> &'static str {
        self.keys[0]
    }

    /// The first of the keys present in `annotations`, with its value. A present key wins even
    /// when its value is invalid.
    pub fn get<'a>(
        &self,
        annotations: &'a BTreeMap<String, String>,
    ) -> Option<(&'static str, &'a str)> {
        self.keys
            .iter()
            .find_map(|&k| annotations.get(k).map(|v| (k, v.as_str())))
    }
}

/// `class`.
pub const CLASS: AnnotationKey = AnnotationKey { keys: &[CLASS_KEY] };
/// `metric`.
pub const METRIC: AnnotationKey = AnnotationKey {
    keys: &[METRIC_KEY],
};
/// `target`.
pub const TARGET: AnnotationKey = AnnotationKey {
    keys: &[TARGET_KEY],
};
/// `target-utilization-percentage`, alias `targetUtilizationPercentage`.
pub const TARGET_UTILIZATION_PERCENTAGE: AnnotationKey = AnnotationKey {
    keys: &[
        TARGET_UTILIZATION_PERCENTAGE_KEY,
        "autoscaling.knative.dev/targetUtilizationPercentage",
    ],
};
/// `window`.
pub const WINDOW: AnnotationKey = AnnotationKey {
    keys: &[WINDOW_KEY],
};
/// `panic-window-percentage`, alias `panicWindowPercentage`.
pub const PANIC_WINDOW_PERCENTAGE: AnnotationKey = AnnotationKey {
    keys: &[
        PANIC_WINDOW_PERCENTAGE_KEY,
        "autoscaling.knative.dev/panicWindowPercentage",
    ],
};
/// `panic-threshold-percentage`, alias `panicThresholdPercentage`.
pub const PANIC_THRESHOLD_PERCENTAGE: AnnotationKey = AnnotationKey {
    keys: &[
        PANIC_THRESHOLD_PERCENTAGE_KEY,
        "autoscaling.knative.dev/panicThresholdPercentage",
    ],
};
/// `min-scale`, alias `minScale`.
pub const MIN_SCALE: AnnotationKey = AnnotationKey {
    keys: &[MIN_SCALE_KEY, "autoscaling.knative.dev/minScale"],
};
/// `max-scale`, alias `maxScale`.
pub const MAX_SCALE: AnnotationKey = AnnotationKey {
    keys: &[MAX_SCALE_KEY, "autoscaling.knative.dev/maxScale"],
};
/// `initial-scale`, alias `initialScale`.
pub const INITIAL_SCALE: AnnotationKey = AnnotationKey {
    keys: &[INITIAL_SCALE_KEY, "autoscaling.knative.dev/initialScale"],
};
/// `activation-scale`.
pub const ACTIVATION_SCALE: AnnotationKey = AnnotationKey {
    keys: &[ACTIVATION_SCALE_KEY],
};
/// `scale-down-delay`, alias `scaleDownDelay`.
pub const SCALE_DOWN_DELAY: AnnotationKey = AnnotationKey {
    keys: &[
        SCALE_DOWN_DELAY_KEY,
        "autoscaling.knative.dev/scaleDownDelay",
    ],
};
/// `scale-to-zero-pod-retention-period`, alias `scaleToZeroPodRetentionPeriod`.
pub const SCALE_TO_ZERO_POD_RETENTION_PERIOD: AnnotationKey = AnnotationKey {
    keys: &[
        SCALE_TO_ZERO_POD_RETENTION_PERIOD_KEY,
        "autoscaling.knative.dev/scaleToZeroPodRetentionPeriod",
    ],
};
/// `target-burst-capacity`, alias `targetBurstCapacity`.
pub const TARGET_BURST_CAPACITY: AnnotationKey = AnnotationKey {
    keys: &[
        TARGET_BURST_CAPACITY_KEY,
        "autoscaling.knative.dev/targetBurstCapacity",
    ],
};
/// `metric-aggregation-algorithm`, alias `metricAggregationAlgorithm`.
pub const METRIC_AGGREGATION_ALGORITHM: AnnotationKey = AnnotationKey {
    keys: &[
        METRIC_AGGREGATION_ALGORITHM_KEY,
        "autoscaling.knative.dev/metricAggregationAlgorithm",
    ],
};

/// Shortest and longest stable window (`WindowMin`, `WindowMax`).
pub const WINDOW_MIN: GoDuration = GoDuration::from_secs(6);
/// See [`WINDOW_MIN`].
pub const WINDOW_MAX: GoDuration = GoDuration::from_secs(3600);
/// Smallest target (`TargetMin`).
pub const TARGET_MIN: f64 = 0.01;
/// Largest `containerConcurrency` (`container-concurrency-max-limit`).
pub const CONTAINER_CONCURRENCY_MAX: i64 = 1000;
/// Largest `timeoutSeconds` (`max-revision-timeout-seconds`).
pub const TIMEOUT_SECONDS_MAX: i64 = 600;

/// One autoscaling annotation error, as Knative reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationError {
    /// The annotation keys the error is about, as Knative names them: the key found in the
    /// annotations (an alias when only the alias was set), except for
    /// `max-scale=… is less than min-scale=…`, which names the two canonical keys. Sorted as
    /// Knative sorts the paths.
    pub keys: Vec<String>,
    /// Knative's message, without the `: <path>` Knative appends.
    pub message: String,
}

impl AnnotationError {
    /// Knative's text: `"<message>: <prefix><path>[, <prefix><path2>]"`. A path is the key,
    /// except for two `initial-scale` errors where Knative puts the explanation in the path
    /// (`invalid value: -1: <key> must be greater than 0`,
    /// `invalid value: 0: <key>=0 not allowed by cluster`). For a Service the prefix is
    /// `spec.template.metadata.annotations.`.
    pub fn knative_text(&self, path_prefix: &str) -> String {
        let paths: Vec<String> = self
            .keys
            .iter()
            .map(|k| format!("{path_prefix}{}", knative_path(k, &self.message)))
            .collect();
        format!("{}: {}", self.message, paths.join(", "))
    }
}

impl fmt::Display for AnnotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.knative_text(""))
    }
}

impl std::error::Error for AnnotationError {}

/// The field path Knative reports for `key` in an error with `message`.
fn knative_path(key: &str, message: &str) -> String {
    if INITIAL_SCALE.keys.contains(&key) {
        if let Some(v) = message.strip_prefix("invalid value: ") {
            match go_atoi(v) {
                Ok(n) if n < 0 => return format!("{key} must be greater than 0"),
                Ok(0) => return format!("{key}=0 not allowed by cluster"),
                _ => {}
            }
        }
    }
    key.to_string()
}

/// Validates the `autoscaling.knative.dev/*` annotations of a revision (Knative's
/// `ValidateAnnotations`), with `defaults` standing in for `config-autoscaler`
/// (`max-scale-limit`, `allow-zero-initial-scale`). Returns Knative's errors in Knative's
/// order; empty when valid.
pub fn validate_autoscaling_annotations(
    annotations: &BTreeMap<String, String>,
    defaults: &AutoscalingDefaults,
) -> Vec<AnnotationError> {
    let mut errs = Errors::default();
    validate_class(annotations, &mut errs);
    validate_min_max_scale(defaults, annotations, &mut errs);
    validate_floats(annotations, &mut errs);
    validate_window(annotations, &mut errs);
    validate_last_pod_retention(annotations, &mut errs);
    validate_scale_down_delay(annotations, &mut errs);
    validate_metric(annotations, &mut errs);
    validate_algorithm(annotations, &mut errs);
    validate_initial_scale(defaults, annotations, &mut errs);
    errs.merged()
}

/// Validates a revision's `containerConcurrency` (0 to `container-concurrency-max-limit`,
/// 1000): Knative's message without the `: <path>` suffix, e.g. `expected 0 <= 1001 <= 1000`.
pub fn validate_container_concurrency(cc: i64) -> Option<String> {
    (!(0..=CONTAINER_CONCURRENCY_MAX).contains(&cc))
        .then(|| format!("expected 0 <= {cc} <= {CONTAINER_CONCURRENCY_MAX}"))
}

/// Validates a revision's `timeoutSeconds` (0 to `max-revision-timeout-seconds`, 600):
/// Knative's message without the path, e.g. `expected 0 <= 601 <= 600`.
pub fn validate_timeout_seconds(t: i64) -> Option<String> {
    (!(0..=TIMEOUT_SECONDS_MAX).contains(&t))
        .then(|| format!("expected 0 <= {t} <= {TIMEOUT_SECONDS_MAX}"))
}

/// Knative's `FieldError` collection: (message, key) leaves, merged on output.
#[derive(Default)]
struct Errors(Vec<(String, String)>);

impl Errors {
    fn push(&mut self, message: String, key: &str) {
        self.0.push((message, key.to_string()));
    }

    fn invalid(&mut self, value: &str, key: &str) {
        self.push(format!("invalid value: {value}"), key);
    }

    /// Knative's `merge`: errors with the same message share one entry (paths de-duplicated
    /// and sorted), entries sorted by message.
    fn merged(self) -> Vec<AnnotationError> {
        let mut by_message: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (message, key) in self.0 {
            let keys = by_message.entry(message).or_default();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        by_message
            .into_iter()
            .map(|(message, mut keys)| {
                keys.sort_by_cached_key(|k| knative_path(k, &message));
                AnnotationError { keys, message }
            })
            .collect()
    }
}

fn validate_class(m: &BTreeMap<String, String>, errs: &mut Errors) {
    if let Some((k, v)) = CLASS.get(m) {
        if v.ends_with(CLASS_DOMAIN) && v != KPA_CLASS && v != HPA_CLASS {
            errs.invalid(v, k);
        }
    }
}

/// Knative's `getIntGE0`: an int32 ≥ 0, or 0 (and an error) when absent or invalid.
fn get_int_ge0(m: &BTreeMap<String, String>, key: AnnotationKey, errs: &mut Errors) -> i32 {
    let Some((k, v)) = key.get(m) else {
        return 0;
    };
    match go_parse_int(v, 32) {
        Err(GoIntError::Range) => {
            errs.push(out_of_bounds(v, "0", &i32::MAX.to_string()), k);
            0
        }
        Err(GoIntError::Syntax) => {
            errs.invalid(v, k);
            0
        }
        Ok(i) if i < 0 => {
            errs.push(out_of_bounds(v, "0", &i32::MAX.to_string()), k);
            0
        }
        Ok(i) => i as i32,
    }
}

/// `apis.ErrOutOfBoundsValue`'s message.
fn out_of_bounds(value: &str, lower: &str, upper: &str) -> String {
    format!("expected {lower} <= {value} <= {upper}")
}

fn validate_min_max_scale(
    defaults: &AutoscalingDefaults,
    m: &BTreeMap<String, String>,
    errs: &mut Errors,
) {
    let min = get_int_ge0(m, MIN_SCALE, errs);
    let max = get_int_ge0(m, MAX_SCALE, errs);
    if max != 0 && max < min {
        let message = format!("max-scale={max} is less than min-scale={min}");
        errs.push(message.clone(), MAX_SCALE_KEY);
        errs.push(message, MIN_SCALE_KEY);
    }
    if let Some((k, _)) = MAX_SCALE.get(m) {
        let limit = i64::from(defaults.max_scale_limit);
        if limit != 0 {
            if i64::from(max) > limit {
                errs.push(out_of_bounds(&max.to_string(), "1", &limit.to_string()), k);
            }
            if max == 0 {
                errs.push(
                    format!("max-scale=0 (unlimited), must be less than {limit}"),
                    k,
                );
            }
        }
    }
    if let Some((k, v)) = ACTIVATION_SCALE.get(m) {
        match go_parse_int(v, 32) {
            Err(_) => errs.invalid(v, k),
            Ok(activation) => {
                let activation = activation as i32;
                if min > activation {
                    errs.push(
                        format!("min-scale={min} is greater than activation-scale={activation}"),
                        k,
                    );
                } else if max < activation && max != 0 {
                    errs.push(
                        format!("max-scale={max} is less than activation-scale={activation}"),
                        k,
                    );
                } else if activation < 2 {
                    errs.push(
                        format!("activation-scale={activation} must be greater than 1"),
                        k,
                    );
                }
            }
        }
    }
}

// Go's comparisons, kept as written: a NaN value passes them, as it passes Knative's.
#[allow(clippy::manual_range_contains)]
fn validate_floats(m: &BTreeMap<String, String>, errs: &mut Errors) {
    if let Some((k, v)) = PANIC_WINDOW_PERCENTAGE.get(m) {
        match go_parse_float(v) {
            None => errs.invalid(v, k),
            Some(f) if f < 1.0 || f > 100.0 => errs.push(out_of_bounds(v, "1", "100"), k),
            Some(_) => {}
        }
    }
    if let Some((k, v)) = PANIC_THRESHOLD_PERCENTAGE.get(m) {
        match go_parse_float(v) {
            None => errs.invalid(v, k),
            Some(f) if f < 110.0 || f > 1000.0 => errs.push(out_of_bounds(v, "110", "1000"), k),
            Some(_) => {}
        }
    }
    if let Some((k, v)) = TARGET.get(m) {
        match go_parse_float(v) {
            None => errs.invalid(v, k),
            Some(f) if f < TARGET_MIN => {
                errs.push(format!("target {v} should be at least {TARGET_MIN}"), k)
            }
            Some(_) => {}
        }
    }
    if let Some((k, v)) = TARGET_UTILIZATION_PERCENTAGE.get(m) {
        match go_parse_float(v) {
            None => errs.invalid(v, k),
            Some(f) if f < 1.0 || f > 100.0 => errs.push(out_of_bounds(v, "1", "100"), k),
            Some(_) => {}
        }
    }
    if let Some((k, v)) = TARGET_BURST_CAPACITY.get(m) {
        match go_parse_float(v) {
            Some(f) if !(f < 0.0 && f != -1.0) => {}
            _ => errs.invalid(v, k),
        }
    }
}

fn validate_window(m: &BTreeMap<String, String>, errs: &mut Errors) {
    if let Some((_, v)) = WINDOW.get(m) {
        match GoDuration::parse(v) {
            Err(_) => errs.invalid(v, WINDOW_KEY),
            Ok(d) if d < WINDOW_MIN || d > WINDOW_MAX => errs.push(
                out_of_bounds(v, &WINDOW_MIN.to_string(), &WINDOW_MAX.to_string()),
                WINDOW_KEY,
            ),
            Ok(d) if d.truncate(GoDuration::SECOND) != d => errs.push(
                "must be specified with at most second precision".into(),
                WINDOW_KEY,
            ),
            Ok(_) => {}
        }
    }
}

fn validate_last_pod_retention(m: &BTreeMap<String, String>, errs: &mut Errors) {
    if let Some((k, v)) = SCALE_TO_ZERO_POD_RETENTION_PERIOD.get(m) {
        match GoDuration::parse(v) {
            Err(_) => errs.invalid(v, k),
            Ok(d) if d < GoDuration::ZERO || d > WINDOW_MAX => errs.push(
                out_of_bounds(v, &GoDuration::ZERO.to_string(), &WINDOW_MAX.to_string()),
                k,
            ),
            Ok(_) => {}
        }
    }
}

fn validate_scale_down_delay(m: &BTreeMap<String, String>, errs: &mut Errors) {
    if let Some((k, v)) = SCALE_DOWN_DELAY.get(m) {
        match GoDuration::parse(v) {
            Err(_) => errs.invalid(v, k),
            Ok(d) if d < GoDuration::ZERO || d > WINDOW_MAX => errs.push(
                out_of_bounds(v, &GoDuration::ZERO.to_string(), &WINDOW_MAX.to_string()),
                k,
            ),
            Ok(d) if d.round(GoDuration::SECOND) != d => {
                errs.push("must be specified with at most second precision".into(), k)
            }
            Ok(_) => {}
        }
    }
}

fn validate_metric(m: &BTreeMap<String, String>, errs: &mut Errors) {
    if let Some((_, metric)) = METRIC.get(m) {
        let class = CLASS.get(m).map_or(KPA_CLASS, |(_, c)| c);
        let valid = match class {
            KPA_CLASS => metric == CONCURRENCY || metric == RPS,
            HPA_CLASS => !metric.is_empty(),
            // Other autoscalers are left alone.
            _ => true,
        };
        if !valid {
            errs.invalid(metric, METRIC_KEY);
        }
    }
}

fn validate_algorithm(m: &BTreeMap<String, String>, errs: &mut Errors) {
    // Only validated for an explicit KPA class: custom autoscalers may have custom values.
    if CLASS.get(m).map(|(_, c)| c) != Some(KPA_CLASS) {
        return;
    }
    if let Some((k, v)) = METRIC_AGGREGATION_ALGORITHM.get(m) {
        if !v.is_empty()
            && v != LINEAR
            && v != WEIGHTED_EXPONENTIAL
            && v != WEIGHTED_EXPONENTIAL_ALT
        {
            errs.invalid(v, k);
        }
    }
}

fn validate_initial_scale(
    defaults: &AutoscalingDefaults,
    m: &BTreeMap<String, String>,
    errs: &mut Errors,
) {
    if let Some((k, v)) = INITIAL_SCALE.get(m) {
        // The path suffixes Knative adds (" must be greater than 0", "=0 not allowed by
        // cluster") are derived from the message by `knative_path`.
        match go_atoi(v) {
            Err(_) => errs.invalid(v, k),
            Ok(n) if n < 0 => errs.invalid(v, k),
            Ok(0) if !defaults.allow_zero_initial_scale => errs.invalid(v, k),
            Ok(_) => {}
        }
    }
}

/// Why Go's `strconv.ParseInt` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GoIntError {
    /// `strconv.ErrSyntax`.
    Syntax,
    /// `strconv.ErrRange`.
    Range,
}

/// Go's `strconv.ParseInt(s, 10, bits)`: optional sign, decimal digits only; overflow is a
/// range error as soon as it happens (even if a bad character follows).
pub(crate) fn go_parse_int(s: &str, bits: u32) -> Result<i64, GoIntError> {
    let (neg, body) = match s.as_bytes().first() {
        None => return Err(GoIntError::Syntax),
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        Some(_) => (false, s),
    };
    if body.is_empty() {
        return Err(GoIntError::Syntax);
    }
    // strconv.ParseUint(body, 10, bits).
    let max_val: u64 = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let cutoff = u64::MAX / 10 + 1;
    let mut n: u64 = 0;
    for c in body.bytes() {
        if !c.is_ascii_digit() {
            return Err(GoIntError::Syntax);
        }
        if n >= cutoff {
            return Err(GoIntError::Range);
        }
        n *= 10;
        let n1 = n.wrapping_add(u64::from(c - b'0'));
        if n1 < n || n1 > max_val {
            return Err(GoIntError::Range);
        }
        n = n1;
    }
    let limit = 1u64 << (bits.min(64) - 1);
    if (!neg && n >= limit) || (neg && n > limit) {
        return Err(GoIntError::Range);
    }
    Ok(if neg {
        (n as i64).wrapping_neg()
    } else {
        n as i64
    })
}

/// Go's `strconv.Atoi` (64-bit `int`).
pub(crate) fn go_atoi(s: &str) -> Result<i64, GoIntError> {
    go_parse_int(s, 64)
}

/// Go's `strconv.ParseFloat(s, 64)`; `None` on a syntax or range error. Accepts what Go
/// accepts: decimal and hexadecimal (`0x1p-2`) forms, `inf`/`infinity` with a sign, `nan`
/// without one (all case-insensitive); rejects overflow to infinity.
pub(crate) fn go_parse_float(s: &str) -> Option<f64> {
    let (sign, body) = match s.as_bytes().first()? {
        b'+' => (1.0, &s[1..]),
        b'-' => (-1.0, &s[1..]),
        _ => (1.0, s),
    };
    let lower = body.to_ascii_lowercase();
    if lower == "nan" {
        return (body.len() == s.len()).then_some(f64::NAN);
    }
    if lower == "inf" || lower == "infinity" {
        return Some(sign * f64::INFINITY);
    }
    if let Some(hex) = lower.strip_prefix("0x") {
        return parse_hex_float(hex).map(|v| sign * v);
    }
    let decimal_chars = body
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'));
    if body.starts_with(['+', '-']) || !decimal_chars {
        return None;
    }
    let v: f64 = body.parse().ok()?;
    (!v.is_infinite()).then_some(sign * v)
}

/// The part of a Go hexadecimal float after `0x` (lower-cased): mantissa, then a mandatory
/// binary exponent (`1.8p1` = 3).
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mantissa, exp) = s.split_once('p')?;
    let exp = i32::try_from(go_parse_int(exp, 32).ok()?).ok()?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    let v = v * 2f64.powi(exp);
    (!v.is_infinite()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Annotation (key, value) pairs in a test table.
    type Pairs = &'static [(&'static str, &'static str)];

    const PREFIX: &str = "spec.template.metadata.annotations.";

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| {
                let key = if k.contains('/') {
                    k.to_string()
                } else {
                    format!("autoscaling.knative.dev/{k}")
                };
                (key, v.to_string())
            })
            .collect()
    }

    /// `pairs` use the part after `autoscaling.knative.dev/`; `expected` is Knative's error
    /// text (lines joined by "\n", as `FieldError.Error()` prints them) with bare-key paths.
    fn check_with(defaults: &AutoscalingDefaults, pairs: &[(&str, &str)], expected: &str) {
        let errs = validate_autoscaling_annotations(&annotations(pairs), defaults);
        let text: Vec<String> = errs.iter().map(|e| e.knative_text("")).collect();
        assert_eq!(text.join("\n"), expected, "annotations {pairs:?}");
    }

    fn check(pairs: &[(&str, &str)], expected: &str) {
        check_with(&AutoscalingDefaults::default(), pairs, expected);
    }

    const K: &str = "autoscaling.knative.dev/";

    #[test]
    fn valid_annotations() {
        // §9.F "valid" examples and the valid rows of §7.
        let table: &[&[(&str, &str)]] = &[
            &[],
            &[("min-scale", "0")],
            &[("max-scale", "0")],
            &[("min-scale", "5")],
            &[("minScale", "5")],
            &[("max-scale", "2")],
            &[("min-scale", "2"), ("max-scale", "5")],
            &[("min-scale", "5"), ("max-scale", "5")],
            &[("min-scale", "0"), ("max-scale", "0")],
            &[("min-scale", "5"), ("max-scale", "0")],
            &[
                ("min-scale", "5"),
                ("max-scale", "8"),
                ("panic-threshold-percentage", "125"),
                ("panic-window-percentage", "75"),
                ("window", "1984s"),
            ],
            &[("panic-threshold-percentage", "210")],
            &[("panic-threshold-percentage", "110")],
            &[("panic-threshold-percentage", "1000")],
            &[("panicThresholdPercentage", "500")],
            &[("panic-window-percentage", "1")],
            &[("panic-window-percentage", "100")],
            &[("panic-window-percentage", "12.5")],
            &[("target-burst-capacity", "0")],
            &[("target-burst-capacity", "-1")],
            &[("target-burst-capacity", "19870709")],
            &[("targetBurstCapacity", "211")],
            &[("target", "0.01")],
            &[("target", "10")],
            &[("target", "1e3")],
            &[("target-utilization-percentage", "1")],
            &[("target-utilization-percentage", "100")],
            &[("target-utilization-percentage", "85.5")],
            &[("window", "7s")],
            &[("window", "6s")],
            &[("window", "1h")],
            &[("window", "1m30s")],
            &[("scale-to-zero-pod-retention-period", "0")],
            &[("scale-to-zero-pod-retention-period", "21m31s")],
            &[("scale-to-zero-pod-retention-period", "1.5s")],
            &[("scale-to-zero-pod-retention-period", "1h")],
            &[("scale-down-delay", "0")],
            &[("scale-down-delay", "21m31s")],
            &[("scale-down-delay", "1h")],
            &[("scaleDownDelay", "30s")],
            &[("initial-scale", "2")],
            &[("initialScale", "2")],
            &[("initial-scale", "+3")],
            &[("activation-scale", "2")],
            &[
                ("min-scale", "2"),
                ("max-scale", "5"),
                ("activation-scale", "3"),
            ],
            &[("min-scale", "3"), ("activation-scale", "3")],
            &[("max-scale", "3"), ("activation-scale", "3")],
            &[("class", KPA_CLASS)],
            &[("class", HPA_CLASS)],
            &[("class", "some.other.domain")],
            &[("class", "knative.dev")],
            &[("metric", "concurrency")],
            &[("metric", "rps")],
            &[("class", KPA_CLASS), ("metric", "rps")],
            &[("class", HPA_CLASS), ("metric", "cpu")],
            &[("class", HPA_CLASS), ("metric", "memory")],
            &[("class", "some.other.domain"), ("metric", "")],
            &[("class", "some.other.domain"), ("metric", "cpu")],
            &[
                ("class", KPA_CLASS),
                ("metric-aggregation-algorithm", "linear"),
            ],
            &[
                ("class", KPA_CLASS),
                ("metric-aggregation-algorithm", "weighted-exponential"),
            ],
            &[
                ("class", KPA_CLASS),
                ("metricAggregationAlgorithm", "weightedExponential"),
            ],
            &[("class", KPA_CLASS), ("metric-aggregation-algorithm", "")],
            // Algorithm only validated when the class is explicitly KPA.
            &[("metric-aggregation-algorithm", "random-selection")],
            &[
                ("class", "some.other.domain"),
                ("metric-aggregation-algorithm", "random-selection"),
            ],
            // Kebab-case wins: an invalid camelCase alias next to it is never looked at.
            &[("min-scale", "1"), ("minScale", "foo")],
            &[
                ("panic-window-percentage", "10"),
                ("panicWindowPercentage", "-1"),
            ],
            // Not an autoscaling key.
            &[("autoscaling.knative.dev/unknown", "whatever")],
            &[("serving.knative.dev/creator", "me")],
        ];
        for pairs in table {
            check(pairs, "");
        }
    }

    #[test]
    fn invalid_annotations() {
        let table: &[(&[(&str, &str)], String)] = &[
            (
                &[("min-scale", "-1")],
                format!("expected 0 <= -1 <= 2147483647: {K}min-scale"),
            ),
            (
                &[("minScale", "-1")],
                format!("expected 0 <= -1 <= 2147483647: {K}minScale"),
            ),
            (
                &[("max-scale", "-1")],
                format!("expected 0 <= -1 <= 2147483647: {K}max-scale"),
            ),
            (
                &[("min-scale", "foo")],
                format!("invalid value: foo: {K}min-scale"),
            ),
            (
                &[("max-scale", "bar")],
                format!("invalid value: bar: {K}max-scale"),
            ),
            (
                &[("max-scale", "bar"), ("min-scale", "bar")],
                format!("invalid value: bar: {K}max-scale, {K}min-scale"),
            ),
            (
                &[("min-scale", "2147483648")],
                format!("expected 0 <= 2147483648 <= 2147483647: {K}min-scale"),
            ),
            (
                &[("min-scale", "-2147483649")],
                format!("expected 0 <= -2147483649 <= 2147483647: {K}min-scale"),
            ),
            (
                &[("min-scale", "1.5")],
                format!("invalid value: 1.5: {K}min-scale"),
            ),
            (
                &[("min-scale", "")],
                format!("invalid value: : {K}min-scale"),
            ),
            (
                &[("min-scale", "5"), ("max-scale", "2")],
                format!("max-scale=2 is less than min-scale=5: {K}max-scale, {K}min-scale"),
            ),
            (
                // The merged paths are Knative's canonical keys even for aliases.
                &[("minScale", "5"), ("maxScale", "2")],
                format!("max-scale=2 is less than min-scale=5: {K}max-scale, {K}min-scale"),
            ),
            (
                &[("panic-window-percentage", "-1")],
                format!("expected 1 <= -1 <= 100: {K}panic-window-percentage"),
            ),
            (
                &[("panic-window-percentage", "202")],
                format!("expected 1 <= 202 <= 100: {K}panic-window-percentage"),
            ),
            (
                &[("panicWindowPercentage", "202")],
                format!("expected 1 <= 202 <= 100: {K}panicWindowPercentage"),
            ),
            (
                &[("panic-window-percentage", "fifty")],
                format!("invalid value: fifty: {K}panic-window-percentage"),
            ),
            (
                &[("panic-threshold-percentage", "109")],
                format!("expected 110 <= 109 <= 1000: {K}panic-threshold-percentage"),
            ),
            (
                &[("panic-threshold-percentage", "1001")],
                format!("expected 110 <= 1001 <= 1000: {K}panic-threshold-percentage"),
            ),
            (
                &[("panic-threshold-percentage", "fifty")],
                format!("invalid value: fifty: {K}panic-threshold-percentage"),
            ),
            (
                &[("target", "-11")],
                format!("target -11 should be at least 0.01: {K}target"),
            ),
            (
                &[("target", "0")],
                format!("target 0 should be at least 0.01: {K}target"),
            ),
            (
                &[("target", "100}")],
                format!("invalid value: 100}}: {K}target"),
            ),
            (
                &[("target-utilization-percentage", "101")],
                format!("expected 1 <= 101 <= 100: {K}target-utilization-percentage"),
            ),
            (
                &[("target-utilization-percentage", "0.5")],
                format!("expected 1 <= 0.5 <= 100: {K}target-utilization-percentage"),
            ),
            (
                &[("targetUtilizationPercentage", "dghyak")],
                format!("invalid value: dghyak: {K}targetUtilizationPercentage"),
            ),
            (
                &[("target-burst-capacity", "-11")],
                format!("invalid value: -11: {K}target-burst-capacity"),
            ),
            (
                &[("target-burst-capacity", "-1.5")],
                format!("invalid value: -1.5: {K}target-burst-capacity"),
            ),
            (
                &[("targetBurstCapacity", "many")],
                format!("invalid value: many: {K}targetBurstCapacity"),
            ),
            (
                &[("window", "jerry-seinfeld")],
                format!("invalid value: jerry-seinfeld: {K}window"),
            ),
            (
                &[("window", "1s")],
                format!("expected 6s <= 1s <= 1h0m0s: {K}window"),
            ),
            (
                &[("window", "365h")],
                format!("expected 6s <= 365h <= 1h0m0s: {K}window"),
            ),
            (&[("window", "10")], format!("invalid value: 10: {K}window")),
            (
                &[("window", "6500ms")],
                format!("must be specified with at most second precision: {K}window"),
            ),
            (
                &[("scale-to-zero-pod-retention-period", "-1s")],
                format!("expected 0s <= -1s <= 1h0m0s: {K}scale-to-zero-pod-retention-period"),
            ),
            (
                &[("scale-to-zero-pod-retention-period", "311m")],
                format!("expected 0s <= 311m <= 1h0m0s: {K}scale-to-zero-pod-retention-period"),
            ),
            (
                &[("scaleToZeroPodRetentionPeriod", "twenty")],
                format!("invalid value: twenty: {K}scaleToZeroPodRetentionPeriod"),
            ),
            (
                &[("scale-down-delay", "-1s")],
                format!("expected 0s <= -1s <= 1h0m0s: {K}scale-down-delay"),
            ),
            (
                &[("scale-down-delay", "311m")],
                format!("expected 0s <= 311m <= 1h0m0s: {K}scale-down-delay"),
            ),
            (
                &[("scale-down-delay", "1.5s")],
                format!("must be specified with at most second precision: {K}scale-down-delay"),
            ),
            (
                &[("scaleDownDelay", "jerry")],
                format!("invalid value: jerry: {K}scaleDownDelay"),
            ),
            (
                &[("initial-scale", "-1")],
                format!("invalid value: -1: {K}initial-scale must be greater than 0"),
            ),
            (
                &[("initial-scale", "0")],
                format!("invalid value: 0: {K}initial-scale=0 not allowed by cluster"),
            ),
            (
                &[("initialScale", "0")],
                format!("invalid value: 0: {K}initialScale=0 not allowed by cluster"),
            ),
            (
                &[("initial-scale", "invalid")],
                format!("invalid value: invalid: {K}initial-scale"),
            ),
            (
                &[("initial-scale", "1.5")],
                format!("invalid value: 1.5: {K}initial-scale"),
            ),
            (
                &[("min-scale", "3"), ("activation-scale", "2")],
                format!("min-scale=3 is greater than activation-scale=2: {K}activation-scale"),
            ),
            (
                &[("max-scale", "1"), ("activation-scale", "2")],
                format!("max-scale=1 is less than activation-scale=2: {K}activation-scale"),
            ),
            (
                &[("activation-scale", "1")],
                format!("activation-scale=1 must be greater than 1: {K}activation-scale"),
            ),
            (
                &[("activation-scale", "-5")],
                format!("min-scale=0 is greater than activation-scale=-5: {K}activation-scale"),
            ),
            (
                // First failing check only.
                &[
                    ("min-scale", "3"),
                    ("max-scale", "4"),
                    ("activation-scale", "1"),
                ],
                format!("min-scale=3 is greater than activation-scale=1: {K}activation-scale"),
            ),
            (
                &[("activation-scale", "two")],
                format!("invalid value: two: {K}activation-scale"),
            ),
            (
                &[("activation-scale", "2147483648")],
                format!("invalid value: 2147483648: {K}activation-scale"),
            ),
            (
                &[("class", "unsupported.knative.dev")],
                format!("invalid value: unsupported.knative.dev: {K}class"),
            ),
            (
                &[("metric", "cpu")],
                format!("invalid value: cpu: {K}metric"),
            ),
            (
                &[("class", KPA_CLASS), ("metric", "memory")],
                format!("invalid value: memory: {K}metric"),
            ),
            (
                &[("class", HPA_CLASS), ("metric", "")],
                format!("invalid value: : {K}metric"),
            ),
            (
                &[
                    ("class", KPA_CLASS),
                    ("metric-aggregation-algorithm", "random-selection"),
                ],
                format!("invalid value: random-selection: {K}metric-aggregation-algorithm"),
            ),
            (
                &[
                    ("class", KPA_CLASS),
                    ("metricAggregationAlgorithm", "weighted_exponential"),
                ],
                format!("invalid value: weighted_exponential: {K}metricAggregationAlgorithm"),
            ),
            (
                // §9.F "all together now fail".
                &[
                    ("panic-threshold-percentage", "fifty"),
                    ("panic-window-percentage", "-11"),
                    ("min-scale", "-4"),
                    ("max-scale", "never"),
                ],
                format!(
                    "expected 0 <= -4 <= 2147483647: {K}min-scale\n\
                     expected 1 <= -11 <= 100: {K}panic-window-percentage\n\
                     invalid value: fifty: {K}panic-threshold-percentage\n\
                     invalid value: never: {K}max-scale"
                ),
            ),
            (
                // Same message from different checks: merged, paths sorted.
                &[
                    ("target-burst-capacity", "-5"),
                    ("initial-scale", "-5"),
                    ("min-scale", "x"),
                ],
                format!(
                    "invalid value: -5: {K}initial-scale must be greater than 0, \
                     {K}target-burst-capacity\n\
                     invalid value: x: {K}min-scale"
                ),
            ),
        ];
        for (pairs, expected) in table {
            check(pairs, expected);
        }
    }

    #[test]
    fn cluster_settings_change_the_answer() {
        let limited = AutoscalingDefaults {
            max_scale_limit: 10,
            ..AutoscalingDefaults::default()
        };
        let zero_ok = AutoscalingDefaults {
            allow_zero_initial_scale: true,
            ..AutoscalingDefaults::default()
        };
        let table: &[(&AutoscalingDefaults, Pairs, String)] = &[
            (&limited, &[("max-scale", "10")], String::new()),
            (&limited, &[("max-scale", "1")], String::new()),
            (&limited, &[("min-scale", "3")], String::new()),
            (
                &limited,
                &[("max-scale", "11")],
                format!("expected 1 <= 11 <= 10: {K}max-scale"),
            ),
            (
                &limited,
                &[("maxScale", "11")],
                format!("expected 1 <= 11 <= 10: {K}maxScale"),
            ),
            (
                &limited,
                &[("max-scale", "0")],
                format!("max-scale=0 (unlimited), must be less than 10: {K}max-scale"),
            ),
            (
                &limited,
                &[("max-scale", "never")],
                format!(
                    "invalid value: never: {K}max-scale\n\
                     max-scale=0 (unlimited), must be less than 10: {K}max-scale"
                ),
            ),
            (&zero_ok, &[("initial-scale", "0")], String::new()),
            (
                &zero_ok,
                &[("initial-scale", "-1")],
                format!("invalid value: -1: {K}initial-scale must be greater than 0"),
            ),
        ];
        for (defaults, pairs, expected) in table {
            check_with(defaults, pairs, expected);
        }
    }

    #[test]
    fn errors_carry_keys_and_render_with_a_prefix() {
        let errs = validate_autoscaling_annotations(
            &annotations(&[
                ("minScale", "5"),
                ("max-scale", "2"),
                ("initial-scale", "-1"),
            ]),
            &AutoscalingDefaults::default(),
        );
        assert_eq!(
            errs,
            vec![
                AnnotationError {
                    keys: vec![INITIAL_SCALE_KEY.into()],
                    message: "invalid value: -1".into(),
                },
                AnnotationError {
                    keys: vec![MAX_SCALE_KEY.into(), MIN_SCALE_KEY.into()],
                    message: "max-scale=2 is less than min-scale=5".into(),
                },
            ]
        );
        assert_eq!(
            errs[0].knative_text(PREFIX),
            "invalid value: -1: spec.template.metadata.annotations.\
             autoscaling.knative.dev/initial-scale must be greater than 0"
        );
        assert_eq!(
            errs[1].knative_text(PREFIX),
            "max-scale=2 is less than min-scale=5: \
             spec.template.metadata.annotations.autoscaling.knative.dev/max-scale, \
             spec.template.metadata.annotations.autoscaling.knative.dev/min-scale"
        );
        assert_eq!(
            errs[1].to_string(),
            "max-scale=2 is less than min-scale=5: \
             autoscaling.knative.dev/max-scale, autoscaling.knative.dev/min-scale"
        );
    }

    #[test]
    fn revision_field_ranges() {
        let cc: &[(i64, Option<&str>)] = &[
            (0, None),
            (1, None),
            (1000, None),
            (1001, Some("expected 0 <= 1001 <= 1000")),
            (-1, Some("expected 0 <= -1 <= 1000")),
        ];
        for &(v, expected) in cc {
            assert_eq!(
                validate_container_concurrency(v).as_deref(),
                expected,
                "cc {v}"
            );
        }
        let timeout: &[(i64, Option<&str>)] = &[
            (0, None),
            (300, None),
            (600, None),
            (601, Some("expected 0 <= 601 <= 600")),
            (-1, Some("expected 0 <= -1 <= 600")),
        ];
        for &(v, expected) in timeout {
            assert_eq!(
                validate_timeout_seconds(v).as_deref(),
                expected,
                "timeout {v}"
            );
        }
    }

    #[test]
    fn go_number_parsing() {
        let ints: &[(&str, u32, Result<i64, GoIntError>)] = &[
            ("0", 32, Ok(0)),
            ("+5", 32, Ok(5)),
            ("-5", 32, Ok(-5)),
            ("2147483647", 32, Ok(2147483647)),
            ("-2147483648", 32, Ok(-2147483648)),
            ("2147483648", 32, Err(GoIntError::Range)),
            ("-2147483649", 32, Err(GoIntError::Range)),
            ("99999999999x", 32, Err(GoIntError::Range)),
            ("9223372036854775807", 64, Ok(i64::MAX)),
            ("-9223372036854775808", 64, Ok(i64::MIN)),
            ("9223372036854775808", 64, Err(GoIntError::Range)),
            ("", 32, Err(GoIntError::Syntax)),
            ("+", 32, Err(GoIntError::Syntax)),
            ("1_000", 32, Err(GoIntError::Syntax)),
            (" 1", 32, Err(GoIntError::Syntax)),
            ("1.0", 32, Err(GoIntError::Syntax)),
            ("0x10", 32, Err(GoIntError::Syntax)),
        ];
        for &(s, bits, expected) in ints {
            assert_eq!(
                go_parse_int(s, bits),
                expected,
                "ParseInt({s:?}, 10, {bits})"
            );
        }
        let floats: &[(&str, Option<f64>)] = &[
            ("1", Some(1.0)),
            ("+1.5", Some(1.5)),
            ("-.5", Some(-0.5)),
            ("5.", Some(5.0)),
            ("1e3", Some(1000.0)),
            ("1E-2", Some(0.01)),
            ("Inf", Some(f64::INFINITY)),
            ("-infinity", Some(f64::NEG_INFINITY)),
            ("0x1p-2", Some(0.25)),
            ("0x1.8p1", Some(3.0)),
            ("1e400", None),
            ("+nan", None),
            ("", None),
            (".", None),
            ("1_0", None),
            ("+-1", None),
            ("0x1", None),
            ("1e", None),
            (" 1", None),
        ];
        for &(s, expected) in floats {
            assert_eq!(go_parse_float(s), expected, "ParseFloat({s:?})");
        }
        assert!(go_parse_float("NaN").unwrap().is_nan());
    }
}
