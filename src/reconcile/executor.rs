//! The reconciler's loop and executor: the I/O around [`super::plan`].

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use super::model::{ModelAccess, ModelFor};
use super::plan::{
    component_split, component_status, conditions, desired_entries, new_revisions, plan, Action,
    ComponentId, ComponentStatus, Condition, CreateFailure, DesiredEntry, Observed,
    ObservedReplica, Pending, BACKOFF_RESET_AFTER,
};
use crate::gpu::{class_for, Inventory};
use crate::runtime::convert::{container_spec, ConvertContext, ModelMounts, SecurityPolicy};
use crate::runtime::{
    labels, ContainerEvents, ContainerInfo, ContainerRuntime, ContainerState, RuntimeSignal,
};
use crate::scheduler::{self, Allocation, Host};
use crate::spec::catalog::Catalog;
use crate::storage::models::ModelView;
use crate::store::{ComponentRecord, RevisionRecord, Store};
use crate::watch::FolderState;

/// Settings the reconciler takes from the daemon config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub policy: SecurityPolicy,
    pub shm_size_bytes: i64,
    /// Which daemon owns a container (label `gantry.dev/instance`): daemons with different
    /// state directories never touch each other's containers.
    pub instance: String,
    /// The GPUs the probe sees (updated by the daemon's polling thread).
    pub gpus: watch::Receiver<Inventory>,
    /// The machine as a scheduling target: its labels and allocatable cpu and memory.
    pub host: Host,
    /// NVML name → GPU class overrides.
    pub gpu_classes: BTreeMap<String, String>,
    /// The autoscaler's replica count per revision (empty: every revision runs its fixed
    /// count).
    pub scale: watch::Receiver<BTreeMap<String, u32>>,
    /// Takes a replica out of the routing and waits for its requests before it is stopped.
    pub drain: Option<Arc<dyn Drain>>,
    /// The data plane's port (what a transformer's `--predictor_host` points at).
    pub data_plane_port: u16,
    /// Models named by a storage URI (none: only local paths are mounted).
    pub models: Option<ModelAccess>,
}

impl std::fmt::Debug for dyn Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Drain")
    }
}

/// The data plane's side of stopping a replica: no new requests go to it, and the ones it has
/// finish (within `limit`) before the container is told to stop.
pub trait Drain: Send + Sync {
    fn drain(
        &self,
        container_id: &str,
        limit: Duration,
    ) -> futures_util::future::BoxFuture<'static, ()>;
}

/// One replica as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaView {
    pub revision: String,
    pub replica: u32,
    pub container_id: String,
    pub state: ContainerState,
    pub ready: bool,
    pub host_port: Option<u16>,
    pub restarts: u32,
    pub last_exit: Option<ExitInfo>,
    /// The GPUs it holds, by UUID.
    #[serde(default)]
    pub gpus: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitInfo {
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub finished_at: Option<String>,
    /// The last lines the container printed.
    pub last_log_lines: Vec<String>,
}

/// Something that happened, for `describe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub unix_time: i64,
    pub namespace: String,
    pub service: String,
    /// `Normal` or `Warning`, as Kubernetes events.
    pub kind: String,
    pub reason: String,
    pub message: String,
}

/// Per service: its components' status, replicas and recent events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    pub conditions: Vec<Condition>,
    pub components: Vec<ComponentStatus>,
    pub replicas: Vec<ReplicaView>,
    pub events: Vec<Event>,
    /// The models its components name (storage URIs fetched into the cache).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelView>,
}

impl ServiceStatus {
    /// The predictor's status: the component `kubectl get isvc` shows.
    pub fn predictor(&self) -> Option<&ComponentStatus> {
        let predictor = crate::spec::validate::ComponentKind::Predictor.as_str();
        self.components.iter().find(|c| c.component == predictor)
    }
}

/// What the reconciler publishes after every pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeStatus {
    /// By `(namespace, service)`.
    pub services: BTreeMap<(String, String), ServiceStatus>,
    pub passes: u64,
}

/// gantry's own knowledge of a replica, beyond what the engine reports.
#[derive(Debug, Clone, Default)]
struct Supervision {
    ready: bool,
    restarts: u32,
    exited_at: Option<Duration>,
    started_at: Option<Duration>,
    /// The prober task for the current run (host port it probes).
    probing: Option<(u16, tokio::task::AbortHandle)>,
    last_exit: Option<ExitInfo>,
}

