//! The reconciler's decisions, pure: revisions from the desired state and the history, and
//! `plan(desired, observed, now) -> actions`. Time is an argument; nothing here touches Docker.
//!
//! Rollout is what KServe does without canary: the latest revision's replicas start; once all
//! of them are ready it takes the traffic and the older revisions' replicas are stopped. A
//! latest revision that never becomes ready leaves the older one serving.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::traffic::{self, Split};
use crate::runtime::ContainerState;
use crate::spec::catalog::Catalog;
use crate::spec::normalize::DesiredComponent;
use crate::store::{ComponentRecord, RevisionRecord};

/// Kubernetes' CrashLoopBackOff: 10 s, doubling, capped at 5 min, reset after 10 min of good
/// running.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(600);

/// The delay before restart number `restarts + 1` (restarts counts those already made).
pub fn backoff(restarts: u32) -> Duration {
    let factor = 1u64 << restarts.min(16);
    BACKOFF_INITIAL
        .saturating_mul(factor as u32)
        .min(BACKOFF_MAX)
}

/// `(namespace, service, component)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ComponentId {
    pub namespace: String,
    pub service: String,
    pub component: String,
}

impl ComponentId {
    pub fn of(record: &RevisionRecord) -> ComponentId {
        ComponentId {
            namespace: record.namespace.clone(),
            service: record.service.clone(),
            component: record.component.clone(),
        }
    }
}

/// One component as the desired state has it now.
#[derive(Debug, Clone)]
pub struct DesiredEntry {
    pub id: ComponentId,
    /// What its latest revision runs.
    pub component: DesiredComponent,
    pub source_dir: String,
    /// KFServing v1alpha2's `default` endpoint beside a `canary` one (which is `component`):
    /// what the rolled-out revision runs, whatever the bookkeeping says.
    pub rolled_out: Option<DesiredComponent>,
}

impl DesiredEntry {
    /// The revision that runs [`DesiredEntry::rolled_out`]: the newest with its spec.
    fn rolled_out_revision<'a>(
        &self,
        revisions: &'a [RevisionRecord],
    ) -> Option<&'a RevisionRecord> {
        let spec = self.rolled_out.as_ref()?;
        revisions
            .iter()
            .filter(|r| ComponentId::of(r) == self.id && r.key == spec.revision_key)
            .max_by_key(|r| r.number)
    }
}

/// The components the folder wants, with the folder of their YAML file.
pub fn desired_entries(catalog: &Catalog, history: &[RevisionRecord]) -> Vec<DesiredEntry> {
    let mut out = Vec::new();
    for entry in catalog.services.values() {
        let Some(desired) = &entry.desired else {
            // In the folder but invalid since before this daemon started: its last good spec
            // is its latest revision (an invalid edit never takes a working service down).
            let mut latest: BTreeMap<&str, &RevisionRecord> = BTreeMap::new();
            for r in history
                .iter()
                .filter(|r| r.namespace == entry.namespace && r.service == entry.name)
            {
                if latest
                    .get(r.component.as_str())
                    .is_none_or(|l| l.number < r.number)
                {
                    latest.insert(&r.component, r);
                }
            }
            out.extend(latest.values().map(|r| DesiredEntry {
                id: ComponentId::of(r),
                component: r.component_spec.clone(),
                source_dir: r.source_dir.clone(),
                rolled_out: None,
            }));
            continue;
        };
        let source_dir = Path::new(&entry.file)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| ".".into());
        for c in &desired.components {
            let canary = desired.legacy_canary.iter().find(|k| k.kind == c.kind);
            out.push(DesiredEntry {
                id: ComponentId {
                    namespace: entry.namespace.clone(),
                    service: entry.name.clone(),
                    component: c.kind.as_str().to_string(),
                },
                component: canary.unwrap_or(c).clone(),
                source_dir: source_dir.clone(),
                rolled_out: canary.map(|_| c.clone()),
            });
        }
    }
    out
}

/// The revisions to add so that every desired component's latest revision runs what it
/// should: a new one when the component is new or what it runs changed (Knative makes a new
/// revision on every template change, even back to an older spec).
pub fn new_revisions(
    history: &[RevisionRecord],
    desired: &[DesiredEntry],
    now_unix: i64,
) -> Vec<RevisionRecord> {
    let mut latest: BTreeMap<ComponentId, &RevisionRecord> = BTreeMap::new();
    for r in history {
        let id = ComponentId::of(r);
        if latest.get(&id).is_none_or(|l| l.number < r.number) {
            latest.insert(id, r);
        }
    }
    let mut out = Vec::new();
    for d in desired {
        let mut newest = latest.get(&d.id).map(|p| (p.number, p.key.as_str()));
        let mut make = |spec: &DesiredComponent, number: u32| {
            out.push(RevisionRecord {
                namespace: d.id.namespace.clone(),
                service: d.id.service.clone(),
                component: d.id.component.clone(),
                number,
                name: RevisionRecord::name_for(&d.id.service, &d.id.component, number),
                key: spec.revision_key.clone(),
                created_unix: now_unix,
                source_dir: d.source_dir.clone(),
                component_spec: spec.clone(),
            });
        };
        let next = |newest: Option<(u32, &str)>| newest.map_or(1, |(n, _)| n + 1);
        // A v1alpha2 default endpoint runs in a revision of its own, older than the canary's.
        if let Some(default) = &d.rolled_out {
            let exists = history
                .iter()
                .any(|r| ComponentId::of(r) == d.id && r.key == default.revision_key);
            if !exists {
                let number = next(newest);
                make(default, number);
                newest = Some((number, default.revision_key.as_str()));
            }
        }
        if newest.map(|(_, key)| key) != Some(d.component.revision_key.as_str()) {
            make(&d.component, next(newest));
        }
    }
    out
}

/// A replica container as observed (engine state plus gantry's own supervision).
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedReplica {
    pub container_id: String,
    pub component: ComponentId,
    pub revision: String,
    pub replica: u32,
    pub spec_hash: String,
    pub state: ContainerState,
    /// Passed its readiness probe since it last started.
    pub ready: bool,
    /// Restarts made by gantry so far.
    pub restarts: u32,
    /// When it last stopped running (daemon clock), for the backoff.
    pub exited_at: Option<Duration>,
    /// When it last started (daemon clock), to reset the backoff after good running.
    pub started_at: Option<Duration>,
}

