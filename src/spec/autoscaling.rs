//! Autoscaling settings: the global defaults (DESIGN.md's GPU-tuned table) and, per component,
//! the settings resolved from defaults ← daemon config ← `autoscaling.knative.dev/*`
//! annotations ← InferenceService spec fields (knative-autoscaler.md §10).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::annotations::{
    go_atoi, go_parse_float, go_parse_int, AnnotationKey, ACTIVATION_SCALE, CLASS, CLASS_KEY,
    CONCURRENCY, CPU, HPA_CLASS, INITIAL_SCALE, INITIAL_SCALE_KEY, KPA_CLASS, LINEAR, MAX_SCALE,
    MAX_SCALE_KEY, METRIC, METRIC_AGGREGATION_ALGORITHM, METRIC_KEY, MIN_SCALE, MIN_SCALE_KEY,
    PANIC_THRESHOLD_PERCENTAGE, PANIC_WINDOW_PERCENTAGE, RPS, SCALE_DOWN_DELAY,
    SCALE_TO_ZERO_POD_RETENTION_PERIOD, TARGET, TARGET_BURST_CAPACITY, TARGET_KEY, TARGET_MIN,
    TARGET_UTILIZATION_PERCENTAGE, WEIGHTED_EXPONENTIAL, WEIGHTED_EXPONENTIAL_ALT, WINDOW,
    WINDOW_MAX, WINDOW_MIN,
};
use super::duration::GoDuration;

/// Global autoscaler settings: the daemon-wide defaults every component starts from.
/// The names are Knative's `config-autoscaler` keys; the values are DESIGN.md's GPU-tuned table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct AutoscalingDefaults {
    /// `enable-scale-to-zero`: when false the floor is one replica, whatever `min-scale` says.
    pub enable_scale_to_zero: bool,
    /// `container-concurrency-target-percentage`: percent of the target actually aimed at.
    pub container_concurrency_target_percentage: f64,
    /// `container-concurrency-target-default`: the concurrency target when neither
    /// `containerConcurrency` nor a `target` annotation is set.
    pub container_concurrency_target_default: f64,
    /// `requests-per-second-target-default`.
    pub requests_per_second_target_default: f64,
    /// `target-burst-capacity` (-1 = the router always buffers).
    pub target_burst_capacity: f64,
    /// `stable-window`, a Go duration such as `180s`.
    pub stable_window: String,
    /// `panic-window-percentage` of the stable window.
    pub panic_window_percentage: f64,
    /// `panic-threshold-percentage`.
    pub panic_threshold_percentage: f64,
    /// `max-scale-up-rate`.
    pub max_scale_up_rate: f64,
    /// `max-scale-down-rate`.
    pub max_scale_down_rate: f64,
    /// `scale-to-zero-grace-period`, a Go duration.
    pub scale_to_zero_grace_period: String,
    /// `scale-to-zero-pod-retention-period`, a Go duration.
    pub scale_to_zero_pod_retention_period: String,
    /// `scale-down-delay`, a Go duration.
    pub scale_down_delay: String,
    /// `initial-scale`.
    pub initial_scale: u32,
    /// `allow-zero-initial-scale`.
    pub allow_zero_initial_scale: bool,
    /// `min-scale` for components that set neither `minReplicas` nor an annotation
    /// (KServe always writes `minReplicas`, default 1, so this rarely applies).
    pub min_scale: u32,
    /// `max-scale` (0 = unlimited).
    pub max_scale: u32,
    /// `max-scale-limit` (0 = none).
    pub max_scale_limit: u32,
    /// The autoscaler tick (fixed at 2s in Knative; reported, not configurable there).
    pub tick_interval: String,
}

impl Default for AutoscalingDefaults {
    fn default() -> Self {
        AutoscalingDefaults {
            enable_scale_to_zero: true,
            container_concurrency_target_percentage: 85.0,
            container_concurrency_target_default: 100.0,
            requests_per_second_target_default: 200.0,
            target_burst_capacity: 211.0,
            stable_window: "180s".into(),
            panic_window_percentage: 13.0,
            panic_threshold_percentage: 200.0,
            max_scale_up_rate: 20.0,
            max_scale_down_rate: 1.1,
            scale_to_zero_grace_period: "60s".into(),
            scale_to_zero_pod_retention_period: "30m".into(),
            scale_down_delay: "60s".into(),
            initial_scale: 1,
            allow_zero_initial_scale: false,
            min_scale: 0,
            max_scale: 0,
            max_scale_limit: 0,
            tick_interval: "2s".into(),
        }
    }
}

/// KServe's `minReplicas` when the field is unset (`constants.DefaultMinReplicas`).
pub const DEFAULT_MIN_REPLICAS: i32 = 1;

/// The utilisation Knative applies to the `rps` metric (`config.TargetUtilization`, 0.7).
/// Knative does not read it from `config-autoscaler`:
/// `container-concurrency-target-percentage` only applies to concurrency.
pub const RPS_TARGET_UTILIZATION: f64 = 0.7;

/// Knative's metric bucket (`BucketSize`): the panic window is never shorter.
pub const BUCKET_SIZE: GoDuration = GoDuration::SECOND;

