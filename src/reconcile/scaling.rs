//! The autoscaler's loop: the I/O around [`crate::autoscaler`]. Every second it records each
//! revision's report from the router into that revision's decider; every 2 seconds (and at
//! once when a request waits for a revision at zero) it decides, applies the KPA's bounds and
//! scale-to-zero sequence, and tells the reconciler how many replicas each revision runs.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tracing::info;

use super::executor::RuntimeStatus;
use super::plan::ComponentStatus;
use crate::autoscaler::decider::{Collector, Decider, DeciderSpec, Stat, TICK_INTERVAL};
use crate::autoscaler::kpa::{KpaSpec, PodAutoscaler, DEFAULT_PROGRESS_DEADLINE};
use crate::router::Router;
use crate::spec::autoscaling::Autoscaling;
use crate::watch::FolderState;

/// What the autoscaler last decided for a revision, for `describe` and the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleView {
    pub revision: String,
    /// The decider's answer (−1 before it has data).
    pub desired: i32,
    /// What the revision is scaled to.
    pub replicas: i32,
    pub ready: i32,
    pub panic: bool,
    /// The stable- and panic-window averages of the last decision.
    pub stable: Option<f64>,
    pub panic_value: Option<f64>,
    pub excess_burst_capacity: i32,
    /// `activating`, `active` or `inactive`.
    pub activity: String,
    /// What the autoscaler did lately, oldest first (at most [`SCALE_EVENTS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<ScaleEvent>,
}

/// One thing the autoscaler did to a revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleEvent {
    pub unix_time: i64,
    /// `Scaled`, `PanicStarted`, `PanicEnded`.
    pub reason: String,
    pub message: String,
}

/// Scale events kept per revision.
pub const SCALE_EVENTS: usize = 20;

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// One autoscaled revision.
struct Scaled {
    settings: Autoscaling,
    reachable: bool,
    decider: Decider,
    pa: PodAutoscaler,
    view: ScaleView,
    /// A request was reported at once when it arrived at zero: the next report leaves it out
    /// (Knative's activator subtracts its first report too).
    reported_early: bool,
}

/// A revision the autoscaler sizes.
#[derive(Debug, Clone, PartialEq)]
struct Sized {
    settings: Autoscaling,
    /// Traffic reaches it (Knative's `Reachability`).
    reachable: bool,
    /// It came up before (it is in its component's traffic): the replicas it has now, which
    /// its autoscaler starts from if it has none yet (a daemon restart).
    running: Option<i32>,
}

/// The revisions the autoscaler sizes.
fn autoscaled(folder: &FolderState, status: &RuntimeStatus) -> BTreeMap<String, Sized> {
    let mut out = BTreeMap::new();
    for entry in folder.catalog.services.values() {
        let Some(desired) = entry.desired.as_ref() else {
            continue;
        };
        let Some(service) = status
            .services
            .get(&(desired.namespace.clone(), desired.name.clone()))
        else {
            continue;
        };
        for component in &desired.components {
            let Some(c) = service
                .components
                .iter()
                .find(|c| c.component == component.kind.as_str())
            else {
                continue;
            };
            for (revision, reachable) in sized(c) {
                let came_up = c.traffic.iter().any(|t| t.revision_name == revision);
                let running = service
                    .replicas
                    .iter()
                    .filter(|r| r.revision == revision)
                    .map(|r| r.replica as i32 + 1)
                    .max()
                    .unwrap_or(0);
                let sized = Sized {
                    settings: component.scaling.autoscaling.clone(),
                    reachable,
                    running: came_up.then_some(running),
                };
                out.insert(revision, sized);
            }
        }
    }
    out
}

/// A component's revisions the autoscaler sizes, and whether traffic reaches each (Knative's
/// `Reachability`): its traffic targets, and its latest revision while it comes up. A target
/// with 0 % (a pinned canary, the old revision after a promotion... ) is unreachable: it has
/// no floor and scales to zero once idle; a request to its tag host still wakes it.
fn sized(c: &ComponentStatus) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for t in &c.traffic {
        match out.iter_mut().find(|(name, _)| *name == t.revision_name) {
            Some((_, reachable)) => *reachable |= t.percent > 0,
            None => out.push((t.revision_name.clone(), t.percent > 0)),
        }
    }
    if let Some(latest) = &c.latest_created_revision {
        if !out.iter().any(|(name, _)| name == latest) {
            out.push((latest.clone(), true));
        }
    }
    out
}

/// Ready replicas per revision.
fn ready_counts(status: &RuntimeStatus) -> BTreeMap<String, i32> {
    let mut counts = BTreeMap::new();
    for r in status.services.values().flat_map(|s| &s.replicas) {
        if r.ready {
            *counts.entry(r.revision.clone()).or_insert(0) += 1;
        }
    }
    counts
}

fn ready_of(ready: &BTreeMap<String, i32>, revision: &str) -> i32 {
    ready.get(revision).copied().unwrap_or(0)
}

