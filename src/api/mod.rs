//! The management API (axum, loopback by default): health, the InferenceServices with
//! their source file, normalised spec and validation errors, and the GPUs with the replica
//! holding each.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::gpu::{class_for, Gpu, Inventory, Labels};
use crate::reconcile::executor::{RuntimeStatus, ServiceStatus};
use crate::reconcile::scaling::ScaleView;
use crate::spec::catalog::ServiceEntry;
use crate::spec::diagnostic::Diagnostic;
use crate::spec::normalize::DesiredService;
use crate::watch::FolderState;

pub mod logs;

/// What the handlers read: the latest folder state, the replicas' status, and how to build
/// URLs.
#[derive(Clone)]
pub struct ApiState {
    pub folder: watch::Receiver<FolderState>,
    /// `None` when the daemon runs without containers (`--no-containers`).
    pub runtime: Option<watch::Receiver<RuntimeStatus>>,
    /// Container output, for `gantry logs`.
    pub logs: Option<Arc<dyn logs::LogSource>>,
    pub domain: String,
    /// The data plane's port (part of every service's URL).
    pub port: u16,
    /// The autoscaler's last decision per revision (absent without containers).
    pub scale: Option<watch::Receiver<BTreeMap<String, ScaleView>>>,
    /// The data plane, for `/metrics` (absent without containers).
    pub data_plane: Option<Arc<crate::router::Router>>,
    pub dir: String,
    /// The GPU inventory the probe publishes (`None`: the daemon reads none).
    pub gpus: Option<watch::Receiver<Inventory>>,
    /// The host's labels, which every GPU's labels start from (config `host-labels` over
    /// the ones gantry finds).
    pub host_labels: Labels,
    /// NVML name → class overrides (config `gpu-classes`).
    pub gpu_classes: BTreeMap<String, String>,
}

impl ApiState {
    fn observed<'a>(
        &'a self,
        runtime: Option<&'a RuntimeStatus>,
        scale: Option<&'a BTreeMap<String, ScaleView>>,
    ) -> Observed<'a> {
        Observed {
            domain: &self.domain,
            port: self.port,
            runtime,
            scale,
        }
    }
}

/// One InferenceService as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    pub namespace: String,
    pub name: String,
    /// `http://<name>.<namespace>.<domain>:<port>`.
    pub url: String,
    /// The file that defines it.
    pub file: String,
    /// `Valid`, `Invalid` (never was valid) or `Stale` (the current content is invalid; the
    /// last good spec stays desired).
    pub spec_status: String,
    pub generation: u64,
    #[serde(default)]
    pub diagnostics: Vec<Diagnostic>,
    /// The normalised desired state (the last good one when stale).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<DesiredService>,
    /// Conditions, revisions and their traffic, replicas and recent events (absent without
    /// containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ServiceStatus>,
    /// The autoscaler's last decision for each autoscaled revision of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub autoscaling: Vec<ScaleView>,
}

/// What a view is made from besides the folder's entry.
pub struct Observed<'a> {
    pub domain: &'a str,
    pub port: u16,
    pub runtime: Option<&'a RuntimeStatus>,
    pub scale: Option<&'a BTreeMap<String, ScaleView>>,
}

/// The list answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceList {
    pub items: Vec<ServiceView>,
    /// Problems that belong to no service (syntax errors, runtimes, duplicates...).
    #[serde(default)]
    pub file_diagnostics: Vec<Diagnostic>,
    pub folder: String,
    pub folder_present: bool,
}

/// One GPU as `GET /api/v1/gpus` shows it: what the probe reports, its class and labels as
/// the scheduler matches them, and the replica holding it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuView {
    #[serde(flatten)]
    pub gpu: Gpu,
    /// `gpu.nvidia.com/class`.
    pub class: String,
    /// Its own labels merged with the host's (what `nodeSelector` and node affinity see).
    pub labels: Labels,
    /// The replica holding it; absent when it is free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<GpuHolder>,
}

