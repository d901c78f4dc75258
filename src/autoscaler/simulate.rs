//! `gantry simulate`: runs the autoscaler over a scenario (load over time, optionally ready
//! replicas) and reports every decision. Users tune a service with it; the tests drive the
//! whole autoscaler through it. The format is documented in `docs/autoscaling.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use super::decider::{Collector, Decider, DeciderSpec, Metric, NoData, Observed, Stat};
use super::kpa::{Activity, KpaSpec, Mode, PodAutoscaler, DEFAULT_PROGRESS_DEADLINE};
use super::svg;
use crate::spec::annotations::{validate_autoscaling_annotations, validate_container_concurrency};
use crate::spec::autoscaling::{resolve, validate_defaults, Autoscaling, AutoscalingDefaults};
use crate::spec::diagnostic::Diagnostic;
use crate::spec::duration::GoDuration;
use crate::spec::yaml;

/// The annotation that sets how long a revision may take to activate.
const PROGRESS_DEADLINE: &str = "serving.knative.dev/progress-deadline";

/// A scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Scenario {
    /// Any key of the daemon config's `autoscaling` section, any `autoscaling.knative.dev/*`
    /// annotation, `serving.knative.dev/progress-deadline`, and `container-concurrency`.
    #[serde(default)]
    pub settings: BTreeMap<String, Value>,
    /// The decider's parameters, overriding what the settings imply.
    #[serde(default)]
    pub decider: DeciderOverrides,
    /// Ready replicas when the autoscaler is created (default: the initial scale).
    pub ready_at_start: Option<i32>,
    /// How long after a decision asks for a replica it becomes ready, when steps do not say
    /// (default 0s: ready at the next decision).
    pub startup_delay: Option<Time>,
    pub steps: Vec<Step>,
}

/// The decider's parameters, by the names `DeciderSpec` gives them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DeciderOverrides {
    pub metric: Option<String>,
    pub target_value: Option<f64>,
    pub total_value: Option<f64>,
    pub target_burst_capacity: Option<f64>,
    pub panic_threshold: Option<f64>,
    pub max_scale_up_rate: Option<f64>,
    pub max_scale_down_rate: Option<f64>,
    pub stable_window: Option<Time>,
    pub scale_down_delay: Option<Time>,
    pub initial_scale: Option<i32>,
    pub activation_scale: Option<i32>,
    pub reachable: Option<bool>,
}

/// One step: a decision at `at`, or a run of decisions `every` so often `until` a time.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Step {
    pub at: Option<Time>,
    pub every: Option<Time>,
    pub until: Option<Time>,
    /// Ready replicas at the decision(s), instead of the simulated count.
    pub ready: Option<i32>,
    /// Window values to decide on directly, instead of the recorded samples.
    pub observed: Option<ObservedValues>,
    /// Concurrency samples: one value at `at`, a list of per-second values ending at `at`,
    /// or for a run the value held every second.
    pub concurrency: Option<Samples>,
    /// Requests-per-second samples, shaped like `concurrency`.
    pub requests: Option<Samples>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedValues {
    pub stable: f64,
    pub panic: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Samples {
    One(f64),
    PerSecond(Vec<f64>),
}

/// A time or duration: Go duration text (`90s`, `1m30s`) or a number of seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Time {
    Seconds(f64),
    Text(String),
}

impl Time {
    fn duration(&self) -> Result<Duration, String> {
        match self {
            Time::Seconds(s) if s.is_finite() && *s >= 0.0 => Ok(Duration::from_secs_f64(*s)),
            Time::Seconds(s) => Err(format!("{s} is not a time (seconds ≥ 0)")),
            Time::Text(text) => match GoDuration::parse(text) {
                Ok(d) => d.to_std().ok_or_else(|| format!("{text} is negative")),
                Err(e) => Err(e.to_string()),
            },
        }
    }
}

