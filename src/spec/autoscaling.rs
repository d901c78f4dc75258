//! Autoscaling settings: the global defaults (DESIGN.md's GPU-tuned table) and, per component,
//! the settings resolved from defaults ← daemon config ← `autoscaling.knative.dev/*`
//! annotations ← InferenceService spec fields (knative-autoscaler.md §10).

use serde::{Deserialize, Serialize};

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