/// A replica that holds a GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuHolder {
    pub namespace: String,
    pub service: String,
    pub revision: String,
    pub replica: u32,
    pub ready: bool,
}

/// The GPU list answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuList {
    pub items: Vec<GpuView>,
    /// Where the inventory comes from: `nvml`, `nvml:<library>`, `file:<path>`, or
    /// `none: <reason>`.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
}

/// Every GPU of `inventory`, in its order, with its class, its labels (merged with
/// `host_labels` as the scheduler merges them) and the replica of `runtime` that holds it.
pub fn gpu_list(
    inventory: &Inventory,
    host_labels: &Labels,
    classes: &BTreeMap<String, String>,
    runtime: Option<&RuntimeStatus>,
) -> GpuList {
    let mut holders: BTreeMap<&str, GpuHolder> = BTreeMap::new();
    for ((namespace, service), status) in runtime.map(|r| &r.services).into_iter().flatten() {
        for replica in &status.replicas {
            for uuid in &replica.gpus {
                holders.entry(uuid).or_insert_with(|| GpuHolder {
                    namespace: namespace.clone(),
                    service: service.clone(),
                    revision: replica.revision.clone(),
                    replica: replica.replica,
                    ready: replica.ready,
                });
            }
        }
    }
    let class_of = |g: &Gpu| class_for(&g.name, g.memory_bytes, classes);
    let items = crate::scheduler::candidates(inventory, host_labels, class_of)
        .into_iter()
        .map(|candidate| GpuView {
            class: class_of(&candidate.gpu),
            held_by: holders.get(candidate.gpu.uuid.as_str()).cloned(),
            labels: candidate.labels,
            gpu: candidate.gpu,
        })
        .collect();
    GpuList {
        items,
        source: inventory.source.clone(),
        driver_version: inventory.driver_version.clone(),
    }
}

/// An error answer, JSON like the rest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// `http://<name>.<namespace>.<domain>:<port>`, the port left out when it is 80.
pub fn service_url(name: &str, namespace: &str, domain: &str, port: u16) -> String {
    match port {
        80 => format!("http://{name}.{namespace}.{domain}"),
        _ => format!("http://{name}.{namespace}.{domain}:{port}"),
    }
}

/// The URL of a tagged traffic target: Knative's `<tag>-<name>` host for the component's
/// service `<isvc>-<component>` (`http://prev-iris-predictor.default.localhost:8080`).
pub fn tag_url(
    tag: &str,
    name: &str,
    component: &str,
    namespace: &str,
    domain: &str,
    port: u16,
) -> String {
    service_url(
        &format!("{tag}-{name}-{component}"),
        namespace,
        domain,
        port,
    )
}

/// Gives each tagged traffic target of `status` its own URL, as KServe shows `url` on them.
pub fn add_tag_urls(
    status: &mut ServiceStatus,
    name: &str,
    namespace: &str,
    domain: &str,
    port: u16,
) {
    for c in &mut status.components {
        for t in &mut c.traffic {
            t.url = t
                .tag
                .as_deref()
                .map(|tag| tag_url(tag, name, &c.component, namespace, domain, port));
        }
    }
}

