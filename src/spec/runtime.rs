//! ServingRuntime and ClusterServingRuntime (`serving.kserve.io/v1alpha1`): the types, KServe's
//! shipped runtimes as a built-in table, and how `model.modelFormat` picks one
//! (kserve-spec.md §7).

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use serde_yaml::Value;

use super::types::{
    nullable, Affinity, Container, EnvVar, ModelFormat, ModelSpec, ObjectMeta, PredictorExtension,
    StringMap,
};
use super::yaml::{decode, documents, UnknownFields};

/// A `ServingRuntime` (namespaced) or `ClusterServingRuntime` (cluster-wide); `kind` tells.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServingRuntime {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: ServingRuntimeSpec,
    pub status: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SupportedModelFormat {
    pub name: String,
    pub version: Option<String>,
    pub auto_select: Option<bool>,
    pub priority: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServingRuntimeSpec {
    #[serde(default, deserialize_with = "nullable")]
    pub supported_model_formats: Vec<SupportedModelFormat>,
    #[serde(default, deserialize_with = "nullable")]
    pub protocol_versions: Vec<String>,
    pub multi_model: Option<bool>,
    pub disabled: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub containers: Vec<Container>,
    #[serde(default, deserialize_with = "nullable")]
    pub volumes: Vec<Value>,
    #[serde(default, deserialize_with = "nullable")]
    pub node_selector: StringMap,
    pub affinity: Option<Affinity>,
    pub tolerations: Option<Value>,
    #[serde(default, deserialize_with = "nullable")]
    pub labels: StringMap,
    #[serde(default, deserialize_with = "nullable")]
    pub annotations: StringMap,
    pub image_pull_secrets: Option<Value>,
    #[serde(rename = "hostIPC")]
    pub host_ipc: Option<bool>,
    pub host_network: Option<bool>,
    pub worker_spec: Option<Value>,
    // ModelMesh only: accepted, meaningless to single-model serving.
    pub grpc_endpoint: Option<String>,
    pub grpc_data_endpoint: Option<String>,
    pub http_data_endpoint: Option<String>,
    pub replicas: Option<i32>,
    pub storage_helper: Option<Value>,
    pub built_in_adapter: Option<Value>,
}

impl ServingRuntime {
    pub fn is_cluster_scoped(&self) -> bool {
        self.kind == "ClusterServingRuntime"
    }

    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------
// KServe's shipped runtimes
// ---------------------------------------------------------------------------------------

/// The KServe release whose shipped runtimes, images and controller behaviour gantry follows.
pub const KSERVE_VERSION: &str = "v0.15.2";

/// The namespace of a namespaced object that does not name one (Kubernetes' `default`).
pub const DEFAULT_NAMESPACE: &str = "default";

/// The container of a runtime that serves the model.
pub const KSERVE_CONTAINER: &str = "kserve-container";

/// A co-located transformer container in a runtime (templated like the model container).
pub const TRANSFORMER_CONTAINER: &str = "transformer-container";

/// KServe v0.15.2's `config/runtimes` in the order of its `kustomization.yaml`, with the
/// images kustomize substitutes for the `...:replace` placeholders.
const BUILTIN_SOURCES: [(&str, &str); 11] = [
    (
        "kserve-tensorflow-serving.yaml",
        include_str!("runtimes/kserve-tensorflow-serving.yaml"),
    ),
    (
        "kserve-sklearnserver.yaml",
        include_str!("runtimes/kserve-sklearnserver.yaml"),
    ),
    (
        "kserve-mlserver.yaml",
        include_str!("runtimes/kserve-mlserver.yaml"),
    ),
    (
        "kserve-xgbserver.yaml",
        include_str!("runtimes/kserve-xgbserver.yaml"),
    ),
    (
        "kserve-tritonserver.yaml",
        include_str!("runtimes/kserve-tritonserver.yaml"),
    ),
    (
        "kserve-pmmlserver.yaml",
        include_str!("runtimes/kserve-pmmlserver.yaml"),
    ),
    (
        "kserve-paddleserver.yaml",
        include_str!("runtimes/kserve-paddleserver.yaml"),
    ),
    (
        "kserve-lgbserver.yaml",
        include_str!("runtimes/kserve-lgbserver.yaml"),
    ),
    (
        "kserve-torchserve.yaml",
        include_str!("runtimes/kserve-torchserve.yaml"),
    ),
    (
        "kserve-huggingfaceserver.yaml",
        include_str!("runtimes/kserve-huggingfaceserver.yaml"),
    ),
    (
        "kserve-huggingfaceserver-multinode.yaml",
        include_str!("runtimes/kserve-huggingfaceserver-multinode.yaml"),
    ),
];

static BUILTINS: LazyLock<Vec<ServingRuntime>> = LazyLock::new(|| {
    BUILTIN_SOURCES
        .iter()
        .map(|(file, text)| parse_builtin(file, text))
        .collect()
});

fn parse_builtin(file: &str, text: &str) -> ServingRuntime {
    let (docs, syntax) = documents(text);
    if let Some(err) = syntax {
        panic!("built-in runtime {file} is not YAML: {err:?}");
    }
    let doc = docs
        .first()
        .unwrap_or_else(|| panic!("built-in runtime {file} is empty"));
    match decode::<ServingRuntime>(doc, UnknownFields::Error) {
        (Some(rt), diags) if diags.is_empty() => rt,
        (_, diags) => panic!("built-in runtime {file} does not decode: {diags:?}"),
    }
}

/// KServe v0.15.2's shipped ClusterServingRuntimes (`config/runtimes`), with real images.
/// Parsed once from the YAML embedded from `src/spec/runtimes/`.
pub fn builtin_runtimes() -> &'static [ServingRuntime] {
    &BUILTINS
}

// ---------------------------------------------------------------------------------------
// Protocols and model formats
// ---------------------------------------------------------------------------------------

/// KServe's protocol order (`constants.ProtocolVersion`): v1 < v2 < grpc-v1 < grpc-v2 <
/// anything else.
const PROTOCOLS: [&str; 4] = ["v1", "v2", "grpc-v1", "grpc-v2"];
const UNKNOWN_PROTOCOL_RANK: usize = PROTOCOLS.len();

fn protocol_rank(protocol: &str) -> usize {
    PROTOCOLS
        .iter()
        .position(|p| *p == protocol)
        .unwrap_or(UNKNOWN_PROTOCOL_RANK)
}

/// `GetProtocolVersionPriority`: the best (lowest-ranked) protocol of a runtime's list.
fn best_protocol_rank(protocols: &[String]) -> usize {
    protocols
        .iter()
        .map(|p| protocol_rank(p))
        .min()
        .unwrap_or(UNKNOWN_PROTOCOL_RANK)
}

/// The protocol KServe writes into `model.protocolVersion` when the user gave none: the best
/// of the runtime's `protocolVersions`, or `""` (KServe's `ProtocolUnknown`) when the runtime
/// lists none it knows.
pub fn best_protocol(protocols: &[String]) -> &'static str {
    PROTOCOLS
        .get(best_protocol_rank(protocols))
        .copied()
        .unwrap_or("")
}

impl ServingRuntimeSpec {
    pub fn is_disabled(&self) -> bool {
        self.disabled == Some(true)
    }

    pub fn is_multi_model(&self) -> bool {
        self.multi_model == Some(true)
    }

    pub fn is_multi_node(&self) -> bool {
        self.worker_spec.is_some()
    }

    /// `IsProtocolVersionSupported`: an empty wanted protocol or an empty list accepts all.
    pub fn supports_protocol(&self, protocol: &str) -> bool {
        protocol.is_empty()
            || self.protocol_versions.is_empty()
            || self.protocol_versions.iter().any(|p| p == protocol)
    }

    /// `RuntimeSupportsModel`: KServe compares labels `mt:<name>` / `mt:<name>:<version>`
    /// as exact strings. Auto-selection only counts formats with `autoSelect: true`; an
    /// explicit `model.runtime` counts them all.
    pub fn supports_format(&self, format: &str, version: Option<&str>, explicit: bool) -> bool {
        let wanted = match version {
            Some(v) => format!("mt:{format}:{v}"),
            None => format!("mt:{format}"),
        };
        self.supported_model_formats
            .iter()
            .filter(|f| explicit || f.auto_select == Some(true))
            .any(|f| {
                format!("mt:{}", f.name) == wanted
                    || f.version
                        .as_ref()
                        .is_some_and(|v| format!("mt:{}:{v}", f.name) == wanted)
            })
    }

    /// `GetPriority`: the priority of the first listed format of that name, whatever its
    /// version.
    pub fn priority_of(&self, format: &str) -> Option<i32> {
        self.supported_model_formats
            .iter()
            .find(|f| f.name == format)
            .and_then(|f| f.priority)
    }

    fn container(&self, name: &str) -> Option<&Container> {
        self.containers
            .iter()
            .find(|c| c.name.as_deref() == Some(name))
    }
}

impl ServingRuntime {
    /// The namespace of a `ServingRuntime` (`default` when the file names none).
    pub fn namespace(&self) -> &str {
        self.metadata
            .namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE)
    }

    fn is_namespaced(&self) -> bool {
        self.kind == "ServingRuntime"
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why no runtime or no container could be had; `Display` is KServe's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("No ServingRuntimes or ClusterServingRuntimes with the name: {name}")]
    NotFound { name: String },
    #[error("specified runtime {name} is disabled")]
    Disabled { name: String },
    #[error("specified runtime {name} does not support specified protocol version")]
    ProtocolUnsupported { name: String },
    #[error("specified runtime {name} does not support specified framework/version")]
    FormatUnsupported { name: String },
    /// Go prints `ModelFormat` with `%v`: `{sklearn <nil>}` without a version. With one, Go
    /// prints the pointer's address; gantry prints the version instead.
    #[error(
        "no runtime found to support predictor with model type: {{{format} {}}}",
        version.as_deref().unwrap_or("<nil>")
    )]
    NoRuntime {
        format: String,
        version: Option<String>,
    },
    #[error("no container configuration found in selected serving runtime")]
    NoContainers,
    #[error("failed to find {container} in ServingRuntime containers")]
    ContainerNotFound { container: String },
    /// KServe returns `errors.Wrapf(err, ErrInvalidPlaceholder, ...)`: its text, `: `, and
    /// the template error.
    #[error("failed to replace placeholders in serving runtime {runtime} Container {container}: {detail}")]
    Placeholder {
        runtime: String,
        container: String,
        detail: String,
    },
    /// The strategic merge of the runtime and model containers failed.
    #[error("{0}")]
    Merge(String),
}

// ---------------------------------------------------------------------------------------
// Selection
// ---------------------------------------------------------------------------------------

/// What a predictor asks of a runtime: `model.modelFormat`, `model.runtime`,
/// `model.protocolVersion`, and whether it has a `workerSpec` (multi-node).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelRequest {
    pub format: String,
    pub format_version: Option<String>,
    pub runtime: Option<String>,
    pub protocol_version: Option<String>,
    pub multi_node: bool,
}

impl ModelRequest {
    pub fn from_model(model: &ModelSpec, multi_node: bool) -> ModelRequest {
        ModelRequest {
            format: model.model_format.name.clone(),
            format_version: model.model_format.version.clone(),
            runtime: model.runtime.clone(),
            protocol_version: model.protocol_version.clone(),
            multi_node,
        }
    }
}

/// The runtime chosen for a predictor.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub runtime: ServingRuntime,
    /// What KServe writes to `model.runtime`.
    pub name: String,
    pub cluster_scoped: bool,
    /// The protocol given, else the one KServe sets: `v2` for the `kserve-mlserver` and
    /// `kserve-tritonserver` runtimes, `v1` for `kserve-torchserve`, else the runtime's best
    /// (`""` when it lists none).
    pub protocol_version: String,
}

/// The ClusterServingRuntimes in force: the folder's, then the built-ins the folder does not
/// replace by name.
fn cluster_runtimes<'a>(
    user: &[&'a ServingRuntime],
    builtins: &'a [ServingRuntime],
) -> Vec<&'a ServingRuntime> {
    let mut out: Vec<&ServingRuntime> = user
        .iter()
        .copied()
        .filter(|r| r.is_cluster_scoped())
        .collect();
    for b in builtins {
        if !out.iter().any(|r| r.name() == b.name()) {
            out.push(b);
        }
    }
    out
}

/// The protocol `SetRuntimeDefaults` gives a model without one, by runtime name (v0.15
/// matches the names of the shipped runtimes).
fn runtime_default_protocol(runtime: &str) -> Option<&'static str> {
    match runtime {
        "kserve-mlserver" | "kserve-tritonserver" => Some("v2"),
        "kserve-torchserve" => Some("v1"),
        _ => None,
    }
}