/// Checks the global defaults the way Knative checks `config-autoscaler`
/// (`pkg/autoscaler/config/config.go`), with Knative's texts. Knative stops at the first
/// error; this returns every error, in Knative's order, so the first one is Knative's.
/// `tick-interval` (fixed in Knative) gets the same treatment as the grace period.
// Go's comparisons, kept as written: NaN passes them, as it passes Knative's.
#[allow(clippy::manual_range_contains)]
pub fn validate_defaults(d: &AutoscalingDefaults) -> Vec<String> {
    let mut errs = Vec::new();
    let mut duration = |key: &str, value: &str| match GoDuration::parse(value) {
        Ok(v) => Some(v),
        Err(e) => {
            errs.push(format!(
                "failed to parse data: failed to parse \"{key}\": {e}"
            ));
            None
        }
    };
    let stable_window = duration("stable-window", &d.stable_window);
    let scale_down_delay = duration("scale-down-delay", &d.scale_down_delay);
    let grace = duration("scale-to-zero-grace-period", &d.scale_to_zero_grace_period);
    let retention = duration(
        "scale-to-zero-pod-retention-period",
        &d.scale_to_zero_pod_retention_period,
    );
    let tick = duration("tick-interval", &d.tick_interval);

    if let Some(grace) = grace {
        if grace <= GoDuration::ZERO {
            errs.push(format!(
                "scale-to-zero-grace-period must be positive, was: {grace}"
            ));
        }
    }
    if let Some(delay) = scale_down_delay {
        if delay < GoDuration::ZERO {
            errs.push(format!("scale-down-delay cannot be negative, was: {delay}"));
        } else if delay.round(GoDuration::SECOND) != delay {
            errs.push(format!(
                "scale-down-delay = {delay}, must be specified with at most second precision"
            ));
        }
    }
    if let Some(retention) = retention {
        if retention < GoDuration::ZERO {
            errs.push(format!(
                "scale-to-zero-pod-retention-period cannot be negative, was: {retention}"
            ));
        }
    }
    let tbc = d.target_burst_capacity;
    if tbc < 0.0 && tbc != -1.0 {
        errs.push(format!(
            "target-burst-capacity must be either non-negative or -1 (for unlimited), was: {}",
            go_float_f(tbc)
        ));
    }
    let fraction = target_fraction(d.container_concurrency_target_percentage);
    if fraction <= 0.0 || fraction > 1.0 {
        errs.push(format!(
            "container-concurrency-target-percentage = {} is outside of valid range of (0, 100]",
            go_float_f(fraction)
        ));
    }
    let x = fraction * d.container_concurrency_target_default;
    if x < TARGET_MIN {
        errs.push(format!(
            "container-concurrency-target-percentage and container-concurrency-target-default \
             yield target concurrency of {}, can't be less than {}",
            go_float_v(x),
            go_float_v(TARGET_MIN)
        ));
    }
    if d.requests_per_second_target_default < TARGET_MIN {
        errs.push(format!(
            "requests-per-second-target-default must be at least {}, was: {}",
            go_float_v(TARGET_MIN),
            go_float_v(d.requests_per_second_target_default)
        ));
    }
    if d.max_scale_up_rate <= 1.0 {
        errs.push(format!(
            "max-scale-up-rate = {}, must be greater than 1.0",
            go_float_v(d.max_scale_up_rate)
        ));
    }
    if d.max_scale_down_rate <= 1.0 {
        errs.push(format!(
            "max-scale-down-rate = {}, must be greater than 1.0",
            go_float_v(d.max_scale_down_rate)
        ));
    }
    if let Some(window) = stable_window {
        if window < WINDOW_MIN || window > WINDOW_MAX {
            errs.push(format!(
                "stable-window = {window}, must be in [{WINDOW_MIN}; {WINDOW_MAX}] range"
            ));
        } else if window.round(GoDuration::SECOND) != window {
            errs.push(format!(
                "stable-window = {window}, must be specified with at most second precision"
            ));
        }
    }
    let pwp = d.panic_window_percentage;
    if pwp < 1.0 || pwp > 100.0 {
        errs.push(format!(
            "panic-window-percentage = {}, must be in [1, 100] interval",
            go_float_v(pwp)
        ));
    }
    if d.initial_scale == 0 && !d.allow_zero_initial_scale {
        errs.push(format!(
            "initial-scale = {}, must be at least 0 (or at least 1 when allow-zero-initial-scale is false)",
            d.initial_scale
        ));
    }
    let min_max_scale = u32::from(d.max_scale_limit > 0);
    if d.max_scale < min_max_scale || (d.max_scale_limit > 0 && d.max_scale > d.max_scale_limit) {
        errs.push(format!(
            "max-scale = {}, must be in [{min_max_scale}, max-scale-limit({})] range",
            d.max_scale, d.max_scale_limit
        ));
    }
    if d.max_scale > 0 && d.min_scale > d.max_scale {
        errs.push(format!(
            "min-scale ({}) must be less than max-scale ({})",
            d.min_scale, d.max_scale
        ));
    }
    if let Some(tick) = tick {
        if tick <= GoDuration::ZERO {
            errs.push(format!("tick-interval must be positive, was: {tick}"));
        }
    }
    errs
}

/// The replica and scaling fields of an InferenceService component
/// (`ComponentExtensionSpec`, kserve-spec.md §1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScalingFields {
    /// `minReplicas`; unset means [`DEFAULT_MIN_REPLICAS`].
    pub min_replicas: Option<i32>,
    /// `maxReplicas`; 0 means no limit.
    pub max_replicas: i32,
    /// `scaleTarget`.
    pub scale_target: Option<i32>,
    /// `scaleMetric` (`concurrency`, `rps`, `cpu`, `memory`).
    pub scale_metric: Option<String>,
    /// `containerConcurrency`; unset means 0 (unlimited).
    pub container_concurrency: Option<i64>,
}

/// The revision annotations KServe writes for a component (`setAutoScalingAnnotations`,
/// knative-autoscaler.md §10), with Knative's default `allow-zero-initial-scale` (false).
/// See [`knative_annotations_for`] for the daemon's own setting.
pub fn knative_annotations(
    isvc_annotations: &BTreeMap<String, String>,
    fields: &ScalingFields,
) -> BTreeMap<String, String> {
    knative_annotations_for(isvc_annotations, fields, &AutoscalingDefaults::default())
}