pub fn view(entry: &ServiceEntry, observed: &Observed) -> ServiceView {
    let runtime = observed.runtime;
    let status = runtime.map(|r| {
        r.services
            .get(&(entry.namespace.clone(), entry.name.clone()))
            .cloned()
            .unwrap_or_default()
    });
    let autoscaling = match (&status, observed.scale) {
        (Some(status), Some(scale)) => status
            .components
            .iter()
            .filter_map(|c| c.latest_created_revision.as_ref())
            .filter_map(|r| scale.get(r).cloned())
            .collect(),
        _ => Vec::new(),
    };
    let spec_status = match (&entry.desired, entry.stale) {
        (Some(_), false) => "Valid",
        (Some(_), true) => "Stale",
        (None, _) => "Invalid",
    };
    ServiceView {
        namespace: entry.namespace.clone(),
        name: entry.name.clone(),
        url: service_url(
            &entry.name,
            &entry.namespace,
            observed.domain,
            observed.port,
        ),
        file: entry.file.clone(),
        spec_status: spec_status.into(),
        generation: entry.generation,
        diagnostics: entry.diagnostics.clone(),
        spec: entry.desired.as_deref().cloned(),
        status: status.map(|mut s| {
            add_tag_urls(
                &mut s,
                &entry.name,
                &entry.namespace,
                observed.domain,
                observed.port,
            );
            s
        }),
        autoscaling,
    }
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/inferenceservices", get(list_all))
        .route(
            "/api/v1/namespaces/{namespace}/inferenceservices",
            get(list_namespace),
        )
        .route(
            "/api/v1/namespaces/{namespace}/inferenceservices/{name}",
            get(get_one),
        )
        .route(
            "/api/v1/namespaces/{namespace}/inferenceservices/{name}/logs",
            get(logs::logs),
        )
        .route("/api/v1/gpus", get(list_gpus))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(ApiError {
                    error: "no such endpoint".into(),
                }),
            )
        })
        .with_state(Arc::new(state))
}

/// Prometheus metrics of every revision the data plane serves.
async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let scale = state
        .scale
        .as_ref()
        .map(|s| s.borrow().clone())
        .unwrap_or_default();
    let revisions = state
        .data_plane
        .as_ref()
        .map(|r| r.revisions())
        .unwrap_or_default();
    let mut text = crate::router::metrics::render(&revisions, &scale);
    if let Some(runtime) = &state.runtime {
        let runtime = runtime.borrow();
        text.push_str(&traffic_metrics(&runtime));
        text.push_str(&model_metrics(&runtime));
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Each component's traffic split: one `gantry_traffic_percent` series per traffic target,
/// labelled like the data plane's per-revision metrics (`namespace`, `service`, `revision`)
/// plus `component`, `tag` (`prev`, `latest` or empty) and `latest` (Knative's
/// `latestRevision`). A canary over the rolled-out revision itself names one revision in two
/// targets; `tag` and `latest` keep their series apart.
fn traffic_metrics(runtime: &RuntimeStatus) -> String {
    use crate::router::metrics::label;
    use std::fmt::Write;
    // Series by their labels, in the status' order; targets with the same labels (which
    // KServe's split never makes) add up rather than repeat a series.
    let mut series: Vec<(String, u32)> = Vec::new();
    for ((ns, name), status) in &runtime.services {
        for c in &status.components {
            for t in &c.traffic {
                let labels = format!(
                    "namespace=\"{}\",service=\"{}\",component=\"{}\",revision=\"{}\",tag=\"{}\",latest=\"{}\"",
                    label(ns),
                    label(name),
                    label(&c.component),
                    label(&t.revision_name),
                    label(t.tag.as_deref().unwrap_or_default()),
                    t.latest_revision
                );
                match series.iter_mut().find(|(l, _)| *l == labels) {
                    Some((_, percent)) => *percent += t.percent,
                    None => series.push((labels, t.percent)),
                }
            }
        }
    }
    if series.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "# HELP gantry_traffic_percent Percent of a component's requests its traffic target sends to a revision (tag \"prev\": the rolled-out revision a canary shares the traffic with; latest=\"true\": the latest ready revision).\n\
         # TYPE gantry_traffic_percent gauge\n",
    );
    for (labels, percent) in series {
        let _ = writeln!(out, "gantry_traffic_percent{{{labels}}} {percent}");
    }
    out
}

