//! Semantic validation of an InferenceService, with KServe v0.15's texts (kserve-spec.md §3.1)
//! and Knative's annotation ranges (knative-autoscaler.md §7). Every problem of a document is
//! reported, each with its field path; the caller positions them.

use std::collections::BTreeMap;

use super::annotations;
use super::autoscaling::{knative_annotations_for, AutoscalingDefaults, ScalingFields};
use super::diagnostic::Severity;
use super::types::{ComponentCommon, Container, InferenceService};
use super::yaml::FieldPath;

/// Annotation naming KServe's deployment mode.
pub const DEPLOYMENT_MODE: &str = "serving.kserve.io/deploymentMode";
/// Annotation naming the autoscaler class in raw mode.
pub const AUTOSCALER_CLASS: &str = "serving.kserve.io/autoscalerClass";
/// Older KServe's GPU selector annotation; gantry reads it as a GPU class.
pub const GKE_ACCELERATOR: &str = "serving.kubeflow.org/gke-accelerator";

/// KServe's `storage: {key, path, parameters}` (a `storage-config` Secret of JSON entries) is
/// not read: the model would be missing, so say so.
fn check_storage_spec(storage: bool, storage_uri: bool, at: FieldPath, out: &mut Vec<Finding>) {
    if storage && !storage_uri {
        out.push(Finding::warning(
            at.key("storage"),
            "the storage spec (key, path, parameters) is not supported by gantry: no model is \
             mounted; use storageUri",
        ));
    }
}

/// The storage URI prefixes KServe v0.15 accepts (`utils.go` `ValidateStorageURI`).
pub const STORAGE_PREFIXES: [&str; 10] = [
    "gs://",
    "s3://",
    "pvc://",
    "file://",
    "https://",
    "http://",
    "hdfs://",
    "webhdfs://",
    "oci://",
    "hf://",
];

/// A finding with its field path; the document positions it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub severity: Severity,
    pub path: FieldPath,
    pub message: String,
}

impl Finding {
    pub fn error(path: FieldPath, message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Error,
            path,
            message: message.into(),
        }
    }

    pub fn warning(path: FieldPath, message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Warning,
            path,
            message: message.into(),
        }
    }
}

/// The components of a service, in KServe's terms.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    Predictor,
    Transformer,
    Explainer,
}

impl ComponentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Predictor => "predictor",
            ComponentKind::Transformer => "transformer",
            ComponentKind::Explainer => "explainer",
        }
    }

    /// The implementations KServe lists in its "exactly one of" error.
    fn implementations(self) -> (&'static str, &'static str) {
        match self {
            ComponentKind::Predictor => (
                "[SKLearn, XGBoost, Tensorflow, PyTorch, Triton, ONNX, HuggingFace, PMML, LightGBM, Paddle, Model, WorkerSpec, PodSpec]",
                "PredictorSpec",
            ),
            ComponentKind::Transformer => ("[PodSpec]", "TransformerSpec"),
            ComponentKind::Explainer => ("[ART, PodSpec]", "ExplainerSpec"),
        }
    }

    pub fn exactly_one_error(self) -> String {
        let (list, spec) = self.implementations();
        format!("exactly one of {list} must be specified in {spec}")
    }
}

/// Where a document keeps each component: v1beta1 `spec.predictor`, v1alpha2
/// `spec.default.predictor` (and the custom container under `custom.container`).
#[derive(Debug, Clone)]
pub struct Layout {
    pub endpoint: FieldPath,
    pub legacy: bool,
}

impl Layout {
    pub fn v1beta1() -> Layout {
        Layout {
            endpoint: FieldPath::parse("spec"),
            legacy: false,
        }
    }

    pub fn v1alpha2(endpoint: &str) -> Layout {
        Layout {
            endpoint: FieldPath::parse(endpoint),
            legacy: true,
        }
    }

    pub fn component(&self, kind: ComponentKind) -> FieldPath {
        self.endpoint.key(kind.as_str())
    }

    /// The path of a component's `i`th custom container.
    pub fn container(&self, kind: ComponentKind, i: usize) -> FieldPath {
        if self.legacy {
            self.component(kind).key("custom").key("container")
        } else {
            self.component(kind).key("containers").index(i)
        }
    }

    /// Where a KServe field of the component lives (`parallelism` in v1alpha2).
    pub fn field(&self, kind: ComponentKind, field: &str) -> FieldPath {
        let renamed = match (self.legacy, field) {
            (true, "containerConcurrency") => "parallelism",
            // v1alpha2 has one percentage for the whole service.
            (true, "canaryTrafficPercent") => return FieldPath::parse("spec.canaryTrafficPercent"),
            _ => field,
        };
        self.component(kind).key(renamed)
    }
}

