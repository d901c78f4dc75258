//! The decider: Knative's metric collection (`pkg/autoscaler/metrics/collector.go`), its
//! `Scale()` (`pkg/autoscaler/scaling/autoscaler.go`) and the multiscaler's bookkeeping
//! (`multiscaler.go`), as pure state machines. Formulas and constants: knative-autoscaler.md
//! §1–3.

use std::time::Duration;

use serde::Serialize;

use super::window::{Aggregation, MaxWindow, Window};
use crate::spec::annotations::RPS;
use crate::spec::autoscaling::Autoscaling;

/// How often the decider runs (`tickInterval`, fixed in Knative), and the slot of the
/// scale-down delay window.
pub const TICK_INTERVAL: Duration = Duration::from_secs(2);

/// What a revision is scaled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// In-flight requests, time-weighted over each second.
    Concurrency,
    /// Requests per second.
    Rps,
}

impl Metric {
    /// The metric a resolved `metric` setting names (anything but `rps` is concurrency, as
    /// in Knative's KPA).
    pub fn named(name: &str) -> Metric {
        if name == RPS {
            Metric::Rps
        } else {
            Metric::Concurrency
        }
    }
}

/// One second's report from a source (the router, or a replica's own counter): Knative's
/// `Stat`. Requests that came through the router are counted by the router and subtracted
/// from the replicas' numbers (the `proxied_*` fields), so each request counts once.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stat {
    pub concurrency: f64,
    pub proxied_concurrency: f64,
    pub requests: f64,
    pub proxied_requests: f64,
}

/// The stable and panic windows of a revision, for both metrics.
#[derive(Debug, Clone)]
pub struct Collector {
    stable_concurrency: Window,
    panic_concurrency: Window,
    stable_rps: Window,
    panic_rps: Window,
    /// Whether replicas are scraped (target burst capacity ≠ −1). Without scraping the router
    /// is the only source, and no data means zero rather than "no decision".
    scraped: bool,
}

/// The stable window holds nothing although replicas are scraped: Knative's `ErrNoData`, on
/// which the decider keeps its last decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoData;

/// The stable- and panic-window values a decision is made on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed {
    pub stable: f64,
    pub panic: f64,
}

impl Collector {
    pub fn new(
        stable_window: Duration,
        panic_window: Duration,
        aggregation: Aggregation,
        scraped: bool,
    ) -> Collector {
        Collector {
            stable_concurrency: Window::new(stable_window, aggregation),
            panic_concurrency: Window::new(panic_window, aggregation),
            stable_rps: Window::new(stable_window, aggregation),
            panic_rps: Window::new(panic_window, aggregation),
            scraped,
        }
    }

    /// The collector for a revision's resolved settings.
    pub fn for_settings(settings: &Autoscaling) -> Collector {
        let aggregation = if settings.metric_aggregation_algorithm == "weighted-exponential" {
            Aggregation::WeightedExponential
        } else {
            Aggregation::Linear
        };
        Collector::new(
            settings.stable_window.to_std().unwrap_or_default(),
            settings.panic_window.to_std().unwrap_or_default(),
            aggregation,
            settings.target_burst_capacity != -1.0,
        )
    }

    /// Records one report into the bucket of `now`.
    pub fn record(&mut self, now: Duration, stat: &Stat) {
        let concurrency = stat.concurrency - stat.proxied_concurrency;
        let rps = stat.requests - stat.proxied_requests;
        self.stable_concurrency.record(now, concurrency);
        self.panic_concurrency.record(now, concurrency);
        self.stable_rps.record(now, rps);
        self.panic_rps.record(now, rps);
    }

    /// The stable and panic values of `metric` at `now`.
    pub fn observe(&self, metric: Metric, now: Duration) -> Result<Observed, NoData> {
        let (stable, panic) = match metric {
            Metric::Concurrency => (&self.stable_concurrency, &self.panic_concurrency),
            Metric::Rps => (&self.stable_rps, &self.panic_rps),
        };
        if self.scraped && stable.is_empty(now) {
            return Err(NoData);
        }
        Ok(Observed {
            stable: stable.average(now),
            panic: panic.average(now),
        })
    }
}