/// A revision's replica that could not be created (image missing, refused spec, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct CreateFailure {
    pub attempts: u32,
    pub at: Duration,
    pub reason: String,
}

/// Everything the planner looks at.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub replicas: Vec<ObservedReplica>,
    /// `(revision, replica)` being created right now.
    pub creating: BTreeSet<(String, u32)>,
    /// Containers being stopped right now.
    pub stopping: BTreeSet<String>,
    /// Last creation failure per `(revision, replica)`.
    pub failures: BTreeMap<(String, u32), CreateFailure>,
    /// Replicas the scheduler cannot place yet.
    pub pending: BTreeMap<(String, u32), Pending>,
    /// Revisions that have had a ready replica since the daemon started.
    pub ever_ready: BTreeSet<String>,
    /// The autoscaler's replica count per revision; a revision it has not decided on yet
    /// runs what [`wanted_replicas`] says.
    pub scale: BTreeMap<String, u32>,
    /// Revisions whose replicas wait for their model.
    pub models: BTreeMap<String, ModelWait>,
    /// Each component's rollout bookkeeping as last kept (the store's copy).
    pub records: BTreeMap<ComponentId, ComponentRecord>,
}

/// Why a revision's replicas are not created yet: their model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelWait {
    /// Being downloaded: the progress, in words.
    Loading(String),
    /// Cannot be fetched (tried again after a backoff): why.
    Failed(String),
}

/// A replica the scheduler cannot place now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The scheduler's reason, in Kubernetes' words.
    pub reason: String,
    /// It would fit if the component's older revisions gave back what they hold (a one-GPU
    /// workstation): the old replicas are stopped to make room (DESIGN.md, "GPUs are scarce").
    pub swap: bool,
}

/// What the executor must do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Create and start replica `replica` of `revision`.
    Create { revision: String, replica: u32 },
    /// Start a stopped (crashed) container again, after its backoff.
    Restart { container_id: String },
    /// Stop gracefully, then remove.
    Retire {
        container_id: String,
        reason: String,
    },
}

/// The plan for one moment, and when to look again even if nothing happens.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// The earliest time a backoff ends.
    pub wake_at: Option<Duration>,
}

/// How many replicas a revision runs before the autoscaler has decided: `minReplicas`, or
/// the initial scale when that is larger (Knative starts a revision at its initial scale).
pub fn fixed_replicas(c: &DesiredComponent) -> u32 {
    let a = &c.scaling.autoscaling;
    (a.min_scale.max(a.initial_scale).max(0)) as u32
}

/// How many replicas `revision` of component `c` should run: the autoscaler's count. Before
/// it has decided: for a revision that came up before this daemon started (its component's
/// record names it), the replicas it has, at least `minReplicas` (an idle revision at zero
/// stays there across a restart, as Knative keeps a PodAutoscaler's scale); for any other,
/// [`fixed_replicas`].
pub fn wanted_replicas(c: &DesiredComponent, revision: &str, observed: &Observed) -> u32 {
    if let Some(&n) = observed.scale.get(revision) {
        return n;
    }
    if observed.records.values().any(|r| r.mentions(revision)) {
        let running = observed
            .replicas
            .iter()
            .filter(|r| r.revision == revision && !observed.stopping.contains(&r.container_id))
            .map(|r| r.replica + 1)
            .max()
            .unwrap_or(0);
        return running.max(c.scaling.autoscaling.min_scale.max(0) as u32);
    }
    fixed_replicas(c)
}