/// Validates the InferenceService-wide parts and every component.
pub fn validate(
    isvc: &InferenceService,
    layout: &Layout,
    defaults: &AutoscalingDefaults,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let meta = FieldPath::parse("metadata");
    match isvc.metadata.name.as_deref() {
        None | Some("") => out.push(Finding::error(
            meta.key("name"),
            "name or generateName is required",
        )),
        Some(name) => {
            if !is_dns_label_name(name) {
                out.push(Finding::error(
                    meta.key("name"),
                    format!(
                        "the InferenceService \"{name}\" is invalid: a InferenceService name must consist of lower case alphanumeric characters or '-', and must start with alphabetical character. (e.g. \"my-name\" or \"abc-123\", regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                    ),
                ));
            } else if name.len() + "-transformer-00001".len() > 63 {
                out.push(Finding::error(
                    meta.key("name"),
                    format!(
                        "the InferenceService name \"{name}\" is too long: with a component and \
                         revision suffix (\"{name}-transformer-00001\") it must be a 63-character \
                         DNS label, as in Knative"
                    ),
                ));
            }
        }
    }
    if let Some(ns) = isvc.metadata.namespace.as_deref() {
        if !is_dns_label(ns) {
            out.push(Finding::error(
                meta.key("namespace"),
                format!("Invalid value: \"{ns}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"),
            ));
        }
    }
    let annotations = &isvc.metadata.annotations;
    if let Some(class) = annotations.get(AUTOSCALER_CLASS) {
        if !["hpa", "external", "keda", "none"].contains(&class.as_str()) {
            out.push(Finding::error(
                meta.key("annotations").key(AUTOSCALER_CLASS),
                format!("[{class}] is not a supported autoscaler class type"),
            ));
        }
    }
    match annotations.get(DEPLOYMENT_MODE).map(String::as_str) {
        None | Some("Serverless") => {}
        Some("RawDeployment") => out.push(Finding::warning(
            meta.key("annotations").key(DEPLOYMENT_MODE),
            "deploymentMode RawDeployment: gantry serves every InferenceService the Serverless \
             way (Knative autoscaling, scale to zero when minReplicas is 0)",
        )),
        Some("ModelMesh") => out.push(Finding::error(
            meta.key("annotations").key(DEPLOYMENT_MODE),
            "deploymentMode ModelMesh is not supported: ModelMesh loads many models into shared \
             runtime pods managed by its own controller; gantry runs one container per replica \
             (Serverless). Remove the annotation to serve this model on its own",
        )),
        Some(other) => out.push(Finding::warning(
            meta.key("annotations").key(DEPLOYMENT_MODE),
            format!(
                "unknown deploymentMode \"{other}\" (KServe v0.15 knows Serverless, RawDeployment \
                 and ModelMesh, and ignores other values): served as Serverless"
            ),
        )),
    }

    let spec = &isvc.spec;
    match &spec.predictor {
        None => out.push(Finding::error(
            layout.component(ComponentKind::Predictor),
            "Required value",
        )),
        Some(p) => {
            let implementations = p.frameworks().len()
                + usize::from(p.model.is_some())
                + usize::from(p.worker_spec.is_some())
                + usize::from(has_pod_implementation(
                    &p.containers,
                    !p.frameworks().is_empty() || p.model.is_some(),
                ));
            if implementations != 1 {
                out.push(Finding::error(
                    layout.component(ComponentKind::Predictor),
                    ComponentKind::Predictor.exactly_one_error(),
                ));
            }
            if p.worker_spec.is_some() {
                out.push(Finding::error(
                    layout.field(ComponentKind::Predictor, "workerSpec"),
                    "multi-node serving (workerSpec) needs several machines; gantry runs on one",
                ));
            }
            for (name, ext) in p.frameworks() {
                let at = layout.component(ComponentKind::Predictor).key(name);
                check_storage_uri(ext.storage_uri.as_deref(), at.key("storageUri"), &mut out);
                check_storage_spec(
                    ext.storage.is_some(),
                    ext.storage_uri.is_some(),
                    at,
                    &mut out,
                );
            }
            if let Some(model) = &p.model {
                let at = layout.field(ComponentKind::Predictor, "model");
                check_storage_uri(model.storage_uri.as_deref(), at.key("storageUri"), &mut out);
                check_storage_spec(
                    model.storage.is_some(),
                    model.storage_uri.is_some(),
                    at,
                    &mut out,
                );
            }
            check_component(
                ComponentKind::Predictor,
                &p.common(),
                isvc,
                layout,
                defaults,
                &mut out,
            );
        }
    }
    if let Some(t) = &spec.transformer {
        if t.containers.is_empty() {
            out.push(Finding::error(
                layout.component(ComponentKind::Transformer),
                ComponentKind::Transformer.exactly_one_error(),
            ));
        }
        check_component(
            ComponentKind::Transformer,
            &t.common(),
            isvc,
            layout,
            defaults,
            &mut out,
        );
    }
    if let Some(e) = &spec.explainer {
        let implementations = usize::from(e.art.is_some())
            + usize::from(has_pod_implementation(&e.containers, e.art.is_some()));
        if implementations != 1 {
            out.push(Finding::error(
                layout.component(ComponentKind::Explainer),
                ComponentKind::Explainer.exactly_one_error(),
            ));
        }
        if let Some(art) = &e.art {
            check_storage_uri(
                art.storage_uri.as_deref(),
                layout
                    .field(ComponentKind::Explainer, "art")
                    .key("storageUri"),
                &mut out,
            );
        }
        check_component(
            ComponentKind::Explainer,
            &e.common(),
            isvc,
            layout,
            defaults,
            &mut out,
        );
    }
    out
}

/// KServe counts the PodSpec as an implementation when it carries the model server: any
/// container when there is no framework, else only one named `kserve-container` (the others
/// are sidecars).
fn has_pod_implementation(containers: &[Container], has_framework: bool) -> bool {
    if has_framework {
        containers
            .iter()
            .any(|c| c.name.as_deref() == Some("kserve-container"))
    } else {
        !containers.is_empty()
    }
}

fn check_component(
    kind: ComponentKind,
    c: &ComponentCommon,
    isvc: &InferenceService,
    layout: &Layout,
    defaults: &AutoscalingDefaults,
    out: &mut Vec<Finding>,
) {
    let field = |name: &str| layout.field(kind, name);
    let min = c.min_replicas.unwrap_or(1);
    // KServe returns the first of these only.
    if min < 0 {
        out.push(Finding::error(
            field("minReplicas"),
            "'MinReplicas' cannot be less than 0",
        ));
    } else if c.max_replicas < 0 {
        out.push(Finding::error(
            field("maxReplicas"),
            "'MaxReplicas' cannot be less than 0",
        ));
    } else if min > c.max_replicas && c.max_replicas != 0 {
        out.push(Finding::error(
            field("minReplicas"),
            "'MinReplicas' cannot be greater than MaxReplicas",
        ));
    }
    if let Some(cc) = c.container_concurrency {
        if cc < 0 {
            out.push(Finding::error(
                field("containerConcurrency"),
                "parallelism cannot be less than 0",
            ));
        } else if let Some(msg) = annotations::validate_container_concurrency(cc) {
            // Knative's form: "<message>: <path>".
            let path = field("containerConcurrency");
            out.push(Finding::error(path.clone(), format!("{msg}: {path}")));
        }
    }
    if let Some(t) = c.timeout {
        if let Some(msg) = annotations::validate_timeout_seconds(t) {
            let path = field("timeout");
            out.push(Finding::error(path.clone(), format!("{msg}: {path}")));
        }
    }
    if let Some(p) = c.canary_traffic_percent {
        if !(0..=100).contains(&p) {
            out.push(Finding::error(
                field("canaryTrafficPercent"),
                "TrafficPercent must be between [0, 100].",
            ));
        }
    }
    if let Some(logger) = &c.logger {
        if let Some(mode) = &logger.mode {
            if !["all", "request", "response"].contains(&mode.as_str()) {
                out.push(Finding::error(
                    field("logger").key("mode"),
                    "invalid logger type",
                ));
            }
        }
    }
    if c.deployment_strategy {
        out.push(Finding::error(
            field("deploymentStrategy"),
            "customizing deploymentStrategy is only supported for raw deployment mode",
        ));
    }
    if let Some(metric) = &c.scale_metric {
        if metric != annotations::CONCURRENCY && metric != annotations::RPS {
            out.push(Finding::error(
                field("scaleMetric"),
                format!("[{metric}] is not a supported metric"),
            ));
        } else if metric == annotations::RPS && c.scale_target.is_some_and(|t| t < 1) {
            out.push(Finding::error(
                field("scaleTarget"),
                "the target for rps should be greater than 1",
            ));
        }
    }
    for (i, container) in c.containers.iter().enumerate() {
        let path = layout.container(kind, i);
        for (j, env) in container.env.iter().enumerate() {
            let env_path = path.key("env").index(j);
            if env.name == "PROTOCOL" {
                if let Some(v) = &env.value {
                    if v != "v1" && v != "v2" {
                        // KServe passes the arguments in the wrong order; this is its text.
                        out.push(Finding::error(
                            env_path.key("value"),
                            format!("invalid protocol v1, v2. Must be one of [{v}]"),
                        ));
                    }
                }
            }
            if ["PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"].contains(&env.name.as_str()) {
                out.push(Finding::error(
                    env_path.key("name"),
                    format!("\"{}\" is a reserved environment variable", env.name),
                ));
            }
            if env.name == "STORAGE_URI" {
                // A co-located transformer (a predictor's sidecar) cannot load a model.
                if kind == ComponentKind::Predictor
                    && container.name.as_deref() == Some("transformer-container")
                {
                    out.push(Finding::error(
                        env_path,
                        "storage uri should not be specified in transformer container",
                    ));
                } else {
                    check_storage_uri(env.value.as_deref(), env_path.key("value"), out);
                }
            }
        }
        if container.ports.len() > 1 {
            out.push(Finding::error(
                path.key("ports"),
                "More than one container port is set",
            ));
        }
        for (j, port) in container.ports.iter().enumerate() {
            if let Some(name) = &port.name {
                if !["", "http1", "h2c"].contains(&name.as_str()) {
                    out.push(Finding::error(
                        path.key("ports").index(j).key("name"),
                        format!(
                            "Invalid value: \"{name}\": port name must be empty, \"http1\" or \
                             \"h2c\" (Knative's runtime contract)"
                        ),
                    ));
                }
            }
            if !(1..=65535).contains(&port.container_port) {
                out.push(Finding::error(
                    path.key("ports").index(j).key("containerPort"),
                    format!(
                        "Invalid value: {}: must be between 1 and 65535, inclusive",
                        port.container_port
                    ),
                ));
            }
        }
    }

    // Knative's annotation validation runs on the revision annotations KServe writes.
    let revision = revision_annotations(isvc, c, defaults);
    // KServe's webhook rejects its own field errors before Knative would see them.
    let kserve_errors: Vec<FieldPath> = out.iter().map(|f| f.path.clone()).collect();
    for err in annotations::validate_autoscaling_annotations(&revision, defaults) {
        // Point at the annotation the user wrote, or at the KServe field it came from.
        let key = err.keys.first().cloned().unwrap_or_default();
        let path = if c.annotations.contains_key(&key) {
            field("annotations").key(key)
        } else if isvc.metadata.annotations.contains_key(&key) {
            FieldPath::parse("metadata.annotations").key(key)
        } else {
            match key.as_str() {
                annotations::MIN_SCALE_KEY => field("minReplicas"),
                annotations::MAX_SCALE_KEY => field("maxReplicas"),
                annotations::TARGET_KEY => field("scaleTarget"),
                annotations::METRIC_KEY => field("scaleMetric"),
                _ => FieldPath::parse("metadata.annotations").key(key),
            }
        };
        let user_written = err
            .keys
            .iter()
            .any(|k| c.annotations.contains_key(k) || isvc.metadata.annotations.contains_key(k));
        if user_written || kserve_errors.is_empty() {
            out.push(Finding::error(
                path,
                err.knative_text("metadata.annotations."),
            ));
        }
    }

    for (name, why) in &c.ignored {
        out.push(Finding::warning(field(name), format!("ignored: {why}")));
    }
}

/// The annotations KServe writes on a component's Knative revision: the InferenceService's,
/// the component's over them, then the component's scaling fields (knative-autoscaler.md §10).
pub fn revision_annotations(
    isvc: &InferenceService,
    c: &ComponentCommon,
    defaults: &AutoscalingDefaults,
) -> BTreeMap<String, String> {
    let mut merged = isvc.metadata.annotations.clone();
    merged.extend(c.annotations.clone());
    knative_annotations_for(
        &merged,
        &ScalingFields {
            min_replicas: c.min_replicas,
            max_replicas: c.max_replicas,
            scale_target: c.scale_target,
            scale_metric: c.scale_metric.clone(),
            container_concurrency: c.container_concurrency,
        },
        defaults,
    )
}

/// KServe's storage URI check (done by its controller, so the service would be accepted
/// and then fail to reconcile; gantry reports it at load time).
fn check_storage_uri(uri: Option<&str>, path: FieldPath, out: &mut Vec<Finding>) {
    let Some(uri) = uri else { return };
    if !uri.contains("://") {
        return; // a local path
    }
    let azure = uri.starts_with("https://") && uri.contains(".blob.core.windows.net/");
    if azure || STORAGE_PREFIXES.iter().any(|p| uri.starts_with(p)) {
        return;
    }
    out.push(Finding::error(
        path,
        format!(
            "StorageURI not supported: storageUri, must be one of: [{}] or match https://{{}}.blob.core.windows.net/{{}}/{{}} or be an absolute or relative local path. StorageUri [{uri}] is not supported",
            STORAGE_PREFIXES.join(", ")
        ),
    ));
}

/// KServe's name rule: `[a-z]([-a-z0-9]*[a-z0-9])?`.
fn is_dns_label_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !name.ends_with('-')
}

/// An RFC 1123 label (Kubernetes namespaces).
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !name.ends_with('-')
}
