//! What Knative's KPA reconciler does with a decision (`pkg/reconciler/autoscaling/kpa`):
//! replica bounds, initial scale, the scale-to-zero state machine, whether the router buffers
//! in front of the revision, and the revision's Active condition (knative-autoscaler.md §4).
//!
//! Knative runs this on every decider notification and on timers it re-queues; here
//! [`PodAutoscaler::reconcile`] is called after each decision, and returns when it next
//! wants to run.

use std::time::Duration;

use serde::Serialize;

use super::decider::DeciderStatus;
use crate::spec::autoscaling::Autoscaling;

/// Added to the progress deadline before a revision stuck activating is given up on.
pub const ACTIVATION_TIMEOUT_BUFFER: Duration = Duration::from_secs(30);

/// Knative's default `progress-deadline` (config-deployment).
pub const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);

/// How the KPA reconciler re-checks once it has asked to scale to zero while the router is
/// already in the path (Knative's 3s re-queue).
const PROXY_REQUEUE: Duration = Duration::from_secs(3);

/// The KPA's part of the resolved settings.
#[derive(Debug, Clone, PartialEq)]
pub struct KpaSpec {
    pub min_scale: i32,
    /// 0 = unlimited.
    pub max_scale: i32,
    pub initial_scale: i32,
    pub enable_scale_to_zero: bool,
    pub stable_window: Duration,
    pub scale_to_zero_grace_period: Duration,
    pub scale_to_zero_pod_retention_period: Duration,
    /// Progress deadline + 30s: how long a revision may stay activating before it is scaled
    /// back to zero.
    pub activation_timeout: Duration,
    pub reachable: bool,
    pub target_burst_capacity: f64,
}

impl KpaSpec {
    pub fn for_settings(
        settings: &Autoscaling,
        reachable: bool,
        progress_deadline: Duration,
    ) -> KpaSpec {
        let std = |d: crate::spec::duration::GoDuration| d.to_std().unwrap_or_default();
        KpaSpec {
            min_scale: settings.min_scale,
            max_scale: settings.max_scale,
            initial_scale: settings.initial_scale,
            enable_scale_to_zero: settings.enable_scale_to_zero,
            stable_window: std(settings.stable_window),
            scale_to_zero_grace_period: std(settings.scale_to_zero_grace_period),
            scale_to_zero_pod_retention_period: std(settings.scale_to_zero_pod_retention_period),
            activation_timeout: progress_deadline + ACTIVATION_TIMEOUT_BUFFER,
            reachable,
            target_burst_capacity: settings.target_burst_capacity,
        }
    }

    /// `ScaleBounds`: an unreachable revision has no floor.
    fn bounds(&self) -> (i32, i32) {
        let min = if self.reachable { self.min_scale } else { 0 };
        (min, self.max_scale)
    }
}

/// The revision's Active condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Activity {
    /// Replicas are being brought up; requests wait in the router ("Queued").
    Activating,
    /// Enough replicas are ready.
    Active,
    /// Scaled (or scaling) to zero ("NoTraffic"), or given up activating ("TimedOut").
    Inactive,
}

/// Whether the router buffers and throttles requests in front of the revision (Knative's
/// SKS Proxy mode, the activator in the path) or passes them straight to a replica (Serve).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Serve,
    Proxy,
}

/// The outcome of one reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    /// The scale asked for (−1 = unknown yet).
    pub want: i32,
    /// The replica count the revision is scaled to now.
    pub replicas: i32,
    pub mode: Mode,
    pub activity: Activity,
    /// When the reconciler wants to run again at the latest (a deadline it waits for).
    pub requeue_after: Option<Duration>,
}

/// One revision's pod autoscaler: the state Knative keeps in the PodAutoscaler's status.
#[derive(Debug, Clone)]
pub struct PodAutoscaler {
    spec: KpaSpec,
    activity: Activity,
    reason: &'static str,
    /// When the Active condition last changed.
    since: Duration,
    /// Set once the initial scale was reached; from then on it no longer acts as a floor.
    initialized: bool,
    replicas: i32,
    mode: Mode,
    /// Since when the router has been in the path.
    proxy_since: Option<Duration>,
}

impl PodAutoscaler {
    /// A new revision: activating, its replicas at the initial scale, the router in the path
    /// (nothing is ready yet).
    pub fn new(spec: KpaSpec, now: Duration) -> PodAutoscaler {
        PodAutoscaler {
            replicas: spec.initial_scale,
            spec,
            activity: Activity::Activating,
            reason: "Queued",
            since: now,
            initialized: false,
            mode: Mode::Proxy,
            proxy_since: Some(now),
        }
    }