/// The models services name: their state (KServe's model states) and the bytes this daemon
/// downloaded for them.
fn model_metrics(runtime: &RuntimeStatus) -> String {
    use crate::router::metrics::label;
    use std::fmt::Write;
    let mut out = String::new();
    let models: Vec<_> = runtime
        .services
        .iter()
        .flat_map(|((ns, name), s)| s.models.iter().map(move |m| (ns, name, m)))
        .collect();
    if models.is_empty() {
        return out;
    }
    out.push_str(
        "# HELP gantry_model_state A model's state: Loading, Loaded or FailedToLoad (1 for the current one).\n\
         # TYPE gantry_model_state gauge\n",
    );
    for (ns, name, m) in &models {
        for state in ["Loading", "Loaded", "FailedToLoad"] {
            let _ = writeln!(
                out,
                "gantry_model_state{{namespace=\"{}\",inferenceservice=\"{}\",source=\"{}\",state=\"{state}\"}} {}",
                label(ns),
                label(name),
                label(&m.source),
                u8::from(m.state == state)
            );
        }
    }
    out.push_str(
        "# HELP gantry_model_downloaded_bytes Bytes this daemon downloaded for a model (0 when it came from the cache).\n\
         # TYPE gantry_model_downloaded_bytes gauge\n",
    );
    for (ns, name, m) in &models {
        let _ = writeln!(
            out,
            "gantry_model_downloaded_bytes{{namespace=\"{}\",inferenceservice=\"{}\",source=\"{}\"}} {}",
            label(ns),
            label(name),
            label(&m.source),
            m.downloaded
        );
    }
    out
}

fn list(state: &ApiState, namespace: Option<&str>) -> ServiceList {
    let runtime = state.runtime.as_ref().map(|r| r.borrow().clone());
    let scale = state.scale.as_ref().map(|s| s.borrow().clone());
    let observed = state.observed(runtime.as_ref(), scale.as_ref());
    let folder = state.folder.borrow();
    let items = folder
        .catalog
        .services
        .values()
        .filter(|e| namespace.is_none_or(|ns| e.namespace == ns))
        .map(|e| view(e, &observed))
        .collect();
    ServiceList {
        items,
        file_diagnostics: folder
            .catalog
            .file_diagnostics
            .values()
            .flatten()
            .cloned()
            .collect(),
        folder: state.dir.clone(),
        folder_present: folder.folder_present,
    }
}

/// JSON without the `null`s of unset optional Kubernetes fields, as `kubectl get -o json`
/// shows objects.
fn compact<T: Serialize>(value: &T) -> Json<serde_json::Value> {
    Json(without_nulls(value))
}

/// `value` as JSON without the `null`s of unset optional fields (the API's and the CLI's
/// `-o json|yaml` shape).
pub fn without_nulls<T: Serialize>(value: &T) -> serde_json::Value {
    fn prune(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.retain(|_, v| !v.is_null());
                map.values_mut().for_each(prune);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(prune),
            _ => {}
        }
    }
    let mut json = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    prune(&mut json);
    json
}

async fn list_gpus(State(state): State<Arc<ApiState>>) -> Json<serde_json::Value> {
    let inventory = match &state.gpus {
        Some(gpus) => gpus.borrow().clone(),
        None => Inventory::none("the daemon reads no GPU inventory"),
    };
    let runtime = state.runtime.as_ref().map(|r| r.borrow().clone());
    compact(&gpu_list(
        &inventory,
        &state.host_labels,
        &state.gpu_classes,
        runtime.as_ref(),
    ))
}

async fn list_all(State(state): State<Arc<ApiState>>) -> Json<serde_json::Value> {
    compact(&list(&state, None))
}

async fn list_namespace(
    State(state): State<Arc<ApiState>>,
    Path(namespace): Path<String>,
) -> Json<serde_json::Value> {
    compact(&list(&state, Some(&namespace)))
}