struct Shared {
    supervision: Mutex<HashMap<String, Supervision>>,
    failures: Mutex<BTreeMap<(String, u32), CreateFailure>>,
    creating: Mutex<std::collections::BTreeSet<(String, u32)>>,
    stopping: Mutex<std::collections::BTreeSet<String>>,
    /// Replicas that cannot be placed yet, with the scheduler's reason.
    pending: Mutex<BTreeMap<(String, u32), Pending>>,
    /// Revisions that have had a ready replica since the daemon started.
    ever_ready: Mutex<std::collections::BTreeSet<String>>,
    /// Resources placed for replicas being created (no container to read them from yet).
    reserved: Mutex<BTreeMap<(String, u32), Allocation>>,
    /// Each component's rollout bookkeeping, as saved in the store.
    records: Mutex<BTreeMap<ComponentId, ComponentRecord>>,
    events: Mutex<Vec<Event>>,
    wake: Notify,
    epoch: Instant,
}

impl Shared {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn event(&self, namespace: &str, service: &str, warning: bool, reason: &str, message: String) {
        if warning {
            warn!(namespace, service, reason, "{message}");
        } else {
            info!(namespace, service, reason, "{message}");
        }
        let mut events = self.events.lock().unwrap();
        events.push(Event {
            unix_time: unix_now(),
            namespace: namespace.into(),
            service: service.into(),
            kind: if warning { "Warning" } else { "Normal" }.into(),
            reason: reason.into(),
            message,
        });
        let excess = events.len().saturating_sub(1000);
        events.drain(..excess);
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Runs the reconciler until `shutdown` fires. Containers are left running on shutdown: the
/// next start adopts them.
pub async fn run<R: ContainerRuntime + ContainerEvents>(
    runtime: Arc<R>,
    store: Store,
    settings: Settings,
    mut folder: watch::Receiver<FolderState>,
    publish: watch::Sender<RuntimeStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let records = store.components().unwrap_or_else(|e| {
        warn!(error = %e, "cannot read the rollout records; traffic starts from the revisions");
        BTreeMap::new()
    });
    let shared = Arc::new(Shared {
        supervision: Mutex::new(HashMap::new()),
        failures: Mutex::new(BTreeMap::new()),
        creating: Mutex::new(Default::default()),
        stopping: Mutex::new(Default::default()),
        pending: Mutex::new(BTreeMap::new()),
        ever_ready: Mutex::new(Default::default()),
        reserved: Mutex::new(BTreeMap::new()),
        records: Mutex::new(records),
        events: Mutex::new(Vec::new()),
        wake: Notify::new(),
        epoch: Instant::now(),
    });
    // Subscribe before the first list, so nothing that happens after it is missed.
    let mut signals = match runtime.subscribe().await {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "cannot follow container events; relying on periodic listing");
            None
        }
    };
    let client = reqwest::Client::new();
    // The autoscaler's decisions wake the loop; if it is gone, its last ones stand.
    let mut scale = Some(settings.scale.clone());
    // A model that becomes ready (or fails) wakes the loop.
    let mut models = settings.models.as_ref().map(|m| m.models.changes());
    let mut passes = 0u64;
    let mut wake_at: Option<Duration> = None;
    let mut first_pass = true;
    loop {
        let folder_state = folder.borrow_and_update().clone();
        // While the folder is missing the last desired state stands: nothing is stopped.
        if folder_state.loads > 0 && folder_state.folder_present {
            passes += 1;
            wake_at = pass(
                &runtime,
                &store,
                &settings,
                &folder_state.catalog,
                &shared,
                &client,
                &publish,
                passes,
                first_pass,
            )
            .await;
            first_pass = false;
        }
        let sleep_for = wake_at
            .map(|t| t.saturating_sub(shared.now()))
            .unwrap_or(Duration::from_secs(10))
            .min(Duration::from_secs(10));
        tokio::select! {
            _ = shutdown.changed() => return,
            r = folder.changed() => if r.is_err() { return },
            r = async {
                match scale.as_mut() {
                    Some(s) => s.changed().await,
                    None => std::future::pending().await,
                }
            } => if r.is_err() { scale = None },
            _ = shared.wake.notified() => {}
            r = async {
                match models.as_mut() {
                    Some(m) => m.changed().await,
                    None => std::future::pending().await,
                }
            } => if r.is_err() { models = None },
            signal = async {
                match signals.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if signal.is_none() {
                    signals = None;
                }
                if let Some(RuntimeSignal::Resync) = signal {
                    info!("container events reconnected; listing again");
                }
            }
            _ = tokio::time::sleep(sleep_for) => {}
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn pass<R: ContainerRuntime + ContainerEvents>(
    runtime: &Arc<R>,
    store: &Store,
    settings: &Settings,
    catalog: &Arc<Catalog>,
    shared: &Arc<Shared>,
    client: &reqwest::Client,
    publish: &watch::Sender<RuntimeStatus>,
    passes: u64,
    first_pass: bool,
) -> Option<Duration> {
    let history = match store.revisions() {
        Ok(h) => h,
        Err(e) => {
            warn!(error = %e, "cannot read revisions");
            return Some(shared.now() + Duration::from_secs(5));
        }
    };
    let desired = desired_entries(catalog, &history);
    let added = new_revisions(&history, &desired, unix_now());
    if let Err(e) = store.add_revisions(&added) {
        warn!(error = %e, "cannot save revisions");
        return Some(shared.now() + Duration::from_secs(5));
    }
    for r in &added {
        shared.event(
            &r.namespace,
            &r.service,
            false,
            "RevisionCreated",
            format!("created revision {}", r.name),
        );
    }
    let mut revisions = history;
    revisions.extend(added);

    // What is in flight is read before listing: a creation that finishes in between is then
    // either in the list or still marked as creating, never neither.
    let creating = shared.creating.lock().unwrap().clone();
    let reserved: Vec<Allocation> = shared.reserved.lock().unwrap().values().cloned().collect();
    let stopping = shared.stopping.lock().unwrap().clone();
    let containers = match runtime.list().await {
        Ok(c) => c
            .into_iter()
            .filter(|c| c.labels.get(labels::INSTANCE) == Some(&settings.instance))
            .collect::<Vec<_>>(),
        Err(e) => {
            warn!(error = %e, "cannot list containers");
            return Some(shared.now() + Duration::from_secs(2));
        }
    };
    // A retired container stays marked until the engine no longer lists it.
    shared
        .stopping
        .lock()
        .unwrap()
        .retain(|id| containers.iter().any(|c| &c.id == id));
    let mut observed = observe(&containers, shared, runtime, client, first_pass).await;
    observed.creating = creating;
    observed.stopping = stopping;
    observed.pending = shared.pending.lock().unwrap().clone();
    observed.scale = settings.scale.borrow().clone();
    {
        let mut ever_ready = shared.ever_ready.lock().unwrap();
        ever_ready.extend(
            observed
                .replicas
                .iter()
                .filter(|r| r.ready)
                .map(|r| r.revision.clone()),
        );
        observed.ever_ready = ever_ready.clone();
    }
    // Models: fetched as soon as a component names one (before any replica asks), and kept
    // from eviction while a desired component or a revision with replicas names them.
    if let Some(access) = &settings.models {
        let running = revisions
            .iter()
            .filter(|r| observed.replicas.iter().any(|o| o.revision == r.name));
        access.keep(
            &catalog.objects,
            desired
                .iter()
                .map(|d| {
                    (
                        d.id.namespace.as_str(),
                        &d.component.template,
                        Path::new(d.source_dir.as_str()),
                    )
                })
                .chain(running.map(|r| {
                    (
                        r.namespace.as_str(),
                        &r.component_spec.template,
                        Path::new(r.source_dir.as_str()),
                    )
                })),
        );
        for d in &desired {
            let Some(latest) = revisions
                .iter()
                .filter(|r| ComponentId::of(r) == d.id)
                .max_by_key(|r| r.number)
            else {
                continue;
            };
            if let ModelFor::Wait(wait) = access.model_for(
                &catalog.objects,
                &d.id.namespace,
                &latest.component_spec.template,
                Path::new(&latest.source_dir),
            ) {
                observed.models.insert(latest.name.clone(), wait);
            }
        }
    }
    observed.records = shared.records.lock().unwrap().clone();
    observed.records = keep_records(store, shared, &desired, &revisions, &observed);
    let now = shared.now();
    let decided = plan(&revisions, &desired, &observed, now);
    let mut allocations = allocations_of(&containers);
    allocations.extend(reserved);
    let inventory = settings.gpus.borrow().clone();
    for action in decided.actions {
        // A replica whose model is not here yet is not placed: it would hold a GPU while
        // it waits.
        let model = match &action {
            Action::Create { revision, .. } => {
                match model_of(settings, catalog, &revisions, revision) {
                    ModelFor::Wait(wait) => {
                        observed.models.insert(revision.clone(), wait);
                        continue;
                    }
                    ModelFor::Mount(m) => Some(m),
                    ModelFor::Nothing => None,
                }
            }
            _ => None,
        };
        let placed = match &action {
            Action::Create { revision, replica } => {
                match place(
                    settings,
                    &inventory,
                    &allocations,
                    &revisions,
                    revision,
                    *replica,
                    shared,
                ) {
                    Some(allocation) => {
                        allocations.push(allocation.clone());
                        Some(allocation)
                    }
                    None => continue,
                }
            }
            _ => None,
        };
        execute(
            action,
            placed,
            model,
            runtime,
            settings,
            catalog,
            &revisions,
            &containers,
            shared,
        );
    }

    // Placement happened just now: report what is pending without waiting for the next pass.
    observed.pending = shared.pending.lock().unwrap().clone();
    observed.scale = settings.scale.borrow().clone();

    let mut status = RuntimeStatus {
        services: BTreeMap::new(),
        passes,
    };
    for d in &desired {
        let s = status
            .services
            .entry((d.id.namespace.clone(), d.id.service.clone()))
            .or_default();
        s.components
            .push(component_status(&d.id, d, &revisions, &observed));
        if let Some(view) = settings.models.as_ref().and_then(|m| {
            m.view_of(
                &catalog.objects,
                &d.id.namespace,
                &d.component.template,
                Path::new(&d.source_dir),
            )
        }) {
            if !s.models.contains(&view) {
                s.models.push(view);
            }
        }
    }
    let supervision = shared.supervision.lock().unwrap();
    for c in &containers {
        let Some(r) = replica_of(c) else { continue };
        let Some(s) = status
            .services
            .get_mut(&(r.component.namespace.clone(), r.component.service.clone()))
        else {
            continue;
        };
        let sup = supervision.get(&c.id).cloned().unwrap_or_default();
        s.replicas.push(ReplicaView {
            revision: r.revision,
            replica: r.replica,
            container_id: c.id.clone(),
            state: c.state,
            ready: sup.ready && c.state == ContainerState::Running,
            host_port: c.host_port,
            restarts: sup.restarts,
            last_exit: sup.last_exit.clone(),
            gpus: c
                .labels
                .get(labels::GPUS)
                .map(|g| {
                    g.split(',')
                        .filter(|u| !u.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    drop(supervision);
    for e in shared.events.lock().unwrap().iter() {
        if let Some(s) = status
            .services
            .get_mut(&(e.namespace.clone(), e.service.clone()))
        {
            s.events.push(e.clone());
        }
    }
    for s in status.services.values_mut() {
        s.conditions = conditions(&s.components);
        let excess = s.events.len().saturating_sub(20);
        s.events.drain(..excess);
        s.replicas
            .sort_by(|a, b| (&a.revision, a.replica).cmp(&(&b.revision, b.replica)));
    }
    publish.send_if_modified(|old| {
        let changed = old.services != status.services;
        *old = status;
        changed
    });
    // A download's progress is shown as it goes.
    match settings.models.as_ref().filter(|m| m.models.loading()) {
        Some(_) => Some(
            decided
                .wake_at
                .map_or(now + PROGRESS_EVERY, |t| t.min(now + PROGRESS_EVERY)),
        ),
        None => decided.wake_at,
    }
}

/// Brings each desired component's rollout record up to date with its traffic split now,
/// saves what changed (and forgets components no longer desired, as KServe's status goes with
/// its InferenceService), and returns the records to plan with. `observed.records` holds the
/// records as kept so far. When the store cannot be written the old records stay, so the next
/// pass tries again.
fn keep_records(
    store: &Store,
    shared: &Shared,
    desired: &[DesiredEntry],
    revisions: &[RevisionRecord],
    observed: &Observed,
) -> BTreeMap<ComponentId, ComponentRecord> {
    let next: BTreeMap<ComponentId, ComponentRecord> = desired
        .iter()
        .map(|d| {
            let (_, kept) = component_split(&d.id, d, revisions, observed);
            (d.id.clone(), kept)
        })
        .collect();
    let mut records = shared.records.lock().unwrap();
    let changed = next.iter().filter(|(id, r)| records.get(*id) != Some(*r));
    let removed = records.keys().filter(|id| !next.contains_key(*id));
    if changed.clone().next().is_none() && removed.clone().next().is_none() {
        return next;
    }
    for (id, r) in changed.clone() {
        if let Some(latest) = &r.rollout.latest_rolledout_revision {
            let before = records
                .get(id)
                .and_then(|b| b.rollout.latest_rolledout_revision.as_ref());
            if before != Some(latest) {
                shared.event(
                    &id.namespace,
                    &id.service,
                    false,
                    "RolledOut",
                    format!(
                        "{}: revision {latest} is the rolled-out revision",
                        id.component
                    ),
                );
            }
        }
    }
    match store.save_components(changed, removed) {
        Ok(()) => {
            *records = next.clone();
            next
        }
        Err(e) => {
            warn!(error = %e, "cannot save the rollout records; trying again next pass");
            records.clone()
        }
    }
}

/// Reads a replica's identity from its labels.
fn replica_of(c: &ContainerInfo) -> Option<ObservedReplica> {
    let get = |k: &str| c.labels.get(k).cloned();
    Some(ObservedReplica {
        container_id: c.id.clone(),
        component: ComponentId {
            namespace: get(labels::NAMESPACE)?,
            service: get(labels::SERVICE)?,
            component: get(labels::COMPONENT)?,
        },
        revision: get(labels::REVISION)?,
        replica: get(labels::REPLICA)?.parse().ok()?,
        spec_hash: get(labels::SPEC_HASH)?,
        state: c.state,
        ready: false,
        restarts: 0,
        exited_at: None,
        started_at: None,
    })
}

/// Combines the engine's view with gantry's supervision, starting probers for running
/// replicas and noting exits.
async fn observe<R: ContainerRuntime + ContainerEvents>(
    containers: &[ContainerInfo],
    shared: &Arc<Shared>,
    runtime: &Arc<R>,
    client: &reqwest::Client,
    first_pass: bool,
) -> Observed {
    let now = shared.now();
    let mut replicas = Vec::new();
    let mut exits = Vec::new();
    {
        let mut supervision = shared.supervision.lock().unwrap();
        supervision.retain(|id, s| {
            let alive = containers.iter().any(|c| &c.id == id);
            if !alive {
                if let Some((_, h)) = s.probing.take() {
                    h.abort();
                }
            }
            alive
        });
        for c in containers {
            let Some(mut r) = replica_of(c) else { continue };
            let s = supervision
                .entry(c.id.clone())
                .or_insert_with(|| Supervision {
                    // Adopted at start-up: running since before we looked.
                    started_at: (c.state == ContainerState::Running).then_some(now),
                    ..Default::default()
                });
            match (c.state, c.host_port) {
                (ContainerState::Running, Some(port)) => {
                    s.exited_at = None;
                    if s.probing.as_ref().is_none_or(|(p, _)| *p != port) {
                        if let Some((_, h)) = s.probing.take() {
                            h.abort();
                        }
                        s.ready = false;
                        let task = tokio::spawn(prober(
                            runtime.clone(),
                            shared.clone(),
                            client.clone(),
                            c.id.clone(),
                            port,
                            probes_for(c),
                        ));
                        s.probing = Some((port, task.abort_handle()));
                    }
                    if s.started_at
                        .is_some_and(|t| now.saturating_sub(t) >= BACKOFF_RESET_AFTER)
                    {
                        s.restarts = 0;
                    }
                }
                _ => {
                    if let Some((_, h)) = s.probing.take() {
                        h.abort();
                    }
                    s.ready = false;
                    if s.exited_at.is_none() && c.state != ContainerState::Running {
                        s.exited_at = Some(now);
                        if !first_pass || c.state != ContainerState::Created {
                            exits.push((c.clone(), r.clone()));
                        }
                    }
                }
            }
            r.ready = s.ready;
            r.restarts = s.restarts;
            r.exited_at = s.exited_at;
            r.started_at = s.started_at;
            replicas.push(r);
        }
    }
    for (c, r) in exits {
        if shared.stopping.lock().unwrap().contains(&c.id) || c.state == ContainerState::Created {
            continue;
        }
        let last_log_lines = runtime.logs(&c.id, 20).await.unwrap_or_default();
        let exit = ExitInfo {
            exit_code: c.exit_code,
            oom_killed: c.oom_killed,
            finished_at: c.finished_at.clone(),
            last_log_lines,
        };
        let why = if exit.oom_killed {
            "OOMKilled".to_string()
        } else {
            format!("exit code {}", exit.exit_code.unwrap_or(-1))
        };
        shared.event(
            &r.component.namespace,
            &r.component.service,
            true,
            "BackOff",
            format!(
                "replica {} of {} exited ({why}); restarting with back-off",
                r.replica, r.revision
            ),
        );
        if let Some(s) = shared.supervision.lock().unwrap().get_mut(&c.id) {
            s.last_exit = Some(exit);
        }
    }
    Observed {
        replicas,
        failures: shared.failures.lock().unwrap().clone(),
        ..Observed::default()
    }
}

/// The probes of a container, read back from the label they were written to at creation.
fn probes_for(c: &ContainerInfo) -> ProbeSet {
    c.labels
        .get(labels::PROBES)
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default()
}

/// The probes a replica runs, carried on the container as a label so that adopted containers
/// are probed exactly as they were created.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProbeSet {
    pub readiness: Option<crate::spec::types::Probe>,
    pub liveness: Option<crate::spec::types::Probe>,
    pub startup: Option<crate::spec::types::Probe>,
}

async fn prober<R: ContainerRuntime + ContainerEvents>(
    runtime: Arc<R>,
    shared: Arc<Shared>,
    client: reqwest::Client,
    id: String,
    port: u16,
    probes: ProbeSet,
) {
    let set = |f: &dyn Fn(&mut Supervision)| {
        if let Some(s) = shared.supervision.lock().unwrap().get_mut(&id) {
            f(s);
        }
        shared.wake.notify_one();
    };
    // Startup probe first (it gates the others), then readiness fast until it passes.
    if let Some(startup) = probes.startup.as_ref() {
        tokio::time::sleep(super::probe::initial_delay(Some(startup))).await;
        let mut failures = 0;
        loop {
            match super::probe::attempt(Some(startup), port, &id, &*runtime, &client).await {
                Ok(()) => break,
                Err(e) => {
                    failures += 1;
                    if failures >= super::probe::failure_threshold(Some(startup)) * 10 {
                        // As the kubelet does: a container that never starts is killed and
                        // restarted (with back-off).
                        warn!(container = %id, "startup probe failed: {e}; restarting");
                        let _ = runtime.stop(&id, Duration::from_secs(10)).await;
                        return;
                    }
                }
            }
            tokio::time::sleep(
                super::probe::FAST_PERIOD.max(super::probe::period(Some(startup)) / 10),
            )
            .await;
        }
    }
    let readiness = probes.readiness.as_ref();
    tokio::time::sleep(super::probe::initial_delay(readiness)).await;
    let mut ready = false;
    let mut consecutive_failures = 0;
    let mut liveness_failures = 0;
    // The liveness probe's first check comes after its own initial delay.
    let liveness_delay = super::probe::initial_delay(probes.liveness.as_ref());
    let mut last_liveness = Instant::now() + liveness_delay;
    loop {
        let ok = super::probe::attempt(readiness, port, &id, &*runtime, &client)
            .await
            .is_ok();
        if ok != ready {
            if ok || {
                consecutive_failures += 1;
                consecutive_failures >= super::probe::failure_threshold(readiness)
            } {
                ready = ok;
                consecutive_failures = 0;
                set(&|s| s.ready = ok);
            }
        } else {
            consecutive_failures = 0;
        }
        if let Some(liveness) = probes.liveness.as_ref() {
            if Instant::now() >= last_liveness + super::probe::period(Some(liveness)) {
                last_liveness = Instant::now();
                match super::probe::attempt(Some(liveness), port, &id, &*runtime, &client).await {
                    Ok(()) => liveness_failures = 0,
                    Err(e) => {
                        liveness_failures += 1;
                        if liveness_failures >= super::probe::failure_threshold(Some(liveness)) {
                            warn!(container = %id, "liveness probe failed: {e}; restarting");
                            let _ = runtime.stop(&id, Duration::from_secs(10)).await;
                            return;
                        }
                    }
                }
            }
        }
        // Fast until ready; then each probe at its own period.
        let wait = if ready {
            let liveness = probes
                .liveness
                .as_ref()
                .map(|l| super::probe::period(Some(l)));
            super::probe::period(readiness).min(liveness.unwrap_or(Duration::MAX))
        } else {
            super::probe::FAST_PERIOD
        };
        tokio::time::sleep(wait).await;
    }
}

#[allow(clippy::too_many_arguments)]
fn execute<R: ContainerRuntime + ContainerEvents>(
    action: Action,
    placed: Option<Allocation>,
    model: Option<ModelMounts>,
    runtime: &Arc<R>,
    settings: &Settings,
    catalog: &Arc<Catalog>,
    revisions: &[RevisionRecord],
    containers: &[ContainerInfo],
    shared: &Arc<Shared>,
) {
    match action {
        Action::Create { revision, replica } => {
            let Some(record) = revisions.iter().find(|r| r.name == revision).cloned() else {
                return;
            };
            let Some(allocation) = placed else { return };
            let key = (revision.clone(), replica);
            shared.creating.lock().unwrap().insert(key.clone());
            shared
                .reserved
                .lock()
                .unwrap()
                .insert(key, allocation.clone());
            let runtime = runtime.clone();
            let shared = shared.clone();
            let settings = settings.clone();
            let catalog = catalog.clone();
            tokio::spawn(async move {
                let result = create(
                    &*runtime,
                    &settings,
                    &catalog,
                    &record,
                    replica,
                    &allocation,
                    model.as_ref(),
                    &shared,
                )
                .await;
                let key = (revision.clone(), replica);
                shared.reserved.lock().unwrap().remove(&key);
                match result {
                    Ok(()) => {
                        shared.failures.lock().unwrap().remove(&key);
                    }
                    Err(reason) => {
                        let mut failures = shared.failures.lock().unwrap();
                        let attempts = failures.get(&key).map_or(0, |f| f.attempts) + 1;
                        if attempts == 1 {
                            shared.event(
                                &record.namespace,
                                &record.service,
                                true,
                                "RevisionFailed",
                                format!("revision {revision} replica {replica}: {reason}"),
                            );
                        }
                        failures.insert(
                            key.clone(),
                            CreateFailure {
                                attempts,
                                at: shared.now(),
                                reason,
                            },
                        );
                    }
                }
                shared.creating.lock().unwrap().remove(&key);
                shared.wake.notify_one();
            });
        }
        Action::Restart { container_id } => {
            if let Some(s) = shared.supervision.lock().unwrap().get_mut(&container_id) {
                s.restarts += 1;
                s.started_at = Some(shared.now());
                s.exited_at = None;
            }
            let runtime = runtime.clone();
            let shared = shared.clone();
            tokio::spawn(async move {
                if let Err(e) = runtime.start(&container_id).await {
                    warn!(container = %container_id, error = %e, "cannot restart");
                }
                shared.wake.notify_one();
            });
        }
        Action::Retire {
            container_id,
            reason,
        } => {
            let grace = containers
                .iter()
                .find(|c| c.id == container_id)
                .and_then(|c| c.labels.get(labels::STOP_TIMEOUT))
                .and_then(|s| s.parse().ok())
                .unwrap_or(30);
            if let Some(c) = containers.iter().find(|c| c.id == container_id) {
                if let Some(r) = replica_of(c) {
                    shared.event(
                        &r.component.namespace,
                        &r.component.service,
                        false,
                        "Stopping",
                        format!("stopping replica {} of {}: {reason}", r.replica, r.revision),
                    );
                }
            }
            shared.stopping.lock().unwrap().insert(container_id.clone());
            let runtime = runtime.clone();
            let shared = shared.clone();
            let drain = settings.drain.clone();
            tokio::spawn(async move {
                if let Some(drain) = drain {
                    drain.drain(&container_id, Duration::from_secs(grace)).await;
                }
                let _ = runtime
                    .stop(&container_id, Duration::from_secs(grace))
                    .await;
                if let Err(e) = runtime.remove(&container_id).await {
                    warn!(container = %container_id, error = %e, "cannot remove");
                }
                shared.wake.notify_one();
            });
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn create<R: ContainerRuntime>(
    runtime: &R,
    settings: &Settings,
    catalog: &Catalog,
    record: &RevisionRecord,
    replica: u32,
    allocation: &Allocation,
    model: Option<&ModelMounts>,
    shared: &Shared,
) -> Result<(), String> {
    let ctx = ConvertContext {
        namespace: &record.namespace,
        service: &record.service,
        revision: &record.name,
        replica,
        source_dir: Path::new(&record.source_dir),
        objects: &catalog.objects,
        policy: &settings.policy,
        shm_size_bytes: settings.shm_size_bytes,
        gpu_uuids: &allocation.gpu_uuids,
        data_plane_port: settings.data_plane_port,
        model,
    };
    let mut spec = container_spec(&record.component_spec, &ctx).map_err(|errors| {
        errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let container = &record.component_spec.template.container;
    let probes = ProbeSet {
        readiness: container.readiness_probe.clone(),
        liveness: container.liveness_probe.clone(),
        startup: container.startup_probe.clone(),
    };
    spec.labels.insert(
        labels::PROBES.into(),
        serde_json::to_string(&probes).unwrap_or_default(),
    );
    spec.labels.insert(
        labels::STOP_TIMEOUT.into(),
        spec.stop_timeout_seconds.to_string(),
    );
    spec.labels
        .insert(labels::INSTANCE.into(), settings.instance.clone());
    spec.labels
        .insert(labels::GPUS.into(), allocation.gpu_uuids.join(","));
    spec.labels.insert(
        labels::CPU_REQUEST.into(),
        allocation.cpu_millis.to_string(),
    );
    spec.labels.insert(
        labels::MEMORY_REQUEST.into(),
        allocation.memory_bytes.to_string(),
    );
    // Two daemons (two state directories) may serve services of the same name.
    spec.name = format!("{}-{}", spec.name, settings.instance);
    for m in &spec.mounts {
        if !Path::new(&m.source).exists() {
            return Err(format!("the model path {} does not exist", m.source));
        }
    }
    let (ns, svc) = (record.namespace.clone(), record.service.clone());
    let image = spec.image.clone();
    let last = Mutex::new(Instant::now() - Duration::from_secs(10));
    let progress = move |p: crate::runtime::PullProgress| {
        let mut last = last.lock().unwrap();
        if last.elapsed() >= Duration::from_secs(2) {
            *last = Instant::now();
            info!(namespace = %ns, service = %svc, image = %p.image, status = %p.status, current = ?p.current, total = ?p.total, "pulling image");
        }
    };
    if let Err(e) = runtime
        .ensure_image(&image, spec.always_pull, &progress)
        .await
    {
        // `latest` means "always pull" to Kubernetes; on one machine images are often built
        // locally and no registry has them: use the local one when there is one.
        if !spec.always_pull {
            return Err(e.to_string());
        }
        runtime
            .ensure_image(&image, false, &progress)
            .await
            .map_err(|_| e.to_string())?;
        warn!(image = %image, error = %e, "could not pull; using the local image");
    }
    let id = match runtime.create(&spec).await {
        Ok(id) => id,
        Err(crate::runtime::RuntimeError::Conflict(_)) => {
            // Left over from a create that failed half-way (the name is this daemon's own).
            let _ = runtime.remove(&spec.name).await;
            runtime.create(&spec).await.map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    runtime.start(&id).await.map_err(|e| e.to_string())?;
    shared.event(
        &record.namespace,
        &record.service,
        false,
        "Started",
        format!("started replica {replica} of {}", record.name),
    );
    Ok(())
}

/// What the replicas that exist hold, read back from their labels (so a daemon restart never
/// hands a GPU out twice).
fn allocations_of(containers: &[ContainerInfo]) -> Vec<Allocation> {
    containers
        .iter()
        .map(|c| {
            let get = |k: &str| c.labels.get(k).cloned().unwrap_or_default();
            Allocation {
                owner: [
                    labels::NAMESPACE,
                    labels::SERVICE,
                    labels::COMPONENT,
                    labels::REVISION,
                    labels::REPLICA,
                ]
                .map(get)
                .join("/"),
                gpu_uuids: get(labels::GPUS)
                    .split(',')
                    .filter(|u| !u.is_empty())
                    .map(String::from)
                    .collect(),
                cpu_millis: get(labels::CPU_REQUEST).parse().unwrap_or(0),
                memory_bytes: get(labels::MEMORY_REQUEST).parse().unwrap_or(0),
            }
        })
        .collect()
}

/// How often status is refreshed while a model downloads.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The model of a revision about to get a replica.
fn model_of(
    settings: &Settings,
    catalog: &Catalog,
    revisions: &[RevisionRecord],
    revision: &str,
) -> ModelFor {
    let (Some(access), Some(record)) = (
        &settings.models,
        revisions.iter().find(|r| r.name == revision),
    ) else {
        return ModelFor::Nothing;
    };
    access.model_for(
        &catalog.objects,
        &record.namespace,
        &record.component_spec.template,
        Path::new(&record.source_dir),
    )
}

/// Places one replica; `None` (and a pending reason) when it does not fit now.
fn place(
    settings: &Settings,
    inventory: &Inventory,
    allocations: &[Allocation],
    revisions: &[RevisionRecord],
    revision: &str,
    replica: u32,
    shared: &Shared,
) -> Option<Allocation> {
    let record = revisions.iter().find(|r| r.name == revision)?;
    let template = &record.component_spec.template;
    let request =
        scheduler::Request::from_resources(&template.container.resources, &template.placement);
    let mut host = settings.host.clone();
    host.labels = scheduler::machine_labels(&settings.host.labels, inventory);
    let candidates = scheduler::candidates(inventory, &host.labels, |g| {
        class_for(&g.name, g.memory_bytes, &settings.gpu_classes)
    });
    let key = (revision.to_string(), replica);
    match scheduler::place(&candidates, &host, allocations, &request) {
        Ok(decision) => {
            shared.pending.lock().unwrap().remove(&key);
            Some(Allocation {
                owner: format!(
                    "{}/{}/{}/{revision}/{replica}",
                    record.namespace, record.service, record.component
                ),
                gpu_uuids: decision.gpu_uuids,
                cpu_millis: request.cpu_millis,
                memory_bytes: request.memory_bytes,
            })
        }
        Err(unschedulable) => {
            let reason = unschedulable.reason;
            // Would it fit if the component's older revisions gave back what they hold?
            let component = format!(
                "{}/{}/{}/",
                record.namespace, record.service, record.component
            );
            let this_revision = format!("{component}{revision}/");
            let others: Vec<Allocation> = allocations
                .iter()
                .filter(|a| !a.owner.starts_with(&component) || a.owner.starts_with(&this_revision))
                .cloned()
                .collect();
            let swap = others.len() < allocations.len()
                && scheduler::place(&candidates, &host, &others, &request).is_ok();
            let pending = Pending {
                reason: reason.clone(),
                swap,
            };
            let changed =
                shared.pending.lock().unwrap().insert(key, pending.clone()) != Some(pending);
            if changed {
                shared.event(
                    &record.namespace,
                    &record.service,
                    true,
                    "FailedScheduling",
                    format!("replica {replica} of {revision}: {reason}"),
                );
            }
            None
        }
    }
}