/// Decides what to do. `revisions` holds every revision of the desired components (latest
/// last per component); `desired` the components that should exist now.
pub fn plan(
    revisions: &[RevisionRecord],
    desired: &[DesiredEntry],
    observed: &Observed,
    now: Duration,
) -> Plan {
    let mut out = Plan::default();
    let wake = |t: Duration, out: &mut Plan| {
        out.wake_at = Some(out.wake_at.map_or(t, |w| w.min(t)));
    };
    let desired_ids: BTreeMap<&ComponentId, &DesiredEntry> =
        desired.iter().map(|d| (&d.id, d)).collect();
    let mut latest: BTreeMap<&ComponentId, &RevisionRecord> = BTreeMap::new();
    let mut known: BTreeMap<&str, &RevisionRecord> = BTreeMap::new();
    for r in revisions {
        known.insert(&r.name, r);
    }
    for r in revisions {
        let id = desired_ids.keys().find(|id| ***id == ComponentId::of(r));
        if let Some(id) = id {
            if latest.get(*id).is_none_or(|l| l.number < r.number) {
                latest.insert(*id, r);
            }
        }
    }

    for (id, entry) in &desired_ids {
        let Some(newest) = latest.get(id) else {
            continue;
        };
        let live = |r: &&ObservedReplica| {
            ComponentId::eq(&r.component, id) && !observed.stopping.contains(&r.container_id)
        };
        // A swap that failed is rolled back: the newest revision never became ready, nothing
        // older runs any more (it was stopped to make room), and an older revision exists.
        let failed = |rev: &str| {
            !observed.ever_ready.contains(rev)
                && (observed.failures.keys().any(|(r, _)| r == rev)
                    || observed
                        .replicas
                        .iter()
                        .any(|r| r.revision == rev && r.restarts > 0 && !r.ready))
        };
        let older_running = observed
            .replicas
            .iter()
            .filter(live)
            .any(|r| r.revision != newest.name);
        let previous = revisions
            .iter()
            .filter(|r| ComponentId::of(r) == **id && r.number < newest.number && !failed(&r.name))
            .max_by_key(|r| r.number);
        let rolled_back = match previous {
            Some(p) if failed(&newest.name) && !older_running => Some(p),
            _ => None,
        };
        let target = rolled_back.unwrap_or(newest);
        // A canary keeps the rolled-out revision it shares the traffic with: that one runs
        // (and scales) on its own, and is never stopped to make room for the canary.
        let split = component_split(id, entry, revisions, observed).0;
        let pinned: BTreeSet<&str> = split
            .traffic
            .iter()
            .filter(|t| !t.latest_revision)
            .map(|t| t.revision_name.as_str())
            .chain(
                entry
                    .rolled_out_revision(revisions)
                    .map(|r| r.name.as_str()),
            )
            .collect();
        let want = wanted_replicas(&entry.component, &target.name, observed);
        let replicas_of = |revision: &str| -> Vec<&ObservedReplica> {
            observed
                .replicas
                .iter()
                .filter(|r| r.revision == revision && !observed.stopping.contains(&r.container_id))
                .collect()
        };
        let mine = replicas_of(&target.name);
        let filled = std::iter::once(target.name.as_str())
            .chain(pinned.iter().copied().filter(|p| *p != target.name));
        for revision in filled {
            let existing = replicas_of(revision);
            for index in 0..wanted_replicas(&entry.component, revision, observed) {
                let key = (revision.to_string(), index);
                if existing.iter().any(|r| r.replica == index) || observed.creating.contains(&key) {
                    continue;
                }
                let create = Action::Create {
                    revision: key.0.clone(),
                    replica: index,
                };
                match observed.failures.get(&key) {
                    Some(f) => {
                        let retry_at = f.at + backoff(f.attempts.saturating_sub(1));
                        if now >= retry_at {
                            out.actions.push(create);
                        } else {
                            wake(retry_at, &mut out);
                        }
                    }
                    None => out.actions.push(create),
                }
            }
        }
        let target_ready = mine.iter().filter(|r| r.ready && r.replica < want).count() as u32;
        let rolled_out = target_ready >= want;
        let swap = (0..want).any(|i| {
            observed
                .pending
                .get(&(target.name.clone(), i))
                .is_some_and(|p| p.swap)
        });

        for r in observed.replicas.iter().filter(|r| {
            ComponentId::eq(&r.component, id) && !observed.stopping.contains(&r.container_id)
        }) {
            let is_target = r.revision == target.name;
            let is_pinned = pinned.contains(r.revision.as_str());
            if known
                .get(r.revision.as_str())
                .is_some_and(|k| k.key != r.spec_hash)
            {
                out.actions.push(Action::Retire {
                    container_id: r.container_id.clone(),
                    reason: format!("it does not run what revision {} runs", r.revision),
                });
                continue;
            }
            let wanted = wanted_replicas(&entry.component, &r.revision, observed);
            if (is_target || is_pinned) && r.replica >= wanted {
                out.actions.push(Action::Retire {
                    container_id: r.container_id.clone(),
                    reason: format!("scaled to {wanted} replicas"),
                });
                continue;
            }
            if !is_target && !is_pinned && rolled_back.is_some() {
                out.actions.push(Action::Retire {
                    container_id: r.container_id.clone(),
                    reason: format!(
                        "revision {} never became ready: rolling back to {}",
                        r.revision, target.name
                    ),
                });
                continue;
            }
            if !is_target && !is_pinned && swap {
                out.actions.push(Action::Retire {
                    container_id: r.container_id.clone(),
                    reason: format!(
                        "making room: revision {} needs what this replica holds",
                        target.name
                    ),
                });
                continue;
            }
            if !is_target && !is_pinned && (rolled_out || !known.contains_key(r.revision.as_str()))
            {
                out.actions.push(Action::Retire {
                    container_id: r.container_id.clone(),
                    reason: format!("replaced by revision {}", target.name),
                });
                continue;
            }
            // Crashed, or told to restart by its liveness probe: restart after the backoff.
            if matches!(
                r.state,
                ContainerState::Exited | ContainerState::Dead | ContainerState::Created
            ) {
                let since = r.exited_at.unwrap_or(now);
                let restart_at = since + backoff(r.restarts);
                if now >= restart_at {
                    out.actions.push(Action::Restart {
                        container_id: r.container_id.clone(),
                    });
                } else {
                    wake(restart_at, &mut out);
                }
            }
        }
    }

    // Containers of services or components no longer desired.
    for r in &observed.replicas {
        if observed.stopping.contains(&r.container_id) || desired_ids.contains_key(&r.component) {
            continue;
        }
        out.actions.push(Action::Retire {
            container_id: r.container_id.clone(),
            reason: "its InferenceService is no longer in the folder".into(),
        });
    }
    out.actions.sort();
    out.actions.dedup();
    out
}

/// What a component looks like to a user: KServe's status fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    pub component: String,
    pub latest_created_revision: Option<String>,
    pub latest_ready_revision: Option<String>,
    /// The last revision that had 100 % of the traffic (KServe's rollout bookkeeping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_rolledout_revision: Option<String>,
    /// The one rolled out before it: where a rollback after a promotion goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_rolledout_revision: Option<String>,
    /// Where requests go: the latest ready revision, and with `canaryTrafficPercent` the
    /// rolled-out one beside it (tag `prev`). Empty while no revision is ready.
    pub traffic: Vec<TrafficTarget>,
    pub ready: bool,
    /// Why it is not ready, when it is not.
    pub reason: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficTarget {
    pub revision_name: String,
    pub percent: u32,
    /// Knative's `latestRevision`: the entry that follows the latest ready revision.
    pub latest_revision: bool,
    /// `latest` or `prev`: the target has its own host, `<tag>-<isvc>-<component>.<ns>...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// That host's URL, for a tagged target (filled in by the API, which knows the domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl TrafficTarget {
    pub fn new(revision: &str, percent: u32, latest_revision: bool, tag: Option<&str>) -> Self {
        TrafficTarget {
            revision_name: revision.to_string(),
            percent,
            latest_revision,
            tag: tag.map(str::to_string),
            url: None,
        }
    }
}

/// A component's revisions, oldest first.
fn revisions_of<'a>(id: &ComponentId, revisions: &'a [RevisionRecord]) -> Vec<&'a RevisionRecord> {
    let mut mine: Vec<&RevisionRecord> = revisions
        .iter()
        .filter(|r| ComponentId::of(r) == *id)
        .collect();
    mine.sort_by_key(|r| r.number);
    mine
}

/// Whether a revision has come up, as Knative's `latestReadyRevision` counts it: a replica is
/// ready, or it runs none on purpose (scaled to zero, a request wakes it) and it is the latest
/// or was ready once since the daemon started.
fn came_up(entry: &DesiredEntry, revision: &str, latest: bool, observed: &Observed) -> bool {
    observed
        .replicas
        .iter()
        .any(|r| r.revision == revision && r.ready)
        || (wanted_replicas(&entry.component, revision, observed) == 0
            && (latest || observed.ever_ready.contains(revision)))
}