/// The decider's parameters (Knative's `DeciderSpec`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DeciderSpec {
    pub metric: Metric,
    /// What one replica should carry: the observed value is divided by it.
    pub target_value: f64,
    /// The most one replica may carry (burst capacity uses it).
    pub total_value: f64,
    pub target_burst_capacity: f64,
    /// Panic when the panic window needs this many times the ready replicas (2.0 = 200%).
    pub panic_threshold: f64,
    pub max_scale_up_rate: f64,
    pub max_scale_down_rate: f64,
    #[serde(with = "go_duration")]
    pub stable_window: Duration,
    #[serde(with = "go_duration")]
    pub scale_down_delay: Duration,
    pub initial_scale: i32,
    /// Whether traffic can reach the revision; an unreachable one scales down freely.
    pub reachable: bool,
    pub activation_scale: i32,
}

impl DeciderSpec {
    /// The decider for a revision's resolved settings (Knative's `MakeDecider`).
    pub fn for_settings(settings: &Autoscaling, reachable: bool) -> DeciderSpec {
        DeciderSpec {
            metric: Metric::named(&settings.metric),
            target_value: settings.target_value,
            total_value: settings.total_value,
            target_burst_capacity: settings.target_burst_capacity,
            panic_threshold: settings.panic_threshold,
            max_scale_up_rate: settings.max_scale_up_rate,
            max_scale_down_rate: settings.max_scale_down_rate,
            stable_window: settings.stable_window.to_std().unwrap_or_default(),
            scale_down_delay: settings.scale_down_delay.to_std().unwrap_or_default(),
            initial_scale: settings.initial_scale,
            reachable,
            activation_scale: settings.activation_scale,
        }
    }

    /// The excess burst capacity before any decision: the initial replicas' capacity less the
    /// burst to absorb (`multiscaler.Create`).
    fn initial_excess_burst_capacity(&self) -> i32 {
        let tbc = self.target_burst_capacity;
        if tbc == 0.0 || tbc == -1.0 {
            tbc as i32
        } else {
            (self.initial_scale as f64 * self.total_value - tbc) as i32
        }
    }
}

/// Go duration text for serde (`60s`, `1m30s`).
pub(crate) mod go_duration {
    use std::time::Duration;

    use serde::Serializer;

    use crate::spec::duration::GoDuration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&GoDuration(d.as_nanos() as i64).to_string())
    }
}

/// One decision of [`Autoscaler::scale`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleResult {
    pub desired: i32,
    /// Spare capacity after absorbing the target burst; negative keeps the router buffering.
    pub excess_burst_capacity: i32,
}

/// Knative's `autoscaler`: the panic state and the scale-down delay window of one revision.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    spec: DeciderSpec,
    panic_time: Option<Duration>,
    max_panic_pods: i32,
    delay: Option<MaxWindow>,
}

impl Autoscaler {
    /// Created with `ready` replicas already serving: with more than one it starts in panic,
    /// so a restart that lost the metric history does not scale down for a stable window.
    pub fn new(spec: DeciderSpec, ready: i32, now: Duration) -> Autoscaler {
        // Built once: Knative's Update() does not rebuild the delay window either.
        let delay = (spec.scale_down_delay > Duration::ZERO)
            .then(|| MaxWindow::new(spec.scale_down_delay, TICK_INTERVAL));
        Autoscaler {
            spec,
            panic_time: (ready > 1).then_some(now),
            max_panic_pods: ready.max(0),
            delay,
        }
    }

    pub fn spec(&self) -> &DeciderSpec {
        &self.spec
    }

    /// Replaces the parameters (the panic state and the delay window stay).
    pub fn update(&mut self, spec: DeciderSpec) {
        self.spec = spec;
    }

    pub fn in_panic(&self) -> bool {
        self.panic_time.is_some()
    }