/// One decision, as printed (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    #[serde(serialize_with = "go_time")]
    pub at: Duration,
    /// The decider's answer (−1 before the first decision with data).
    pub desired: i32,
    /// What the service is scaled to after bounds and the scale-to-zero state machine.
    pub replicas: i32,
    /// Whether the decider is in panic mode after this decision.
    pub panic: bool,
    /// The stable-window value decided on (null without data).
    pub stable: Option<f64>,
    /// The panic-window value decided on.
    pub panic_value: Option<f64>,
    pub excess_burst_capacity: i32,
    /// Ready replicas at this decision.
    pub ready: i32,
    /// Whether the router buffers in front of the revision (`proxy`) or not (`serve`).
    pub mode: Mode,
    pub activity: Activity,
    /// The last sample recorded up to this decision (for the chart).
    #[serde(skip)]
    pub sample: Option<f64>,
}

fn go_time<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&GoDuration(d.as_nanos() as i64).to_string())
}

/// A scenario that cannot run, with every reason.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioError(pub Vec<String>);

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ScenarioError {}

/// Parses a scenario file's text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
    yaml::from_str_strict::<Scenario>(text, file)
        .map_err(|diags| ScenarioError(diags.iter().map(Diagnostic::to_string).collect()))
}

/// Everything a run needs, resolved and checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub settings: Autoscaling,
    pub decider: DeciderSpec,
    pub kpa: KpaSpec,
    pub ready_at_start: i32,
    pub startup_delay: Duration,
    decisions: Vec<DecisionPoint>,
}

/// One decision to make, with what is recorded before it.
#[derive(Debug, Clone, Default)]
struct DecisionPoint {
    at: Duration,
    samples: Vec<(Duration, Stat)>,
    ready: Option<i32>,
    observed: Option<ObservedValues>,
}

impl Scenario {
    /// Resolves the settings the way the daemon does and expands the steps; `file` names
    /// the scenario in errors.
    pub fn plan(&self, file: &str) -> Result<Plan, ScenarioError> {
        let mut errors = Vec::new();
        let resolved = resolve_settings(&self.settings, &mut errors);
        let startup_delay = self
            .startup_delay
            .as_ref()
            .map_or(Ok(Duration::ZERO), Time::duration);
        let startup_delay = startup_delay.unwrap_or_else(|e| {
            errors.push(format!("startup-delay: {e}"));
            Duration::ZERO
        });
        // On bad settings the run is refused; the built-in defaults let the rest be checked.
        let (settings, progress_deadline) = resolved.unwrap_or_else(|| {
            let builtin = AutoscalingDefaults::default();
            (
                resolve(&builtin, &BTreeMap::new(), 0),
                DEFAULT_PROGRESS_DEADLINE,
            )
        });
        let mut decider = DeciderSpec::for_settings(&settings, true);
        self.decider.apply(&mut decider, &mut errors);
        let kpa = KpaSpec {
            reachable: decider.reachable,
            ..KpaSpec::for_settings(&settings, decider.reachable, progress_deadline)
        };
        let decisions = expand(&self.steps, &mut errors);
        if !errors.is_empty() {
            return Err(ScenarioError(
                errors.into_iter().map(|e| format!("{file}: {e}")).collect(),
            ));
        }
        Ok(Plan {
            ready_at_start: self.ready_at_start.unwrap_or(settings.initial_scale).max(0),
            settings,
            decider,
            kpa,
            startup_delay,
            decisions,
        })
    }
}