/// A component's traffic split now, and the record to keep for it: [`traffic::split`] over
/// its revisions. A revision counts as ready when it came up, or when the record says it did
/// (it was the latest ready or rolled out before this daemon started), so a restart does not
/// move the traffic.
pub fn component_split(
    id: &ComponentId,
    entry: &DesiredEntry,
    revisions: &[RevisionRecord],
    observed: &Observed,
) -> (Split, ComponentRecord) {
    let record = observed.records.get(id).cloned().unwrap_or_default();
    let mine = revisions_of(id, revisions);
    let history: Vec<traffic::Revision> = mine
        .iter()
        .enumerate()
        .map(|(i, r)| traffic::Revision {
            name: r.name.clone(),
            ready: came_up(entry, &r.name, i + 1 == mine.len(), observed)
                || record.mentions(&r.name),
        })
        .collect();
    let scaling = &entry.component.scaling;
    let mut rollout = record.rollout.clone();
    if let Some(default) = entry.rolled_out_revision(revisions) {
        rollout.latest_rolledout_revision = Some(default.name.clone());
    }
    let split = traffic::split(
        &history,
        &rollout,
        scaling.canary_traffic_percent,
        scaling.tag_routing,
    );
    let kept = ComponentRecord {
        rollout: split.rollout.clone(),
        latest_ready_revision: split.latest_ready_revision.clone(),
    };
    (split, kept)
}

/// The status of one component from its revisions, replicas and rollout record. It is ready
/// when its latest revision has come up.
pub fn component_status(
    id: &ComponentId,
    entry: &DesiredEntry,
    revisions: &[RevisionRecord],
    observed: &Observed,
) -> ComponentStatus {
    let (split, _) = component_split(id, entry, revisions, observed);
    let latest = split.latest_created_revision;
    let ready = latest
        .as_deref()
        .is_some_and(|l| came_up(entry, l, true, observed));
    let (reason, message) = if ready {
        (None, None)
    } else {
        not_ready_reason(
            latest.as_deref(),
            split.latest_ready_revision.as_deref(),
            observed,
        )
    };
    ComponentStatus {
        component: id.component.clone(),
        latest_created_revision: latest,
        latest_ready_revision: split.latest_ready_revision,
        latest_rolledout_revision: split.rollout.latest_rolledout_revision,
        previous_rolledout_revision: split.rollout.previous_rolledout_revision,
        traffic: split.traffic,
        ready,
        reason,
        message,
    }
}

