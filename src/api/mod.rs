//! The management API (axum, loopback by default): health, and the InferenceServices with
//! their source file, normalised spec and validation errors.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::reconcile::executor::{RuntimeStatus, ServiceStatus};
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
    pub dir: String,
}

/// One InferenceService as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    pub namespace: String,
    pub name: String,
    /// `http://<name>.<namespace>.<domain>`.
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
    /// Conditions, revisions, replicas and recent events (absent without containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ServiceStatus>,
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

/// An error answer, JSON like the rest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

pub fn view(entry: &ServiceEntry, domain: &str, runtime: Option<&RuntimeStatus>) -> ServiceView {
    let spec_status = match (&entry.desired, entry.stale) {
        (Some(_), false) => "Valid",
        (Some(_), true) => "Stale",
        (None, _) => "Invalid",
    };
    ServiceView {
        namespace: entry.namespace.clone(),
        name: entry.name.clone(),
        url: format!("http://{}.{}.{domain}", entry.name, entry.namespace),
        file: entry.file.clone(),
        spec_status: spec_status.into(),
        generation: entry.generation,
        diagnostics: entry.diagnostics.clone(),
        spec: entry.desired.as_deref().cloned(),
        status: runtime.map(|r| {
            r.services
                .get(&(entry.namespace.clone(), entry.name.clone()))
                .cloned()
                .unwrap_or_default()
        }),
    }
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
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

fn list(state: &ApiState, namespace: Option<&str>) -> ServiceList {
    let runtime = state.runtime.as_ref().map(|r| r.borrow().clone());
    let folder = state.folder.borrow();
    let items = folder
        .catalog
        .services
        .values()
        .filter(|e| namespace.is_none_or(|ns| e.namespace == ns))
        .map(|e| view(e, &state.domain, runtime.as_ref()))
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
    let folder = state.folder.borrow();
    match folder
        .catalog
        .services
        .values()
        .find(|e| e.namespace == namespace && e.name == name)
    {
        Some(e) => compact(&view(e, &state.domain, runtime.as_ref())).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(ApiError {
                error: format!("inferenceservices.serving.kserve.io \"{name}\" not found in namespace \"{namespace}\""),
            }),
        )
            .into_response(),
    }
}