impl DeciderOverrides {
    fn apply(&self, spec: &mut DeciderSpec, errors: &mut Vec<String>) {
        let mut duration = |field: &str, value: &Option<Time>, target: &mut Duration| {
            if let Some(v) = value {
                match v.duration() {
                    Ok(d) => *target = d,
                    Err(e) => errors.push(format!("decider.{field}: {e}")),
                }
            }
        };
        duration(
            "stable-window",
            &self.stable_window,
            &mut spec.stable_window,
        );
        duration(
            "scale-down-delay",
            &self.scale_down_delay,
            &mut spec.scale_down_delay,
        );
        if let Some(m) = &self.metric {
            match m.as_str() {
                "concurrency" | "rps" => spec.metric = Metric::named(m),
                other => errors.push(format!(
                    "decider.metric: {other:?} is not a metric: use concurrency or rps"
                )),
            }
        }
        let set = |v: Option<f64>, target: &mut f64| {
            if let Some(v) = v {
                *target = v;
            }
        };
        set(self.target_value, &mut spec.target_value);
        set(self.total_value, &mut spec.total_value);
        set(self.target_burst_capacity, &mut spec.target_burst_capacity);
        set(self.panic_threshold, &mut spec.panic_threshold);
        set(self.max_scale_up_rate, &mut spec.max_scale_up_rate);
        set(self.max_scale_down_rate, &mut spec.max_scale_down_rate);
        if let Some(v) = self.initial_scale {
            spec.initial_scale = v;
        }
        if let Some(v) = self.activation_scale {
            spec.activation_scale = v;
        }
        if let Some(v) = self.reachable {
            spec.reachable = v;
        }
        if spec.target_value <= 0.0 {
            errors.push(format!(
                "decider.target-value: must be greater than 0, was {}",
                spec.target_value
            ));
        }
    }
}

/// A YAML scalar as annotation text.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Splits `settings` into daemon config, annotations and `containerConcurrency`, checks
/// them with the daemon's and Knative's rules and texts, and resolves them.
fn resolve_settings(
    settings: &BTreeMap<String, Value>,
    errors: &mut Vec<String>,
) -> Option<(Autoscaling, Duration)> {
    let mut config = serde_yaml::Mapping::new();
    let mut annotations = BTreeMap::new();
    let mut container_concurrency = 0;
    let before = errors.len();
    for (key, value) in settings {
        let is_annotation = key.starts_with("autoscaling.knative.dev/") || key == PROGRESS_DEADLINE;
        if is_annotation || key == "container-concurrency" {
            let Some(text) = scalar_text(value) else {
                errors.push(format!("settings.{key}: expected a single value"));
                continue;
            };
            if is_annotation {
                annotations.insert(key.clone(), text);
            } else {
                match text.parse::<i64>() {
                    Ok(cc) => match validate_container_concurrency(cc) {
                        Some(e) => errors.push(format!("settings: {e}: containerConcurrency")),
                        None => container_concurrency = cc,
                    },
                    Err(_) => errors.push(format!("settings.{key}: {text:?} is not an integer")),
                }
            }
        } else {
            config.insert(Value::String(key.clone()), value.clone());
        }
    }
    let defaults: AutoscalingDefaults = match serde_yaml::from_value(Value::Mapping(config)) {
        Ok(d) => d,
        Err(e) => {
            errors.push(format!(
                "settings: {e} (the keys are the daemon config's `autoscaling` keys, \
                 `autoscaling.knative.dev/*` annotations, {PROGRESS_DEADLINE} and \
                 container-concurrency)"
            ));
            return None;
        }
    };
    errors.extend(
        validate_defaults(&defaults)
            .into_iter()
            .map(|e| format!("settings: {e}")),
    );
    errors.extend(
        validate_autoscaling_annotations(&annotations, &defaults)
            .iter()
            .map(|e| format!("settings: {}", e.knative_text(""))),
    );
    let progress_deadline = match annotations.get(PROGRESS_DEADLINE) {
        None => DEFAULT_PROGRESS_DEADLINE,
        Some(text) => match GoDuration::parse(text).ok().and_then(GoDuration::to_std) {
            Some(d) => d,
            None => {
                errors.push(format!(
                    "settings: invalid value: {text}: {PROGRESS_DEADLINE}"
                ));
                DEFAULT_PROGRESS_DEADLINE
            }
        },
    };
    (errors.len() == before).then(|| {
        (
            resolve(&defaults, &annotations, container_concurrency),
            progress_deadline,
        )
    })
}