/// Picks the runtime for a predictor as KServe's controller does (`reconcileModel`,
/// `GetSupportingRuntimes`).
///
/// `user_runtimes` are the folder's ServingRuntimes (of every namespace; those of
/// `namespace` count) and ClusterServingRuntimes; a folder ClusterServingRuntime replaces a
/// built-in of the same name, as `kubectl apply` would.
///
/// Auto-selection keeps runtimes that are enabled, single-model, multi-node exactly when the
/// model is, list the format with `autoSelect: true`, and accept the model's protocol (`v1`
/// when unset). Namespaced candidates come before cluster ones; each group is ordered by the
/// runtime's best protocol, then by name, then (stably) by the format's `priority`, higher
/// first and set before unset. KServe orders equal protocols by creation time, newest
/// first, then name: the folder has no creation times, so gantry treats them as equal and
/// the name decides.
///
/// As KServe's mutating webhook does, a `triton` format without a protocol asks for `v2`.
pub fn select_runtime(
    model: &ModelRequest,
    namespace: &str,
    user_runtimes: &[&ServingRuntime],
    builtins: &[ServingRuntime],
) -> Result<Selection, RuntimeError> {
    let namespaced: Vec<&ServingRuntime> = user_runtimes
        .iter()
        .copied()
        .filter(|r| r.is_namespaced() && r.namespace() == namespace)
        .collect();
    let cluster = cluster_runtimes(user_runtimes, builtins);
    let protocol = model
        .protocol_version
        .clone()
        .or_else(|| (model.format == "triton").then(|| "v2".to_string()));
    let version = model.format_version.as_deref();

    let (runtime, cluster_scoped) = if let Some(name) = &model.runtime {
        let found = namespaced
            .iter()
            .find(|r| r.name() == name)
            .map(|r| (*r, false))
            .or_else(|| {
                cluster
                    .iter()
                    .find(|r| r.name() == name)
                    .map(|r| (*r, true))
            })
            .ok_or_else(|| RuntimeError::NotFound { name: name.clone() })?;
        let spec = &found.0.spec;
        if spec.is_disabled() {
            return Err(RuntimeError::Disabled { name: name.clone() });
        }
        if let Some(p) = &protocol {
            if !spec.supports_protocol(p) {
                return Err(RuntimeError::ProtocolUnsupported { name: name.clone() });
            }
        }
        if !spec.supports_format(&model.format, version, true) {
            return Err(RuntimeError::FormatUnsupported { name: name.clone() });
        }
        found
    } else {
        let wanted = protocol.as_deref().unwrap_or("v1");
        auto_pick(&namespaced, model, wanted)
            .map(|r| (r, false))
            .or_else(|| auto_pick(&cluster, model, wanted).map(|r| (r, true)))
            .ok_or_else(|| RuntimeError::NoRuntime {
                format: model.format.clone(),
                version: model.format_version.clone(),
            })?
    };
    Ok(finish_selection(runtime.clone(), cluster_scoped, protocol))
}

/// The first auto-selectable runtime of one scope, in KServe's order.
fn auto_pick<'a>(
    list: &[&'a ServingRuntime],
    model: &ModelRequest,
    protocol: &str,
) -> Option<&'a ServingRuntime> {
    let version = model.format_version.as_deref();
    let mut candidates: Vec<&ServingRuntime> = list
        .iter()
        .copied()
        .filter(|r| {
            let s = &r.spec;
            !s.is_disabled()
                && !s.is_multi_model()
                && s.is_multi_node() == model.multi_node
                && s.supports_format(&model.format, version, false)
                && s.supports_protocol(protocol)
        })
        .collect();
    // `sortServingRuntimeList`: best protocol, then (creation time, all equal here) name.
    candidates.sort_by(|a, b| {
        best_protocol_rank(&a.spec.protocol_versions)
            .cmp(&best_protocol_rank(&b.spec.protocol_versions))
            .then_with(|| a.name().cmp(b.name()))
    });
    // `sortSupportedRuntimeByPriority`, stable as Go's insertion sort is on short lists.
    candidates.sort_by(|a, b| {
        match (
            a.spec.priority_of(&model.format),
            b.spec.priority_of(&model.format),
        ) {
            (Some(x), Some(y)) => y.cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
    });
    candidates.first().copied()
}

fn finish_selection(
    runtime: ServingRuntime,
    cluster_scoped: bool,
    protocol: Option<String>,
) -> Selection {
    let name = runtime.name().to_string();
    let protocol_version = protocol
        .or_else(|| runtime_default_protocol(&name).map(str::to_string))
        .unwrap_or_else(|| best_protocol(&runtime.spec.protocol_versions).to_string());
    Selection {
        runtime,
        name,
        cluster_scoped,
        protocol_version,
    }
}

// ---------------------------------------------------------------------------------------
// The effective container
// ---------------------------------------------------------------------------------------

/// The predictor's containers as KServe builds them from a runtime and a model.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltContainer {
    /// The merged, templated `kserve-container` with its final image.
    pub container: Container,
    /// The runtime's other containers: its `transformer-container` (templated) first, then
    /// the rest as written (KServe does not template them).
    pub sidecars: Vec<Container>,
    /// Pod labels from the runtime (`spec.labels`) overlaid with those KServe's controller
    /// writes into the InferenceService's labels (`serviceEnvelope` for TorchServe,
    /// `modelClass` for MLServer). Predictor and InferenceService labels go over the runtime's
    /// and under the controller's.
    pub labels: StringMap,
    /// Pod annotations from the runtime (`spec.annotations`), under the InferenceService's.
    pub annotations: StringMap,
    /// The runtime's pod volumes (`/dev/shm` for Hugging Face, ...), under the predictor's.
    pub volumes: Vec<Value>,
}

const MLSERVER_MODEL_CLASS_LABEL: &str = "modelClass";
const SERVICE_ENVELOPE_LABEL: &str = "serviceEnvelope";
const DEFAULT_MODEL_MOUNT_PATH: &str = "/mnt/models";

/// Runtimes whose image has a `-gpu` tag variant (`UpdateImageTag`).
const GPU_TAG_RUNTIMES: [&str; 3] = [
    "kserve-tensorflow-serving",
    "kserve-torchserve",
    "kserve-huggingfaceserver",
];

fn set_env(env: &mut Vec<EnvVar>, name: &str, value: &str) {
    let var = EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        value_from: None,
    };
    match env.iter_mut().find(|e| e.name == name) {
        Some(e) => *e = var,
        None => env.push(var),
    }
}

fn add_env_if_missing(env: &mut Vec<EnvVar>, name: &str, value: &str) {
    if !env.iter().any(|e| e.name == name) {
        set_env(env, name, value);
    }
}

/// `SetRuntimeDefaults` (by runtime name, as v0.15 does): what KServe's controller writes
/// into the model container and the InferenceService's labels for MLServer, TorchServe and
/// Triton. Returns the labels it sets.
fn apply_runtime_defaults(
    runtime_name: &str,
    model: &mut Container,
    isvc_name: &str,
    model_format: &str,
    has_storage: bool,
    protocol: &str,
) -> StringMap {
    let mut labels = StringMap::new();
    match runtime_name {
        "kserve-mlserver" => {
            if has_storage {
                add_env_if_missing(&mut model.env, "MLSERVER_MODEL_NAME", isvc_name);
                add_env_if_missing(
                    &mut model.env,
                    "MLSERVER_MODEL_URI",
                    DEFAULT_MODEL_MOUNT_PATH,
                );
            } else {
                add_env_if_missing(&mut model.env, "MLSERVER_LOAD_MODELS_AT_STARTUP", "false");
            }
            let class = match model_format {
                "xgboost" => "mlserver_xgboost.XGBoostModel",
                "lightgbm" => "mlserver_lightgbm.LightGBMModel",
                "mlflow" => "mlserver_mlflow.MLflowRuntime",
                _ => "mlserver_sklearn.SKLearnModel",
            };
            labels.insert(MLSERVER_MODEL_CLASS_LABEL.into(), class.into());
        }
        "kserve-torchserve" => {
            let envelope = if protocol == "v2" || protocol == "grpc-v2" {
                "kservev2"
            } else {
                "kserve"
            };
            labels.insert(SERVICE_ENVELOPE_LABEL.into(), envelope.into());
            set_env(&mut model.env, "PROTOCOL_VERSION", protocol);
        }
        "kserve-tritonserver" if !has_storage => {
            model.args.push("--model-control-mode=explicit".into());
        }
        _ => {}
    }
    labels
}

/// Builds the predictor's containers from the chosen runtime and the model, as KServe's
/// `buildPodSpec` does:
///
/// 1. the controller's runtime defaults (`SetRuntimeDefaults`): MLServer gets
///    `MLSERVER_MODEL_NAME`/`MLSERVER_MODEL_URI` (or `MLSERVER_LOAD_MODELS_AT_STARTUP=false`
///    without storage) and label `modelClass` from `model_format`; TorchServe gets
///    `PROTOCOL_VERSION` and label `serviceEnvelope`; Triton without storage gets
///    `--model-control-mode=explicit`;
/// 2. the runtime's `kserve-container` merged with the model container by strategic merge
///    (the model wins field by field, lists of env / ports / volumeMounts merge by key,
///    resources per key), args = runtime args then model args ([`merge_runtime_container`]);
/// 3. Go-template placeholders replaced from the InferenceService metadata, including the
///    labels of step 1 ([`replace_placeholders`]);
/// 4. the image tag rule ([`update_image_tag`]); a GPU counts as requested when
///    `gpu_requested` or the merged container limits `nvidia.com/gpu`.
///
/// `has_storage` is `storageUri` or `storage` being set; `protocol_version` is
/// [`Selection::protocol_version`].
#[allow(clippy::too_many_arguments)]
pub fn build_container(
    runtime: &ServingRuntimeSpec,
    runtime_name: &str,
    isvc_meta: &ObjectMeta,
    model_container: &Container,
    runtime_version: Option<&str>,
    gpu_requested: bool,
    has_storage: bool,
    protocol_version: &str,
    model_format: &str,
) -> Result<BuiltContainer, RuntimeError> {
    if runtime.containers.is_empty() {
        return Err(RuntimeError::NoContainers);
    }
    let mut model = model_container.clone();
    let isvc_name = isvc_meta.name.as_deref().unwrap_or_default();
    let added = apply_runtime_defaults(
        runtime_name,
        &mut model,
        isvc_name,
        model_format,
        has_storage,
        protocol_version,
    );
    let mut meta = isvc_meta.clone();
    meta.labels
        .extend(added.iter().map(|(k, v)| (k.clone(), v.clone())));

    let runtime_container =
        runtime
            .container(KSERVE_CONTAINER)
            .ok_or_else(|| RuntimeError::ContainerNotFound {
                container: KSERVE_CONTAINER.into(),
            })?;
    let merged = merge_runtime_container(runtime_container, &model)?;
    let mut container =
        replace_placeholders(&merged, &meta).map_err(|detail| RuntimeError::Placeholder {
            runtime: runtime_name.into(),
            container: merged.name.clone().unwrap_or_default(),
            detail,
        })?;
    let gpu = gpu_requested || container.resources.limits.contains_key("nvidia.com/gpu");
    if let Some(image) = &container.image {
        container.image = Some(update_image_tag(image, runtime_version, runtime_name, gpu));
    }

    let mut sidecars = Vec::new();
    if let Some(t) = runtime.container(TRANSFORMER_CONTAINER) {
        let templated =
            replace_placeholders(t, &meta).map_err(|detail| RuntimeError::Placeholder {
                runtime: runtime_name.into(),
                container: TRANSFORMER_CONTAINER.into(),
                detail,
            })?;
        sidecars.push(templated);
    }
    sidecars.extend(
        runtime
            .containers
            .iter()
            .filter(|c| {
                !matches!(
                    c.name.as_deref(),
                    Some(KSERVE_CONTAINER) | Some(TRANSFORMER_CONTAINER)
                )
            })
            .cloned(),
    );

    let mut labels = runtime.labels.clone();
    labels.extend(added);
    Ok(BuiltContainer {
        container,
        sidecars,
        labels,
        annotations: runtime.annotations.clone(),
        volumes: runtime.volumes.clone(),
    })
}

// --- strategic merge ---------------------------------------------------------------------

/// `corev1.Container` lists that strategic merge patch merges by a key
/// (`patchStrategy:"merge"`); every other list is replaced.
const CONTAINER_MERGE_KEYS: [(&str, &str); 4] = [
    ("env", "name"),
    ("ports", "containerPort"),
    ("volumeMounts", "mountPath"),
    ("volumeDevices", "devicePath"),
];

/// The JSON Go's `json.Marshal` would give: empty fields (`omitempty`) left out.
fn go_json<T: Serialize>(value: &T) -> Result<Json, String> {
    let mut json = serde_json::to_value(value).map_err(|e| e.to_string())?;
    prune(&mut json);
    Ok(json)
}