/// The revision annotations KServe writes for a component: every InferenceService annotation,
/// then `class` (KPA unless set), `target` ← `scaleTarget`, `metric` ← `scaleMetric`,
/// `min-scale` ← `minReplicas` (always written, 1 when unset, replacing any annotation),
/// `max-scale` ← `maxReplicas` when not 0, and `initial-scale: "0"` when `min-scale` is 0 and
/// `defaults.allow_zero_initial_scale` is set.
pub fn knative_annotations_for(
    isvc_annotations: &BTreeMap<String, String>,
    fields: &ScalingFields,
    defaults: &AutoscalingDefaults,
) -> BTreeMap<String, String> {
    let mut out = isvc_annotations.clone();
    out.entry(CLASS_KEY.to_string())
        .or_insert_with(|| KPA_CLASS.to_string());
    if let Some(target) = fields.scale_target {
        out.insert(TARGET_KEY.to_string(), target.to_string());
    }
    if let Some(metric) = &fields.scale_metric {
        out.insert(METRIC_KEY.to_string(), metric.clone());
    }
    let min = fields.min_replicas.unwrap_or(DEFAULT_MIN_REPLICAS);
    out.insert(MIN_SCALE_KEY.to_string(), min.to_string());
    if fields.max_replicas != 0 {
        out.insert(MAX_SCALE_KEY.to_string(), fields.max_replicas.to_string());
    }
    if min == 0 && defaults.allow_zero_initial_scale {
        out.insert(INITIAL_SCALE_KEY.to_string(), "0".to_string());
    }
    out
}

/// The autoscaling settings one revision runs with: the defaults overridden by its
/// `autoscaling.knative.dev/*` annotations, resolved with Knative's formulas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Autoscaling {
    /// The autoscaler class (`class` annotation, else `kpa.autoscaling.knative.dev`).
    pub class: String,
    /// The scaling metric (`metric` annotation, else `concurrency` for KPA, `cpu` for HPA,
    /// empty for other classes).
    pub metric: String,
    /// The revision's `containerConcurrency` (0 = unlimited).
    pub container_concurrency: i64,
    /// The utilisation applied to the total: `target-utilization-percentage`/100, else
    /// `container-concurrency-target-percentage` as a fraction (concurrency) or 0.7 (rps).
    pub target_utilization: f64,
    /// TotalValue: the most a replica should take — the `target` annotation (capped by
    /// `containerConcurrency` for the concurrency metric), else `containerConcurrency`, else
    /// the default target. Used for burst capacity.
    pub total_value: f64,
    /// TargetValue: what the autoscaler divides the observed load by,
    /// `max(0.01, total_value × target_utilization)`.
    pub target_value: f64,
    /// The stable window (`window` annotation, else `stable-window`).
    pub stable_window: GoDuration,
    /// The panic window as a percentage of the stable window.
    pub panic_window_percentage: f64,
    /// The panic window: stable × percentage / 100 rounded to whole seconds (halves away
    /// from zero), at least 1s.
    pub panic_window: GoDuration,
    /// The panic threshold as a fraction (`panic-threshold-percentage`/100, 2.0 = 200%).
    pub panic_threshold: f64,
    /// Most a decision may multiply the ready replicas by (no annotation).
    pub max_scale_up_rate: f64,
    /// Most a decision may divide the ready replicas by (no annotation).
    pub max_scale_down_rate: f64,
    /// Target burst capacity (-1 = the router always buffers).
    pub target_burst_capacity: f64,
    /// Lowest replica count while the revision is routed (`min-scale`). With
    /// `enable-scale-to-zero` false the floor is at least 1 whatever this says.
    pub min_scale: i32,
    /// Highest replica count (`max-scale`); 0 means no limit.
    pub max_scale: i32,
    /// Replicas a new revision starts with (Knative's `GetInitialScale`).
    pub initial_scale: i32,
    /// Replicas to go to when scaling up from zero (`activation-scale`); 0 when unset.
    pub activation_scale: i32,
    /// Whether the last replica may be removed (no annotation).
    pub enable_scale_to_zero: bool,
    /// How long the router stays in the path before the last replica goes (no annotation).
    pub scale_to_zero_grace_period: GoDuration,
    /// How long the last replica is kept after traffic stopped.
    pub scale_to_zero_pod_retention_period: GoDuration,
    /// How long a lower decision must hold before scaling down.
    pub scale_down_delay: GoDuration,
    /// `linear` or `weighted-exponential` (its camelCase spelling is normalised).
    pub metric_aggregation_algorithm: String,
    /// How often the autoscaler decides.
    pub tick_interval: GoDuration,
}