    /// A revision that was running before this autoscaler started (a daemon restart): its
    /// replicas as they are, its initial scale long behind it. Knative keeps that in the
    /// PodAutoscaler's status; gantry reads it from the containers. At zero it is inactive,
    /// behind the router, until a request comes: a restart does not wake an idle model. The
    /// bounds apply at once (a revision that gets traffic again starts at its minimum).
    pub fn resume(spec: KpaSpec, now: Duration, replicas: i32) -> PodAutoscaler {
        let replicas = replicas.max(spec.bounds().0);
        let idle = replicas == 0;
        PodAutoscaler {
            replicas,
            spec,
            activity: if idle {
                Activity::Inactive
            } else {
                Activity::Active
            },
            reason: if idle { "NoTraffic" } else { "" },
            since: now,
            initialized: true,
            mode: Mode::Proxy,
            proxy_since: Some(now),
        }
    }

    pub fn replicas(&self) -> i32 {
        self.replicas
    }

    pub fn activity(&self) -> Activity {
        self.activity
    }

    /// Why the revision is in its activity ("NoTraffic", "TimedOut", "Queued"; empty when
    /// there is nothing to say).
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn spec(&self) -> &KpaSpec {
        &self.spec
    }

    pub fn update(&mut self, spec: KpaSpec) {
        self.spec = spec;
    }

    /// Applies the decider's last decision at `now` with `ready` replicas ready (Knative's
    /// `ReconcileKind`: scale, choose the mode, compute the Active condition).
    pub fn reconcile(&mut self, now: Duration, decider: DeciderStatus, ready: i32) -> Reconciled {
        let (want, requeue_after) = self.scale(now, decider.desired_scale);

        let inactive = self.activity == Activity::Inactive;
        let mut mode = if want == 0 || decider.excess_burst_capacity < 0 || (want == -1 && inactive)
        {
            Mode::Proxy
        } else {
            Mode::Serve
        };
        if ready == 0 {
            // Nothing to serve from: the router holds requests whatever was asked.
            mode = Mode::Proxy;
        }
        match mode {
            Mode::Proxy => {
                self.proxy_since.get_or_insert(now);
            }
            Mode::Serve => self.proxy_since = None,
        }
        self.mode = mode;

        self.compute_active(now, want, ready);
        Reconciled {
            want,
            replicas: self.replicas,
            mode,
            activity: self.activity,
            requeue_after,
        }
    }

    /// Knative's `scaler.scale`: bounds, initial scale, scale to zero; applies the result to
    /// the replica count when it should be applied.
    fn scale(&mut self, now: Duration, desired: i32) -> (i32, Option<Duration>) {
        if desired < 0 && self.activity != Activity::Activating {
            return (desired, None); // no data yet
        }
        let (mut min, max) = self.spec.bounds();
        let initial = self.spec.initial_scale;
        if initial > 1 && !self.initialized && self.spec.reachable {
            min = min.max(initial);
        }
        let mut desired = desired;
        if desired < min {
            desired = min;
        }
        if max != 0 && desired > max {
            desired = max;
        }
        let (desired, apply, requeue) = self.scale_to_zero(now, desired);
        if apply {
            self.replicas = desired;
        }
        (desired, requeue)
    }

    /// Knative's `handleScaleToZero`: what a decision of zero means given how long the
    /// revision has been active, inactive, or behind the router. Returns the scale, whether
    /// to apply it, and when to look again.
    fn scale_to_zero(&self, now: Duration, desired: i32) -> (i32, bool, Option<Duration>) {
        if desired != 0 {
            return (desired, true, None);
        }
        if !self.spec.enable_scale_to_zero {
            return (1, true, None);
        }
        let held_for = now.saturating_sub(self.since);
        match self.activity {
            Activity::Activating => {
                if held_for > self.spec.activation_timeout {
                    (0, true, None) // give up: the revision could not be activated
                } else {
                    (-1, false, Some(self.spec.activation_timeout - held_for))
                }
            }
            Activity::Active => {
                let window = self.spec.stable_window;
                if held_for >= window {
                    // Ask for zero without applying it: the revision goes inactive and the
                    // router into the path first; the replicas go in a later reconcile.
                    let requeue = (self.mode == Mode::Proxy).then_some(PROXY_REQUEUE);
                    (0, false, requeue)
                } else {
                    (1, true, Some(window - held_for))
                }
            }
            Activity::Inactive => {
                // The router must be in the path before the last replica goes; with a burst
                // capacity of −1 it always is.
                let router_in_path =
                    self.spec.target_burst_capacity == -1.0 || self.mode == Mode::Proxy;
                if !router_in_path {
                    return (0, false, Some(Duration::from_secs(1)));
                }
                let retention = if self.spec.reachable {
                    self.spec.scale_to_zero_pod_retention_period
                } else {
                    Duration::ZERO
                };
                let grace = self.spec.scale_to_zero_grace_period;
                if held_for >= grace.max(retention) {
                    return (0, true, None);
                }
                if retention > Duration::ZERO && held_for < retention {
                    return (0, false, Some(retention - held_for));
                }
                let proxied_for = self
                    .proxy_since
                    .map_or(Duration::ZERO, |since| now.saturating_sub(since));
                match grace.checked_sub(proxied_for) {
                    Some(left) if left > Duration::ZERO => (0, false, Some(left)),
                    _ => (0, true, None), // behind the router long enough
                }
            }
        }
    }