/// The samples a step records at decision time `at`: one value at `at`, or per-second
/// values ending at `at`.
fn step_samples(at: Duration, samples: &Samples, stat: fn(f64) -> Stat) -> Vec<(Duration, Stat)> {
    match samples {
        Samples::One(v) => vec![(at, stat(*v))],
        Samples::PerSecond(values) => {
            let n = values.len() as u64;
            values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    let back = Duration::from_secs(n - 1 - i as u64);
                    at.checked_sub(back).map(|t| (t, stat(*v)))
                })
                .collect()
        }
    }
}

fn concurrency_stat(v: f64) -> Stat {
    Stat {
        concurrency: v,
        ..Stat::default()
    }
}

fn requests_stat(v: f64) -> Stat {
    Stat {
        requests: v,
        ..Stat::default()
    }
}

/// Expands the steps into decisions, checking that time only moves forward.
fn expand(steps: &[Step], errors: &mut Vec<String>) -> Vec<DecisionPoint> {
    let mut out: Vec<DecisionPoint> = Vec::new();
    let mut previous: Option<Duration> = None;
    if steps.is_empty() {
        errors.push("steps: a scenario needs at least one step".into());
    }
    for (i, step) in steps.iter().enumerate() {
        let mut fail = |e: String| errors.push(format!("steps[{i}]: {e}"));
        let time = |field: &str, t: &Option<Time>| match t {
            None => Ok(None),
            Some(t) => t.duration().map(Some).map_err(|e| format!("{field}: {e}")),
        };
        let (at, every, until) = match (
            time("at", &step.at),
            time("every", &step.every),
            time("until", &step.until),
        ) {
            (Ok(a), Ok(e), Ok(u)) => (a, e, u),
            (a, e, u) => {
                for err in [a.err(), e.err(), u.err()].into_iter().flatten() {
                    fail(err);
                }
                continue;
            }
        };
        match (at, every, until) {
            (Some(at), None, None) => {
                if previous.is_some_and(|p| at < p) {
                    fail(format!("at: {} is before the previous step", go_text(at)));
                    continue;
                }
                let mut samples = Vec::new();
                if let Some(c) = &step.concurrency {
                    samples.extend(step_samples(at, c, concurrency_stat));
                }
                if let Some(r) = &step.requests {
                    samples.extend(step_samples(at, r, requests_stat));
                }
                out.push(DecisionPoint {
                    at,
                    samples,
                    ready: step.ready,
                    observed: step.observed,
                });
                previous = Some(at);
            }
            (None, Some(every), Some(until)) => {
                let start = previous.unwrap_or(Duration::ZERO);
                if every.is_zero() {
                    fail("every: must be longer than 0s".into());
                    continue;
                }
                if until <= start {
                    fail(format!(
                        "until: {} is not after the previous step ({})",
                        go_text(until),
                        go_text(start)
                    ));
                    continue;
                }
                let one = |samples: &Option<Samples>| match samples {
                    None => Ok(0.0),
                    Some(Samples::One(v)) => Ok(*v),
                    Some(Samples::PerSecond(_)) => Err(()),
                };
                let (Ok(concurrency), Ok(requests)) = (one(&step.concurrency), one(&step.requests))
                else {
                    fail("a run (every/until) holds one value, not a list".into());
                    continue;
                };
                // The router records once per second; each decision takes the seconds
                // since the one before.
                let mut second = start.as_secs() + 1;
                let mut at = start + every;
                while at <= until {
                    let mut samples = Vec::new();
                    while Duration::from_secs(second) <= at {
                        let stat = Stat {
                            concurrency,
                            requests,
                            ..Stat::default()
                        };
                        samples.push((Duration::from_secs(second), stat));
                        second += 1;
                    }
                    out.push(DecisionPoint {
                        at,
                        samples,
                        ready: step.ready,
                        observed: step.observed,
                    });
                    previous = Some(at);
                    at += every;
                }
            }
            _ => fail("give either `at`, or `every` and `until`".into()),
        }
    }
    out
}