fn specs(settings: &Autoscaling, reachable: bool) -> (DeciderSpec, KpaSpec) {
    (
        DeciderSpec::for_settings(settings, reachable),
        KpaSpec::for_settings(settings, reachable, DEFAULT_PROGRESS_DEADLINE),
    )
}

/// Runs until `shutdown` turns true, publishing replica counts on `scale` and the decisions
/// on `views`.
pub async fn run(
    router: Arc<Router>,
    mut folder: watch::Receiver<FolderState>,
    mut status: watch::Receiver<RuntimeStatus>,
    scale: watch::Sender<BTreeMap<String, u32>>,
    views: watch::Sender<BTreeMap<String, ScaleView>>,
    mut poked: mpsc::UnboundedReceiver<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut revisions: BTreeMap<String, Scaled> = BTreeMap::new();
    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seconds = 0u64;
    let ticks_per_decision = TICK_INTERVAL.as_secs().max(1);
    loop {
        let mut decide = false;
        let mut replicas_changed = false;
        let mut poke: Option<String> = None;
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = second.tick() => {
                seconds += 1;
                record(&router, &mut revisions);
                decide = seconds.is_multiple_of(ticks_per_decision);
            }
            Some(revision) = poked.recv() => poke = Some(revision),
            r = folder.changed() => if r.is_err() { return },
            r = status.changed() => {
                if r.is_err() { return }
                replicas_changed = true;
            }
        }
        let now = router.now();
        // What is needed of the status, read without copying it.
        let (wanted, ready) = {
            let runtime = status.borrow();
            (
                autoscaled(&folder.borrow(), &runtime),
                ready_counts(&runtime),
            )
        };
        track(&mut revisions, wanted, &ready, now);
        if let Some(name) = poke {
            if let Some(scaled) = revisions.get_mut(&name) {
                // Knative's activator: the first request of an idle revision is reported at
                // once, and a revision at zero decides on it without waiting for the tick.
                let request = Stat {
                    concurrency: 1.0,
                    requests: 1.0,
                    ..Stat::default()
                };
                if scaled.decider.wants_poke(&request) {
                    scaled.decider.record(now, &request);
                    scaled.reported_early = true;
                    decide_one(&name, scaled, now, ready_of(&ready, &name), true);
                }
            }
        }
        // Decide every 2s; between decisions a change of the replicas still moves the
        // revision through its states (activating → active), as Knative's KPA reconciles on
        // endpoint changes.
        if decide || replicas_changed {
            for (name, scaled) in revisions.iter_mut() {
                decide_one(name, scaled, now, ready_of(&ready, name), decide);
            }
        }
        let counts: BTreeMap<String, u32> = revisions
            .iter()
            .map(|(name, s)| (name.clone(), s.pa.replicas().max(0) as u32))
            .collect();
        scale.send_if_modified(|old| {
            let changed = *old != counts;
            *old = counts;
            changed
        });
        let current: BTreeMap<String, ScaleView> = revisions
            .iter()
            .map(|(name, s)| (name.clone(), s.view.clone()))
            .collect();
        views.send_if_modified(|old| {
            let changed = *old != current;
            *old = current;
            changed
        });
    }
}

/// Adds deciders for new revisions, updates changed settings and reachability, drops
/// revisions no longer sized.
fn track(
    revisions: &mut BTreeMap<String, Scaled>,
    wanted: BTreeMap<String, Sized>,
    ready: &BTreeMap<String, i32>,
    now: Duration,
) {
    revisions.retain(|name, _| wanted.contains_key(name));
    for (name, sized) in wanted {
        let Sized {
            settings,
            reachable,
            running,
        } = sized;
        match revisions.get_mut(&name) {
            Some(scaled) if scaled.settings != settings || scaled.reachable != reachable => {
                let (decider, kpa) = specs(&settings, reachable);
                scaled.decider.update(decider);
                scaled.pa.update(kpa);
                scaled.settings = settings;
                scaled.reachable = reachable;
            }
            Some(_) => {}
            None => {
                let (decider_spec, kpa) = specs(&settings, reachable);
                let ready = ready_of(ready, &name);
                let collector = Collector::for_settings(&settings);
                let decider = Decider::new(decider_spec, collector, ready, now);
                let mut pa = match running {
                    Some(replicas) => PodAutoscaler::resume(kpa, now, replicas),
                    None => PodAutoscaler::new(kpa, now),
                };
                // Bounds apply from the start (min-scale above the initial scale).
                pa.reconcile(now, decider.status(), ready);
                let view = ScaleView {
                    revision: name.clone(),
                    desired: -1,
                    replicas: pa.replicas(),
                    ready,
                    panic: decider.autoscaler().in_panic(),
                    stable: None,
                    panic_value: None,
                    excess_burst_capacity: decider.status().excess_burst_capacity,
                    activity: activity_name(pa.activity()).into(),
                    events: Vec::new(),
                };
                revisions.insert(
                    name,
                    Scaled {
                        settings,
                        reachable,
                        decider,
                        pa,
                        view,
                        reported_early: false,
                    },
                );
            }
        }
    }
}

