//! The data plane: one listener that is both Knative's activator and queue-proxy for every
//! revision.
//!
//! - [`routes`]: which service and component a request is for (Host, path prefix, KServe
//!   model paths). Pure.
//! - [`throttler`]: per revision, the replicas, their `containerConcurrency` slots, the load
//!   balancing policy and the bounded queue of requests waiting for a slot.
//! - [`stats`]: per revision, time-weighted concurrency and requests per second, reported
//!   to the autoscaler every second. Pure.
//! - [`metrics`]: Prometheus metrics per revision.
//! - [`proxy`]: the HTTP server and the forwarding to replicas (streaming both ways).
//!
//! [`Router`] holds the live state: the route table and one [`Revision`] per revision that
//! serves or may serve, refreshed from the folder's desired state and the reconciler's status.

mod h1;
pub mod metrics;
pub mod proxy;
pub mod routes;
pub mod stats;
pub mod throttler;
mod ticket;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::reconcile::executor::{Drain, RuntimeStatus};
use crate::reconcile::traffic;
use crate::spec::catalog::Catalog;
use crate::spec::normalize::DesiredComponent;
use crate::spec::validate::ComponentKind;
use routes::{RouteTable, Routed, ServiceRoutes, Tag};
use stats::{Report, RequestStats};
use throttler::Throttler;

/// How long a replica a connection to failed stays out of rotation, unless the reconciler
/// reports the replicas sooner.
pub const EXCLUSION: Duration = Duration::from_secs(1);

/// KServe's default `timeout` when a component sets none (Knative's revision timeout).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// One revision as the data plane sees it: its replicas' slots and its traffic statistics.
pub struct Revision {
    pub name: String,
    pub namespace: String,
    pub service: String,
    pub throttler: Throttler,
    pub metrics: metrics::RevisionMetrics,
    stats: Mutex<RequestStats>,
    /// The whole request's limit, time held included (the component's `timeout`).
    timeout: Mutex<Duration>,
    /// The replicas speak HTTP/2 without TLS (their port is named `h2c`, as for gRPC).
    h2c: std::sync::atomic::AtomicBool,
    /// The ready replicas as the reconciler last reported them.
    ready: Mutex<Vec<(String, SocketAddr)>>,
}

impl Revision {
    fn new(name: &str, namespace: &str, service: &str, queue_depth: usize, now: Duration) -> Self {
        Revision {
            name: name.to_string(),
            namespace: namespace.to_string(),
            service: service.to_string(),
            throttler: Throttler::new(0, queue_depth),
            metrics: Default::default(),
            stats: Mutex::new(RequestStats::new(now)),
            timeout: Mutex::new(DEFAULT_TIMEOUT),
            h2c: std::sync::atomic::AtomicBool::new(false),
            ready: Mutex::new(Vec::new()),
        }
    }