fn go_text(d: Duration) -> String {
    GoDuration(d.as_nanos() as i64).to_string()
}

impl Plan {
    /// Runs every decision in order.
    pub fn run(&self) -> Vec<Decision> {
        let collector = Collector::for_settings(&self.settings);
        let mut decider = Decider::new(
            self.decider.clone(),
            collector,
            self.ready_at_start,
            Duration::ZERO,
        );
        let mut pa = PodAutoscaler::new(self.kpa.clone(), Duration::ZERO);
        let mut ready = self.ready_at_start;
        // When each replica still starting becomes ready, oldest first.
        let mut starting: Vec<Duration> = Vec::new();
        let mut sample = None;
        let mut out = Vec::with_capacity(self.decisions.len());
        for point in &self.decisions {
            for (t, stat) in &point.samples {
                decider.record(*t, stat);
                sample = Some(match self.decider.metric {
                    Metric::Concurrency => stat.concurrency,
                    Metric::Rps => stat.requests,
                });
            }
            let now = point.at;
            let came_up = starting.iter().filter(|&&t| t <= now).count();
            starting.drain(..came_up);
            ready += came_up as i32;
            if let Some(r) = point.ready {
                ready = r.max(0);
                starting.clear();
            }

            let observed: Result<Observed, NoData> = match point.observed {
                Some(o) => Ok(Observed {
                    stable: o.stable,
                    panic: o.panic,
                }),
                None => decider.observe(now),
            };
            decider.tick_on(now, ready, observed);
            let status = decider.status();
            let reconciled = pa.reconcile(now, status, ready);
            out.push(Decision {
                at: now,
                desired: status.desired_scale,
                replicas: reconciled.replicas,
                panic: decider.autoscaler().in_panic(),
                stable: observed.ok().map(|o| o.stable),
                panic_value: observed.ok().map(|o| o.panic),
                excess_burst_capacity: status.excess_burst_capacity,
                ready,
                mode: reconciled.mode,
                activity: reconciled.activity,
                sample,
            });

            // Replicas asked for start now; removed ones go at once, starting ones first.
            let have = ready + starting.len() as i32;
            let target = reconciled.replicas.max(0);
            if target > have {
                starting.extend((have..target).map(|_| now + self.startup_delay));
            } else {
                let mut excess = (have - target) as usize;
                let cancelled = excess.min(starting.len());
                starting.truncate(starting.len() - cancelled);
                excess -= cancelled;
                ready -= excess as i32;
            }
        }
        out
    }
}

/// The run as JSON lines.
pub fn json_lines(decisions: &[Decision]) -> String {
    decisions
        .iter()
        .map(|d| serde_json::to_string(d).expect("decisions serialise") + "\n")
        .collect()
}