/// Records the last second of every autoscaled revision's traffic.
fn record(router: &Router, revisions: &mut BTreeMap<String, Scaled>) {
    let now = router.now();
    let tracked: HashSet<String> = router.revisions().iter().map(|r| r.name.clone()).collect();
    for (name, scaled) in revisions.iter_mut() {
        let report = match router.revision(name) {
            Some(r) if tracked.contains(name) => r.report(now),
            _ => Default::default(),
        };
        let early = if std::mem::take(&mut scaled.reported_early) {
            1.0
        } else {
            0.0
        };
        scaled.decider.record(
            now,
            &Stat {
                concurrency: (report.average_concurrency - early).max(0.0),
                requests: (report.requests - early).max(0.0),
                ..Stat::default()
            },
        );
    }
}

/// How the API and `describe` name an activity.
fn activity_name(activity: crate::autoscaler::Activity) -> &'static str {
    match activity {
        crate::autoscaler::Activity::Activating => "activating",
        crate::autoscaler::Activity::Active => "active",
        crate::autoscaler::Activity::Inactive => "inactive",
    }
}

/// Applies the decider's last decision to the revision, after a new decision when `tick`.
fn decide_one(name: &str, scaled: &mut Scaled, now: Duration, ready: i32, tick: bool) {
    let observed = if tick {
        let observed = scaled.decider.observe(now);
        scaled.decider.tick_on(now, ready, observed);
        observed.ok()
    } else {
        None
    };
    let before = scaled.pa.replicas();
    let was_panicking = scaled.view.panic;
    let status = scaled.decider.status();
    let reconciled = scaled.pa.reconcile(now, status, ready);
    let panic = scaled.decider.autoscaler().in_panic();
    let mut events = std::mem::take(&mut scaled.view.events);
    let mut event = |reason: &str, message: String| {
        info!(revision = name, reason, "{message}");
        events.push(ScaleEvent {
            unix_time: unix_now(),
            reason: reason.into(),
            message,
        });
    };
    if panic && !was_panicking {
        event(
            "PanicStarted",
            format!(
                "panic mode: a burst in the panic window, {} replicas wanted, {ready} ready",
                status.desired_scale
            ),
        );
    }
    if !panic && was_panicking {
        event(
            "PanicEnded",
            "panic mode over: a stable window without a burst".into(),
        );
    }
    if reconciled.replicas != before {
        event(
            "Scaled",
            format!(
                "scaled from {before} to {} replicas (desired {}, ready {ready})",
                reconciled.replicas, status.desired_scale
            ),
        );
    }
    let excess = events.len().saturating_sub(SCALE_EVENTS);
    events.drain(..excess);
    scaled.view = ScaleView {
        revision: name.to_string(),
        desired: status.desired_scale,
        replicas: reconciled.replicas,
        ready,
        panic,
        stable: observed.map(|o| o.stable).or(scaled.view.stable),
        panic_value: observed.map(|o| o.panic).or(scaled.view.panic_value),
        excess_burst_capacity: status.excess_burst_capacity,
        activity: activity_name(reconciled.activity).into(),
        events,
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::plan::TrafficTarget;

    fn status(latest: &str, ready: Option<&str>, traffic: &[(&str, u32, bool)]) -> ComponentStatus {
        ComponentStatus {
            component: "predictor".into(),
            latest_created_revision: Some(latest.into()),
            latest_ready_revision: ready.map(Into::into),
            latest_rolledout_revision: None,
            previous_rolledout_revision: None,
            traffic: traffic
                .iter()
                .map(|&(name, percent, latest)| TrafficTarget::new(name, percent, latest, None))
                .collect(),
            ready: true,
            reason: None,
            message: None,
        }
    }

    fn owned(pairs: &[(&str, bool)]) -> Vec<(String, bool)> {
        pairs.iter().map(|&(n, r)| (n.to_string(), r)).collect()
    }

    #[test]
    fn every_target_is_sized_and_a_zero_percent_one_is_unreachable() {
        let (a, b, c) = (
            "s-predictor-00001",
            "s-predictor-00002",
            "s-predictor-00003",
        );
        // A 10 % canary: both scale on their own traffic.
        assert_eq!(
            sized(&status(b, Some(b), &[(b, 10, true), (a, 90, false)])),
            owned(&[(b, true), (a, true)])
        );
        // Pinned: the canary has 0 % and no floor; it scales to zero.
        assert_eq!(
            sized(&status(b, Some(b), &[(b, 0, true), (a, 100, false)])),
            owned(&[(b, false), (a, true)])
        );
        // A canary over the rolled-out revision itself: reachable through either entry.
        assert_eq!(
            sized(&status(a, Some(a), &[(a, 0, true), (a, 100, false)])),
            owned(&[(a, true)])
        );
        // A new revision coming up is sized (its initial scale) before it has traffic.
        assert_eq!(
            sized(&status(c, Some(b), &[(b, 100, true)])),
            owned(&[(b, true), (c, true)])
        );
        assert_eq!(sized(&status(a, None, &[])), owned(&[(a, true)]));
    }
}