/// Resolves the settings a revision runs with from the global defaults, the revision's
/// annotations (after [`knative_annotations`]) and its `containerConcurrency`, using
/// Knative's formulas (`ResolveMetricTarget`, `MakeMetric`, `MakeDecider`,
/// `GetInitialScale`, `ScaleBounds`). Annotation values that do not parse are ignored, as
/// Knative ignores them at run time (validation has reported them); a default that does not
/// parse falls back to the built-in default (`validate_defaults` reports it).
pub fn resolve(
    defaults: &AutoscalingDefaults,
    revision_annotations: &BTreeMap<String, String>,
    container_concurrency: i64,
) -> Autoscaling {
    let ann = revision_annotations;
    let builtin = AutoscalingDefaults::default();
    let config_duration = |value: &str, builtin: &str| {
        GoDuration::parse(value)
            .or_else(|_| GoDuration::parse(builtin))
            .unwrap_or(GoDuration::ZERO)
    };
    let float = |key: AnnotationKey| key.get(ann).and_then(|(_, v)| go_parse_float(v));
    let duration = |key: AnnotationKey| key.get(ann).and_then(|(_, v)| GoDuration::parse(v).ok());
    let int32 = |key: AnnotationKey| {
        key.get(ann)
            .and_then(|(_, v)| go_parse_int(v, 32).ok())
            .map(|i| i as i32)
    };

    let class = CLASS.get(ann).map_or(KPA_CLASS, |(_, c)| c).to_string();
    let metric = match METRIC.get(ann) {
        Some((_, m)) => m.to_string(),
        None => match class.as_str() {
            KPA_CLASS => CONCURRENCY.to_string(),
            HPA_CLASS => CPU.to_string(),
            _ => String::new(),
        },
    };

    // ResolveMetricTarget.
    let cc = container_concurrency as f64;
    let (mut total, mut tu) = if metric == RPS {
        (
            defaults.requests_per_second_target_default,
            RPS_TARGET_UTILIZATION,
        )
    } else if container_concurrency == 0 {
        (
            defaults.container_concurrency_target_default,
            target_fraction(defaults.container_concurrency_target_percentage),
        )
    } else {
        (
            cc,
            target_fraction(defaults.container_concurrency_target_percentage),
        )
    };
    if let Some(target) = float(TARGET) {
        total = target;
        if metric == CONCURRENCY && container_concurrency != 0 {
            total = go_min(target, cc);
        }
    }
    if let Some(percent) = float(TARGET_UTILIZATION_PERCENTAGE) {
        tu = percent / 100.0;
    }
    let target_value = go_max(TARGET_MIN, total * tu);

    // MakeMetric.
    let stable_window = duration(WINDOW)
        .unwrap_or_else(|| config_duration(&defaults.stable_window, &builtin.stable_window));
    let panic_window_percentage =
        float(PANIC_WINDOW_PERCENTAGE).unwrap_or(defaults.panic_window_percentage);
    let mut panic_window =
        GoDuration((stable_window.0 as f64 * panic_window_percentage / 100.0) as i64)
            .round(GoDuration::SECOND);
    if panic_window < BUCKET_SIZE {
        panic_window = BUCKET_SIZE;
    }

    // MakeDecider, GetInitialScale, ScaleBounds.
    let panic_threshold =
        float(PANIC_THRESHOLD_PERCENTAGE).unwrap_or(defaults.panic_threshold_percentage) / 100.0;
    let config_initial = saturating_i32(defaults.initial_scale);
    let initial_scale = match INITIAL_SCALE.get(ann).and_then(|(_, v)| go_atoi(v).ok()) {
        // Go's int32() conversion wraps.
        Some(v) if v as i32 != 0 || defaults.allow_zero_initial_scale => v as i32,
        _ => config_initial,
    };
    let metric_aggregation_algorithm = match METRIC_AGGREGATION_ALGORITHM.get(ann) {
        Some((_, WEIGHTED_EXPONENTIAL | WEIGHTED_EXPONENTIAL_ALT)) => WEIGHTED_EXPONENTIAL,
        _ => LINEAR,
    }
    .to_string();

    Autoscaling {
        class,
        metric,
        container_concurrency,
        target_utilization: tu,
        total_value: total,
        target_value,
        stable_window,
        panic_window_percentage,
        panic_window,
        panic_threshold,
        max_scale_up_rate: defaults.max_scale_up_rate,
        max_scale_down_rate: defaults.max_scale_down_rate,
        target_burst_capacity: float(TARGET_BURST_CAPACITY)
            .unwrap_or(defaults.target_burst_capacity),
        min_scale: int32(MIN_SCALE).unwrap_or(saturating_i32(defaults.min_scale)),
        max_scale: int32(MAX_SCALE).unwrap_or(saturating_i32(defaults.max_scale)),
        initial_scale,
        activation_scale: int32(ACTIVATION_SCALE).unwrap_or(0),
        enable_scale_to_zero: defaults.enable_scale_to_zero,
        scale_to_zero_grace_period: config_duration(
            &defaults.scale_to_zero_grace_period,
            &builtin.scale_to_zero_grace_period,
        ),
        scale_to_zero_pod_retention_period: duration(SCALE_TO_ZERO_POD_RETENTION_PERIOD)
            .unwrap_or_else(|| {
                config_duration(
                    &defaults.scale_to_zero_pod_retention_period,
                    &builtin.scale_to_zero_pod_retention_period,
                )
            }),
        scale_down_delay: duration(SCALE_DOWN_DELAY).unwrap_or_else(|| {
            config_duration(&defaults.scale_down_delay, &builtin.scale_down_delay)
        }),
        metric_aggregation_algorithm,
        tick_interval: config_duration(&defaults.tick_interval, &builtin.tick_interval),
    }
}

/// `container-concurrency-target-percentage` as a fraction: values above 1 are percentages,
/// values in (0, 1] are already fractions (Knative's legacy rule).
fn target_fraction(percentage: f64) -> f64 {
    if percentage > 1.0 {
        percentage / 100.0
    } else {
        percentage
    }
}

fn saturating_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// Go's `math.Min` (NaN wins).
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Go's `math.Max` (NaN wins).
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `%v` (= `%g`, shortest) for a float64: `1`, `1.1`, `0.005`, `1e+06`, `1e-05`.
pub(crate) fn go_float_v(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-5".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let sign = if x < 0.0 { "-" } else { "" };
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let digits = String::from_utf8(digits).expect("ASCII digits");
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let point = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return format!(
            "{sign}{first}{point}{rest}e{exp_sign}{:02}",
            exp.unsigned_abs()
        );
    }
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        let zeros = "0".repeat(int_len - digits.len());
        format!("{sign}{digits}{zeros}")
    } else {
        let (int, frac) = digits.split_at(int_len);
        format!("{sign}{int}.{frac}")
    }
}