fn is_empty_json(v: &Json) -> bool {
    match v {
        Json::Null => true,
        Json::String(s) => s.is_empty(),
        Json::Array(a) => a.is_empty(),
        Json::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn prune(v: &mut Json) {
    match v {
        Json::Object(map) => {
            for child in map.values_mut() {
                prune(child);
            }
            map.retain(|_, child| !is_empty_json(child));
        }
        Json::Array(items) => items.iter_mut().for_each(prune),
        _ => {}
    }
}

/// Strategic merge of `patch` into `original` (objects merge recursively, the patch wins
/// on scalars and unkeyed lists).
fn strategic_merge(
    original: &mut serde_json::Map<String, Json>,
    patch: serde_json::Map<String, Json>,
    keys: &[(&str, &str)],
) {
    for (field, p) in patch {
        let key = keys.iter().find(|(f, _)| *f == field).map(|(_, k)| *k);
        match (original.get_mut(&field), p, key) {
            (Some(Json::Object(o)), Json::Object(p), _) => strategic_merge(o, p, &[]),
            (Some(Json::Array(o)), Json::Array(p), Some(key)) => {
                for item in p {
                    let found = item
                        .get(key)
                        .and_then(|k| o.iter_mut().find(|e| e.get(key) == Some(k)));
                    match (found, item) {
                        (Some(Json::Object(e)), Json::Object(item)) => {
                            strategic_merge(e, item, &[])
                        }
                        (_, item) => o.push(item),
                    }
                }
            }
            (_, p, _) => {
                original.insert(field, p);
            }
        }
    }
}

/// KServe's `MergeRuntimeContainers`: a strategic merge patch of the model container over
/// the runtime's (empty model fields leave the runtime's alone; `env`, `ports`,
/// `volumeMounts` merge by key; `resources` and probes merge per key), then `args` = runtime
/// args followed by model args. The runtime's name stays unless the model names one.
pub fn merge_runtime_container(
    runtime: &Container,
    model: &Container,
) -> Result<Container, RuntimeError> {
    let err = |e: String| RuntimeError::Merge(e);
    let Json::Object(mut base) = go_json(runtime).map_err(err)? else {
        return Err(RuntimeError::Merge("a container is not an object".into()));
    };
    let Json::Object(patch) = go_json(model).map_err(err)? else {
        return Err(RuntimeError::Merge("a container is not an object".into()));
    };
    strategic_merge(&mut base, patch, &CONTAINER_MERGE_KEYS);
    let mut merged: Container =
        serde_json::from_value(Json::Object(base)).map_err(|e| err(e.to_string()))?;
    if merged.name.is_none() {
        merged.name = runtime.name.clone();
    }
    merged.args = runtime.args.iter().chain(&model.args).cloned().collect();
    Ok(merged)
}

// --- image tags ----------------------------------------------------------------------------

/// Where the tag of an image starts (its `:`), by KServe's `(:([\w.\-_]*))$`: the last `:`
/// followed only by letters, digits, `_`, `.` and `-` (so `localhost:5000/img` has none).
fn tag_start(image: &str) -> Option<usize> {
    let i = image.rfind(':')?;
    image[i + 1..]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        .then_some(i)
}

/// KServe's `UpdateImageTag`: `runtimeVersion` replaces the tag (or is appended when there
/// is none); otherwise, when a GPU is requested and the runtime is
/// `kserve-tensorflow-serving`, `kserve-torchserve` or `kserve-huggingfaceserver`, `-gpu`
/// is appended to the tag.
///
/// Where KServe v0.15 would write an image that cannot exist, gantry leaves it alone (as
/// later KServe does): an image pinned by digest (`@sha256:`), the `-gpu` rule on an image
/// without a tag (KServe would rename the repository) or whose tag already ends in `-gpu`.
pub fn update_image_tag(
    image: &str,
    runtime_version: Option<&str>,
    runtime_name: &str,
    gpu: bool,
) -> String {
    if image.contains('@') {
        return image.to_string();
    }
    let tag = tag_start(image);
    if let Some(version) = runtime_version {
        let repo = tag.map_or(image, |i| &image[..i]);
        return format!("{repo}:{version}");
    }
    if gpu && GPU_TAG_RUNTIMES.contains(&runtime_name) && tag.is_some() && !image.ends_with("-gpu")
    {
        return format!("{image}-gpu");
    }
    image.to_string()
}

// --- Go templates --------------------------------------------------------------------------

/// KServe's `ReplacePlaceholders`: the container is JSON-encoded, run through Go's
/// `html/template` with the InferenceService's `ObjectMeta` as data, and decoded again.
///
/// gantry evaluates the same actions on each JSON-encoded string of the container:
/// `{{.Name}}`, `{{.Namespace}}`, `{{.GenerateName}}`, `{{.Labels}}`, `{{.Labels.key}}`,
/// `{{.Annotations.key}}` and `{{index .Labels `a/b`}}` / `{{index .Annotations `a/b`}}`,
/// with trim markers (`{{- ... -}}`) and comments. What follows from KServe's way:
///
/// * a missing label or annotation prints nothing (`html/template` drops the `<no value>`);
/// * values are HTML-escaped (`&` → `&amp;`, `+` → `&#43;`, `'` → `&#39;`, `"` → `&#34;`,
///   `<`, `>`);
/// * inside the JSON text a `"` is `\"`, so `{{index .Annotations "a/b"}}` is a template
///   syntax error in KServe (and here); a raw string (backquotes) works;
/// * a value with a backslash or a control character is read as JSON escapes (a newline in
///   an annotation makes the JSON invalid: an error).
///
/// Other Go template features (pipelines, functions, `if`, `range`, variables) are an error.
pub fn replace_placeholders(container: &Container, meta: &ObjectMeta) -> Result<Container, String> {
    let json = serde_json::to_value(container).map_err(|e| e.to_string())?;
    let json = template_json(json, meta)?;
    serde_json::from_value(json).map_err(|e| e.to_string())
}

fn template_json(v: Json, meta: &ObjectMeta) -> Result<Json, String> {
    Ok(match v {
        Json::String(s) => Json::String(template_string(&s, meta)?),
        Json::Array(items) => Json::Array(
            items
                .into_iter()
                .map(|i| template_json(i, meta))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => Json::Object(
            map.into_iter()
                .map(|(k, v)| Ok((template_string(&k, meta)?, template_json(v, meta)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other,
    })
}

/// A string as Go's `json.Marshal` writes it between the quotes (`<`, `>`, `&`, U+2028 and
/// U+2029 escaped too).
fn go_json_string(s: &str) -> String {
    let quoted = serde_json::to_string(s).expect("a string encodes");
    quoted[1..quoted.len() - 1]
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn template_string(s: &str, meta: &ObjectMeta) -> Result<String, String> {
    if !s.contains("{{") {
        return Ok(s.to_string());
    }
    let executed = execute_template(&go_json_string(s), meta)?;
    serde_json::from_str::<String>(&format!("\"{executed}\"")).map_err(|e| {
        let mut msg = e.to_string();
        if let Some(i) = msg.find(" at line ") {
            msg.truncate(i);
        }
        msg
    })
}

const TEMPLATE_PREFIX: &str = "template: container-tmpl:1:";

fn parse_error(msg: impl std::fmt::Display) -> String {
    format!("{TEMPLATE_PREFIX} {msg}")
}

fn exec_error(action: &str, msg: impl std::fmt::Display) -> String {
    format!("{TEMPLATE_PREFIX} executing \"container-tmpl\" at <{action}>: {msg}")
}

/// Go's `html/template` escaper for text: `htmlReplacementTable`.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '+' => out.push_str("&#43;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn execute_template(text: &str, meta: &ObjectMeta) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut before = &rest[..open];
        if trim_next {
            before = before.trim_start();
        }
        let after_open = &rest[open + 2..];
        let close = after_open
            .find("}}")
            .ok_or_else(|| parse_error("unclosed action"))?;
        let mut body = &after_open[..close];
        let trim_left =
            body.starts_with('-') && body[1..].starts_with(|c: char| c.is_ascii_whitespace());
        if trim_left {
            before = before.trim_end();
            body = &body[1..];
        }
        trim_next = body.ends_with('-')
            && body[..body.len() - 1].ends_with(|c: char| c.is_ascii_whitespace());
        if trim_next {
            body = &body[..body.len() - 1];
        }
        out.push_str(before);
        out.push_str(&evaluate_action(body.trim(), meta)?);
        rest = &after_open[close + 2..];
    }
    out.push_str(if trim_next { rest.trim_start() } else { rest });
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Token<'a> {
    Field(Vec<&'a str>),
    Ident(&'a str),
    Raw(&'a str),
}

fn tokenize(body: &str) -> Result<Vec<Token<'_>>, String> {
    let mut tokens = Vec::new();
    let mut rest = body.trim_start();
    while let Some(c) = rest.chars().next() {
        let (token, len) = match c {
            '.' => {
                let len = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
                    .unwrap_or(rest.len());
                let chain = &rest[1..len];
                let fields: Vec<&str> = if chain.is_empty() {
                    Vec::new()
                } else {
                    chain.split('.').collect()
                };
                if fields.iter().any(|f| f.is_empty()) {
                    return Err(parse_error(format!("bad field name in {:?}", &rest[..len])));
                }
                (Token::Field(fields), len)
            }
            '`' => {
                let end = rest[1..]
                    .find('`')
                    .ok_or_else(|| parse_error("unterminated raw quoted string"))?;
                (Token::Raw(&rest[1..1 + end]), end + 2)
            }
            c if c.is_alphabetic() || c == '_' => {
                let len = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                (Token::Ident(&rest[..len]), len)
            }
            c => {
                return Err(parse_error(format!(
                    "unexpected {:?} in command (gantry evaluates fields of the \
                     InferenceService metadata and `index` with a raw string)",
                    c.to_string()
                )))
            }
        };
        tokens.push(token);
        rest = rest[len..].trim_start();
    }
    Ok(tokens)
}

/// A value reached from the `ObjectMeta`.
enum Data<'a> {
    Meta,
    Str(String),
    Map(&'a StringMap),
    Missing,
}

const GO_BUILTINS: [&str; 19] = [
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
];
const GO_KEYWORDS: [&str; 11] = [
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue", "nil",
];
const OBJECT_META_FIELDS: [&str; 10] = [
    "SelfLink",
    "UID",
    "ResourceVersion",
    "Generation",
    "CreationTimestamp",
    "DeletionTimestamp",
    "DeletionGracePeriodSeconds",
    "OwnerReferences",
    "Finalizers",
    "ManagedFields",
];

fn eval_fields<'a>(
    action: &str,
    meta: &'a ObjectMeta,
    fields: &[&str],
) -> Result<Data<'a>, String> {
    let mut data = Data::Meta;
    for field in fields {
        data = match data {
            Data::Meta => match *field {
                "Name" => Data::Str(meta.name.clone().unwrap_or_default()),
                "GenerateName" => Data::Str(meta.generate_name.clone().unwrap_or_default()),
                "Namespace" => Data::Str(meta.namespace.clone().unwrap_or_default()),
                "Labels" => Data::Map(&meta.labels),
                "Annotations" => Data::Map(&meta.annotations),
                f if OBJECT_META_FIELDS.contains(&f) => {
                    return Err(exec_error(action, format!("gantry does not evaluate .{f}")))
                }
                f => {
                    return Err(exec_error(
                        action,
                        format!("can't evaluate field {f} in type v1.ObjectMeta"),
                    ))
                }
            },
            Data::Map(map) => map
                .get(*field)
                .map_or(Data::Missing, |v| Data::Str(v.clone())),
            Data::Str(_) => {
                return Err(exec_error(
                    action,
                    format!("can't evaluate field {field} in type string"),
                ))
            }
            Data::Missing => {
                return Err(exec_error(
                    action,
                    format!("nil pointer evaluating string.{field}"),
                ))
            }
        };
    }
    Ok(data)
}

fn print_data(data: Data<'_>, action: &str) -> Result<String, String> {
    Ok(match data {
        Data::Str(s) => html_escape(&s),
        Data::Missing => String::new(),
        Data::Map(map) => {
            let items: Vec<String> = map.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            html_escape(&format!("map[{}]", items.join(" ")))
        }
        Data::Meta => {
            return Err(exec_error(
                action,
                "gantry does not print the whole metadata",
            ))
        }
    })
}

fn evaluate_action(body: &str, meta: &ObjectMeta) -> Result<String, String> {
    if body.starts_with("/*") {
        return if body.ends_with("*/") {
            Ok(String::new())
        } else {
            Err(parse_error("unclosed comment"))
        };
    }
    let tokens = tokenize(body)?;
    match tokens.as_slice() {
        [] => Err(parse_error("missing value for command")),
        [Token::Field(fields)] => print_data(eval_fields(body, meta, fields)?, body),
        [Token::Ident("index"), Token::Field(fields), Token::Raw(key)] => {
            match eval_fields(body, meta, fields)? {
                Data::Map(map) => print_data(
                    map.get(*key)
                        .map_or(Data::Missing, |v| Data::Str(v.clone())),
                    body,
                ),
                _ => Err(exec_error(
                    body,
                    "error calling index: can't index item of type string",
                )),
            }
        }
        [Token::Ident(word), ..] if GO_BUILTINS.contains(word) || GO_KEYWORDS.contains(word) => {
            Err(parse_error(format!(
                "gantry does not support {word:?} here (only fields of the metadata and \
                 `index` of a label or annotation with a raw string)"
            )))
        }
        [Token::Ident(word), ..] => Err(parse_error(format!("function {word:?} not defined"))),
        _ => Err(parse_error(format!(
            "gantry cannot evaluate {{{{{body}}}}} (only fields of the metadata and `index` \
             of a label or annotation with a raw string)"
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Framework shorthands
// ---------------------------------------------------------------------------------------

/// The `model:` KServe's mutating webhook makes of a framework shorthand
/// (`setPredictorModelDefaults`): the format is the framework's field name (`sklearn`,
/// `tensorflow`, `pytorch`, `triton`, `onnx`, `huggingface`, ...), every other field is
/// carried over, and `triton`, `onnx` and `huggingface` get protocol `v2` when they have
/// none.
pub fn shorthand_model(framework: &str, ext: &PredictorExtension) -> ModelSpec {
    let mut json = serde_json::to_value(ext).expect("a PredictorExtension encodes");
    let map = json
        .as_object_mut()
        .expect("a PredictorExtension is an object");
    let format = ModelFormat {
        name: framework.to_string(),
        version: None,
    };
    map.insert(
        "modelFormat".into(),
        serde_json::to_value(format).expect("a ModelFormat encodes"),
    );
    if ext.protocol_version.is_none() && matches!(framework, "triton" | "onnx" | "huggingface") {
        map.insert("protocolVersion".into(), Json::String("v2".into()));
    }
    serde_json::from_value(json).expect("PredictorExtension's fields are a subset of ModelSpec's")
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

/// The CRD schema's checks (all reported; the API server rejects before any webhook).
fn schema_problems(rt: &ServingRuntime) -> Vec<String> {
    let mut out = Vec::new();
    for (i, f) in rt.spec.supported_model_formats.iter().enumerate() {
        if let Some(p) = f.priority.filter(|p| *p < 1) {
            let field = format!("spec.supportedModelFormats[{i}].priority");
            out.push(format!(
                "{field}: Invalid value: {p}: {field} in body should be greater than or equal to 1"
            ));
        }
    }
    if rt.spec.containers.is_empty() {
        out.push("spec.containers: Required value".into());
    }
    if let Some(worker) = &rt.spec.worker_spec {
        let has_containers = worker
            .get("containers")
            .and_then(Value::as_sequence)
            .is_some_and(|c| !c.is_empty());
        if !has_containers {
            out.push("spec.workerSpec.containers: Required value".into());
        }
    }
    out
}

/// `validateModelFormatPrioritySame`: one runtime lists an auto-selected format name twice
/// with different priorities (versions are not compared).
fn priority_not_same(spec: &ServingRuntimeSpec) -> Option<String> {
    let mut seen: Vec<(&str, Option<i32>)> = Vec::new();
    for f in spec
        .supported_model_formats
        .iter()
        .filter(|f| f.auto_select == Some(true))
    {
        match seen.iter().find(|(name, _)| *name == f.name) {
            Some((_, Some(existing))) if f.priority.is_some_and(|p| p != *existing) => {
                return Some(f.name.clone())
            }
            Some(_) => {}
            None => seen.push((&f.name, f.priority)),
        }
    }
    None
}

/// `validateServingRuntimePriority`: the new runtime and an existing one (other name, same
/// `multiModel`, existing enabled, a protocol in common) auto-select an equal format
/// (name case-insensitively, same version) with the same priority.
fn same_priority(new: &ServingRuntime, existing: &ServingRuntime) -> Option<String> {
    let (n, e) = (&new.spec, &existing.spec);
    if n.is_multi_model() != e.is_multi_model() || e.is_disabled() || new.name() == existing.name()
    {
        return None;
    }
    if !e
        .protocol_versions
        .iter()
        .any(|p| n.protocol_versions.contains(p))
    {
        return None;
    }
    for ef in e
        .supported_model_formats
        .iter()
        .filter(|f| f.auto_select == Some(true))
    {
        for nf in n
            .supported_model_formats
            .iter()
            .filter(|f| f.auto_select == Some(true))
        {
            let equal = ef.name.eq_ignore_ascii_case(&nf.name) && ef.version == nf.version;
            if equal && ef.priority.is_some() && ef.priority == nf.priority {
                return Some(nf.name.clone());
            }
        }
    }
    None
}

/// `validateMultiNodeSpec` (the checks that need no cluster).
fn multi_node_problem(rt: &ServingRuntime) -> Option<String> {
    let worker = rt.spec.worker_spec.as_ref()?;
    let problem = if worker
        .get("containers")
        .and_then(Value::as_sequence)
        .is_some_and(|c| c.len() > 1)
    {
        Some("setting multiple containers in workerSpec is not allowed".to_string())
    } else if let Some(env) = rt.spec.container(KSERVE_CONTAINER).map(|c| &c.env) {
        if env.iter().any(|e| e.name == "PIPELINE_PARALLEL_SIZE") {
            Some("setting PIPELINE_PARALLEL_SIZE in environment variables is not allowed".into())
        } else if env.iter().any(|e| e.name == "TENSOR_PARALLEL_SIZE") {
            Some("setting TENSOR_PARALLEL_SIZE in environment variables is not allowed".into())
        } else {
            None
        }
    } else {
        None
    };
    let size = |key: &str| worker.get(key).and_then(Value::as_i64).unwrap_or(1);
    let problem = problem
        .or_else(|| {
            let p = size("pipelineParallelSize");
            (p < 1)
                .then(|| format!("the WorkerSpec.PipelineParallelSize cannot be less than 1({p})"))
        })
        .or_else(|| {
            let t = size("tensorParallelSize");
            (t < 1).then(|| format!("the WorkerSpec.TensorParallelSize cannot be less than 1({t})"))
        })?;
    Some(format!(
        "the {} {} is invalid: {problem}",
        rt.kind,
        rt.name()
    ))
}

/// Checks the folder's ServingRuntimes and ClusterServingRuntimes as KServe's CRD schema and
/// admission webhook would when they are applied in the given order, and returns
/// `(index into runtimes, message)` for each problem, in KServe's words:
///
/// * schema: `priority` below 1, no `containers`, a `workerSpec` without containers;
/// * webhook (enabled runtimes only, first problem only): one runtime giving an
///   auto-selected format different priorities, then, against each existing runtime of the
///   same scope in name order (ClusterServingRuntimes: the built-ins the folder does not
///   replace and the folder's earlier ones; ServingRuntimes: the folder's earlier ones of
///   the same namespace), the same priority for an equal format, then the multi-node checks.
///
/// A runtime with a problem is not "applied": later runtimes are not checked against it,
/// and callers should not select it. (KServe only checks priorities within one runtime when
/// its scope already has a runtime; gantry always does.)
pub fn validate_runtimes(runtimes: &[&ServingRuntime]) -> Vec<(usize, String)> {
    let builtins = builtin_runtimes();
    let mut problems = Vec::new();
    let mut applied: Vec<&ServingRuntime> = Vec::new();
    for (index, rt) in runtimes.iter().copied().enumerate() {
        let schema = schema_problems(rt);
        if !schema.is_empty() {
            problems.extend(schema.into_iter().map(|m| (index, m)));
            continue;
        }
        if let Some(message) = webhook_problem(rt, &applied, builtins, runtimes) {
            problems.push((index, message));
            continue;
        }
        applied.push(rt);
    }
    problems
}

fn webhook_problem(
    rt: &ServingRuntime,
    applied: &[&ServingRuntime],
    builtins: &[ServingRuntime],
    all: &[&ServingRuntime],
) -> Option<String> {
    if rt.spec.is_disabled() {
        return None;
    }
    let cluster = rt.is_cluster_scoped();
    let mut existing: Vec<&ServingRuntime> = if cluster {
        let mut list: Vec<&ServingRuntime> = applied
            .iter()
            .copied()
            .filter(|r| r.is_cluster_scoped())
            .collect();
        // A built-in the folder replaces (anywhere in it) is not in the cluster.
        list.extend(builtins.iter().filter(|b| {
            !all.iter()
                .any(|r| r.is_cluster_scoped() && r.name() == b.name())
        }));
        list
    } else {
        applied
            .iter()
            .copied()
            .filter(|r| r.is_namespaced() && r.namespace() == rt.namespace())
            .collect()
    };
    existing.sort_by(|a, b| a.name().cmp(b.name()));
    let (scope, scope_plural) = if cluster {
        ("clusterservingruntime", "clusterservingruntimes")
    } else {
        ("servingruntime", "servingruntimes")
    };
    if let Some(format) = priority_not_same(&rt.spec) {
        return Some(format!(
            "different priorities assigned for the model format {format} under the {scope} {}",
            rt.name()
        ));
    }
    for e in &existing {
        if let Some(format) = same_priority(rt, e) {
            let mut message = format!(
                "same priority assigned for the model format {format} in the {scope_plural} {} and {}",
                e.name(),
                rt.name()
            );
            if !cluster {
                message.push_str(&format!(" in namespace {}", rt.namespace()));
            }
            return Some(message);
        }
    }
    multi_node_problem(rt)
}

#[cfg(test)]
mod tests {
    use super::*;

    // --- fixtures ------------------------------------------------------------------------

    fn runtime(yaml: &str) -> ServingRuntime {
        let (docs, syntax) = documents(yaml);
        assert!(syntax.is_none(), "{syntax:?}");
        let (rt, diags) = decode::<ServingRuntime>(&docs[0], UnknownFields::Error);
        assert!(diags.is_empty(), "{diags:?}");
        rt.unwrap()
    }

    fn container(yaml: &str) -> Container {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ml".into()),
            ..Default::default()
        }
    }

    fn builtin(name: &str) -> &'static ServingRuntime {
        builtin_runtimes()
            .iter()
            .find(|r| r.name() == name)
            .unwrap_or_else(|| panic!("no built-in {name}"))
    }

    fn request(
        format: &str,
        version: Option<&str>,
        runtime: Option<&str>,
        protocol: Option<&str>,
    ) -> ModelRequest {
        ModelRequest {
            format: format.into(),
            format_version: version.map(Into::into),
            runtime: runtime.map(Into::into),
            protocol_version: protocol.map(Into::into),
            multi_node: false,
        }
    }

    fn env(c: &Container, name: &str) -> Option<String> {
        c.env
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    }

    /// kserve/website docs/modelserving/v1beta1/amd/kserve-amdserver.yaml (corpus).
    const AMD: &str = "---
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata:
  name: kserve-amdserver
spec:
  supportedModelFormats:
    - name: tensorflow
      version: \"2\"
  protocolVersions:
    - v2
    - grpc-v2
  containers:
    - name: kserve-container
      image: <image>
      args:
        - proteus-server
        - --model-repository=/mnt/models
        - --enable-repository-watcher
        - --grpc-port=9000
        - --http-port=8080
      resources:
        requests:
          cpu: \"1\"
          memory: 2Gi
        limits:
          cpu: \"1\"
          memory: 2Gi
";

    /// kserve/kserve docs/samples/fluid/kserve-huggingfaceserver.yaml (corpus, script cut).
    const FLUID_HF: &str = "apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata:
  name: custom-kserve-huggingfaceserver
spec:
  annotations:
    prometheus.kserve.io/path: /metrics
    prometheus.kserve.io/port: \"8080\"
  containers:
  - image: kserve/huggingfaceserver:latest
    name: kserve-container
    command: [\"/bin/bash\"]
    args:
    - \"-c\"
    - |
      set -e
      python3 -m huggingfaceserver \"$@\"
    - \"--\"
    - --model_name={{.Name}}
    resources:
      limits:
        cpu: \"1\"
        memory: 2Gi
      requests:
        cpu: \"1\"
        memory: 2Gi
    volumeMounts:
    - name: devshm
      mountPath: /dev/shm
  volumes:
  - name: devshm
    emptyDir:
      medium: Memory
      sizeLimit: 1Gi
  protocolVersions:
  - v2
  - v1
  supportedModelFormats:
  - autoSelect: true
    name: huggingface
    priority: 1
    version: \"1\"
";

    /// kserve/modelmesh-serving fvt/testdata/runtimes/non-mm-runtime.yaml (corpus).
    const NON_MM: &str = "apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata:
  name: non-mm-runtime
spec:
  supportedModelFormats:
    - name: foo
      version: \"1\"
      autoSelect: true
  containers:
    - name: kserve-container
      image: fo
      args:
        - --model_name=foo
      resources:
        requests:
          cpu: \"1\"
          memory: 2Gi
        limits:
          cpu: \"1\"
          memory: 2Gi
";

    /// kserve/modelmesh-serving config/samples/servingruntime_custom.yaml (corpus).
    const MM_CUSTOM: &str = "apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata:
  name: custom-runtime-1.x
spec:
  containers:
    - env:
        - name: MODEL_DIRECTORY_PATH
          value: /models
        - name: MODEL_SERVER_MEM_REQ_BYTES
          valueFrom:
            resourceFieldRef:
              containerName: modelserver
              resource: requests.memory
      image: tnarayan74/custom-runtime:6.0
      name: modelserver
      resources:
        limits:
          cpu: \"2\"
          memory: 1Gi
        requests:
          cpu: 500m
          memory: 1Gi
  multiModel: true
  grpcDataEndpoint: port:8001
  grpcEndpoint: port:8001
  supportedModelFormats:
    - name: ml-type1
      version: \"1\"
      autoSelect: true
";

    /// A small runtime: `name`, `kind`, formats as `name[:version][:p<priority>][:manual]`,
    /// protocols.
    fn small(kind: &str, name: &str, formats: &[&str], protocols: &[&str]) -> ServingRuntime {
        let formats = formats
            .iter()
            .map(|f| {
                let mut parts = f.split(':');
                let mut format = SupportedModelFormat {
                    name: parts.next().unwrap().into(),
                    auto_select: Some(true),
                    ..Default::default()
                };
                for part in parts {
                    if let Some(p) = part.strip_prefix('p') {
                        format.priority = Some(p.parse().unwrap());
                    } else if part == "manual" {
                        format.auto_select = None;
                    } else {
                        format.version = Some(part.into());
                    }
                }
                format
            })
            .collect();
        ServingRuntime {
            api_version: "serving.kserve.io/v1alpha1".into(),
            kind: kind.into(),
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: ServingRuntimeSpec {
                supported_model_formats: formats,
                protocol_versions: protocols.iter().map(|p| p.to_string()).collect(),
                containers: vec![container(&format!(
                    "{{name: kserve-container, image: '{name}:1'}}"
                ))],
                ..Default::default()
            },
            status: None,
        }
    }

    const SR: &str = "ServingRuntime";
    const CSR: &str = "ClusterServingRuntime";

    // --- built-ins -----------------------------------------------------------------------

    #[test]
    fn every_builtin_parses_with_its_release_image() {
        let table: &[(&str, &str)] = &[
            ("kserve-tensorflow-serving", "tensorflow/serving:2.6.2"),
            ("kserve-sklearnserver", "kserve/sklearnserver:v0.15.2"),
            ("kserve-mlserver", "docker.io/seldonio/mlserver:1.5.0"),
            ("kserve-xgbserver", "kserve/xgbserver:v0.15.2"),
            (
                "kserve-tritonserver",
                "nvcr.io/nvidia/tritonserver:23.05-py3",
            ),
            ("kserve-pmmlserver", "kserve/pmmlserver:v0.15.2"),
            ("kserve-paddleserver", "kserve/paddleserver:v0.15.2"),
            ("kserve-lgbserver", "kserve/lgbserver:v0.15.2"),
            ("kserve-torchserve", "pytorch/torchserve-kfs:0.9.0"),
            (
                "kserve-huggingfaceserver",
                "kserve/huggingfaceserver:v0.15.2",
            ),
            (
                "kserve-huggingfaceserver-multinode",
                "kserve/huggingfaceserver:v0.15.2-gpu",
            ),
        ];
        let builtins = builtin_runtimes();
        assert_eq!(builtins.len(), table.len());
        for (rt, (name, image)) in builtins.iter().zip(table) {
            assert_eq!(rt.name(), *name);
            assert_eq!(rt.kind, CSR, "{name}");
            assert_eq!(rt.api_version, "serving.kserve.io/v1alpha1");
            let c = rt.spec.container(KSERVE_CONTAINER).expect(name);
            assert_eq!(c.image.as_deref(), Some(*image), "{name}");
            assert!(
                !rt.spec.is_disabled() && !rt.spec.is_multi_model(),
                "{name}"
            );
        }
        let refs: Vec<&ServingRuntime> = builtins.iter().collect();
        assert_eq!(
            validate_runtimes(&refs),
            vec![],
            "the built-ins are valid together"
        );
    }

    #[test]
    fn builtin_formats_priorities_and_protocols() {
        // name -> (formats as name:version:autoSelect:priority, protocols)
        let table: &[(&str, &str, &str)] = &[
            (
                "kserve-tensorflow-serving",
                "tensorflow:1:a:2 tensorflow:2:a:2",
                "v1 grpc-v1",
            ),
            ("kserve-sklearnserver", "sklearn:1:a:1", "v1 v2"),
            (
                "kserve-mlserver",
                "sklearn:0:a:2 sklearn:1:a:2 xgboost:1:a:2 xgboost:2:a:2 lightgbm:3:a:2 \
                 lightgbm:4:a:2 mlflow:1:a:1 mlflow:2:a:1",
                "v2",
            ),
            ("kserve-xgbserver", "xgboost:1:a:1", "v1 v2"),
            (
                "kserve-tritonserver",
                "tensorrt:8:a:1 tensorflow:1:a:1 tensorflow:2:a:1 onnx:1:a:1 pytorch:1:-:- \
                 triton:2:a:1",
                "v2 grpc-v2",
            ),
            ("kserve-pmmlserver", "pmml:3:a:1 pmml:4:a:1", "v1 v2"),
            ("kserve-paddleserver", "paddle:2:a:1", "v1 v2"),
            ("kserve-lgbserver", "lightgbm:4:a:1", "v1 v2"),
            ("kserve-torchserve", "pytorch:1:a:2", "v1 v2 grpc-v2"),
            ("kserve-huggingfaceserver", "huggingface:1:a:1", "v2 v1"),
            (
                "kserve-huggingfaceserver-multinode",
                "huggingface:1:a:2",
                "v2 v1",
            ),
        ];
        for (name, formats, protocols) in table {
            let spec = &builtin(name).spec;
            let got: Vec<String> = spec
                .supported_model_formats
                .iter()
                .map(|f| {
                    format!(
                        "{}:{}:{}:{}",
                        f.name,
                        f.version.as_deref().unwrap_or("-"),
                        if f.auto_select == Some(true) {
                            "a"
                        } else {
                            "-"
                        },
                        f.priority.map_or("-".into(), |p| p.to_string())
                    )
                })
                .collect();
            assert_eq!(
                got.join(" "),
                formats.split_whitespace().collect::<Vec<_>>().join(" "),
                "{name}"
            );
            assert_eq!(spec.protocol_versions.join(" "), *protocols, "{name}");
        }
    }

    #[test]
    fn builtin_containers_as_shipped() {
        let args = |name: &str| builtin(name).spec.containers[0].args.join(" ");
        assert_eq!(
            args("kserve-sklearnserver"),
            "--model_name={{.Name}} --model_dir=/mnt/models --http_port=8080"
        );
        assert_eq!(
            args("kserve-xgbserver"),
            "--model_name={{.Name}} --model_dir=/mnt/models --http_port=8080 --nthread=1"
        );
        assert_eq!(
            args("kserve-tensorflow-serving"),
            "--model_name={{.Name}} --port=9000 --rest_api_port=8080 \
             --model_base_path=/mnt/models --rest_api_timeout_in_ms=60000"
        );
        assert_eq!(
            builtin("kserve-tensorflow-serving").spec.containers[0].command,
            ["/usr/bin/tensorflow_model_server"]
        );
        assert_eq!(
            args("kserve-tritonserver"),
            "tritonserver --model-store=/mnt/models --grpc-port=9000 --http-port=8080 \
             --allow-grpc=true --allow-http=true"
        );
        assert_eq!(
            args("kserve-torchserve"),
            "torchserve --start --model-store=/mnt/models/model-store \
             --ts-config=/mnt/models/config/config.properties"
        );
        assert_eq!(args("kserve-huggingfaceserver"), "--model_name={{.Name}}");
        let ml = &builtin("kserve-mlserver").spec.containers[0];
        assert_eq!(
            env(ml, "MLSERVER_MODEL_IMPLEMENTATION").as_deref(),
            Some("{{.Labels.modelClass}}")
        );
        let hf = &builtin("kserve-huggingfaceserver").spec;
        assert_eq!(hf.volumes.len(), 1);
        assert_eq!(hf.host_ipc, Some(false));
        assert!(builtin("kserve-huggingfaceserver-multinode")
            .spec
            .is_multi_node());
        for rt in builtin_runtimes() {
            let r = &rt.spec.containers[0].resources;
            assert!(
                r.requests.contains_key("cpu") && r.limits.contains_key("memory"),
                "{}",
                rt.name()
            );
        }
    }

    // --- selection -----------------------------------------------------------------------

    type Expect = Result<(&'static str, bool, &'static str), &'static str>;

    fn check_selection(
        cases: &[(ModelRequest, Expect)],
        namespace: &str,
        user: &[&ServingRuntime],
    ) {
        for (req, expect) in cases {
            let got = select_runtime(req, namespace, user, builtin_runtimes());
            match (got, expect) {
                (Ok(s), Ok((name, cluster, protocol))) => {
                    assert_eq!(
                        (
                            s.name.as_str(),
                            s.cluster_scoped,
                            s.protocol_version.as_str()
                        ),
                        (*name, *cluster, *protocol),
                        "{req:?}"
                    );
                    assert_eq!(s.runtime.name(), s.name);
                }
                (Err(e), Err(text)) => assert_eq!(e.to_string(), *text, "{req:?}"),
                (got, _) => panic!("{req:?}: got {got:?}, want {expect:?}"),
            }
        }
    }

    #[test]
    fn auto_selection_among_the_builtins() {
        let r = request;
        let multi = ModelRequest {
            multi_node: true,
            ..r("huggingface", None, None, None)
        };
        let cases: Vec<(ModelRequest, Expect)> = vec![
            (
                r("sklearn", None, None, None),
                Ok(("kserve-sklearnserver", true, "v1")),
            ),
            (
                r("sklearn", Some("1"), None, None),
                Ok(("kserve-sklearnserver", true, "v1")),
            ),
            (
                r("sklearn", Some("0"), None, None),
                Err("no runtime found to support predictor with model type: {sklearn 0}"),
            ),
            // v2: MLServer's priority 2 beats the SKLearn server's 1.
            (
                r("sklearn", None, None, Some("v2")),
                Ok(("kserve-mlserver", true, "v2")),
            ),
            (
                r("sklearn", None, None, Some("grpc-v2")),
                Err("no runtime found to support predictor with model type: {sklearn <nil>}"),
            ),
            (
                r("xgboost", None, None, None),
                Ok(("kserve-xgbserver", true, "v1")),
            ),
            (
                r("xgboost", Some("2"), None, Some("v2")),
                Ok(("kserve-mlserver", true, "v2")),
            ),
            (
                r("lightgbm", None, None, None),
                Ok(("kserve-lgbserver", true, "v1")),
            ),
            (
                r("lightgbm", Some("3"), None, None),
                Err("no runtime found to support predictor with model type: {lightgbm 3}"),
            ),
            (
                r("lightgbm", Some("3"), None, Some("v2")),
                Ok(("kserve-mlserver", true, "v2")),
            ),
            (
                r("tensorflow", None, None, None),
                Ok(("kserve-tensorflow-serving", true, "v1")),
            ),
            (
                r("tensorflow", Some("2"), None, Some("grpc-v1")),
                Ok(("kserve-tensorflow-serving", true, "grpc-v1")),
            ),
            (
                r("tensorflow", None, None, Some("v2")),
                Ok(("kserve-tritonserver", true, "v2")),
            ),
            (
                r("pytorch", None, None, None),
                Ok(("kserve-torchserve", true, "v1")),
            ),
            // Triton lists pytorch without autoSelect.
            (
                r("pytorch", None, None, Some("v2")),
                Ok(("kserve-torchserve", true, "v2")),
            ),
            // The webhook gives a `triton` format protocol v2.
            (
                r("triton", None, None, None),
                Ok(("kserve-tritonserver", true, "v2")),
            ),
            (
                r("onnx", None, None, None),
                Err("no runtime found to support predictor with model type: {onnx <nil>}"),
            ),
            (
                r("onnx", Some("1"), None, Some("v2")),
                Ok(("kserve-tritonserver", true, "v2")),
            ),
            (
                r("tensorrt", None, None, Some("grpc-v2")),
                Ok(("kserve-tritonserver", true, "grpc-v2")),
            ),
            // The multi-node runtime (priority 2) has a workerSpec: never for one node.
            (
                r("huggingface", None, None, None),
                Ok(("kserve-huggingfaceserver", true, "v1")),
            ),
            (
                r("huggingface", Some("1"), None, Some("v2")),
                Ok(("kserve-huggingfaceserver", true, "v2")),
            ),
            (
                multi,
                Ok(("kserve-huggingfaceserver-multinode", true, "v1")),
            ),
            (
                r("pmml", Some("4"), None, None),
                Ok(("kserve-pmmlserver", true, "v1")),
            ),
            (
                r("paddle", None, None, None),
                Ok(("kserve-paddleserver", true, "v1")),
            ),
            (
                r("mlflow", None, None, None),
                Err("no runtime found to support predictor with model type: {mlflow <nil>}"),
            ),
            (
                r("mlflow", Some("2"), None, Some("v2")),
                Ok(("kserve-mlserver", true, "v2")),
            ),
            // No vLLM runtime ships with v0.15; formats are exact strings.
            (
                r("vLLM", None, None, None),
                Err("no runtime found to support predictor with model type: {vLLM <nil>}"),
            ),
            (
                r("SKLearn", None, None, None),
                Err("no runtime found to support predictor with model type: {SKLearn <nil>}"),
            ),
        ];
        check_selection(&cases, "default", &[]);
    }

    #[test]
    fn explicit_runtime_rules_and_texts() {
        let r = request;
        let cases: Vec<(ModelRequest, Expect)> = vec![
            (
                r("sklearn", None, Some("nope"), None),
                Err("No ServingRuntimes or ClusterServingRuntimes with the name: nope"),
            ),
            (
                r("tensorflow", None, Some("kserve-tensorflow-serving"), Some("v2")),
                Err("specified runtime kserve-tensorflow-serving does not support specified protocol version"),
            ),
            (
                r("xgboost", None, Some("kserve-sklearnserver"), None),
                Err("specified runtime kserve-sklearnserver does not support specified framework/version"),
            ),
            (
                r("sklearn", Some("2"), Some("kserve-sklearnserver"), None),
                Err("specified runtime kserve-sklearnserver does not support specified framework/version"),
            ),
            (
                r("sklearn", None, Some("kserve-mlserver"), Some("v1")),
                Err("specified runtime kserve-mlserver does not support specified protocol version"),
            ),
            // Explicit: autoSelect is not needed, and the protocol is not checked when unset.
            (r("pytorch", Some("1"), Some("kserve-tritonserver"), None), Ok(("kserve-tritonserver", true, "v2"))),
            (r("sklearn", None, Some("kserve-mlserver"), None), Ok(("kserve-mlserver", true, "v2"))),
            (r("pytorch", None, Some("kserve-torchserve"), None), Ok(("kserve-torchserve", true, "v1"))),
            (r("huggingface", None, Some("kserve-huggingfaceserver"), None), Ok(("kserve-huggingfaceserver", true, "v1"))),
            // Explicit does not look at workerSpec.
            (
                r("huggingface", None, Some("kserve-huggingfaceserver-multinode"), None),
                Ok(("kserve-huggingfaceserver-multinode", true, "v1")),
            ),
        ];
        check_selection(&cases, "default", &[]);
    }

    #[test]
    fn the_amd_runtime_needs_an_explicit_runtime() {
        let amd = runtime(AMD);
        let user = [&amd];
        let r = request;
        let cases: Vec<(ModelRequest, Expect)> = vec![
            (r("tensorflow", Some("2"), Some("kserve-amdserver"), None), Ok(("kserve-amdserver", true, "v2"))),
            (r("tensorflow", None, Some("kserve-amdserver"), None), Ok(("kserve-amdserver", true, "v2"))),
            (
                r("tensorflow", Some("1"), Some("kserve-amdserver"), None),
                Err("specified runtime kserve-amdserver does not support specified framework/version"),
            ),
            (
                r("tensorflow", Some("2"), Some("kserve-amdserver"), Some("v1")),
                Err("specified runtime kserve-amdserver does not support specified protocol version"),
            ),
            // Without autoSelect it is never picked.
            (r("tensorflow", Some("2"), None, Some("v2")), Ok(("kserve-tritonserver", true, "v2"))),
            (r("tensorflow", Some("2"), None, None), Ok(("kserve-tensorflow-serving", true, "v1"))),
        ];
        check_selection(&cases, "default", &user);
    }

    #[test]
    fn namespaced_before_cluster_and_folder_shadows_builtins() {
        let mut ns = small(SR, "my-sklearn", &["sklearn:1"], &["v1"]);
        ns.metadata.namespace = Some("team".into());
        let default_ns = small(SR, "kserve-sklearnserver", &["sklearn:1:p1"], &["v1"]);
        let mut shadow = builtin("kserve-xgbserver").clone();
        shadow.spec.containers[0].image = Some("mine/xgb:1".into());
        let user = [&ns, &default_ns, &shadow];
        let r = request;
        // Namespaced first even without a priority.
        check_selection(
            &[(
                r("sklearn", None, None, None),
                Ok(("my-sklearn", false, "v1")),
            )],
            "team",
            &user,
        );
        // A runtime file without a namespace is in `default`; it beats the cluster one.
        check_selection(
            &[
                (
                    r("sklearn", None, None, None),
                    Ok(("kserve-sklearnserver", false, "v1")),
                ),
                (
                    r("sklearn", None, Some("kserve-sklearnserver"), None),
                    Ok(("kserve-sklearnserver", false, "v1")),
                ),
                (
                    r("sklearn", None, None, Some("v2")),
                    Ok(("kserve-mlserver", true, "v2")),
                ),
            ],
            "default",
            &user,
        );
        check_selection(
            &[(
                r("sklearn", None, None, None),
                Ok(("kserve-sklearnserver", true, "v1")),
            )],
            "other",
            &user,
        );
        let s = select_runtime(
            &r("xgboost", None, None, None),
            "other",
            &user,
            builtin_runtimes(),
        )
        .unwrap();
        assert_eq!(
            s.runtime.spec.containers[0].image.as_deref(),
            Some("mine/xgb:1")
        );
        assert!(s.cluster_scoped);
    }

    #[test]
    fn order_is_protocol_then_name_then_priority() {
        let r = request;
        let sel = |runtimes: &[ServingRuntime]| {
            let refs: Vec<&ServingRuntime> = runtimes.iter().collect();
            select_runtime(&r("foo", None, None, Some("v2")), "default", &refs, &[]).map(|s| s.name)
        };
        let rt =
            |name: &str, format: &str, protocols: &[&str]| small(SR, name, &[format], protocols);
        let table: &[(Vec<ServingRuntime>, &str)] = &[
            // best protocol v1 (zeta, beta) before v2 (alpha); then name.
            (
                vec![
                    rt("zeta", "foo", &["v1", "v2"]),
                    rt("alpha", "foo", &["v2"]),
                    rt("beta", "foo", &["v2", "v1"]),
                ],
                "beta",
            ),
            // a priority beats none, whatever the protocol.
            (
                vec![
                    rt("zeta", "foo", &["v1", "v2"]),
                    rt("alpha", "foo:p1", &["v2"]),
                ],
                "alpha",
            ),
            // equal priorities keep the protocol/name order (stable).
            (
                vec![
                    rt("alpha", "foo:p1", &["v2"]),
                    rt("zeta", "foo:p1", &["v1", "v2"]),
                ],
                "zeta",
            ),
            (
                vec![
                    rt("alpha", "foo:p2", &["v2"]),
                    rt("zeta", "foo:p1", &["v1", "v2"]),
                ],
                "alpha",
            ),
            // no protocolVersions = any protocol, ranked last.
            (
                vec![rt("any", "foo", &[]), rt("zz", "foo", &["grpc-v2", "v2"])],
                "zz",
            ),
            // autoSelect false, disabled and multi-model runtimes are skipped.
            (
                vec![
                    rt("a", "foo:manual", &["v2"]),
                    rt("b", "foo", &["grpc-v2"]),
                    rt("c", "foo", &["v2"]),
                ],
                "c",
            ),
        ];
        for (runtimes, want) in table {
            assert_eq!(sel(runtimes).as_deref(), Ok(*want), "{runtimes:?}");
        }
        let mut off = rt("a", "foo:p9", &["v2"]);
        off.spec.disabled = Some(true);
        let mut mm = rt("b", "foo:p9", &["v2"]);
        mm.spec.multi_model = Some(true);
        assert_eq!(
            sel(&[off.clone(), mm, rt("c", "foo", &["v2"])]).as_deref(),
            Ok("c")
        );
        let refs = [&off];
        assert_eq!(
            select_runtime(&r("foo", None, Some("a"), None), "default", &refs, &[])
                .unwrap_err()
                .to_string(),
            "specified runtime a is disabled"
        );
    }

    #[test]
    fn format_labels_are_exact_strings() {
        let r = request;
        let odd = small(SR, "odd", &["x:1"], &[]);
        let user = [&odd];
        check_selection(
            &[
                // runtime `x` version `1` gives labels mt:x and mt:x:1.
                (r("x", None, None, None), Ok(("odd", false, ""))),
                (r("x", Some("1"), None, None), Ok(("odd", false, ""))),
                (
                    r("x", Some("1.0"), None, None),
                    Err("no runtime found to support predictor with model type: {x 1.0}"),
                ),
            ],
            "default",
            &user,
        );
    }

    #[test]
    fn corpus_namespaced_runtimes() {
        let non_mm = runtime(NON_MM);
        let mm = runtime(MM_CUSTOM);
        let user = [&non_mm, &mm];
        let r = request;
        check_selection(
            &[
                // No protocolVersions: any protocol; KServe writes its ProtocolUnknown "".
                (
                    r("foo", Some("1"), None, None),
                    Ok(("non-mm-runtime", false, "")),
                ),
                (
                    r("foo", None, None, Some("v2")),
                    Ok(("non-mm-runtime", false, "v2")),
                ),
                // Multi-model (ModelMesh) runtimes are never auto-selected...
                (
                    r("ml-type1", None, None, None),
                    Err("no runtime found to support predictor with model type: {ml-type1 <nil>}"),
                ),
                // ...but can be named.
                (
                    r("ml-type1", None, Some("custom-runtime-1.x"), None),
                    Ok(("custom-runtime-1.x", false, "")),
                ),
            ],
            "default",
            &user,
        );
        // It has no kserve-container.
        let err = build_container(
            &mm.spec,
            "custom-runtime-1.x",
            &meta("m"),
            &Container::default(),
            None,
            false,
            true,
            "",
            "ml-type1",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to find kserve-container in ServingRuntime containers"
        );
    }

    // --- templating ----------------------------------------------------------------------

    #[test]
    fn go_template_placeholders() {
        let mut m = meta("iris");
        m.labels.insert("app".into(), "web".into());
        m.labels.insert("team/x".into(), "blue".into());
        m.annotations.insert("a/b".into(), "v".into());
        m.annotations.insert("plus".into(), "a+b&c<d>'\"".into());
        m.annotations.insert("nl".into(), "x\ny".into());
        m.annotations.insert("bs".into(), "C:\\new".into());
        let exec = "template: container-tmpl:1: executing \"container-tmpl\" at ";
        let table: &[(&str, Result<&str, &str>)] = &[
            ("--model_name={{.Name}}", Ok("--model_name=iris")),
            ("{{ .Namespace }}/{{.Name}}", Ok("ml/iris")),
            ("{{.Labels.app}}", Ok("web")),
            ("[{{.Labels.missing}}]", Ok("[]")),
            ("{{.GenerateName}}", Ok("")),
            (
                "{{.Annotations.plus}}",
                Ok("a&#43;b&amp;c&lt;d&gt;&#39;&#34;"),
            ),
            ("{{index .Annotations `a/b`}}", Ok("v")),
            (
                "{{index .Labels `team/x`}}-{{index .Labels `nope`}}",
                Ok("blue-"),
            ),
            ("{{.Labels}}", Ok("map[app:web team/x:blue]")),
            ("a {{- .Name -}} b", Ok("airisb")),
            ("{{/* a comment */}}x", Ok("x")),
            // A backslash in a value is read as a JSON escape.
            ("{{.Annotations.bs}}", Ok("C:\new")),
            ("no placeholder {", Ok("no placeholder {")),
            // In the JSON text a double quote is \" : a syntax error in KServe too.
            (
                "{{index .Annotations \"a/b\"}}",
                Err("template: container-tmpl:1: unexpected \"\\\\\" in command"),
            ),
            (
                "{{.Foo}}",
                Err("<.Foo>: can't evaluate field Foo in type v1.ObjectMeta"),
            ),
            (
                "{{.Name.First}}",
                Err("<.Name.First>: can't evaluate field First in type string"),
            ),
            ("{{.Annotations.nl}}", Err("control character")),
            (
                "{{printf `%s` .Name}}",
                Err("gantry does not support \"printf\""),
            ),
            ("{{foo}}", Err("function \"foo\" not defined")),
            (
                "{{.Name",
                Err("template: container-tmpl:1: unclosed action"),
            ),
            ("{{}}", Err("missing value for command")),
        ];
        for (text, want) in table {
            let got = template_string(text, &m);
            match (&got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{text}"),
                (Err(g), Err(w)) => {
                    let w = w
                        .strip_prefix('<')
                        .map_or(w.to_string(), |_| format!("{exec}{w}"));
                    assert!(g.contains(&w), "{text}: {g:?} does not contain {w:?}")
                }
                _ => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn placeholders_everywhere_in_the_container() {
        let mut m = meta("iris");
        m.labels.insert("v".into(), "7".into());
        let c = container(
            "{name: kserve-container, image: 'reg/{{.Namespace}}:{{.Labels.v}}', command: ['{{.Name}}'],
              args: ['--x={{.Name}}'], workingDir: '/w/{{.Name}}',
              env: [{name: A, value: '{{.Name}}'}], volumeMounts: [{name: m, mountPath: '/m/{{.Name}}'}],
              readinessProbe: {httpGet: {path: '/v1/models/{{.Name}}', port: 8080}}}",
        );
        let out = replace_placeholders(&c, &m).unwrap();
        assert_eq!(out.image.as_deref(), Some("reg/ml:7"));
        assert_eq!(out.command, ["iris"]);
        assert_eq!(out.args, ["--x=iris"]);
        assert_eq!(out.working_dir.as_deref(), Some("/w/iris"));
        assert_eq!(env(&out, "A").as_deref(), Some("iris"));
        assert_eq!(out.volume_mounts[0].mount_path, "/m/iris");
        let probe = out.readiness_probe.unwrap();
        assert_eq!(
            probe.http_get.unwrap().path.as_deref(),
            Some("/v1/models/iris")
        );
    }

    // --- image tags ----------------------------------------------------------------------

    #[test]
    fn image_tag_rules() {
        let tf = "kserve-tensorflow-serving";
        let table: &[(&str, Option<&str>, &str, bool, &str)] = &[
            (
                "tensorflow/serving:2.6.2",
                Some("2.1.0-gpu"),
                tf,
                true,
                "tensorflow/serving:2.1.0-gpu",
            ),
            (
                "tensorflow/serving:2.6.2",
                Some("1.14.0"),
                tf,
                false,
                "tensorflow/serving:1.14.0",
            ),
            (
                "tensorflow/serving:2.6.2",
                None,
                tf,
                true,
                "tensorflow/serving:2.6.2-gpu",
            ),
            (
                "tensorflow/serving:2.6.2",
                None,
                tf,
                false,
                "tensorflow/serving:2.6.2",
            ),
            (
                "pytorch/torchserve-kfs:0.9.0",
                None,
                "kserve-torchserve",
                true,
                "pytorch/torchserve-kfs:0.9.0-gpu",
            ),
            (
                "kserve/huggingfaceserver:v0.15.2",
                None,
                "kserve-huggingfaceserver",
                true,
                "kserve/huggingfaceserver:v0.15.2-gpu",
            ),
            (
                "nvcr.io/nvidia/tritonserver:23.05-py3",
                None,
                "kserve-tritonserver",
                true,
                "nvcr.io/nvidia/tritonserver:23.05-py3",
            ),
            (
                "nvcr.io/nvidia/tritonserver:23.05-py3",
                Some("23.10-py3"),
                "kserve-tritonserver",
                true,
                "nvcr.io/nvidia/tritonserver:23.10-py3",
            ),
            (
                "kserve/sklearnserver:v0.15.2",
                None,
                "kserve-sklearnserver",
                true,
                "kserve/sklearnserver:v0.15.2",
            ),
            // A registry port is not a tag.
            (
                "localhost:5000/img",
                Some("v2"),
                tf,
                false,
                "localhost:5000/img:v2",
            ),
            (
                "localhost:5000/img:1.0",
                Some("v2"),
                tf,
                false,
                "localhost:5000/img:v2",
            ),
            (
                "localhost:5000/img:1.0",
                None,
                tf,
                true,
                "localhost:5000/img:1.0-gpu",
            ),
            ("img", Some("v2"), tf, false, "img:v2"),
            // Where KServe v0.15 would make up an image, gantry keeps it.
            ("localhost:5000/img", None, tf, true, "localhost:5000/img"),
            ("img:1.0-gpu", None, tf, true, "img:1.0-gpu"),
            (
                "img@sha256:0123abcd",
                Some("v2"),
                tf,
                true,
                "img@sha256:0123abcd",
            ),
        ];
        for (image, version, rt, gpu, want) in table {
            assert_eq!(
                update_image_tag(image, *version, rt, *gpu),
                *want,
                "{image} {version:?} {rt} {gpu}"
            );
        }
    }

    // --- the effective container ---------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn build(
        rt: &str,
        name: &str,
        model: &str,
        version: Option<&str>,
        gpu: bool,
        storage: bool,
        protocol: &str,
        format: &str,
    ) -> BuiltContainer {
        build_container(
            &builtin(rt).spec,
            rt,
            &meta(name),
            &container(model),
            version,
            gpu,
            storage,
            protocol,
            format,
        )
        .unwrap()
    }

    #[test]
    fn model_container_merges_over_the_runtime() {
        let b = build(
            "kserve-sklearnserver",
            "iris",
            "{args: ['--workers=2'], env: [{name: X, value: '1'}], resources: {requests: {cpu: 100m}}}",
            None,
            false,
            true,
            "v1",
            "sklearn",
        );
        let c = &b.container;
        assert_eq!(c.name.as_deref(), Some("kserve-container"));
        assert_eq!(c.image.as_deref(), Some("kserve/sklearnserver:v0.15.2"));
        assert_eq!(
            c.args,
            [
                "--model_name=iris",
                "--model_dir=/mnt/models",
                "--http_port=8080",
                "--workers=2"
            ]
        );
        assert_eq!(env(c, "X").as_deref(), Some("1"));
        assert_eq!(c.resources.requests["cpu"].as_str(), "100m");
        assert_eq!(c.resources.requests["memory"].as_str(), "2Gi");
        assert_eq!(c.resources.limits["cpu"].as_str(), "1");
        assert_eq!(c.resources.limits["memory"].as_str(), "2Gi");
        assert_eq!(
            c.security_context.as_ref().unwrap().run_as_non_root,
            Some(true)
        );
        assert_eq!(b.annotations["prometheus.kserve.io/port"], "8080");
        assert!(b.sidecars.is_empty() && b.labels.is_empty() && b.volumes.is_empty());
    }

    #[test]
    fn strategic_merge_rules() {
        let rt = container(
            "{name: kserve-container, image: 'rt:1', command: [serve], args: [--a],
              env: [{name: A, value: '1'}, {name: B, value: '2'}],
              ports: [{containerPort: 8080, name: http1}],
              volumeMounts: [{name: shm, mountPath: /dev/shm}],
              readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 10},
              resources: {limits: {cpu: '1', memory: 2Gi}},
              securityContext: {runAsUser: 1000, capabilities: {drop: [ALL]}}}",
        );
        let model = container(
            "{image: '', command: [other], args: [--b],
              env: [{name: B, value: '3'}, {name: C, valueFrom: {secretKeyRef: {name: s, key: k}}}, {name: A, value: ''}],
              ports: [{containerPort: 8080, protocol: TCP}, {containerPort: 9000, name: h2c}],
              volumeMounts: [{name: cache, mountPath: /cache}],
              readinessProbe: {timeoutSeconds: 5},
              resources: {limits: {nvidia.com/gpu: 1}},
              securityContext: {capabilities: {add: [SYS_PTRACE]}}}",
        );
        let m = merge_runtime_container(&rt, &model).unwrap();
        assert_eq!(m.name.as_deref(), Some("kserve-container"));
        assert_eq!(
            m.image.as_deref(),
            Some("rt:1"),
            "an empty image is left out"
        );
        assert_eq!(m.command, ["other"], "command is replaced");
        assert_eq!(m.args, ["--a", "--b"], "args are concatenated");
        let envs: Vec<(String, Option<String>)> = m
            .env
            .iter()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect();
        assert_eq!(
            envs,
            [
                ("A".into(), Some("1".into())),
                ("B".into(), Some("3".into())),
                ("C".into(), None)
            ],
            "env merges by name, in the runtime's order, empty values left out"
        );
        assert!(m.env[2].value_from.is_some());
        let ports: Vec<(i64, Option<&str>, Option<&str>)> = m
            .ports
            .iter()
            .map(|p| (p.container_port, p.name.as_deref(), p.protocol.as_deref()))
            .collect();
        assert_eq!(
            ports,
            [
                (8080, Some("http1"), Some("TCP")),
                (9000, Some("h2c"), None)
            ]
        );
        assert_eq!(m.volume_mounts.len(), 2);
        let probe = m.readiness_probe.unwrap();
        assert_eq!(probe.http_get.unwrap().path.as_deref(), Some("/ready"));
        assert_eq!(
            (probe.period_seconds, probe.timeout_seconds),
            (Some(10), Some(5))
        );
        assert_eq!(m.resources.limits.len(), 3);
        let sc = m.security_context.unwrap();
        assert_eq!(sc.run_as_user, Some(1000));
        assert_eq!(
            sc.capabilities.unwrap(),
            super::super::types::Capabilities {
                add: vec!["SYS_PTRACE".into()],
                drop: vec!["ALL".into()],
            }
        );
        // A model container that names itself renames the merged container.
        let named = merge_runtime_container(&rt, &container("{name: custom}")).unwrap();
        assert_eq!(named.name.as_deref(), Some("custom"));
    }

    #[test]
    fn gpu_images_through_build_container() {
        let gpu = "{resources: {limits: {nvidia.com/gpu: 1}}}";
        let table: &[(&str, &str, Option<&str>, bool, &str)] = &[
            (
                "kserve-tensorflow-serving",
                gpu,
                None,
                false,
                "tensorflow/serving:2.6.2-gpu",
            ),
            (
                "kserve-tensorflow-serving",
                "{}",
                None,
                true,
                "tensorflow/serving:2.6.2-gpu",
            ),
            (
                "kserve-tensorflow-serving",
                gpu,
                Some("2.1.0-gpu"),
                true,
                "tensorflow/serving:2.1.0-gpu",
            ),
            (
                "kserve-tensorflow-serving",
                "{}",
                None,
                false,
                "tensorflow/serving:2.6.2",
            ),
            (
                "kserve-torchserve",
                gpu,
                None,
                true,
                "pytorch/torchserve-kfs:0.9.0-gpu",
            ),
            (
                "kserve-huggingfaceserver",
                gpu,
                None,
                true,
                "kserve/huggingfaceserver:v0.15.2-gpu",
            ),
            (
                "kserve-tritonserver",
                gpu,
                None,
                true,
                "nvcr.io/nvidia/tritonserver:23.05-py3",
            ),
            (
                "kserve-sklearnserver",
                gpu,
                Some("v0.14.1"),
                true,
                "kserve/sklearnserver:v0.14.1",
            ),
            (
                "kserve-sklearnserver",
                "{image: 'me/sk:2'}",
                None,
                true,
                "me/sk:2",
            ),
        ];
        for (rt, model, version, gpu_requested, want) in table {
            let b = build(rt, "m", model, *version, *gpu_requested, true, "v1", "x");
            assert_eq!(
                b.container.image.as_deref(),
                Some(*want),
                "{rt} {model} {version:?}"
            );
        }
    }

    #[test]
    fn torchserve_envelope_and_protocol() {
        for (protocol, envelope) in [
            ("v1", "kserve"),
            ("v2", "kservev2"),
            ("grpc-v2", "kservev2"),
        ] {
            let b = build(
                "kserve-torchserve",
                "mnist",
                "{env: [{name: PROTOCOL_VERSION, value: v9}], args: [--models, mnist=mnist.mar]}",
                None,
                false,
                true,
                protocol,
                "pytorch",
            );
            let c = &b.container;
            assert_eq!(env(c, "TS_SERVICE_ENVELOPE").as_deref(), Some(envelope));
            assert_eq!(env(c, "PROTOCOL_VERSION").as_deref(), Some(protocol));
            assert_eq!(c.env.len(), 2);
            assert_eq!(b.labels["serviceEnvelope"], envelope);
            assert_eq!(c.args[c.args.len() - 2..], ["--models", "mnist=mnist.mar"]);
        }
    }

    #[test]
    fn mlserver_model_env_and_class() {
        type Envs = &'static [(&'static str, &'static str)];
        let table: &[(&str, bool, &str, Envs)] = &[
            (
                "sklearn",
                true,
                "mlserver_sklearn.SKLearnModel",
                &[
                    ("MLSERVER_MODEL_NAME", "iris"),
                    ("MLSERVER_MODEL_URI", "/mnt/models"),
                ],
            ),
            (
                "xgboost",
                true,
                "mlserver_xgboost.XGBoostModel",
                &[("MLSERVER_MODEL_NAME", "iris")],
            ),
            (
                "lightgbm",
                false,
                "mlserver_lightgbm.LightGBMModel",
                &[("MLSERVER_LOAD_MODELS_AT_STARTUP", "false")],
            ),
            (
                "mlflow",
                true,
                "mlserver_mlflow.MLflowRuntime",
                &[("MLSERVER_MODEL_URI", "/mnt/models")],
            ),
        ];
        for (format, storage, class, envs) in table {
            let b = build(
                "kserve-mlserver",
                "iris",
                "{}",
                None,
                false,
                *storage,
                "v2",
                format,
            );
            let c = &b.container;
            assert_eq!(
                env(c, "MLSERVER_MODEL_IMPLEMENTATION").as_deref(),
                Some(*class),
                "{format}"
            );
            assert_eq!(b.labels["modelClass"], *class);
            for (k, v) in *envs {
                assert_eq!(env(c, k).as_deref(), Some(*v), "{format} {k}");
            }
            assert_eq!(
                env(c, "MLSERVER_LOAD_MODELS_AT_STARTUP").is_some(),
                !storage
            );
            assert_eq!(
                c.env[..4]
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>(),
                [
                    "MLSERVER_MODEL_IMPLEMENTATION",
                    "MLSERVER_HTTP_PORT",
                    "MLSERVER_GRPC_PORT",
                    "MODELS_DIR"
                ]
            );
        }
        // The user's own value stays.
        let b = build(
            "kserve-mlserver",
            "iris",
            "{env: [{name: MLSERVER_MODEL_NAME, value: mine}]}",
            None,
            false,
            true,
            "v2",
            "sklearn",
        );
        assert_eq!(
            env(&b.container, "MLSERVER_MODEL_NAME").as_deref(),
            Some("mine")
        );
    }

    #[test]
    fn triton_without_storage_loads_explicitly() {
        let b = build(
            "kserve-tritonserver",
            "t",
            "{args: [--log-verbose=1]}",
            None,
            false,
            false,
            "v2",
            "triton",
        );
        assert_eq!(
            b.container.args.last().map(String::as_str),
            Some("--model-control-mode=explicit")
        );
        assert_eq!(
            b.container.args[b.container.args.len() - 2],
            "--log-verbose=1"
        );
        let b = build(
            "kserve-tritonserver",
            "t",
            "{}",
            None,
            false,
            true,
            "v2",
            "triton",
        );
        assert!(!b
            .container
            .args
            .iter()
            .any(|a| a.contains("model-control-mode")));
    }

    #[test]
    fn build_errors_in_kserve_words() {
        let mut none = small(CSR, "empty", &["foo"], &[]);
        none.spec.containers.clear();
        let m = meta("m");
        let c = Container::default();
        let err = |rt: &ServingRuntime| {
            build_container(&rt.spec, rt.name(), &m, &c, None, false, true, "v1", "foo")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&none),
            "no container configuration found in selected serving runtime"
        );
        let mut other = small(CSR, "other", &["foo"], &[]);
        other.spec.containers[0].name = Some("server".into());
        assert_eq!(
            err(&other),
            "failed to find kserve-container in ServingRuntime containers"
        );
        let mut bad = small(CSR, "my-rt", &["foo"], &[]);
        bad.spec.containers[0].args = vec!["--x={{.Spec}}".into()];
        assert_eq!(
            err(&bad),
            "failed to replace placeholders in serving runtime my-rt Container kserve-container: \
             template: container-tmpl:1: executing \"container-tmpl\" at <.Spec>: can't evaluate \
             field Spec in type v1.ObjectMeta"
        );
    }

    #[test]
    fn sidecars_and_pod_level_parts() {
        let rt = runtime(
            "apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata: {name: with-sidecars}
spec:
  labels: {team: a}
  supportedModelFormats: [{name: foo, autoSelect: true}]
  containers:
    - {name: agent, image: 'agent:1', args: ['--for={{.Name}}']}
    - {name: kserve-container, image: 'srv:1', args: ['--model_name={{.Name}}']}
    - {name: transformer-container, image: 'tr:1', args: ['--model_name={{.Name}}']}
",
        );
        let b = build_container(
            &rt.spec,
            "with-sidecars",
            &meta("m"),
            &Container::default(),
            None,
            false,
            true,
            "v1",
            "foo",
        )
        .unwrap();
        assert_eq!(b.container.args, ["--model_name=m"]);
        let sidecars: Vec<(&str, &str)> = b
            .sidecars
            .iter()
            .map(|c| (c.name.as_deref().unwrap(), c.args[0].as_str()))
            .collect();
        assert_eq!(
            sidecars,
            [
                ("transformer-container", "--model_name=m"),
                ("agent", "--for={{.Name}}")
            ]
        );
        assert_eq!(b.labels["team"], "a");
        // The Hugging Face runtime brings its /dev/shm volume.
        let hf = build(
            "kserve-huggingfaceserver",
            "llm",
            "{}",
            None,
            false,
            false,
            "v1",
            "huggingface",
        );
        assert_eq!(hf.volumes.len(), 1);
        assert_eq!(hf.container.volume_mounts[0].mount_path, "/dev/shm");
        assert_eq!(
            env(&hf.container, "LMCACHE_USE_EXPERIMENTAL").as_deref(),
            Some("True")
        );
        // The fluid sample: a templated argument after a script.
        let fluid = runtime(FLUID_HF);
        let b = build_container(
            &fluid.spec,
            fluid.name(),
            &meta("hf"),
            &Container::default(),
            None,
            true,
            true,
            "v1",
            "huggingface",
        )
        .unwrap();
        assert_eq!(b.container.command, ["/bin/bash"]);
        assert_eq!(
            b.container.args.last().map(String::as_str),
            Some("--model_name=hf")
        );
        assert!(b.container.args[1].contains("python3 -m huggingfaceserver \"$@\""));
        assert_eq!(
            b.container.image.as_deref(),
            Some("kserve/huggingfaceserver:latest"),
            "only the shipped name gets -gpu"
        );
    }

    // --- shorthands ----------------------------------------------------------------------

    #[test]
    fn shorthand_becomes_model() {
        let table: &[(&str, Option<&str>, Option<&str>)] = &[
            ("sklearn", None, None),
            ("xgboost", None, None),
            ("tensorflow", None, None),
            ("pytorch", None, None),
            ("triton", None, Some("v2")),
            ("onnx", None, Some("v2")),
            ("huggingface", None, Some("v2")),
            ("huggingface", Some("v1"), Some("v1")),
            ("pmml", None, None),
            ("lightgbm", Some("v2"), Some("v2")),
            ("paddle", None, None),
        ];
        for (framework, given, want) in table {
            let ext: PredictorExtension = serde_yaml::from_str(&format!(
                "{{name: kserve-container, storageUri: 'gs://b/m', runtimeVersion: '1.0', args: [--x],
                  resources: {{limits: {{nvidia.com/gpu: 1}}}}, storage: {{key: k}}{}}}",
                given.map_or(String::new(), |p| format!(", protocolVersion: {p}"))
            ))
            .unwrap();
            let m = shorthand_model(framework, &ext);
            assert_eq!(m.model_format.name, *framework);
            assert_eq!(m.model_format.version, None);
            assert_eq!(m.protocol_version.as_deref(), *want, "{framework}");
            assert_eq!(m.runtime, None);
            assert_eq!(m.storage_uri.as_deref(), Some("gs://b/m"));
            assert_eq!(m.runtime_version.as_deref(), Some("1.0"));
            assert_eq!(m.storage.as_ref().and_then(|s| s.key.as_deref()), Some("k"));
            assert_eq!(m.container(), ext.container());
        }
    }

    #[test]
    fn shorthands_end_to_end() {
        // (framework, gpu) -> (runtime, protocol, image)
        let table: &[(&str, bool, &str, &str, &str)] = &[
            (
                "tensorflow",
                true,
                "kserve-tensorflow-serving",
                "v1",
                "tensorflow/serving:2.6.2-gpu",
            ),
            (
                "sklearn",
                false,
                "kserve-sklearnserver",
                "v1",
                "kserve/sklearnserver:v0.15.2",
            ),
            (
                "onnx",
                true,
                "kserve-tritonserver",
                "v2",
                "nvcr.io/nvidia/tritonserver:23.05-py3",
            ),
            (
                "triton",
                false,
                "kserve-tritonserver",
                "v2",
                "nvcr.io/nvidia/tritonserver:23.05-py3",
            ),
            (
                "huggingface",
                true,
                "kserve-huggingfaceserver",
                "v2",
                "kserve/huggingfaceserver:v0.15.2-gpu",
            ),
            (
                "pytorch",
                true,
                "kserve-torchserve",
                "v1",
                "pytorch/torchserve-kfs:0.9.0-gpu",
            ),
        ];
        for (framework, gpu, want_rt, want_protocol, want_image) in table {
            let ext: PredictorExtension = serde_yaml::from_str(if *gpu {
                "{storageUri: 'gs://b/m', resources: {limits: {nvidia.com/gpu: 1}}}"
            } else {
                "{storageUri: 'gs://b/m'}"
            })
            .unwrap();
            let model = shorthand_model(framework, &ext);
            let s = select_runtime(
                &ModelRequest::from_model(&model, false),
                "default",
                &[],
                builtin_runtimes(),
            )
            .unwrap();
            assert_eq!(
                (s.name.as_str(), s.protocol_version.as_str()),
                (*want_rt, *want_protocol),
                "{framework}"
            );
            let b = build_container(
                &s.runtime.spec,
                &s.name,
                &meta("svc"),
                &model.container(),
                model.runtime_version.as_deref(),
                false,
                model.storage_uri.is_some(),
                &s.protocol_version,
                &model.model_format.name,
            )
            .unwrap();
            assert_eq!(
                b.container.image.as_deref(),
                Some(*want_image),
                "{framework}"
            );
        }
    }

    // --- validation ----------------------------------------------------------------------

    fn validate(runtimes: &[ServingRuntime]) -> Vec<(usize, String)> {
        let refs: Vec<&ServingRuntime> = runtimes.iter().collect();
        validate_runtimes(&refs)
    }

    #[test]
    fn same_priority_between_runtimes() {
        let c =
            |name: &str, formats: &[&str], protocols: &[&str]| small(CSR, name, formats, protocols);
        let n =
            |name: &str, formats: &[&str], protocols: &[&str]| small(SR, name, formats, protocols);
        let in_ns = |mut rt: ServingRuntime, ns: &str| {
            rt.metadata.namespace = Some(ns.into());
            rt
        };
        let disabled = |mut rt: ServingRuntime| {
            rt.spec.disabled = Some(true);
            rt
        };
        let mm = |mut rt: ServingRuntime| {
            rt.spec.multi_model = Some(true);
            rt
        };
        let clash_c =
            "same priority assigned for the model format foo in the clusterservingruntimes a and b";
        let clash_n = "same priority assigned for the model format foo in the servingruntimes a and b in namespace default";
        type Case = (Vec<ServingRuntime>, Vec<(usize, &'static str)>);
        let table: Vec<Case> = vec![
            (vec![c("a", &["foo:1:p1"], &["v1"]), c("b", &["foo:1:p1"], &["v1", "v2"])], vec![(1, clash_c)]),
            (vec![n("a", &["foo:1:p1"], &["v2"]), n("b", &["foo:1:p1"], &["v2"])], vec![(1, clash_n)]),
            // Reported against the existing runtimes in name order.
            (vec![c("b", &["foo:1:p1"], &["v1"]), c("a", &["foo:1:p1"], &["v1"])], vec![(1, "same priority assigned for the model format foo in the clusterservingruntimes b and a")]),
            // Names compare case-insensitively; the new runtime's spelling is reported.
            (vec![c("a", &["Foo:1:p1"], &["v1"]), c("b", &["foo:1:p1"], &["v1"])], vec![(1, clash_c)]),
            (vec![c("a", &["foo:p1"], &["v1"]), c("b", &["foo:p1"], &["v1"])], vec![(1, clash_c)]),
            (vec![c("a", &["foo:1:p1"], &["v1"]), c("b", &["foo:1:p2"], &["v1"])], vec![]),
            (vec![c("a", &["foo:1:p1"], &["v1"]), c("b", &["foo:2:p1"], &["v1"])], vec![]),
            (vec![c("a", &["foo:1:p1"], &["v1"]), c("b", &["foo:p1"], &["v1"])], vec![]),
            (vec![c("a", &["foo:1:p1"], &["v1"]), c("b", &["foo:1:p1"], &["v2"])], vec![]),
            (vec![c("a", &["foo:1:p1"], &[]), c("b", &["foo:1:p1"], &[])], vec![]),
            (vec![c("a", &["foo:1"], &["v1"]), c("b", &["foo:1"], &["v1"])], vec![]),
            (vec![c("a", &["foo:1:p1:manual"], &["v1"]), c("b", &["foo:1:p1"], &["v1"])], vec![]),
            (vec![disabled(c("a", &["foo:1:p1"], &["v1"])), c("b", &["foo:1:p1"], &["v1"])], vec![]),
            (vec![c("a", &["foo:1:p1"], &["v1"]), disabled(c("b", &["foo:1:p1"], &["v1"]))], vec![]),
            (vec![mm(c("a", &["foo:1:p1"], &["v1"])), c("b", &["foo:1:p1"], &["v1"])], vec![]),
            // Scopes and namespaces are separate.
            (vec![c("a", &["foo:1:p1"], &["v1"]), n("b", &["foo:1:p1"], &["v1"])], vec![]),
            (vec![in_ns(n("a", &["foo:1:p1"], &["v1"]), "x"), n("b", &["foo:1:p1"], &["v1"])], vec![]),
            // Built-ins are in the cluster...
            (
                vec![c("my-sklearn", &["sklearn:1:p1"], &["v1"])],
                vec![(0, "same priority assigned for the model format sklearn in the clusterservingruntimes kserve-sklearnserver and my-sklearn")],
            ),
            (vec![n("my-sklearn", &["sklearn:1:p1"], &["v1"])], vec![]),
            // ...unless the folder replaces them.
            (vec![c("kserve-sklearnserver", &["sklearn:1:p1"], &["v1"])], vec![]),
            (vec![c("my-sklearn", &["sklearn:1:p1"], &["v1"]), c("kserve-sklearnserver", &["sklearn:1:p3"], &["v1"])], vec![]),
        ];
        for (runtimes, want) in table {
            let want: Vec<(usize, String)> =
                want.into_iter().map(|(i, m)| (i, m.to_string())).collect();
            assert_eq!(validate(&runtimes), want, "{runtimes:#?}");
        }
    }

    #[test]
    fn different_priorities_within_a_runtime() {
        let table: &[(&str, &[&str], Option<&str>)] = &[
            (SR, &["foo:1:p1", "foo:2:p2"], Some("different priorities assigned for the model format foo under the servingruntime r")),
            (CSR, &["foo:1:p1", "foo:2:p2"], Some("different priorities assigned for the model format foo under the clusterservingruntime r")),
            (SR, &["foo:1:p1", "foo:2:p1"], None),
            (SR, &["foo:1:p1", "foo:2"], None),
            (SR, &["foo:1:p1", "foo:2:p2:manual"], None),
            (SR, &["foo:1:p1", "bar:2:p2"], None),
        ];
        for (kind, formats, want) in table {
            let got = validate(&[small(kind, "r", formats, &["v1"])]);
            let want: Vec<(usize, String)> = want.iter().map(|m| (0, m.to_string())).collect();
            assert_eq!(got, want, "{kind} {formats:?}");
        }
    }

    #[test]
    fn schema_and_multi_node_checks() {
        let mut zero = small(SR, "z", &["foo:1:p0", "bar:1:p-2"], &["v1"]);
        zero.spec.containers.clear();
        assert_eq!(
            validate(&[zero]),
            [
                (0, "spec.supportedModelFormats[0].priority: Invalid value: 0: spec.supportedModelFormats[0].priority in body should be greater than or equal to 1".to_string()),
                (0, "spec.supportedModelFormats[1].priority: Invalid value: -2: spec.supportedModelFormats[1].priority in body should be greater than or equal to 1".to_string()),
                (0, "spec.containers: Required value".to_string()),
            ]
        );
        let worker = |yaml: &str| {
            let mut rt = small(CSR, "mn", &["foo"], &["v1"]);
            rt.spec.worker_spec = Some(serde_yaml::from_str(yaml).unwrap());
            rt
        };
        let table: &[(&str, Option<&str>)] = &[
            ("{containers: [{name: worker-container}]}", None),
            ("{pipelineParallelSize: 2}", Some("spec.workerSpec.containers: Required value")),
            (
                "{containers: [{name: a}, {name: b}]}",
                Some("the ClusterServingRuntime mn is invalid: setting multiple containers in workerSpec is not allowed"),
            ),
            (
                "{pipelineParallelSize: 0, containers: [{name: a}]}",
                Some("the ClusterServingRuntime mn is invalid: the WorkerSpec.PipelineParallelSize cannot be less than 1(0)"),
            ),
            (
                "{tensorParallelSize: -1, containers: [{name: a}]}",
                Some("the ClusterServingRuntime mn is invalid: the WorkerSpec.TensorParallelSize cannot be less than 1(-1)"),
            ),
        ];
        for (yaml, want) in table {
            let want: Vec<(usize, String)> = want.iter().map(|m| (0, m.to_string())).collect();
            assert_eq!(validate(&[worker(yaml)]), want, "{yaml}");
        }
        let mut env = worker("{containers: [{name: a}]}");
        env.spec.containers[0].env.push(EnvVar {
            name: "TENSOR_PARALLEL_SIZE".into(),
            value: Some("2".into()),
            value_from: None,
        });
        assert_eq!(
            validate(&[env]),
            [(0, "the ClusterServingRuntime mn is invalid: setting TENSOR_PARALLEL_SIZE in environment variables is not allowed".to_string())]
        );
    }

    #[test]
    fn rejected_runtimes_are_not_applied() {
        let mut bad = small(CSR, "a", &["foo:1:p1"], &["v1"]);
        bad.spec.containers.clear();
        let good = small(CSR, "b", &["foo:1:p1"], &["v1"]);
        assert_eq!(
            validate(&[bad, good]),
            [(0, "spec.containers: Required value".to_string())]
        );
    }

    #[test]
    fn corpus_runtimes_validate_as_kserve_would() {
        let corpus = [
            runtime(AMD),
            runtime(FLUID_HF),
            runtime(NON_MM),
            runtime(MM_CUSTOM),
        ];
        assert_eq!(
            validate(&corpus),
            [(
                1,
                "same priority assigned for the model format huggingface in the \
                 clusterservingruntimes kserve-huggingfaceserver and custom-kserve-huggingfaceserver"
                    .to_string()
            )]
        );
    }
}