async fn get_one(
    State(state): State<Arc<ApiState>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let runtime = state.runtime.as_ref().map(|r| r.borrow().clone());
    let scale = state.scale.as_ref().map(|s| s.borrow().clone());
    let observed = state.observed(runtime.as_ref(), scale.as_ref());
    let folder = state.folder.borrow();
    match folder
        .catalog
        .services
        .values()
        .find(|e| e.namespace == namespace && e.name == name)
    {
        Some(e) => compact(&view(e, &observed)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(ApiError {
                error: format!("inferenceservices.serving.kserve.io \"{name}\" not found in namespace \"{namespace}\""),
            }),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::executor::ReplicaView;
    use crate::reconcile::plan::{ComponentStatus, TrafficTarget};
    use crate::runtime::ContainerState;

    fn gpu(uuid: &str, name: &str, bus: &str) -> Gpu {
        Gpu {
            uuid: uuid.into(),
            name: name.into(),
            memory_bytes: 48 << 30,
            pci_bus_id: Some(bus.into()),
            numa_node: None,
            memory_used_bytes: None,
            utilization_percent: Some(7),
            temperature_celsius: None,
            power_milliwatts: None,
        }
    }

    fn replica(revision: &str, replica: u32, gpus: &[&str]) -> ReplicaView {
        ReplicaView {
            revision: revision.into(),
            replica,
            container_id: "c0ffee".into(),
            state: ContainerState::Running,
            ready: true,
            host_port: None,
            restarts: 0,
            last_exit: None,
            gpus: gpus.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn target(revision: &str, percent: u32, latest: bool, tag: Option<&str>) -> TrafficTarget {
        TrafficTarget::new(revision, percent, latest, tag)
    }

    /// A runtime with service `name`'s predictor split as `traffic`, its bookkeeping saying
    /// 00001 is rolled out.
    fn split(name: &str, traffic: Vec<TrafficTarget>) -> RuntimeStatus {
        let mut runtime = RuntimeStatus::default();
        runtime.services.insert(
            ("default".into(), name.into()),
            ServiceStatus {
                components: vec![ComponentStatus {
                    component: "predictor".into(),
                    latest_created_revision: Some(format!("{name}-predictor-00002")),
                    latest_ready_revision: Some(format!("{name}-predictor-00002")),
                    latest_rolledout_revision: Some(format!("{name}-predictor-00001")),
                    previous_rolledout_revision: None,
                    traffic,
                    ready: true,
                    reason: None,
                    message: None,
                }],
                ..ServiceStatus::default()
            },
        );
        runtime
    }

    #[test]
    fn tagged_traffic_targets_have_their_own_url() {
        let runtime = split(
            "iris",
            vec![
                target("iris-predictor-00002", 10, true, None),
                target("iris-predictor-00001", 90, false, Some("prev")),
            ],
        );
        let entry = ServiceEntry {
            namespace: "default".into(),
            name: "iris".into(),
            file: "/srv/iris.yaml".into(),
            document: 0,
            desired: None,
            stale: false,
            diagnostics: Vec::new(),
            generation: 1,
        };
        let observed = Observed {
            domain: "localhost",
            port: 8080,
            runtime: Some(&runtime),
            scale: None,
        };
        let json = without_nulls(&view(&entry, &observed));
        let predictor = &json["status"]["components"][0];
        assert_eq!(predictor["latestRolledoutRevision"], "iris-predictor-00001");
        assert!(predictor.get("previousRolledoutRevision").is_none());
        assert_eq!(
            predictor["traffic"],
            serde_json::json!([
                {"revisionName": "iris-predictor-00002", "percent": 10, "latestRevision": true},
                {
                    "revisionName": "iris-predictor-00001",
                    "percent": 90,
                    "latestRevision": false,
                    "tag": "prev",
                    "url": "http://prev-iris-predictor.default.localhost:8080"
                }
            ])
        );

        // What the CLI reads back is what the view holds.
        let back: ServiceView = serde_json::from_value(json).unwrap();
        assert_eq!(back.status, view(&entry, &observed).status);

        // The data plane on port 80 has URLs without a port, like the service's.
        let observed = Observed {
            port: 80,
            ..observed
        };
        let status = view(&entry, &observed).status.unwrap();
        let urls: Vec<Option<&str>> = status.components[0]
            .traffic
            .iter()
            .map(|t| t.url.as_deref())
            .collect();
        assert_eq!(
            urls,
            [None, Some("http://prev-iris-predictor.default.localhost")]
        );
    }

    #[test]
    fn the_traffic_split_is_a_gauge_per_target() {
        assert_eq!(traffic_metrics(&RuntimeStatus::default()), "");
        // No revision ready yet: no targets, no series.
        assert_eq!(traffic_metrics(&split("iris", Vec::new())), "");

        let help = "# HELP gantry_traffic_percent Percent of a component's requests its traffic \
                    target sends to a revision (tag \"prev\": the rolled-out revision a canary \
                    shares the traffic with; latest=\"true\": the latest ready revision).\n\
                    # TYPE gantry_traffic_percent gauge\n";
        let labels = r#"namespace="default",service="iris",component="predictor""#;
        let canary = split(
            "iris",
            vec![
                target("iris-predictor-00002", 10, true, Some("latest")),
                target("iris-predictor-00001", 90, false, Some("prev")),
            ],
        );
        assert_eq!(
            traffic_metrics(&canary),
            format!(
                "{help}\
                 gantry_traffic_percent{{{labels},revision=\"iris-predictor-00002\",tag=\"latest\",latest=\"true\"}} 10\n\
                 gantry_traffic_percent{{{labels},revision=\"iris-predictor-00001\",tag=\"prev\",latest=\"false\"}} 90\n"
            )
        );

        // A canary over the rolled-out revision itself: one revision, two series.
        let same = split(
            "iris",
            vec![
                target("iris-predictor-00001", 10, true, None),
                target("iris-predictor-00001", 90, false, Some("prev")),
            ],
        );
        assert_eq!(
            traffic_metrics(&same),
            format!(
                "{help}\
                 gantry_traffic_percent{{{labels},revision=\"iris-predictor-00001\",tag=\"\",latest=\"true\"}} 10\n\
                 gantry_traffic_percent{{{labels},revision=\"iris-predictor-00001\",tag=\"prev\",latest=\"false\"}} 90\n"
            )
        );

        // Pinned (0 %): the canary's series stays, at 0.
        let pinned = split(
            "iris",
            vec![
                target("iris-predictor-00002", 0, true, None),
                target("iris-predictor-00001", 100, false, Some("prev")),
            ],
        );
        let text = traffic_metrics(&pinned);
        assert!(
            text.contains(&format!(
                "gantry_traffic_percent{{{labels},revision=\"iris-predictor-00002\",tag=\"\",latest=\"true\"}} 0\n"
            )),
            "{text}"
        );

        // Two targets with the same labels would be one series twice: they add up instead.
        let twice = split(
            "iris",
            vec![
                target("iris-predictor-00001", 40, false, Some("prev")),
                target("iris-predictor-00001", 60, false, Some("prev")),
            ],
        );
        assert_eq!(
            traffic_metrics(&twice),
            format!(
                "{help}\
                 gantry_traffic_percent{{{labels},revision=\"iris-predictor-00001\",tag=\"prev\",latest=\"false\"}} 100\n"
            )
        );
    }

    #[test]
    fn models_are_metrics_with_their_state_and_bytes() {
        let mut runtime = RuntimeStatus::default();
        assert_eq!(model_metrics(&runtime), "");
        runtime.services.insert(
            ("default".into(), "iris".into()),
            ServiceStatus {
                models: vec![crate::storage::models::ModelView {
                    source: "s3://models/iris".into(),
                    state: "Loaded".into(),
                    progress: None,
                    message: None,
                    downloaded: 1234,
                    version: Some("v".into()),
                }],
                ..ServiceStatus::default()
            },
        );
        let text = model_metrics(&runtime);
        let labels = r#"namespace="default",inferenceservice="iris",source="s3://models/iris""#;
        for line in [
            format!("gantry_model_state{{{labels},state=\"Loaded\"}} 1"),
            format!("gantry_model_state{{{labels},state=\"Loading\"}} 0"),
            format!("gantry_model_downloaded_bytes{{{labels}}} 1234"),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn gpus_with_classes_labels_and_holders() {
        let inventory = Inventory {
            gpus: vec![
                gpu("GPU-a", "NVIDIA A40", "0000:17:00.0"),
                gpu("GPU-b", "NVIDIA A40", "0000:31:00.0"),
                gpu("GPU-c", "NVIDIA RTX A6000", "0000:b1:00.0"),
            ],
            source: "file:gpus.yaml".into(),
            driver_version: None,
        };
        let host = Labels::from([
            ("kubernetes.io/hostname".into(), "box".into()),
            ("topology.kubernetes.io/region".into(), "LAS1".into()),
        ]);
        let classes = BTreeMap::from([("NVIDIA RTX A6000".into(), "A6000_custom".into())]);
        let mut runtime = RuntimeStatus::default();
        runtime.services.insert(
            ("default".into(), "llm".into()),
            ServiceStatus {
                replicas: vec![replica("llm-predictor-00001", 0, &["GPU-b", "GPU-c"])],
                ..ServiceStatus::default()
            },
        );
        runtime.services.insert(
            ("team".into(), "cpu".into()),
            ServiceStatus {
                replicas: vec![replica("cpu-predictor-00002", 1, &[])],
                ..ServiceStatus::default()
            },
        );
        let list = gpu_list(&inventory, &host, &classes, Some(&runtime));
        assert_eq!(list.source, "file:gpus.yaml");
        let names: Vec<&str> = list.items.iter().map(|g| g.class.as_str()).collect();
        assert_eq!(names, ["A40", "A40", "A6000_custom"]);
        let first = &list.items[0];
        assert_eq!(first.held_by, None);
        assert_eq!(first.labels["gpu.nvidia.com/class"], "A40");
        assert_eq!(first.labels["gpu.nvidia.com/model"], "NVIDIA-A40");
        assert_eq!(first.labels["gpu.nvidia.com/vram"], "48");
        assert_eq!(first.labels["gpu.nvidia.com/count"], "3");
        assert_eq!(first.labels["topology.kubernetes.io/region"], "LAS1");
        let holder = GpuHolder {
            namespace: "default".into(),
            service: "llm".into(),
            revision: "llm-predictor-00001".into(),
            replica: 0,
            ready: true,
        };
        assert_eq!(list.items[1].held_by.as_ref(), Some(&holder));
        assert_eq!(list.items[2].held_by.as_ref(), Some(&holder));

        // Without containers: the inventory, nobody holding anything.
        let list = gpu_list(&inventory, &host, &BTreeMap::new(), None);
        assert!(list.items.iter().all(|g| g.held_by.is_none()));
        assert_eq!(list.items[2].class, "RTX_A6000");

        // The JSON the CLI reads back: the GPU's fields flattened, no nulls.
        let json = without_nulls(&gpu_list(&inventory, &host, &classes, Some(&runtime)));
        let item = &json["items"][1];
        assert_eq!(item["uuid"], "GPU-b");
        assert_eq!(item["memoryBytes"], 48i64 << 30);
        assert_eq!(item["utilizationPercent"], 7);
        assert_eq!(item["heldBy"]["revision"], "llm-predictor-00001");
        assert!(json["items"][0].get("heldBy").is_none());
        let back: GpuList = serde_json::from_value(json).unwrap();
        assert_eq!(back, gpu_list(&inventory, &host, &classes, Some(&runtime)));
    }
}