fn not_ready_reason(
    latest: Option<&str>,
    latest_ready: Option<&str>,
    observed: &Observed,
) -> (Option<String>, Option<String>) {
    let Some(latest) = latest else {
        return (
            Some("RevisionMissing".into()),
            Some("no revision yet".into()),
        );
    };
    let serving = latest_ready
        .map(|r| format!("; revision {r} keeps serving"))
        .unwrap_or_default();
    match observed.models.get(latest) {
        Some(ModelWait::Loading(progress)) => {
            return (
                Some("ModelLoading".into()),
                Some(format!(
                    "revision {latest} waits for its model: {progress}{serving}"
                )),
            )
        }
        // KServe's reason when the storage initializer fails.
        Some(ModelWait::Failed(reason)) => {
            return (
                Some("ModelLoadFailed".into()),
                Some(format!("revision {latest}: {reason}{serving}")),
            )
        }
        None => {}
    }
    if let Some(reason) = observed
        .pending
        .iter()
        .find(|((rev, _), _)| rev == latest)
        .map(|(_, p)| &p.reason)
    {
        return (
            Some("Unschedulable".into()),
            Some(format!(
                "revision {latest} cannot be placed: {reason}{serving}"
            )),
        );
    }
    if let Some(f) = observed
        .failures
        .iter()
        .find(|((rev, _), _)| rev == latest)
        .map(|(_, f)| f)
    {
        return (
            Some("RevisionFailed".into()),
            Some(format!("revision {latest} failed: {}{serving}", f.reason)),
        );
    }
    if let Some(r) = observed
        .replicas
        .iter()
        .find(|r| r.revision == latest && r.exited_at.is_some())
    {
        return (
            Some("CrashLoopBackOff".into()),
            Some(format!(
                "revision {latest} replica {} exited (restarted {} times so far){serving}",
                r.replica, r.restarts
            )),
        );
    }
    (
        Some("RevisionNotReady".into()),
        Some(format!(
            "waiting for revision {latest} to become ready{serving}"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::catalog::{next_catalog, parse_file, Catalog, LoadOptions};
    use std::sync::Arc;

    fn component(image: &str, min: i32) -> DesiredComponent {
        let text = format!(
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {{name: iris}}\nspec:\n  predictor:\n    minReplicas: {min}\n    containers:\n    - {{name: kserve-container, image: '{image}'}}\n"
        );
        let opts = LoadOptions::default();
        let c = next_catalog(
            &Catalog::default(),
            &[Arc::new(parse_file("iris.yaml", &text, &opts))],
            &opts,
        );
        c.services
            .values()
            .next()
            .unwrap()
            .desired
            .as_ref()
            .unwrap()
            .components[0]
            .clone()
    }

    fn id() -> ComponentId {
        ComponentId {
            namespace: "default".into(),
            service: "iris".into(),
            component: "predictor".into(),
        }
    }

    fn entry(image: &str, min: i32) -> DesiredEntry {
        DesiredEntry {
            id: id(),
            component: component(image, min),
            source_dir: ".".into(),
            rolled_out: None,
        }
    }

    fn replica(revision: &str, index: u32, state: ContainerState, ready: bool) -> ObservedReplica {
        ObservedReplica {
            container_id: format!("{revision}-{index}"),
            component: id(),
            revision: revision.into(),
            replica: index,
            spec_hash: String::new(),
            state,
            ready,
            restarts: 0,
            exited_at: None,
            started_at: None,
        }
    }

    const T0: Duration = Duration::from_secs(100);

    /// Replicas run what their revision runs (their spec hash is its key).
    fn keyed(mut o: Observed, revisions: &[RevisionRecord]) -> Observed {
        for r in &mut o.replicas {
            if let Some(rev) = revisions.iter().find(|rev| rev.name == r.revision) {
                r.spec_hash = rev.key.clone();
            }
        }
        o
    }

    fn create(rev: &str, replica: u32) -> Action {
        Action::Create {
            revision: rev.into(),
            replica,
        }
    }

    fn retire(id: &str, reason: &str) -> Action {
        Action::Retire {
            container_id: id.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_to_five_minutes() {
        let secs: Vec<u64> = (0..7).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn revisions_are_numbered_and_made_only_when_what_runs_changes() {
        let first = new_revisions(&[], &[entry("img:1", 2)], 1000);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].name, "iris-predictor-00001");
        // Replica bounds change: same revision.
        assert!(new_revisions(&first, &[entry("img:1", 3)], 2000).is_empty());
        let second = new_revisions(&first, &[entry("img:2", 2)], 2000);
        assert_eq!(second[0].name, "iris-predictor-00002");
        // Back to the first spec: still a new revision, as Knative does.
        let all: Vec<_> = first.iter().chain(&second).cloned().collect();
        assert_eq!(new_revisions(&all, &[entry("img:1", 2)], 3000)[0].number, 3);
    }

    #[test]
    fn rollout_keeps_the_old_revision_until_the_new_one_is_ready() {
        let desired = [entry("img:2", 1)];
        let mut revisions = new_revisions(&[], &[entry("img:1", 1)], 1);
        revisions.extend(new_revisions(&revisions, &desired, 2));
        let old = "iris-predictor-00001";
        let new = "iris-predictor-00002";
        // (observed replicas, expected actions)
        let rows: Vec<(Vec<ObservedReplica>, Vec<Action>)> = vec![
            (
                vec![replica(old, 0, ContainerState::Running, true)],
                vec![create(new, 0)],
            ),
            (
                vec![
                    replica(old, 0, ContainerState::Running, true),
                    replica(new, 0, ContainerState::Running, false),
                ],
                vec![],
            ),
            (
                vec![
                    replica(old, 0, ContainerState::Running, true),
                    replica(new, 0, ContainerState::Running, true),
                ],
                vec![retire(
                    "iris-predictor-00001-0",
                    "replaced by revision iris-predictor-00002",
                )],
            ),
        ];
        for (replicas, expected) in rows {
            let observed = keyed(
                Observed {
                    replicas: replicas.clone(),
                    ..Default::default()
                },
                &revisions,
            );
            assert_eq!(
                plan(&revisions, &desired, &observed, T0).actions,
                expected,
                "{replicas:?}"
            );
        }
    }

    #[test]
    fn crashed_replicas_restart_after_their_backoff() {
        let desired = [entry("img:1", 1)];
        let revisions = new_revisions(&[], &desired, 1);
        let rev = "iris-predictor-00001";
        let mut crashed = replica(rev, 0, ContainerState::Exited, false);
        crashed.exited_at = Some(T0);
        crashed.restarts = 2;
        let observed = keyed(
            Observed {
                replicas: vec![crashed],
                ..Default::default()
            },
            &revisions,
        );
        let early = plan(
            &revisions,
            &desired,
            &observed,
            T0 + Duration::from_secs(39),
        );
        assert!(early.actions.is_empty());
        assert_eq!(early.wake_at, Some(T0 + Duration::from_secs(40)));
        let due = plan(
            &revisions,
            &desired,
            &observed,
            T0 + Duration::from_secs(40),
        );
        assert_eq!(
            due.actions,
            [Action::Restart {
                container_id: format!("{rev}-0")
            }]
        );
    }

    #[test]
    fn failed_creations_retry_with_backoff() {
        let desired = [entry("img:1", 1)];
        let revisions = new_revisions(&[], &desired, 1);
        let rev = "iris-predictor-00001".to_string();
        let mut observed = Observed::default();
        observed.failures.insert(
            (rev.clone(), 0),
            CreateFailure {
                attempts: 2,
                at: T0,
                reason: "image not found".into(),
            },
        );
        assert_eq!(
            plan(
                &revisions,
                &desired,
                &observed,
                T0 + Duration::from_secs(19)
            )
            .wake_at,
            Some(T0 + Duration::from_secs(20))
        );
        assert_eq!(
            plan(
                &revisions,
                &desired,
                &observed,
                T0 + Duration::from_secs(20)
            )
            .actions,
            [create(&rev, 0)]
        );
        // Being created right now: nothing to do.
        observed.failures.clear();
        observed.creating.insert((rev, 0));
        assert!(plan(&revisions, &desired, &observed, T0).actions.is_empty());
    }

    #[test]
    fn scaling_and_removal() {
        let desired = [entry("img:1", 2)];
        let revisions = new_revisions(&[], &desired, 1);
        let rev = "iris-predictor-00001";
        let observed = keyed(
            Observed {
                replicas: vec![replica(rev, 0, ContainerState::Running, true)],
                ..Default::default()
            },
            &revisions,
        );
        assert_eq!(
            plan(&revisions, &desired, &observed, T0).actions,
            [create(rev, 1)]
        );

        let fewer = [entry("img:1", 1)];
        let two = keyed(
            Observed {
                replicas: vec![
                    replica(rev, 0, ContainerState::Running, true),
                    replica(rev, 1, ContainerState::Running, true),
                ],
                ..Default::default()
            },
            &revisions,
        );
        assert_eq!(
            plan(&revisions, &fewer, &two, T0).actions,
            [retire("iris-predictor-00001-1", "scaled to 1 replicas")]
        );

        // The service left the folder: every replica goes.
        assert_eq!(
            plan(&revisions, &[], &two, T0).actions,
            [
                retire(
                    "iris-predictor-00001-0",
                    "its InferenceService is no longer in the folder"
                ),
                retire(
                    "iris-predictor-00001-1",
                    "its InferenceService is no longer in the folder"
                ),
            ]
        );
    }

    #[test]
    fn a_new_revision_that_needs_the_old_ones_gpu_swaps_and_rolls_back_if_it_fails() {
        let desired = [entry("img:2", 1)];
        let mut revisions = new_revisions(&[], &[entry("img:1", 1)], 1);
        revisions.extend(new_revisions(&revisions, &desired, 2));
        let (old, new) = ("iris-predictor-00001", "iris-predictor-00002");
        let pending = |swap| {
            BTreeMap::from([(
                (new.to_string(), 0),
                Pending {
                    reason: "0/1 GPUs available: 1 is allocated.".into(),
                    swap,
                },
            )])
        };
        // The old replica holds the only GPU: it makes room.
        let observed = keyed(
            Observed {
                replicas: vec![replica(old, 0, ContainerState::Running, true)],
                pending: pending(true),
                ..Default::default()
            },
            &revisions,
        );
        assert_eq!(
            plan(&revisions, &desired, &observed, T0).actions,
            [
                create(new, 0),
                retire(
                    "iris-predictor-00001-0",
                    "making room: revision iris-predictor-00002 needs what this replica holds"
                )
            ]
        );
        // Not when freeing it would not help.
        let observed = keyed(
            Observed {
                replicas: vec![replica(old, 0, ContainerState::Running, true)],
                pending: pending(false),
                ..Default::default()
            },
            &revisions,
        );
        assert_eq!(
            plan(&revisions, &desired, &observed, T0).actions,
            [create(new, 0)]
        );
        // The new revision never becomes ready and nothing older runs: back to the old one.
        let mut crashing = replica(new, 0, ContainerState::Exited, false);
        crashing.restarts = 1;
        crashing.exited_at = Some(T0);
        let observed = keyed(
            Observed {
                replicas: vec![crashing],
                ..Default::default()
            },
            &revisions,
        );
        assert_eq!(
            plan(&revisions, &desired, &observed, T0).actions,
            [create(old, 0), retire("iris-predictor-00002-0", "revision iris-predictor-00002 never became ready: rolling back to iris-predictor-00001")]
        );
        // A revision that was ready once is not rolled back when a replica crashes later.
        let mut crashing = replica(new, 0, ContainerState::Exited, false);
        crashing.restarts = 1;
        crashing.exited_at = Some(T0);
        let mut observed = keyed(
            Observed {
                replicas: vec![crashing],
                ..Default::default()
            },
            &revisions,
        );
        observed.ever_ready.insert(new.into());
        assert!(plan(&revisions, &desired, &observed, T0).actions.is_empty());
    }

    #[test]
    fn a_container_that_does_not_run_its_revision_is_retired() {
        let desired = [entry("img:1", 1)];
        let revisions = new_revisions(&[], &desired, 1);
        let mut stranger = replica("iris-predictor-00001", 0, ContainerState::Running, true);
        stranger.spec_hash = "0000000000000000".into();
        let observed = Observed {
            replicas: vec![stranger],
            ..Default::default()
        };
        assert_eq!(
            plan(&revisions, &desired, &observed, T0).actions,
            [retire(
                "iris-predictor-00001-0",
                "it does not run what revision iris-predictor-00001 runs"
            )]
        );
    }

    fn with_canary(mut e: DesiredEntry, percent: Option<i64>) -> DesiredEntry {
        e.component.scaling.canary_traffic_percent = percent;
        e
    }

    fn record(latest_ready: &str, rolled_out: &str, previous: Option<&str>) -> ComponentRecord {
        ComponentRecord {
            rollout: traffic::Rollout {
                latest_rolledout_revision: Some(rolled_out.into()),
                previous_rolledout_revision: previous.map(Into::into),
            },
            latest_ready_revision: Some(latest_ready.into()),
        }
    }

    fn percents(s: &ComponentStatus) -> Vec<(&str, u32, Option<&str>)> {
        s.traffic
            .iter()
            .map(|t| (t.revision_name.as_str(), t.percent, t.tag.as_deref()))
            .collect()
    }

    /// Two revisions of `iris`: 00001 runs img:1, 00002 runs img:2 (the desired one).
    fn two_revisions(percent: Option<i64>) -> (DesiredEntry, Vec<RevisionRecord>) {
        let d = with_canary(entry("img:2", 1), percent);
        let mut revisions = new_revisions(&[], &[entry("img:1", 1)], 1);
        revisions.extend(new_revisions(&revisions, std::slice::from_ref(&d), 2));
        (d, revisions)
    }

    const OLD: &str = "iris-predictor-00001";
    const NEW: &str = "iris-predictor-00002";

    /// One ready replica of OLD and one of NEW.
    fn both_ready(revisions: &[RevisionRecord]) -> Observed {
        keyed(
            Observed {
                replicas: vec![
                    replica(OLD, 0, ContainerState::Running, true),
                    replica(NEW, 0, ContainerState::Running, true),
                ],
                ..Default::default()
            },
            revisions,
        )
    }

    #[test]
    fn a_canary_runs_beside_the_rolled_out_revision_which_keeps_its_replicas() {
        let (d, revisions) = two_revisions(Some(10));
        let desired = [d.clone()];
        let mut observed = both_ready(&revisions);
        observed.records.insert(id(), record(OLD, OLD, None));
        let s = component_status(&id(), &d, &revisions, &observed);
        assert_eq!(percents(&s), [(NEW, 10, None), (OLD, 90, Some("prev"))]);
        assert_eq!(s.latest_rolledout_revision.as_deref(), Some(OLD));
        assert!(s.ready);
        // The new one is ready, but the old one is not replaced: it carries 90 %.
        assert!(plan(&revisions, &desired, &observed, T0).actions.is_empty());
        // It runs and scales on its own: the autoscaler wants 2 of it.
        observed.scale.insert(OLD.into(), 2);
        assert_eq!(
            plan(&revisions, &desired, &observed, T0).actions,
            [create(OLD, 1)]
        );
        // And is never stopped to make room for the canary: the canary waits instead.
        observed.scale.clear();
        observed.replicas.retain(|r| r.revision == OLD);
        observed.pending.insert(
            (NEW.into(), 0),
            Pending {
                reason: "0/1 GPUs available: 1 is allocated.".into(),
                swap: true,
            },
        );
        assert_eq!(
            plan(&revisions, &desired, &observed, T0).actions,
            [create(NEW, 0)]
        );
        let s = component_status(&id(), &d, &revisions, &observed);
        assert_eq!(
            percents(&s),
            [(OLD, 10, None), (OLD, 90, Some("prev"))],
            "a canary that is not ready leaves its share with the rolled-out revision"
        );
        assert_eq!(s.reason.as_deref(), Some("Unschedulable"));
    }

    #[test]
    fn promotion_replaces_the_old_revision_and_rollback_brings_it_back() {
        // Promoted: canaryTrafficPercent removed.
        let (d, revisions) = two_revisions(None);
        let mut observed = both_ready(&revisions);
        observed.records.insert(id(), record(NEW, OLD, None));
        let (split, kept) = component_split(&id(), &d, &revisions, &observed);
        assert_eq!(kept, record(NEW, NEW, Some(OLD)));
        assert_eq!(split.traffic.len(), 1);
        observed.records.insert(id(), kept);
        assert_eq!(
            plan(&revisions, std::slice::from_ref(&d), &observed, T0).actions,
            [retire(
                "iris-predictor-00001-0",
                "replaced by revision iris-predictor-00002"
            )]
        );
        // Rollback after the promotion: canaryTrafficPercent 0 on the promoted spec. The old
        // revision (stopped by now) gets everything back and is started again.
        let rolled_back = with_canary(d, Some(0));
        observed.replicas.retain(|r| r.revision == NEW);
        let (split, kept) = component_split(&id(), &rolled_back, &revisions, &observed);
        assert_eq!(kept, record(NEW, OLD, Some(OLD)));
        assert_eq!(
            split
                .traffic
                .iter()
                .map(|t| (t.revision_name.as_str(), t.percent))
                .collect::<Vec<_>>(),
            [(NEW, 0), (OLD, 100)]
        );
        observed.records.insert(id(), kept);
        assert_eq!(
            plan(&revisions, &[rolled_back], &observed, T0).actions,
            [create(OLD, 0)]
        );
    }

    #[test]
    fn the_record_keeps_the_split_while_replicas_come_back_after_a_restart() {
        // A daemon restart: nothing is ready yet, nothing was ready since it started.
        let (d, revisions) = two_revisions(Some(25));
        let mut observed = keyed(
            Observed {
                replicas: vec![
                    replica(OLD, 0, ContainerState::Running, false),
                    replica(NEW, 0, ContainerState::Running, false),
                ],
                ..Default::default()
            },
            &revisions,
        );
        let without = component_status(&id(), &d, &revisions, &observed);
        assert!(without.traffic.is_empty(), "{:?}", without.traffic);
        observed.records.insert(id(), record(NEW, OLD, None));
        let s = component_status(&id(), &d, &revisions, &observed);
        assert_eq!(percents(&s), [(NEW, 25, None), (OLD, 75, Some("prev"))]);
        assert!(plan(&revisions, &[d], &observed, T0).actions.is_empty());
    }

    /// The predictor entry of a KFServing v1alpha2 file, as the reconciler makes it.
    fn v1alpha2_file(text: &str) -> DesiredEntry {
        let opts = LoadOptions::default();
        let c = next_catalog(
            &Catalog::default(),
            &[Arc::new(parse_file("iris.yaml", text, &opts))],
            &opts,
        );
        assert!(
            c.services.values().all(|s| s.desired.is_some()),
            "{:?}",
            c.all_diagnostics()
        );
        let mut entries = desired_entries(&c, &[]);
        assert_eq!(entries.len(), 1);
        let mut e = entries.remove(0);
        e.id.service = id().service;
        e
    }

    /// A v1alpha2 file whose endpoints run `default_image` and `canary`'s.
    fn v1alpha2_entry(
        default_image: &str,
        percent: Option<u32>,
        canary: Option<&str>,
    ) -> DesiredEntry {
        let endpoint = |image: &str| {
            format!("    predictor:\n      custom:\n        container: {{name: kfserving-container, image: '{image}'}}\n")
        };
        let mut text = format!(
            "apiVersion: serving.kubeflow.org/v1alpha2\nkind: InferenceService\nmetadata: {{name: iris}}\nspec:\n  default:\n{}",
            endpoint(default_image)
        );
        if let Some(percent) = percent {
            text.push_str(&format!("  canaryTrafficPercent: {percent}\n"));
        }
        if let Some(image) = canary {
            text.push_str(&format!("  canary:\n{}", endpoint(image)));
        }
        v1alpha2_file(&text)
    }

    #[test]
    fn an_idle_revision_at_zero_stays_there_across_a_restart() {
        // minReplicas 0, scaled to zero before the restart: no container, and the autoscaler
        // has not decided yet.
        let d = entry("img:1", 0);
        let revisions = new_revisions(&[], std::slice::from_ref(&d), 1);
        let rev = "iris-predictor-00001";
        assert_eq!(fixed_replicas(&d.component), 1, "the initial scale");
        let mut observed = Observed::default();
        // A revision that never came up starts at its initial scale...
        assert_eq!(
            plan(&revisions, std::slice::from_ref(&d), &observed, T0).actions,
            [create(rev, 0)]
        );
        // ... one the record names had come up before: it keeps the replicas it has.
        observed.records.insert(id(), record(rev, rev, None));
        assert!(plan(&revisions, std::slice::from_ref(&d), &observed, T0)
            .actions
            .is_empty());
        let s = component_status(&id(), &d, &revisions, &observed);
        assert!(s.ready, "at zero, a request wakes it: {s:?}");
        assert_eq!(percents(&s), [(rev, 100, None)]);
        // With two running, both stay; with minReplicas 2, the floor holds.
        observed.replicas = vec![
            replica(rev, 0, ContainerState::Running, false),
            replica(rev, 1, ContainerState::Running, false),
        ];
        let observed = keyed(observed, &revisions);
        assert!(plan(&revisions, std::slice::from_ref(&d), &observed, T0)
            .actions
            .is_empty());
        let two = entry("img:1", 2);
        let mut one = observed.clone();
        one.replicas.truncate(1);
        assert_eq!(plan(&revisions, &[two], &one, T0).actions, [create(rev, 1)]);
    }

    #[test]
    fn kfserving_v1alpha2_rollout_samples_split_between_default_and_canary() {
        for (sample, canary) in [("canary", 10), ("pinned", 0)] {
            let path = crate::reconcile::traffic::tests::corpus_path(&format!(
                "isvc/kserve__kserve__docs__samples__rollouts__{sample}.yaml"
            ));
            let d = v1alpha2_file(&std::fs::read_to_string(path).unwrap());
            let revisions = new_revisions(&[], std::slice::from_ref(&d), 1);
            // Two revisions: the default endpoint's model (flowers), then the canary's
            // (flowers-2).
            assert_eq!(revisions.len(), 2, "{sample}");
            assert_eq!(
                revisions[0].key,
                d.rolled_out.as_ref().unwrap().revision_key
            );
            assert_eq!(revisions[1].key, d.component.revision_key);
            assert_ne!(revisions[0].key, revisions[1].key, "{sample}");
            let observed = both_ready(&revisions);
            let s = component_status(&id(), &d, &revisions, &observed);
            assert_eq!(
                percents(&s),
                [(NEW, canary, None), (OLD, 100 - canary, Some("prev"))],
                "{sample}"
            );
            assert_eq!(s.latest_rolledout_revision.as_deref(), Some(OLD));
        }
    }

    #[test]
    fn v1alpha2_default_and_canary_are_the_rolled_out_and_the_latest_revision() {
        let d = v1alpha2_entry("img:1", Some(20), Some("img:2"));
        assert_eq!(d.component.scaling.canary_traffic_percent, Some(20));
        let default = d.rolled_out.as_ref().expect("the default endpoint");
        assert_eq!(default.scaling.canary_traffic_percent, None);
        let revisions = new_revisions(&[], std::slice::from_ref(&d), 1);
        assert_eq!(
            revisions
                .iter()
                .map(|r| (
                    r.name.as_str(),
                    r.component_spec.template.container.image.as_str()
                ))
                .collect::<Vec<_>>(),
            [(OLD, "img:1"), (NEW, "img:2")]
        );
        assert!(new_revisions(&revisions, std::slice::from_ref(&d), 2).is_empty());
        // Both start at once: the default one needs no rollout to be ready first.
        let desired = [d.clone()];
        assert_eq!(
            plan(&revisions, &desired, &Observed::default(), T0).actions,
            [create(OLD, 0), create(NEW, 0)]
        );
        let mut observed = both_ready(&revisions);
        let s = component_status(&id(), &d, &revisions, &observed);
        assert_eq!(percents(&s), [(NEW, 20, None), (OLD, 80, Some("prev"))]);
        assert_eq!(s.latest_rolledout_revision.as_deref(), Some(OLD));
        assert!(plan(&revisions, &desired, &observed, T0).actions.is_empty());
        // The canary not ready: its share stays with the default.
        observed.replicas[1].ready = false;
        let s = component_status(&id(), &d, &revisions, &observed);
        assert_eq!(percents(&s), [(OLD, 20, None), (OLD, 80, Some("prev"))]);

        // KFServing's promotion: the canary's spec copied into the default, the canary
        // removed. No new revision; the canary's takes everything and is rolled out.
        observed.replicas[1].ready = true;
        observed
            .records
            .insert(id(), component_split(&id(), &d, &revisions, &observed).1);
        let promoted = v1alpha2_entry("img:2", None, None);
        assert!(new_revisions(&revisions, std::slice::from_ref(&promoted), 3).is_empty());
        let (split, kept) = component_split(&id(), &promoted, &revisions, &observed);
        assert_eq!(split.traffic.len(), 1);
        assert_eq!(split.traffic[0].revision_name, NEW);
        assert_eq!(kept.rollout.latest_rolledout_revision.as_deref(), Some(NEW));
        assert_eq!(
            kept.rollout.previous_rolledout_revision.as_deref(),
            Some(OLD)
        );

        // A default endpoint alone with canaryTrafficPercent 0 (allowed without a canary) is
        // not a v1beta1 pin: it takes everything.
        let alone = v1alpha2_entry("img:3", Some(0), None);
        assert_eq!(alone.component.scaling.canary_traffic_percent, None);
    }

    #[test]
    fn status_names_the_latest_ready_revision_and_why_not_ready() {
        let d = entry("img:2", 1);
        let mut revisions = new_revisions(&[], &[entry("img:1", 1)], 1);
        revisions.extend(new_revisions(&revisions, std::slice::from_ref(&d), 2));
        let mut observed = keyed(
            Observed {
                replicas: vec![replica(
                    "iris-predictor-00001",
                    0,
                    ContainerState::Running,
                    true,
                )],
                ..Default::default()
            },
            &revisions,
        );
        observed.failures.insert(
            ("iris-predictor-00002".into(), 0),
            CreateFailure {
                attempts: 1,
                at: T0,
                reason: "image img:2 not found".into(),
            },
        );
        let s = component_status(&id(), &d, &revisions, &observed);
        assert_eq!(
            s.latest_created_revision.as_deref(),
            Some("iris-predictor-00002")
        );
        assert_eq!(
            s.latest_ready_revision.as_deref(),
            Some("iris-predictor-00001")
        );
        assert_eq!(
            s.traffic,
            [TrafficTarget::new("iris-predictor-00001", 100, true, None)]
        );
        assert!(!s.ready);
        assert_eq!(s.reason.as_deref(), Some("RevisionFailed"));
        assert_eq!(
            s.message.as_deref(),
            Some("revision iris-predictor-00002 failed: image img:2 not found; revision iris-predictor-00001 keeps serving")
        );
        let c = conditions(&[s]);
        assert_eq!(
            (
                c[0].kind.as_str(),
                c[0].status.as_str(),
                c[0].reason.as_deref()
            ),
            ("Ready", "False", Some("RevisionFailed"))
        );
        assert_eq!(
            (c[1].kind.as_str(), c[1].status.as_str()),
            ("PredictorReady", "False")
        );
    }
}

/// A KServe status condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// KServe's conditions from the components' status: `PredictorReady` (and `TransformerReady`,
/// `ExplainerReady`) copied from each component, and `Ready` from the first that is not.
pub fn conditions(components: &[ComponentStatus]) -> Vec<Condition> {
    let mut out: Vec<Condition> = components
        .iter()
        .map(|c| {
            let mut name = c.component.clone();
            if let Some(first) = name.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            // Knative says Unknown while a revision is still coming up, False when it failed.
            let progressing = matches!(
                c.reason.as_deref(),
                Some("RevisionNotReady" | "RevisionMissing")
            );
            Condition {
                kind: format!("{name}Ready"),
                status: if c.ready {
                    "True"
                } else if progressing {
                    "Unknown"
                } else {
                    "False"
                }
                .into(),
                reason: c.reason.clone(),
                message: c.message.clone(),
            }
        })
        .collect();
    let first_bad = out.iter().find(|c| c.status != "True").cloned();
    out.insert(
        0,
        Condition {
            kind: "Ready".into(),
            status: match &first_bad {
                None if !components.is_empty() => "True".to_string(),
                None => "Unknown".to_string(),
                Some(c) => c.status.clone(),
            },
            reason: first_bad.as_ref().and_then(|c| c.reason.clone()),
            message: first_bad.and_then(|c| c.message),
        },
    );
    out
}