    /// Takes a replica out of rotation for [`EXCLUSION`] (a connection to it failed), or
    /// until the reconciler next reports the replicas. A replica that is gone is gone from
    /// the reconciler's report by then; one that only dropped a connection comes back.
    pub fn exclude(self: &Arc<Self>, replica: &str) {
        self.throttler.exclude(replica);
        let revision = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(EXCLUSION).await;
            let ready = revision.ready.lock().unwrap().clone();
            revision.throttler.set_replicas(&ready);
        });
    }

    fn set_ready(&self, replicas: Vec<(String, SocketAddr)>) {
        self.throttler.set_replicas(&replicas);
        *self.ready.lock().unwrap() = replicas;
    }

    /// Whether requests go to the replicas over HTTP/2 (h2c).
    pub fn h2c(&self) -> bool {
        self.h2c.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn timeout(&self) -> Duration {
        *self.timeout.lock().unwrap()
    }

    pub fn request_in(&self, now: Duration) {
        self.stats.lock().unwrap().request_in(now);
    }

    pub fn request_out(&self, now: Duration) {
        self.stats.lock().unwrap().request_out(now);
    }

    /// The last second's report (the autoscaler's input).
    pub fn report(&self, now: Duration) -> Report {
        self.stats.lock().unwrap().report(now)
    }

    /// Requests in the router for this revision: held, queued or in flight.
    pub fn concurrency(&self) -> u32 {
        self.stats.lock().unwrap().concurrency()
    }

    fn configure(&self, component: &DesiredComponent, queue_depth: usize) {
        let scaling = &component.scaling;
        let cc = u32::try_from(scaling.container_concurrency.max(0)).unwrap_or(u32::MAX);
        self.throttler.set_container_concurrency(cc);
        self.throttler.set_queue_depth(queue_depth);
        let timeout = match scaling.timeout_seconds {
            t if t > 0 => Duration::from_secs(t as u64),
            _ => DEFAULT_TIMEOUT,
        };
        *self.timeout.lock().unwrap() = timeout;
        let h2c = component.template.container.port.protocol == "h2c";
        self.h2c.store(h2c, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `(namespace, service, component)`.
type ComponentKey = (String, String, ComponentKind);

/// Where one component's requests go.
struct ComponentTargets {
    kind: ComponentKind,
    /// The traffic split: `(revision, percent)`, percents adding up to 100. One revision may
    /// appear twice (a canary over the rolled-out revision itself).
    split: Vec<(Arc<Revision>, u32)>,
    /// The tagged targets, reached by their own host whatever their percent.
    tags: Vec<(Tag, Arc<Revision>)>,
}

impl ComponentTargets {
    fn pick(&self, tag: Option<Tag>, roll: u32) -> Option<&Arc<Revision>> {
        match tag {
            Some(tag) => self.tags.iter().find(|(t, _)| *t == tag).map(|(_, r)| r),
            None => traffic::pick(&self.split, |(_, percent)| *percent, roll).map(|(r, _)| r),
        }
    }

    /// Whether a request of this route may go to `revision` now.
    fn takes(&self, tag: Option<Tag>, revision: &str) -> bool {
        match tag {
            Some(tag) => self
                .tags
                .iter()
                .any(|(t, r)| *t == tag && r.name == revision),
            None => self
                .split
                .iter()
                .any(|(r, percent)| *percent > 0 && r.name == revision),
        }
    }

    fn revisions(&self) -> impl Iterator<Item = &Arc<Revision>> {
        self.split
            .iter()
            .map(|(r, _)| r)
            .chain(self.tags.iter().map(|(_, r)| r))
    }
}

/// Each component's targets, by namespace then service: looked up with borrowed names on
/// every request.
type Targets = HashMap<String, HashMap<String, Vec<ComponentTargets>>>;

/// The data plane's live state.
pub struct Router {
    domain: String,
    queue_depth: usize,
    /// The port services answer on (their URL).
    port: u16,
    epoch: Instant,
    table: RwLock<Arc<RouteTable>>,
    /// Where each component's requests go.
    targets: RwLock<Targets>,
    /// Every revision the router tracks (targets, and older ones finishing requests).
    revisions: RwLock<HashMap<String, Arc<Revision>>>,
    /// Containers being drained: never given new requests again.
    draining: Mutex<HashSet<String>>,
    /// Revisions a request is waiting for without a ready replica: the autoscaler is told at
    /// once instead of at its next tick.
    pokes: mpsc::UnboundedSender<String>,
    pub(crate) connections: Arc<proxy::Pool>,
    /// Bumped by every [`Router::update`]: waiting requests look again at their target.
    generation: tokio::sync::watch::Sender<u64>,
}

impl Router {
    /// A router answering at `http://<name>.<namespace>.<domain>:<port>`; revisions that wait
    /// for a replica are sent on the returned channel.
    pub fn new(
        domain: &str,
        port: u16,
        queue_depth: usize,
    ) -> (Arc<Router>, mpsc::UnboundedReceiver<String>) {
        let (pokes, poked) = mpsc::unbounded_channel();
        let router = Router {
            domain: domain.to_string(),
            queue_depth,
            port,
            epoch: Instant::now(),
            table: RwLock::new(Arc::new(RouteTable::new(domain, []))),
            targets: RwLock::new(HashMap::new()),
            revisions: RwLock::new(HashMap::new()),
            draining: Mutex::new(HashSet::new()),
            pokes,
            connections: Arc::new(proxy::Pool::default()),
            generation: tokio::sync::watch::channel(0).0,
        };
        (Arc::new(router), poked)
    }

    /// Time since the router started: the clock of its statistics.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    pub fn table(&self) -> Arc<RouteTable> {
        self.table.read().unwrap().clone()
    }

    /// The URL of a service.
    pub fn url(&self, namespace: &str, name: &str) -> String {
        self.table().url(namespace, name, self.port)
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The revision a request for `component` of a service goes to: the tagged target's
    /// for a tag host, else one chosen by the traffic split with `roll` (uniform in
    /// `0..100`, from the caller).
    pub fn target(&self, routed: &Routed, roll: u32) -> Option<Arc<Revision>> {
        self.with_targets(routed, |c| c.pick(routed.tag, roll).cloned())
            .flatten()
    }

    /// Whether a request of `routed` may still go to `revision`: a waiting request whose
    /// revision left its component's targets follows them (a GPU swap, a rollback).
    pub fn routes_to(&self, routed: &Routed, revision: &str) -> bool {
        self.with_targets(routed, |c| c.takes(routed.tag, revision))
            .unwrap_or(false)
    }

    fn with_targets<T>(
        &self,
        routed: &Routed,
        f: impl FnOnce(&ComponentTargets) -> T,
    ) -> Option<T> {
        let targets = self.targets.read().unwrap();
        let component = targets
            .get(&routed.namespace)?
            .get(&routed.service)?
            .iter()
            .find(|c| c.kind == routed.component)?;
        Some(f(component))
    }

    /// Fires after each update of routes and targets.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Every tracked revision.
    pub fn revisions(&self) -> Vec<Arc<Revision>> {
        self.revisions.read().unwrap().values().cloned().collect()
    }

    pub fn revision(&self, name: &str) -> Option<Arc<Revision>> {
        self.revisions.read().unwrap().get(name).cloned()
    }

    /// A request waits for `revision`, which has no ready replica.
    pub fn poke(&self, revision: &str) {
        let _ = self.pokes.send(revision.to_string());
    }

    /// Refreshes routes, targets and replicas from the desired state and the reconciler's
    /// last status. Called whenever either changes.
    pub fn update(&self, catalog: &Catalog, status: &RuntimeStatus) {
        let now = self.now();
        let mut services = Vec::new();
        let mut components: BTreeMap<ComponentKey, &DesiredComponent> = BTreeMap::new();
        for entry in catalog.services.values() {
            let Some(desired) = entry.desired.as_ref() else {
                continue;
            };
            services.push(ServiceRoutes {
                namespace: desired.namespace.clone(),
                name: desired.name.clone(),
                components: desired.components.iter().map(|c| c.kind).collect(),
                // Filled in from the targets below.
                tags: Vec::new(),
                model_names: desired
                    .components
                    .iter()
                    .filter(|c| c.kind == ComponentKind::Predictor)
                    .flat_map(|c| model_name_arg(&c.template.container.args))
                    .collect(),
            });
            for c in &desired.components {
                components.insert((desired.namespace.clone(), desired.name.clone(), c.kind), c);
            }
        }

        // Ready replicas per revision.
        let draining = self.draining.lock().unwrap().clone();
        let mut ready: HashMap<&str, Vec<(String, SocketAddr)>> = HashMap::new();
        for service in status.services.values() {
            for r in &service.replicas {
                if let (true, Some(port)) = (r.ready, r.host_port) {
                    if !draining.contains(&r.container_id) {
                        ready.entry(r.revision.as_str()).or_default().push((
                            r.container_id.clone(),
                            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                        ));
                    }
                }
            }
        }

        let mut revisions = self.revisions.write().unwrap();
        let mut targets: Vec<(ComponentKey, ComponentTargets)> = Vec::new();
        for ((namespace, service, kind), component) in &components {
            let Some(status) = status
                .services
                .get(&(namespace.clone(), service.clone()))
                .and_then(|s| s.components.iter().find(|c| c.component == kind.as_str()))
            else {
                continue;
            };
            let mut revision = |name: &str| {
                let revision = revisions
                    .entry(name.to_string())
                    .or_insert_with(|| {
                        Arc::new(Revision::new(
                            name,
                            namespace,
                            service,
                            self.queue_depth,
                            now,
                        ))
                    })
                    .clone();
                revision.configure(component, self.queue_depth);
                revision
            };
            let latest = status.latest_created_revision.as_deref();
            let has_ready = |r: &str| ready.contains_key(r);
            let mut split = Vec::new();
            let mut tags = Vec::new();
            for t in &status.traffic {
                let name = if t.latest_revision {
                    target_revision(Some(&t.revision_name), latest, has_ready)
                } else {
                    Some(t.revision_name.clone())
                };
                let Some(name) = name else { continue };
                let r = revision(&name);
                if let Some(tag) = t.tag.as_deref().and_then(Tag::parse) {
                    tags.push((tag, r.clone()));
                }
                split.push((r, t.percent));
            }
            if split.is_empty() {
                // No revision ready yet: requests wait for the latest one.
                let Some(name) = target_revision(None, latest, has_ready) else {
                    continue;
                };
                split.push((revision(&name), 100));
            }
            targets.push((
                (namespace.clone(), service.clone(), *kind),
                ComponentTargets {
                    kind: *kind,
                    split,
                    tags,
                },
            ));
        }
        // Older revisions stay while they have replicas or requests; then they go.
        revisions.retain(|name, r| {
            targets
                .iter()
                .any(|(_, t)| t.revisions().any(|r| &r.name == name))
                || ready.contains_key(name.as_str())
                || r.throttler.in_flight() > 0
                || r.throttler.queued() > 0
        });
        for (name, r) in revisions.iter() {
            let replicas = ready.get(name.as_str()).cloned().unwrap_or_default();
            r.set_ready(replicas);
        }
        drop(revisions);
        // A tag host routes where the component's tagged target goes.
        for ((namespace, service, kind), component) in &targets {
            if let Some(routes) = services
                .iter_mut()
                .find(|s| &s.namespace == namespace && &s.name == service)
            {
                routes
                    .tags
                    .extend(component.tags.iter().map(|(tag, _)| (*kind, *tag)));
            }
        }
        *self.table.write().unwrap() = Arc::new(RouteTable::new(&self.domain, services));
        let mut by_name = Targets::new();
        for ((namespace, service, _), component) in targets {
            by_name
                .entry(namespace)
                .or_default()
                .entry(service)
                .or_default()
                .push(component);
        }
        *self.targets.write().unwrap() = by_name;
        // A container no longer listed has stopped: forget it.
        let listed: HashSet<&str> = status
            .services
            .values()
            .flat_map(|s| s.replicas.iter().map(|r| r.container_id.as_str()))
            .collect();
        self.draining
            .lock()
            .unwrap()
            .retain(|id| listed.contains(id.as_str()));
        self.generation.send_modify(|g| *g += 1);
    }
}

/// The revision a component's requests go to: the latest ready one (its traffic target)
/// while it has ready replicas; otherwise the latest created one, whose replicas are coming
/// (before any revision was ready, and during a GPU swap, when the old revision's replicas
/// made room for the new one: requests then wait for the new replica). A revision scaled to
/// zero that is also the latest waits for its own replica.
fn target_revision(
    traffic: Option<&str>,
    latest: Option<&str>,
    has_ready: impl Fn(&str) -> bool,
) -> Option<String> {
    match (traffic, latest) {
        (Some(t), _) if has_ready(t) => Some(t.to_string()),
        (_, Some(l)) => Some(l.to_string()),
        (t, None) => t.map(str::to_string),
    }
}

/// Keeps `router` current with the folder's desired state and the reconciler's status until
/// `shutdown` turns true.
pub async fn follow(
    router: Arc<Router>,
    mut folder: tokio::sync::watch::Receiver<crate::watch::FolderState>,
    mut status: tokio::sync::watch::Receiver<RuntimeStatus>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        {
            let catalog = folder.borrow_and_update().catalog.clone();
            router.update(&catalog, &status.borrow_and_update());
        }
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            r = folder.changed() => if r.is_err() { return },
            r = status.changed() => if r.is_err() { return },
        }
    }
}

/// The model name a KServe-style server is started with (`--model-name X`, `--model_name=X`).
fn model_name_arg(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        for flag in ["--model-name", "--model_name"] {
            if arg == flag {
                return it.next().cloned();
            }
            if let Some(v) = arg.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                return Some(v.to_string());
            }
        }
    }
    None
}