    /// The replicas needed to call the revision active.
    fn active_threshold(&self) -> i32 {
        let (min, _) = self.spec.bounds();
        if self.initialized {
            min.max(1)
        } else {
            min.max(self.spec.initial_scale)
        }
    }

    /// Knative's `computeActiveCondition`.
    fn compute_active(&mut self, now: Duration, want: i32, ready: i32) {
        let min_ready = self.active_threshold();
        if ready >= min_ready {
            self.initialized = true;
        }
        let next = if want == 0 || min_ready == 0 {
            if self.activity == Activity::Activating && min_ready > 0 {
                Some((Activity::Inactive, "TimedOut"))
            } else {
                Some((Activity::Inactive, "NoTraffic"))
            }
        } else if want > 0 || self.activity != Activity::Inactive {
            if ready < min_ready {
                Some((Activity::Activating, "Queued"))
            } else {
                Some((Activity::Active, ""))
            }
        } else if ready < min_ready {
            Some((Activity::Inactive, "NoTraffic"))
        } else {
            None // unknown scale, inactive, yet ready: stays inactive
        };
        if let Some((activity, reason)) = next {
            if (activity, reason) != (self.activity, self.reason) {
                self.activity = activity;
                self.reason = reason;
                self.since = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Knative's defaults: stable window 60s, grace 30s, no retention.
    fn knative_spec() -> KpaSpec {
        KpaSpec {
            min_scale: 0,
            max_scale: 0,
            initial_scale: 1,
            enable_scale_to_zero: true,
            stable_window: secs(60),
            scale_to_zero_grace_period: secs(30),
            scale_to_zero_pod_retention_period: Duration::ZERO,
            activation_timeout: DEFAULT_PROGRESS_DEADLINE + ACTIVATION_TIMEOUT_BUFFER,
            reachable: true,
            target_burst_capacity: 211.0,
        }
    }

    fn decision(desired: i32, ebc: i32) -> DeciderStatus {
        DeciderStatus {
            desired_scale: desired,
            excess_burst_capacity: ebc,
        }
    }

    /// knative-autoscaler.md §4.2's sequence: traffic stops on a one-replica revision that
    /// the router was not buffering for. The decision 0 first only marks it inactive and puts
    /// the router in the path; the replica goes a grace period later.
    #[test]
    fn scale_to_zero_puts_the_router_in_the_path_first() {
        let spec = KpaSpec {
            target_burst_capacity: 0.0,
            ..knative_spec()
        };
        let mut pa = PodAutoscaler::new(spec, secs(0));
        let r = pa.reconcile(secs(0), decision(-1, 0), 0);
        assert_eq!(
            (r.replicas, r.activity, r.mode),
            (1, Activity::Activating, Mode::Proxy)
        );
        assert_eq!(r.want, -1);
        let r = pa.reconcile(secs(5), decision(1, 0), 1);
        assert_eq!(
            (r.replicas, r.activity, r.mode),
            (1, Activity::Active, Mode::Serve)
        );

        // Decision 0 before a stable window of activity: hold exactly one.
        let r = pa.reconcile(secs(40), decision(0, 0), 1);
        assert_eq!((r.want, r.replicas, r.activity), (1, 1, Activity::Active));
        assert_eq!(r.requeue_after, Some(secs(25)));

        // Active for a stable window: ask for 0, do not apply it, go inactive.
        let r = pa.reconcile(secs(65), decision(0, 0), 1);
        assert_eq!((r.want, r.replicas), (0, 1));
        assert_eq!((r.activity, pa.reason()), (Activity::Inactive, "NoTraffic"));
        assert_eq!(r.mode, Mode::Proxy);

        // Within the grace period behind the router the replica stays.
        let r = pa.reconcile(secs(80), decision(0, 0), 1);
        assert_eq!(r.replicas, 1);
        assert_eq!(r.requeue_after, Some(secs(15)));
        let r = pa.reconcile(secs(95), decision(0, 0), 1);
        assert_eq!(
            r.replicas, 0,
            "inactive and behind the router for the 30s grace period"
        );
        assert_eq!(r.activity, Activity::Inactive);
    }

    /// With the router buffering all along (negative burst capacity), the grace period has
    /// already passed behind it: the replica goes at the first reconcile after inactive.
    #[test]
    fn scale_to_zero_fast_path_when_the_router_was_in_the_path() {
        let mut pa = PodAutoscaler::new(knative_spec(), secs(0));
        pa.reconcile(secs(5), decision(1, -111), 1);
        assert_eq!(pa.mode(), Mode::Proxy);
        let r = pa.reconcile(secs(65), decision(0, -111), 1);
        assert_eq!((r.replicas, r.activity), (1, Activity::Inactive));
        assert_eq!(r.requeue_after, Some(PROXY_REQUEUE));
        assert_eq!(pa.reconcile(secs(67), decision(0, -111), 1).replicas, 0);
    }

    #[test]
    fn retention_keeps_the_last_replica_longer() {
        let spec = KpaSpec {
            scale_to_zero_pod_retention_period: secs(300),
            ..knative_spec()
        };
        let mut pa = PodAutoscaler::new(spec, secs(0));
        pa.reconcile(secs(1), decision(1, 0), 1);
        pa.reconcile(secs(70), decision(0, 0), 1); // inactive at 70
        let r = pa.reconcile(secs(200), decision(0, 0), 1);
        assert_eq!((r.replicas, r.requeue_after), (1, Some(secs(170))));
        assert_eq!(pa.reconcile(secs(369), decision(0, 0), 1).replicas, 1);
        assert_eq!(pa.reconcile(secs(370), decision(0, 0), 1).replicas, 0);
    }

    #[test]
    fn a_request_at_zero_brings_one_replica_back() {
        let mut pa = PodAutoscaler::new(knative_spec(), secs(0));
        pa.reconcile(secs(1), decision(1, -1), 1);
        pa.reconcile(secs(70), decision(0, -1), 1);
        assert_eq!(pa.reconcile(secs(100), decision(0, -1), 1).replicas, 0);
        let r = pa.reconcile(secs(500), decision(1, -1), 0);
        assert_eq!(
            (r.replicas, r.activity, r.mode),
            (1, Activity::Activating, Mode::Proxy)
        );
        assert_eq!(pa.reason(), "Queued");
        let r = pa.reconcile(secs(503), decision(1, -1), 1);
        assert_eq!(r.activity, Activity::Active);
    }

    #[test]
    fn scale_to_zero_disabled_keeps_one() {
        let spec = KpaSpec {
            enable_scale_to_zero: false,
            ..knative_spec()
        };
        let mut pa = PodAutoscaler::new(spec, secs(0));
        pa.reconcile(secs(1), decision(1, 0), 1);
        for t in [100, 1000, 10_000] {
            let r = pa.reconcile(secs(t), decision(0, 0), 1);
            assert_eq!((r.replicas, r.activity), (1, Activity::Active));
        }
    }

    #[test]
    fn bounds_apply_and_initial_scale_floors_until_reached() {
        let spec = KpaSpec {
            min_scale: 2,
            max_scale: 5,
            initial_scale: 4,
            ..knative_spec()
        };
        let mut pa = PodAutoscaler::new(spec, secs(0));
        assert_eq!(pa.replicas(), 4, "created at the initial scale");
        let r = pa.reconcile(secs(2), decision(1, 0), 2);
        assert_eq!((r.replicas, r.activity), (4, Activity::Activating));
        let r = pa.reconcile(secs(4), decision(9, 0), 4);
        assert_eq!(
            (r.replicas, r.activity),
            (5, Activity::Active),
            "max-scale caps"
        );
        let r = pa.reconcile(secs(6), decision(1, 0), 5);
        assert_eq!(
            r.replicas, 2,
            "initial scale reached: min-scale is the floor now"
        );
    }

    #[test]
    fn a_resumed_revision_keeps_its_replicas_and_an_idle_one_stays_at_zero() {
        // At zero before the restart: inactive, the router in the path, and no decision
        // (no data yet) wakes it; a request's decision does.
        let mut pa = PodAutoscaler::resume(knative_spec(), secs(0), 0);
        assert_eq!((pa.replicas(), pa.activity()), (0, Activity::Inactive));
        let r = pa.reconcile(secs(0), decision(-1, 0), 0);
        assert_eq!(
            (r.replicas, r.activity, r.mode),
            (0, Activity::Inactive, Mode::Proxy)
        );
        let r = pa.reconcile(secs(2), decision(0, 0), 0);
        assert_eq!(r.replicas, 0, "no traffic: still at zero");
        let r = pa.reconcile(secs(3), decision(1, 0), 0);
        assert_eq!((r.replicas, r.activity), (1, Activity::Activating));

        // Running before: kept as they are, the initial scale no floor any more.
        let spec = KpaSpec {
            initial_scale: 5,
            ..knative_spec()
        };
        let mut pa = PodAutoscaler::resume(spec, secs(0), 2);
        assert_eq!(pa.activity(), Activity::Active);
        assert_eq!(pa.reconcile(secs(0), decision(-1, 0), 2).replicas, 2);

        // The minimum applies at once; not to an unreachable revision.
        let floor = KpaSpec {
            min_scale: 1,
            ..knative_spec()
        };
        assert_eq!(
            PodAutoscaler::resume(floor.clone(), secs(0), 0).replicas(),
            1
        );
        let unreachable = KpaSpec {
            reachable: false,
            ..floor
        };
        assert_eq!(PodAutoscaler::resume(unreachable, secs(0), 0).replicas(), 0);
    }

    #[test]
    fn unreachable_revisions_have_no_floor_or_retention() {
        let spec = KpaSpec {
            min_scale: 3,
            reachable: false,
            scale_to_zero_pod_retention_period: secs(600),
            ..knative_spec()
        };
        let mut pa = PodAutoscaler::new(spec, secs(0));
        pa.reconcile(secs(1), decision(1, 0), 1);
        pa.reconcile(secs(61), decision(0, 0), 1);
        assert_eq!(pa.activity(), Activity::Inactive);
        assert_eq!(pa.reconcile(secs(91), decision(0, 0), 1).replicas, 0);
    }

    #[test]
    fn stuck_activation_gives_up_after_the_progress_deadline() {
        let spec = KpaSpec {
            activation_timeout: secs(120),
            ..knative_spec()
        };
        let mut pa = PodAutoscaler::new(spec, secs(0));
        let r = pa.reconcile(secs(2), decision(0, -1), 0);
        assert_eq!(
            (r.want, r.replicas, r.activity),
            (-1, 1, Activity::Activating)
        );
        assert_eq!(r.requeue_after, Some(secs(118)));
        let r = pa.reconcile(secs(121), decision(0, -1), 0);
        assert_eq!((r.want, r.replicas, r.activity), (0, 0, Activity::Inactive));
        assert_eq!(pa.reason(), "TimedOut");
    }

    proptest::proptest! {
        /// Whatever the decider says and however many replicas are ready, the replicas stay
        /// within [min-scale, max-scale] (zero only when min-scale allows it).
        #[test]
        fn replicas_stay_within_bounds(
            min in 0i32..5,
            extra in 0i32..10,
            unlimited in proptest::bool::ANY,
            initial in 0i32..8,
            steps in proptest::collection::vec((-1i32..40, -300i32..300, 0i32..40, 1u64..400), 1..80),
        ) {
            let max = if unlimited { 0 } else { min.max(1) + extra };
            let spec = KpaSpec { min_scale: min, max_scale: max, initial_scale: initial, ..knative_spec() };
            let mut pa = PodAutoscaler::new(spec, secs(0));
            let mut now = secs(0);
            for (desired, ebc, ready, dt) in steps {
                now += secs(dt);
                let r = pa.reconcile(now, decision(desired, ebc), ready);
                if max != 0 {
                    proptest::prop_assert!(r.replicas <= max.max(initial), "{} > max {}", r.replicas, max);
                }
                // Below min-scale only before anything was decided (the initial scale).
                if desired >= 0 {
                    proptest::prop_assert!(r.replicas >= min, "{} < min {}", r.replicas, min);
                }
            }
        }
    }

    #[test]
    fn router_leaves_the_path_with_enough_burst_capacity() {
        let mut pa = PodAutoscaler::new(knative_spec(), secs(0));
        assert_eq!(pa.reconcile(secs(1), decision(3, -22), 3).mode, Mode::Proxy);
        assert_eq!(pa.reconcile(secs(3), decision(3, 89), 3).mode, Mode::Serve);
        assert_eq!(
            pa.reconcile(secs(5), decision(3, 89), 0).mode,
            Mode::Proxy,
            "none ready"
        );
    }
}