/// The run as an SVG chart.
pub fn chart(title: &str, metric: Metric, decisions: &[Decision]) -> String {
    let points: Vec<svg::Point> = decisions
        .iter()
        .map(|d| svg::Point {
            at: d.at.as_secs_f64(),
            observed: d.sample,
            stable: d.stable,
            panic_value: d.panic_value,
            desired: d.desired,
            replicas: d.replicas,
            ready: d.ready,
            panic: d.panic,
        })
        .collect();
    let label = match metric {
        Metric::Concurrency => "concurrency",
        Metric::Rps => "requests per second",
    };
    svg::render(title, label, &points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Vec<Decision> {
        parse(text, "s.yaml").unwrap().plan("s.yaml").unwrap().run()
    }

    fn plan_errors(text: &str) -> Vec<String> {
        match parse(text, "s.yaml") {
            Err(e) => e.0,
            Ok(s) => s.plan("s.yaml").expect_err("the scenario is rejected").0,
        }
    }

    /// The example line: Knative's `TestAutoscalerMetrics` through the simulator.
    #[test]
    fn observed_values_decide_directly() {
        let out = run("
decider: {target-value: 10, total-value: 13.3333, target-burst-capacity: 100,
          panic-threshold: 2.0, max-scale-up-rate: 10, max-scale-down-rate: 10,
          stable-window: 60s}
ready-at-start: 1
steps:
  - at: 2s
    observed: {stable: 50, panic: 50}
");
        assert_eq!(
            json_lines(&out),
            "{\"at\":\"2s\",\"desired\":5,\"replicas\":5,\"panic\":true,\"stable\":50.0,\
             \"panic_value\":50.0,\"excess_burst_capacity\":-137,\"ready\":1,\"mode\":\"proxy\",\
             \"activity\":\"active\"}\n"
        );
    }

    #[test]
    fn samples_fill_the_windows() {
        // Knative's defaults: 60s stable window, 6s panic window, target 70 per replica.
        let out = run("
settings:
  stable-window: 60s
  panic-window-percentage: 10
  container-concurrency-target-percentage: 70
steps:
  - at: 3s
    concurrency: [140, 140, 140]
");
        let d = &out[0];
        assert_eq!((d.stable, d.panic_value), (Some(140.0), Some(140.0)));
        assert_eq!(d.desired, 2);
    }

    #[test]
    fn runs_record_every_second_and_decide_every_interval() {
        let out = run("
settings: {stable-window: 60s, container-concurrency-target-percentage: 100,
           scale-down-delay: 0s, max-scale-up-rate: 1000}
steps:
  - every: 2s
    until: 10s
    concurrency: 300
");
        let times: Vec<u64> = out.iter().map(|d| d.at.as_secs()).collect();
        assert_eq!(times, [2, 4, 6, 8, 10]);
        assert!(out.iter().all(|d| d.stable == Some(300.0)));
        assert_eq!(out[0].desired, 3);
    }

    #[test]
    fn replicas_become_ready_after_the_startup_delay() {
        let out = run("
settings: {stable-window: 60s, container-concurrency-target-percentage: 100,
           max-scale-up-rate: 1000}
ready-at-start: 1
startup-delay: 5s
steps:
  - every: 1s
    until: 8s
    concurrency: 400
");
        let ready: Vec<i32> = out.iter().map(|d| d.ready).collect();
        assert_eq!(ready, [1, 1, 1, 1, 1, 4, 4, 4], "asked at 1s, ready at 6s");
        assert!(out.iter().all(|d| d.replicas == 4));
    }

    #[test]
    fn errors_name_the_step_and_the_setting() {
        let errs = plan_errors(
            "
settings:
  stable-window: 3s
  autoscaling.knative.dev/min-scale: \"-4\"
  container-concurrency: 1001
steps:
  - at: 10s
  - at: 5s
  - every: 2s
  - at: 1m
    until: 2m
",
        );
        assert_eq!(
            errs,
            [
                "s.yaml: settings: expected 0 <= 1001 <= 1000: containerConcurrency",
                "s.yaml: settings: stable-window = 3s, must be in [6s; 1h0m0s] range",
                "s.yaml: settings: expected 0 <= -4 <= 2147483647: autoscaling.knative.dev/min-scale",
                "s.yaml: steps[1]: at: 5s is before the previous step",
                "s.yaml: steps[2]: give either `at`, or `every` and `until`",
                "s.yaml: steps[3]: give either `at`, or `every` and `until`",
            ]
        );
    }

    #[test]
    fn unknown_fields_are_reported_with_their_place() {
        let errs = plan_errors("steps:\n  - at: 1s\n    concurency: 3\n");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("s.yaml:3:5: error: unknown field"),
            "{}",
            errs[0]
        );
        assert!(errs[0].contains("concurrency"), "did you mean: {}", errs[0]);
        let errs = plan_errors("settings: {stabel-window: 60s}\nsteps: [{at: 1s}]\n");
        assert!(errs[0].contains("stabel-window"), "{errs:?}");
    }
}