/// Go's `%f` for a float64 (six decimals).
pub(crate) fn go_float_f(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    format!("{x:.6}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Annotation (key, value) pairs in a test table.
    type Pairs = &'static [(&'static str, &'static str)];

    const S: i64 = 1_000_000_000;

    fn secs(s: i64) -> GoDuration {
        GoDuration(s * S)
    }

    /// `pairs` use the part after `autoscaling.knative.dev/`.
    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (format!("autoscaling.knative.dev/{k}"), v.to_string()))
            .collect()
    }

    /// What a revision with no annotations and `containerConcurrency: 0` runs with under
    /// DESIGN.md's defaults.
    fn base() -> Autoscaling {
        Autoscaling {
            class: KPA_CLASS.into(),
            metric: "concurrency".into(),
            container_concurrency: 0,
            target_utilization: 0.85,
            total_value: 100.0,
            target_value: 85.0,
            stable_window: secs(180),
            panic_window_percentage: 13.0,
            panic_window: secs(23),
            panic_threshold: 2.0,
            max_scale_up_rate: 20.0,
            max_scale_down_rate: 1.1,
            target_burst_capacity: 211.0,
            min_scale: 0,
            max_scale: 0,
            initial_scale: 1,
            activation_scale: 0,
            enable_scale_to_zero: true,
            scale_to_zero_grace_period: secs(60),
            scale_to_zero_pod_retention_period: secs(30 * 60),
            scale_down_delay: secs(60),
            metric_aggregation_algorithm: "linear".into(),
            tick_interval: secs(2),
        }
    }

    fn check_with(
        defaults: &AutoscalingDefaults,
        pairs: &[(&str, &str)],
        cc: i64,
        expected: Autoscaling,
    ) {
        let got = resolve(defaults, &annotations(pairs), cc);
        assert_eq!(
            got, expected,
            "annotations {pairs:?}, containerConcurrency {cc}"
        );
    }

    fn check(pairs: &[(&str, &str)], cc: i64, expected: Autoscaling) {
        check_with(&AutoscalingDefaults::default(), pairs, cc, expected);
    }

    #[test]
    fn defaults_resolve_to_design_md_values() {
        check(&[], 0, base());
    }

    #[test]
    fn effective_target() {
        // knative-autoscaler.md §2 and §11 with DESIGN.md's 85 %, and Knative's
        // TestResolveMetricTarget cases.
        let table: Vec<(Pairs, i64, Autoscaling)> = vec![
            // CC = 0 → the default target 100 × 85 %.
            (&[], 0, base()),
            (
                &[],
                10,
                Autoscaling {
                    container_concurrency: 10,
                    total_value: 10.0,
                    target_value: 8.5,
                    ..base()
                },
            ),
            (
                &[],
                1,
                Autoscaling {
                    container_concurrency: 1,
                    total_value: 1.0,
                    target_value: 0.85,
                    ..base()
                },
            ),
            (
                &[("target", "10")],
                0,
                Autoscaling {
                    total_value: 10.0,
                    target_value: 8.5,
                    ..base()
                },
            ),
            (
                &[("target", "500")],
                0,
                Autoscaling {
                    total_value: 500.0,
                    target_value: 425.0,
                    ..base()
                },
            ),
            // The target annotation is capped by containerConcurrency.
            (
                &[("target", "1")],
                10,
                Autoscaling {
                    container_concurrency: 10,
                    total_value: 1.0,
                    target_value: 0.85,
                    ..base()
                },
            ),
            (
                &[("target", "10")],
                1,
                Autoscaling {
                    container_concurrency: 1,
                    total_value: 1.0,
                    target_value: 0.85,
                    ..base()
                },
            ),
            // Never below 0.01.
            (
                &[("target", "0.01")],
                0,
                Autoscaling {
                    total_value: 0.01,
                    target_value: 0.01,
                    ..base()
                },
            ),
            // Utilisation annotation.
            (
                &[("target-utilization-percentage", "75")],
                12,
                Autoscaling {
                    container_concurrency: 12,
                    target_utilization: 0.75,
                    total_value: 12.0,
                    target_value: 9.0,
                    ..base()
                },
            ),
            (
                &[("targetUtilizationPercentage", "50")],
                0,
                Autoscaling {
                    target_utilization: 0.5,
                    target_value: 50.0,
                    ..base()
                },
            ),
            // RPS: 200 × Knative's fixed 0.7, containerConcurrency ignored.
            (
                &[("metric", "rps")],
                0,
                Autoscaling {
                    metric: "rps".into(),
                    target_utilization: 0.7,
                    total_value: 200.0,
                    target_value: 140.0,
                    ..base()
                },
            ),
            (
                &[("metric", "rps")],
                1,
                Autoscaling {
                    metric: "rps".into(),
                    container_concurrency: 1,
                    target_utilization: 0.7,
                    total_value: 200.0,
                    target_value: 140.0,
                    ..base()
                },
            ),
            (
                &[("metric", "rps"), ("target", "1")],
                0,
                Autoscaling {
                    metric: "rps".into(),
                    target_utilization: 0.7,
                    total_value: 1.0,
                    target_value: 0.7,
                    ..base()
                },
            ),
            (
                &[("metric", "rps"), ("target", "300")],
                5,
                Autoscaling {
                    metric: "rps".into(),
                    container_concurrency: 5,
                    target_utilization: 0.7,
                    total_value: 300.0,
                    target_value: 210.0,
                    ..base()
                },
            ),
            (
                &[("metric", "rps"), ("target-utilization-percentage", "75")],
                0,
                Autoscaling {
                    metric: "rps".into(),
                    target_utilization: 0.75,
                    total_value: 200.0,
                    target_value: 150.0,
                    ..base()
                },
            ),
            // Unparsable values are ignored at resolution.
            (
                &[("target", "lots"), ("target-utilization-percentage", "x")],
                0,
                base(),
            ),
        ];
        for (pairs, cc, expected) in table {
            check(pairs, cc, expected);
        }
    }

    #[test]
    fn target_percentage_config_accepts_fractions_and_percentages() {
        let table: &[(f64, f64, f64)] = &[
            // (container-concurrency-target-percentage, utilisation, target for CC 0)
            (85.0, 0.85, 85.0),
            (70.0, 0.7, 70.0),
            (100.0, 1.0, 100.0),
            (1.0, 1.0, 100.0),
            (0.5, 0.5, 50.0),
        ];
        for &(percentage, tu, target) in table {
            let defaults = AutoscalingDefaults {
                container_concurrency_target_percentage: percentage,
                ..AutoscalingDefaults::default()
            };
            let expected = Autoscaling {
                target_utilization: tu,
                target_value: target,
                ..base()
            };
            check_with(&defaults, &[], 0, expected);
        }
    }

    #[test]
    fn windows() {
        // (annotations, stable, panic): Knative's TestMakeMetric with explicit annotations,
        // and DESIGN.md's 180 s × 13 % = 23.4 s → 23 s.
        let table: &[(Pairs, i64, f64, i64)] = &[
            (&[], 180, 13.0, 23),
            (
                &[("window", "60s"), ("panic-window-percentage", "10")],
                60,
                10.0,
                6,
            ),
            (
                &[("window", "10s"), ("panic-window-percentage", "10")],
                10,
                10.0,
                1,
            ),
            (
                &[("window", "10m"), ("panic-window-percentage", "10")],
                600,
                10.0,
                60,
            ),
            (
                &[("window", "60s"), ("panic-window-percentage", "50")],
                60,
                50.0,
                30,
            ),
            (
                &[("window", "60s"), ("panic-window-percentage", "51")],
                60,
                51.0,
                31,
            ),
            (
                &[("window", "60s"), ("panicWindowPercentage", "51")],
                60,
                51.0,
                31,
            ),
            // Halves round away from zero; never below one second.
            (
                &[("window", "10s"), ("panic-window-percentage", "15")],
                10,
                15.0,
                2,
            ),
            (
                &[("window", "6s"), ("panic-window-percentage", "1")],
                6,
                1.0,
                1,
            ),
            (&[("window", "1m30s")], 90, 13.0, 12),
            (&[("window", "1h")], 3600, 13.0, 468),
            (&[("panic-window-percentage", "100")], 180, 100.0, 180),
            // Unparsable: the defaults.
            (
                &[("window", "soon"), ("panic-window-percentage", "x")],
                180,
                13.0,
                23,
            ),
        ];
        for &(pairs, stable, pct, panic) in table {
            let expected = Autoscaling {
                stable_window: secs(stable),
                panic_window_percentage: pct,
                panic_window: secs(panic),
                ..base()
            };
            check(pairs, 0, expected);
        }
    }

    #[test]
    fn other_settings_from_annotations() {
        let table: Vec<(&[(&str, &str)], Autoscaling)> = vec![
            (
                &[("min-scale", "2"), ("max-scale", "5")],
                Autoscaling {
                    min_scale: 2,
                    max_scale: 5,
                    ..base()
                },
            ),
            (
                &[("minScale", "3"), ("maxScale", "4")],
                Autoscaling {
                    min_scale: 3,
                    max_scale: 4,
                    ..base()
                },
            ),
            // Kebab-case wins over the alias.
            (
                &[("min-scale", "2"), ("minScale", "9")],
                Autoscaling {
                    min_scale: 2,
                    ..base()
                },
            ),
            // A present kebab key wins even when invalid: then the default applies.
            (&[("min-scale", "x"), ("minScale", "9")], base()),
            (
                &[("initial-scale", "3")],
                Autoscaling {
                    initial_scale: 3,
                    ..base()
                },
            ),
            (
                &[("initialScale", "4")],
                Autoscaling {
                    initial_scale: 4,
                    ..base()
                },
            ),
            // 0 needs allow-zero-initial-scale; otherwise the default initial scale.
            (&[("initial-scale", "0")], base()),
            (&[("initial-scale", "many")], base()),
            (
                &[("activation-scale", "3")],
                Autoscaling {
                    activation_scale: 3,
                    ..base()
                },
            ),
            (
                &[("panic-threshold-percentage", "150")],
                Autoscaling {
                    panic_threshold: 1.5,
                    ..base()
                },
            ),
            (
                &[("panicThresholdPercentage", "1000")],
                Autoscaling {
                    panic_threshold: 10.0,
                    ..base()
                },
            ),
            (
                &[("target-burst-capacity", "-1")],
                Autoscaling {
                    target_burst_capacity: -1.0,
                    ..base()
                },
            ),
            (
                &[("targetBurstCapacity", "0")],
                Autoscaling {
                    target_burst_capacity: 0.0,
                    ..base()
                },
            ),
            (
                &[
                    ("scale-down-delay", "0s"),
                    ("scale-to-zero-pod-retention-period", "0"),
                ],
                Autoscaling {
                    scale_down_delay: GoDuration::ZERO,
                    scale_to_zero_pod_retention_period: GoDuration::ZERO,
                    ..base()
                },
            ),
            (
                &[
                    ("scaleDownDelay", "5m"),
                    ("scaleToZeroPodRetentionPeriod", "21m31s"),
                ],
                Autoscaling {
                    scale_down_delay: secs(300),
                    scale_to_zero_pod_retention_period: secs(21 * 60 + 31),
                    ..base()
                },
            ),
            (
                &[("metric-aggregation-algorithm", "weighted-exponential")],
                Autoscaling {
                    metric_aggregation_algorithm: "weighted-exponential".into(),
                    ..base()
                },
            ),
            (
                &[("metricAggregationAlgorithm", "weightedExponential")],
                Autoscaling {
                    metric_aggregation_algorithm: "weighted-exponential".into(),
                    ..base()
                },
            ),
            (&[("metric-aggregation-algorithm", "random")], base()),
            (
                &[("class", HPA_CLASS)],
                Autoscaling {
                    class: HPA_CLASS.into(),
                    metric: "cpu".into(),
                    ..base()
                },
            ),
            (
                &[("class", "example.com/custom")],
                Autoscaling {
                    class: "example.com/custom".into(),
                    metric: String::new(),
                    ..base()
                },
            ),
        ];
        for (pairs, expected) in table {
            check(pairs, 0, expected);
        }
    }

    #[test]
    fn cluster_defaults_flow_through() {
        let defaults = AutoscalingDefaults {
            enable_scale_to_zero: false,
            allow_zero_initial_scale: true,
            initial_scale: 2,
            min_scale: 1,
            max_scale: 7,
            stable_window: "60s".into(),
            panic_window_percentage: 10.0,
            scale_down_delay: "0s".into(),
            ..AutoscalingDefaults::default()
        };
        let from_config = Autoscaling {
            enable_scale_to_zero: false,
            initial_scale: 2,
            min_scale: 1,
            max_scale: 7,
            stable_window: secs(60),
            panic_window_percentage: 10.0,
            panic_window: secs(6),
            scale_down_delay: GoDuration::ZERO,
            ..base()
        };
        check_with(&defaults, &[], 0, from_config.clone());
        let zero = Autoscaling {
            initial_scale: 0,
            ..from_config
        };
        check_with(&defaults, &[("initial-scale", "0")], 0, zero);
    }

    fn check_mapping(
        isvc: &[(&str, &str)],
        fields: ScalingFields,
        allow_zero_initial_scale: bool,
        expected: &[(&str, &str)],
    ) {
        let defaults = AutoscalingDefaults {
            allow_zero_initial_scale,
            ..AutoscalingDefaults::default()
        };
        let got = knative_annotations_for(&annotations(isvc), &fields, &defaults);
        assert_eq!(got, annotations(expected), "isvc {isvc:?}, {fields:?}");
        if !allow_zero_initial_scale {
            assert_eq!(knative_annotations(&annotations(isvc), &fields), got);
        }
    }

    #[test]
    fn kserve_mapping() {
        const KPA: (&str, &str) = ("class", KPA_CLASS);
        let table: Vec<(Pairs, ScalingFields, bool, Pairs)> = vec![
            // No fields: KPA, min-scale 1 (never scales to zero).
            (
                &[],
                ScalingFields::default(),
                false,
                &[KPA, ("min-scale", "1")],
            ),
            (
                &[],
                ScalingFields {
                    min_replicas: Some(0),
                    max_replicas: 3,
                    scale_target: Some(5),
                    scale_metric: Some("rps".into()),
                    container_concurrency: Some(4),
                },
                false,
                &[
                    KPA,
                    ("min-scale", "0"),
                    ("max-scale", "3"),
                    ("target", "5"),
                    ("metric", "rps"),
                ],
            ),
            // minReplicas 0 with allow-zero-initial-scale: initial-scale "0".
            (
                &[],
                ScalingFields {
                    min_replicas: Some(0),
                    ..ScalingFields::default()
                },
                true,
                &[KPA, ("min-scale", "0"), ("initial-scale", "0")],
            ),
            (
                &[],
                ScalingFields {
                    min_replicas: Some(2),
                    ..ScalingFields::default()
                },
                true,
                &[KPA, ("min-scale", "2")],
            ),
            // The user's class is kept; other annotations are copied.
            (
                &[("class", HPA_CLASS), ("window", "60s")],
                ScalingFields::default(),
                false,
                &[("class", HPA_CLASS), ("window", "60s"), ("min-scale", "1")],
            ),
            // min-scale always comes from minReplicas; a max-scale annotation survives
            // maxReplicas 0; scaleTarget replaces a target annotation.
            (
                &[("min-scale", "0"), ("max-scale", "9"), ("target", "1")],
                ScalingFields {
                    scale_target: Some(20),
                    ..ScalingFields::default()
                },
                false,
                &[
                    KPA,
                    ("min-scale", "1"),
                    ("max-scale", "9"),
                    ("target", "20"),
                ],
            ),
        ];
        for (isvc, fields, allow_zero, expected) in table {
            check_mapping(isvc, fields, allow_zero, expected);
        }
    }

    #[test]
    fn kserve_defaults_end_to_end() {
        // An InferenceService with no scaling fields: min 1, never scales to zero.
        let revision = knative_annotations(&BTreeMap::new(), &ScalingFields::default());
        let resolved = resolve(&AutoscalingDefaults::default(), &revision, 0);
        assert_eq!(
            resolved,
            Autoscaling {
                min_scale: 1,
                ..base()
            }
        );
        // minReplicas 0, maxReplicas 2, containerConcurrency 4.
        let fields = ScalingFields {
            min_replicas: Some(0),
            max_replicas: 2,
            container_concurrency: Some(4),
            ..ScalingFields::default()
        };
        let revision = knative_annotations(&BTreeMap::new(), &fields);
        let resolved = resolve(
            &AutoscalingDefaults::default(),
            &revision,
            fields.container_concurrency.unwrap_or(0),
        );
        assert_eq!(
            resolved,
            Autoscaling {
                min_scale: 0,
                max_scale: 2,
                container_concurrency: 4,
                total_value: 4.0,
                target_value: 3.4,
                ..base()
            }
        );
    }

    #[test]
    fn serialises_durations_as_go_strings() {
        let json = serde_json::to_value(base()).unwrap();
        assert_eq!(json["stable-window"], "3m0s");
        assert_eq!(json["panic-window"], "23s");
        assert_eq!(json["scale-to-zero-pod-retention-period"], "30m0s");
        assert_eq!(json["tick-interval"], "2s");
        assert_eq!(json["target-value"], 85.0);
        assert_eq!(json["class"], KPA_CLASS);
    }

    /// A change to the defaults in a test table.
    type Change = fn(&mut AutoscalingDefaults);

    fn check_defaults(change: Change, expected: &[&str]) {
        let mut d = AutoscalingDefaults::default();
        change(&mut d);
        assert_eq!(validate_defaults(&d), expected, "{d:?}");
    }

    #[test]
    fn default_validation() {
        let table: &[(Change, &[&str])] = &[
            (|_| {}, &[]),
            (
                |d| d.stable_window = "x".into(),
                &[r#"failed to parse data: failed to parse "stable-window": time: invalid duration "x""#],
            ),
            (
                |d| d.scale_down_delay = "10".into(),
                &[r#"failed to parse data: failed to parse "scale-down-delay": time: missing unit in duration "10""#],
            ),
            (
                |d| d.scale_to_zero_grace_period = "0s".into(),
                &["scale-to-zero-grace-period must be positive, was: 0s"],
            ),
            (
                |d| d.scale_down_delay = "-1s".into(),
                &["scale-down-delay cannot be negative, was: -1s"],
            ),
            (
                |d| d.scale_down_delay = "1.5s".into(),
                &["scale-down-delay = 1.5s, must be specified with at most second precision"],
            ),
            (
                |d| d.scale_to_zero_pod_retention_period = "-1m".into(),
                &["scale-to-zero-pod-retention-period cannot be negative, was: -1m0s"],
            ),
            (
                |d| d.target_burst_capacity = -2.0,
                &["target-burst-capacity must be either non-negative or -1 (for unlimited), was: -2.000000"],
            ),
            (|d| d.target_burst_capacity = -1.0, &[]),
            (
                |d| d.container_concurrency_target_percentage = 150.0,
                &["container-concurrency-target-percentage = 1.500000 is outside of valid range of (0, 100]"],
            ),
            (
                |d| d.container_concurrency_target_percentage = 0.0,
                &[
                    "container-concurrency-target-percentage = 0.000000 is outside of valid range of (0, 100]",
                    "container-concurrency-target-percentage and container-concurrency-target-default yield target concurrency of 0, can't be less than 0.01",
                ],
            ),
            (
                |d| d.container_concurrency_target_default = 0.01,
                &["container-concurrency-target-percentage and container-concurrency-target-default yield target concurrency of 0.0085, can't be less than 0.01"],
            ),
            (
                |d| d.requests_per_second_target_default = 0.0,
                &["requests-per-second-target-default must be at least 0.01, was: 0"],
            ),
            (
                |d| d.max_scale_up_rate = 1.0,
                &["max-scale-up-rate = 1, must be greater than 1.0"],
            ),
            (
                |d| d.max_scale_down_rate = 0.5,
                &["max-scale-down-rate = 0.5, must be greater than 1.0"],
            ),
            (
                |d| d.stable_window = "5s".into(),
                &["stable-window = 5s, must be in [6s; 1h0m0s] range"],
            ),
            (
                |d| d.stable_window = "2h".into(),
                &["stable-window = 2h0m0s, must be in [6s; 1h0m0s] range"],
            ),
            (
                |d| d.stable_window = "6500ms".into(),
                &["stable-window = 6.5s, must be specified with at most second precision"],
            ),
            (
                |d| d.panic_window_percentage = 0.5,
                &["panic-window-percentage = 0.5, must be in [1, 100] interval"],
            ),
            (
                |d| d.panic_window_percentage = 1e6,
                &["panic-window-percentage = 1e+06, must be in [1, 100] interval"],
            ),
            (
                |d| d.initial_scale = 0,
                &["initial-scale = 0, must be at least 0 (or at least 1 when allow-zero-initial-scale is false)"],
            ),
            (
                |d| {
                    d.initial_scale = 0;
                    d.allow_zero_initial_scale = true;
                },
                &[],
            ),
            (
                |d| {
                    d.max_scale_limit = 10;
                    d.max_scale = 20;
                },
                &["max-scale = 20, must be in [1, max-scale-limit(10)] range"],
            ),
            (
                |d| d.max_scale_limit = 10,
                &["max-scale = 0, must be in [1, max-scale-limit(10)] range"],
            ),
            (
                |d| {
                    d.min_scale = 5;
                    d.max_scale = 3;
                },
                &["min-scale (5) must be less than max-scale (3)"],
            ),
            (
                |d| d.tick_interval = "0s".into(),
                &["tick-interval must be positive, was: 0s"],
            ),
        ];
        for &(change, expected) in table {
            check_defaults(change, expected);
        }
    }

    #[test]
    fn go_float_formatting() {
        let table: &[(f64, &str, &str)] = &[
            (0.0, "0", "0.000000"),
            (1.0, "1", "1.000000"),
            (1.1, "1.1", "1.100000"),
            (-2.0, "-2", "-2.000000"),
            (0.01, "0.01", "0.010000"),
            (0.0085, "0.0085", "0.008500"),
            (0.0001, "0.0001", "0.000100"),
            (0.00001, "1e-05", "0.000010"),
            (123456.0, "123456", "123456.000000"),
            (1e6, "1e+06", "1000000.000000"),
            (1234567.0, "1.234567e+06", "1234567.000000"),
            (1e21, "1e+21", "1000000000000000000000.000000"),
            (1e100, "1e+100", &format!("{:.6}", 1e100)),
            (f64::INFINITY, "+Inf", "+Inf"),
            (f64::NAN, "NaN", "NaN"),
        ];
        for &(x, v, f) in table {
            assert_eq!(go_float_v(x), v, "%v of {x}");
            assert_eq!(go_float_f(x), f, "%f of {x}");
        }
    }
}