    /// One decision at `now` with `ready` replicas ready and the windows' values (Knative's
    /// `Scale`); `None` when there is no data to decide on.
    pub fn scale(
        &mut self,
        now: Duration,
        ready: i32,
        observed: Result<Observed, NoData>,
    ) -> Option<ScaleResult> {
        let Ok(Observed { stable, panic }) = observed else {
            return None;
        };
        let spec = &self.spec;
        let ready_pods = f64::max(1.0, ready as f64);

        let max_scale_up = (spec.max_scale_up_rate * ready_pods).ceil();
        let max_scale_down = if spec.reachable {
            (ready_pods / spec.max_scale_down_rate).floor()
        } else {
            0.0
        };
        let dspc = (stable / spec.target_value).ceil();
        let dppc = (panic / spec.target_value).ceil();
        let mut desired_stable = dspc.max(max_scale_down).min(max_scale_up) as i32;
        let mut desired_panic = dppc.max(max_scale_down).min(max_scale_up) as i32;

        // activation-scale applies after the rate limits, and only to a non-zero need.
        if spec.activation_scale > 1 {
            if dspc > 0.0 && spec.activation_scale > desired_stable {
                desired_stable = spec.activation_scale;
            }
            if dppc > 0.0 && spec.activation_scale > desired_panic {
                desired_panic = spec.activation_scale;
            }
        }

        let over_threshold = dppc / ready_pods >= spec.panic_threshold;
        match self.panic_time {
            _ if over_threshold => self.panic_time = Some(now),
            Some(since) if since + spec.stable_window < now => {
                self.panic_time = None;
                self.max_panic_pods = 0;
            }
            _ => {}
        }

        let mut desired = desired_stable;
        if self.panic_time.is_some() {
            // Never scale down while panicking.
            desired = desired.max(desired_panic).max(self.max_panic_pods);
            self.max_panic_pods = desired;
        }
        if let Some(delay) = self.delay.as_mut() {
            delay.record(now, desired);
            desired = delay.current();
        }

        let tbc = spec.target_burst_capacity;
        let excess_burst_capacity = if tbc == 0.0 {
            0.0
        } else if tbc > 0.0 {
            (ready as f64 * spec.total_value - tbc - panic).floor()
        } else {
            -1.0
        };
        Some(ScaleResult {
            desired,
            excess_burst_capacity: excess_burst_capacity as i32,
        })
    }
}

/// What the decider last decided (Knative's `DeciderStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DeciderStatus {
    /// −1 until the first decision.
    pub desired_scale: i32,
    pub excess_burst_capacity: i32,
}

/// A revision's decider: the autoscaler, its windows, and the last decision.
#[derive(Debug, Clone)]
pub struct Decider {
    autoscaler: Autoscaler,
    collector: Collector,
    status: DeciderStatus,
}

impl Decider {
    pub fn new(spec: DeciderSpec, collector: Collector, ready: i32, now: Duration) -> Decider {
        let status = DeciderStatus {
            desired_scale: -1,
            excess_burst_capacity: spec.initial_excess_burst_capacity(),
        };
        Decider {
            autoscaler: Autoscaler::new(spec, ready, now),
            collector,
            status,
        }
    }

    pub fn status(&self) -> DeciderStatus {
        self.status
    }

    pub fn autoscaler(&self) -> &Autoscaler {
        &self.autoscaler
    }

    pub fn update(&mut self, spec: DeciderSpec) {
        self.autoscaler.update(spec);
    }

    /// Records one second's report.
    pub fn record(&mut self, now: Duration, stat: &Stat) {
        self.collector.record(now, stat);
    }

    /// The windows' values at `now` for the decider's metric.
    pub fn observe(&self, now: Duration) -> Result<Observed, NoData> {
        self.collector.observe(self.autoscaler.spec.metric, now)
    }

    /// One tick on the collected windows. True when whoever applies the scale must hear of
    /// it: the desired scale changed, or the burst capacity changed sign (the router goes in
    /// or out of buffering).
    pub fn tick(&mut self, now: Duration, ready: i32) -> bool {
        let observed = self.observe(now);
        self.tick_on(now, ready, observed)
    }

    /// One tick on given window values (the simulator's `observed`).
    pub fn tick_on(
        &mut self,
        now: Duration,
        ready: i32,
        observed: Result<Observed, NoData>,
    ) -> bool {
        let Some(result) = self.autoscaler.scale(now, ready, observed) else {
            return false;
        };
        let mut notify = false;
        if self.status.desired_scale != result.desired {
            self.status.desired_scale = result.desired;
            notify = true;
        }
        if !same_sign(
            self.status.excess_burst_capacity,
            result.excess_burst_capacity,
        ) {
            notify = true;
        }
        self.status.excess_burst_capacity = result.excess_burst_capacity;
        notify
    }