impl Drain for Router {
    fn drain(
        &self,
        container_id: &str,
        limit: Duration,
    ) -> futures_util::future::BoxFuture<'static, ()> {
        self.draining
            .lock()
            .unwrap()
            .insert(container_id.to_string());
        let revisions = self.revisions();
        for r in &revisions {
            r.ready.lock().unwrap().retain(|(id, _)| id != container_id);
            r.throttler.exclude(container_id);
        }
        let id = container_id.to_string();
        Box::pin(async move {
            let all =
                futures_util::future::join_all(revisions.iter().map(|r| r.throttler.drained(&id)));
            let _ = tokio::time::timeout(limit, all).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_where_replicas_are_or_are_coming() {
        let ready = |names: &'static [&'static str]| move |r: &str| names.contains(&r);
        let t = |traffic, latest, has: &'static [&'static str]| {
            target_revision(traffic, latest, ready(has))
        };
        assert_eq!(
            t(Some("a-1"), Some("a-2"), &["a-1"]).as_deref(),
            Some("a-1"),
            "rolling out"
        );
        assert_eq!(
            t(Some("a-1"), Some("a-2"), &[]).as_deref(),
            Some("a-2"),
            "swapped out"
        );
        assert_eq!(
            t(Some("a-1"), Some("a-1"), &[]).as_deref(),
            Some("a-1"),
            "at zero"
        );
        assert_eq!(
            t(None, Some("a-1"), &[]).as_deref(),
            Some("a-1"),
            "first start"
        );
        assert_eq!(t(None, None, &[]), None);
    }

    #[test]
    fn model_names_from_arguments() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            model_name_arg(&args(&["--model-name", "iris"])).as_deref(),
            Some("iris")
        );
        assert_eq!(
            model_name_arg(&args(&["--model_name=flowers"])).as_deref(),
            Some("flowers")
        );
        assert_eq!(model_name_arg(&args(&["--port", "8080"])), None);
    }
}