    /// Whether a report should trigger a tick at once instead of waiting for the next one:
    /// the revision is at zero and a request arrived (Knative's `Poke`).
    pub fn wants_poke(&self, stat: &Stat) -> bool {
        self.status.desired_scale == 0 && stat.concurrency != 0.0
    }
}

/// Zero counts as positive, as in Knative.
fn same_sign(a: i32, b: i32) -> bool {
    (a < 0) == (b < 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Knative's `newTestAutoscaler(T, TBC)`.
    fn test_spec(target: f64, tbc: f64) -> DeciderSpec {
        DeciderSpec {
            metric: Metric::Concurrency,
            target_value: target,
            total_value: target / 0.75,
            target_burst_capacity: tbc,
            panic_threshold: 2.0,
            max_scale_up_rate: 10.0,
            max_scale_down_rate: 10.0,
            stable_window: secs(60),
            scale_down_delay: Duration::ZERO,
            initial_scale: 1,
            reachable: true,
            activation_scale: 0,
        }
    }

    struct Row {
        ready: i32,
        stable: f64,
        panic: f64,
        at: u64,
        desired: i32,
        ebc: i32,
        panicking: bool,
    }

    const fn row(
        ready: i32,
        stable: f64,
        panic: f64,
        at: u64,
        desired: i32,
        ebc: i32,
        panicking: bool,
    ) -> Row {
        Row {
            ready,
            stable,
            panic,
            at,
            desired,
            ebc,
            panicking,
        }
    }

    /// Runs one test of knative-autoscaler.md §9.A: rows share the autoscaler, in order.
    /// Knative compares the burst capacity with ±1 tolerance.
    fn run(name: &str, mut a: Autoscaler, rows: &[Row]) -> Autoscaler {
        for (i, r) in rows.iter().enumerate() {
            let observed = Ok(Observed {
                stable: r.stable,
                panic: r.panic,
            });
            let got = a.scale(secs(r.at), r.ready, observed).expect("a decision");
            assert_eq!(got.desired, r.desired, "{name} step {}: desired", i + 1);
            assert!(
                (got.excess_burst_capacity - r.ebc).abs() <= 1,
                "{name} step {}: burst capacity {} vs {}",
                i + 1,
                got.excess_burst_capacity,
                r.ebc
            );
            assert_eq!(a.in_panic(), r.panicking, "{name} step {}: panic", i + 1);
        }
        a
    }

    fn scaler(spec: DeciderSpec) -> Autoscaler {
        Autoscaler::new(spec, 1, Duration::ZERO)
    }

    #[test]
    fn knative_scale_cases() {
        let rps = |t, tbc| DeciderSpec {
            metric: Metric::Rps,
            ..test_spec(t, tbc)
        };
        let cases: Vec<(&str, DeciderSpec, Vec<Row>)> = vec![
            (
                "1 metrics",
                test_spec(10.0, 100.0),
                vec![row(1, 50.0, 50.0, 0, 5, -137, true)],
            ),
            (
                "2 metrics rps",
                rps(10.0, 100.0),
                vec![row(1, 100.0, 99.0, 61, 10, -186, true)],
            ),
            (
                "3 stable increase",
                test_spec(10.0, 101.0),
                vec![
                    row(1, 50.0, 10.0, 0, 5, -98, false),
                    row(1, 100.0, 10.0, 0, 10, -98, false),
                ],
            ),
            (
                "4 stable increase rps",
                rps(10.0, 101.0),
                vec![
                    row(1, 50.0, 50.0, 0, 5, -138, true),
                    row(1, 100.0, 99.0, 0, 10, -187, true),
                ],
            ),
            (
                "5 unpanic after slow increase",
                test_spec(1.0, 98.0),
                vec![
                    row(10, 11.0, 25.0, 0, 25, -110, true),
                    row(40, 30.0, 41.0, 30, 41, -86, true),
                    row(55, 50.0, 56.0, 62, 50, -81, false),
                ],
            ),
            (
                "6 extend panic window",
                test_spec(1.0, 98.0),
                vec![
                    row(10, 11.0, 25.0, 0, 25, -110, true),
                    row(40, 30.0, 80.0, 30, 80, -125, true),
                ],
            ),
            (
                "7 stable decrease",
                test_spec(10.0, 98.0),
                vec![
                    row(8, 100.0, 100.0, 0, 10, -92, false),
                    row(8, 50.0, 50.0, 0, 5, -42, false),
                ],
            ),
            (
                "8 no traffic scale to zero",
                test_spec(10.0, 75.0),
                vec![
                    row(1, 1.0, 0.0, 0, 1, -62, false),
                    row(1, 0.0, 0.0, 0, 0, -62, false),
                ],
            ),
            (
                "9 activation scale",
                DeciderSpec {
                    activation_scale: 2,
                    ..test_spec(10.0, 75.0)
                },
                vec![
                    row(1, 0.0, 0.0, 0, 0, -62, false),
                    row(1, 1.0, 0.0, 0, 2, -62, false),
                ],
            ),
            (
                "10 panic exponential track and stabilize",
                test_spec(1.0, 101.0),
                vec![
                    row(1, 6.0, 6.0, 0, 6, -106, true),
                    row(6, 36.0, 36.0, 0, 36, -129, true),
                    row(36, 216.0, 216.0, 1, 216, -269, true),
                    row(216, 1296.0, 1296.0, 1, 1296, -1109, true),
                    row(1296, 1296.0, 1296.0, 2, 1296, 331, true),
                ],
            ),
            (
                "11 panic then unpanic scale down",
                test_spec(10.0, 93.0),
                vec![
                    row(1, 100.0, 100.0, 0, 10, -180, true),
                    row(10, 100.0, 1000.0, 5, 100, -960, true),
                    row(10, 1.0, 1.0, 35, 100, 39, true),
                    row(10, 1.0, 1.0, 66, 1, 39, false),
                ],
            ),
            (
                "12 rate limit scale up",
                test_spec(10.0, 61.0),
                vec![
                    row(1, 1000.0, 1001.0, 0, 10, -1049, true),
                    row(10, 1000.0, 1001.0, 0, 100, -929, true),
                ],
            ),
            (
                "13 rate limit scale down",
                test_spec(10.0, 61.0),
                vec![
                    row(100, 1.0, 1.0, 0, 10, 1271, false),
                    row(10, 1.0, 1.0, 0, 1, 71, false),
                ],
            ),
            (
                "14 zero ready counts as one",
                test_spec(10.0, 81.0),
                vec![row(0, 1000.0, 888.0, 0, 10, -969, true)],
            ),
        ];
        for (name, spec, rows) in cases {
            run(name, scaler(spec), &rows);
        }
    }

    /// §9.A row 15: `Update()` replaces the parameters mid-run.
    #[test]
    fn knative_update_target() {
        let mut a = run(
            "15 update target",
            scaler(test_spec(10.0, 77.0)),
            &[row(1, 100.0, 101.0, 0, 10, -165, true)],
        );
        a.update(DeciderSpec {
            target_value: 1.0,
            total_value: 1.0 / 0.75,
            target_burst_capacity: 71.0,
            reachable: false,
            ..test_spec(10.0, 77.0)
        });
        run(
            "15 update target",
            a,
            &[row(10, 100.0, 101.0, 0, 100, -159, true)],
        );
    }

    #[test]
    fn unreachable_revisions_scale_down_without_rate_limit() {
        let spec = DeciderSpec {
            reachable: false,
            ..test_spec(10.0, 61.0)
        };
        run(
            "unreachable",
            scaler(spec),
            &[row(100, 1.0, 1.0, 0, 1, 1271, false)],
        );
    }

    #[test]
    fn starts_in_panic_with_more_than_one_ready() {
        let a = Autoscaler::new(test_spec(10.0, 0.0), 3, secs(5));
        assert!(a.in_panic());
        // The history was lost: no scale-down below the 3 ready for a stable window.
        let a = run(
            "restart",
            a,
            &[
                row(3, 0.0, 0.0, 6, 3, 0, true),
                row(3, 0.0, 0.0, 65, 3, 0, true),
                row(3, 0.0, 0.0, 66, 0, 0, false),
            ],
        );
        assert_eq!(a.max_panic_pods, 0);
        assert!(!Autoscaler::new(test_spec(10.0, 0.0), 1, secs(5)).in_panic());
    }

    #[test]
    fn scale_down_delay_holds_the_highest_recent_decision() {
        let spec = DeciderSpec {
            scale_down_delay: secs(10),
            ..test_spec(10.0, -1.0)
        };
        let mut a = scaler(spec);
        let mut at = |t: u64, ready: i32, v: f64| {
            let obs = Ok(Observed {
                stable: v,
                panic: v / 10.0,
            });
            a.scale(secs(100 + t), ready, obs).unwrap().desired
        };
        assert_eq!(at(0, 1, 50.0), 5, "scale-up is immediate");
        assert_eq!(at(2, 5, 10.0), 5);
        assert_eq!(at(8, 5, 10.0), 5, "still inside the 10s delay");
        assert_eq!(at(10, 5, 10.0), 1, "the lower value held for 10s");
    }

    #[test]
    fn no_data_is_no_decision() {
        let mut a = scaler(test_spec(10.0, 100.0));
        assert_eq!(a.scale(secs(1), 1, Err(NoData)), None);
    }

    fn collector(scraped: bool) -> Collector {
        Collector::new(secs(60), secs(6), Aggregation::Linear, scraped)
    }

    /// `TestMetricCollectorRecord`: proxied parts are subtracted; a 70s-old stat is outside.
    #[test]
    fn knative_collector_record() {
        let now = secs(1000);
        let mut c = collector(true);
        let old = Stat {
            concurrency: 100.0,
            requests: 100.0,
            ..Stat::default()
        };
        c.record(now - secs(70), &old);
        c.record(
            now,
            &Stat {
                concurrency: 20.0,
                proxied_concurrency: 10.0,
                requests: 30.0,
                proxied_requests: 20.0,
            },
        );
        let want = Observed {
            stable: 10.0,
            panic: 10.0,
        };
        assert_eq!(c.observe(Metric::Concurrency, now), Ok(want));
        assert_eq!(c.observe(Metric::Rps, now), Ok(want));
    }

    /// `TestMetricCollectorScraper` and `...MovingTime`: same-second scrapes add up.
    #[test]
    fn knative_collector_scrapes() {
        let now = secs(1000);
        let stat = Stat {
            concurrency: 10.0,
            requests: 20.0,
            ..Stat::default()
        };
        let mut c = collector(true);
        for _ in 0..3 {
            c.record(now, &stat);
        }
        assert_eq!(c.observe(Metric::Concurrency, now).unwrap().stable, 30.0);
        assert_eq!(c.observe(Metric::Rps, now).unwrap().stable, 60.0);
        for _ in 0..2 {
            c.record(now, &stat);
        }
        let later = now + secs(60) - secs(5);
        assert_eq!(c.observe(Metric::Concurrency, later).unwrap().stable, 50.0);
        assert_eq!(c.observe(Metric::Rps, later).unwrap().stable, 100.0);

        let mut c = collector(true);
        for _ in 0..3 {
            c.record(now, &stat);
        }
        for _ in 0..4 {
            c.record(now + secs(1), &stat);
        }
        let got = c.observe(Metric::Concurrency, now + secs(1)).unwrap();
        assert_eq!(got.stable, 35.0);
        assert_eq!(c.observe(Metric::Rps, now + secs(1)).unwrap().stable, 70.0);
    }

    /// `TestMetricCollectorNoScraper` / `...NoDataError`.
    #[test]
    fn knative_collector_no_data() {
        let now = secs(1000);
        let mut c = collector(false);
        assert_eq!(
            c.observe(Metric::Concurrency, now),
            Ok(Observed {
                stable: 0.0,
                panic: 0.0
            })
        );
        c.record(
            now,
            &Stat {
                concurrency: 10.0,
                requests: 30.0,
                ..Stat::default()
            },
        );
        assert_eq!(c.observe(Metric::Rps, now).unwrap().stable, 30.0);
        assert_eq!(
            collector(true).observe(Metric::Concurrency, now),
            Err(NoData)
        );
    }

    /// §9.B: the decider's bookkeeping.
    #[test]
    fn knative_decider_bookkeeping() {
        let make = |tbc: f64, initial: i32, total: f64| {
            let spec = DeciderSpec {
                target_burst_capacity: tbc,
                initial_scale: initial,
                total_value: total,
                ..test_spec(1.0, tbc)
            };
            Decider::new(spec, collector(tbc != -1.0), 0, Duration::ZERO)
        };
        let st = |d: &Decider| (d.status().desired_scale, d.status().excess_burst_capacity);
        assert_eq!(st(&make(0.0, 1, 1.0)), (-1, 0));
        assert_eq!(st(&make(-1.0, 1, 1.0)), (-1, -1));
        assert_eq!(st(&make(42.0, 2, 25.0)), (-1, 8));

        // Notify on a new desired scale, or when the burst capacity changes sign.
        let mut d = make(0.0, 1, 1.0);
        let obs = |v: f64| {
            Ok(Observed {
                stable: v,
                panic: v,
            })
        };
        assert!(d.tick_on(secs(2), 1, obs(1.0)), "first decision");
        assert!(!d.tick_on(secs(4), 1, obs(1.0)), "same again");
        let mut d = make(1.0, 1, 2.0);
        assert!(d.tick_on(secs(2), 1, obs(1.0)));
        assert_eq!(d.status().excess_burst_capacity, 0);
        assert!(d.tick_on(
            secs(4),
            1,
            Ok(Observed {
                stable: 1.0,
                panic: 2.0
            })
        ));
        assert_eq!(st(&d), (2, -1));

        for (a, b, same) in [
            (1982, 1984, true),
            (-1984, -1988, true),
            (-1988, 2006, false),
            (-2006, 2009, false),
            (0, 1, true),
            (0, -42, false),
        ] {
            assert_eq!(same_sign(a, b), same, "sameSign({a}, {b})");
        }
    }

    #[test]
    fn pokes_only_at_zero_with_traffic() {
        let mut d = Decider::new(test_spec(10.0, -1.0), collector(false), 0, Duration::ZERO);
        let request = Stat {
            concurrency: 1.0,
            requests: 1.0,
            ..Stat::default()
        };
        assert!(!d.wants_poke(&request), "desired −1 does not poke");
        d.tick(secs(2), 0);
        assert_eq!(d.status().desired_scale, 0);
        assert!(!d.wants_poke(&Stat::default()));
        assert!(d.wants_poke(&request));
        d.record(secs(3), &request);
        assert!(d.tick(secs(3), 0));
        assert_eq!(
            d.status().desired_scale,
            1,
            "a request at zero asks for one replica"
        );
    }

    proptest! {
        /// Whatever the load: never below the scale-down limit or above the scale-up limit
        /// (activation-scale unset), never down while panicking.
        #[test]
        fn decisions_respect_rate_limits_and_panic(
            target in 0.5f64..50.0,
            up in 1.1f64..30.0,
            down in 1.1f64..5.0,
            steps in proptest::collection::vec((0i32..300, 0.0f64..5000.0, 0.0f64..5000.0), 1..60),
        ) {
            let spec = DeciderSpec {
                max_scale_up_rate: up,
                max_scale_down_rate: down,
                ..test_spec(target, 211.0)
            };
            let mut a = scaler(spec);
            let mut last = None;
            for (i, (ready, stable, panic)) in steps.into_iter().enumerate() {
                let was_panicking = a.in_panic();
                let before = last;
                let got = a
                    .scale(secs(2 * i as u64), ready, Ok(Observed { stable, panic }))
                    .unwrap()
                    .desired;
                let r = f64::max(1.0, ready as f64);
                // Panic holds its high-water mark even when fewer replicas are ready now.
                let held = before.filter(|_| a.in_panic()).unwrap_or(0) as f64;
                prop_assert!(got as f64 <= (up * r).ceil().max(held), "{} > up limit", got);
                if !a.in_panic() {
                    prop_assert!(got as f64 >= (r / down).floor(), "{} < down limit", got);
                }
                if was_panicking && a.in_panic() {
                    if let Some(before) = before {
                        prop_assert!(got >= before, "scaled down from {} to {} in panic", before, got);
                    }
                }
                last = Some(got);
            }
        }
    }
}
