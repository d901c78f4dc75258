//! Normalisation: a valid InferenceService becomes the desired state of its components, as
//! KServe's defaulter and controller and Knative would make it: the effective container, its
//! resources, port, storage URI, placement, timeout, traffic and autoscaling settings, and a
//! revision key that changes exactly when what the containers run changes (DESIGN.md,
//! "Revisions").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_yaml::Value;
use sha2::{Digest, Sha256};

use super::autoscaling::{self, Autoscaling, AutoscalingDefaults};
use super::quantity::Quantity;
use super::runtime::{self, ModelRequest, ServingRuntime};
use super::types::{
    ComponentCommon, Container, ContainerPort, EnvFromSource, EnvVar, InferenceService,
    InferenceServiceSpec, NodeSelectorTerm, PreferredSchedulingTerm, Probe, SecurityContext,
    StringMap, VolumeMount,
};
use super::validate::{revision_annotations, ComponentKind, Finding, Layout, GKE_ACCELERATOR};

/// Knative's `revision-timeout-seconds` default.
pub const DEFAULT_TIMEOUT_SECONDS: i64 = 300;
/// Knative's default serving port.
pub const DEFAULT_PORT: i64 = 8080;
/// KServe's default requests and limits for a container (`inferenceService.resource`).
pub const DEFAULT_CPU: &str = "1";
pub const DEFAULT_MEMORY: &str = "2Gi";
/// The extended resource that counts GPUs.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// The node label holding a GPU's class.
pub const GPU_CLASS_LABEL: &str = "gpu.nvidia.com/class";

/// What normalisation needs besides the document.
pub struct Context<'a> {
    /// The namespace the service lives in (its own, or the configured default).
    pub namespace: &'a str,
    pub autoscaling: &'a AutoscalingDefaults,
    /// The ServingRuntimes and ClusterServingRuntimes found in the folder.
    pub runtimes: &'a [&'a ServingRuntime],
}

/// The desired state of one InferenceService.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredService {
    pub namespace: String,
    pub name: String,
    /// The apiVersion the user wrote (older ones are converted).
    pub api_version: String,
    pub components: Vec<DesiredComponent>,
    /// KFServing v1alpha2's second endpoint, kept for canary rollouts: each of its components
    /// is its kind's latest revision, with `canaryTrafficPercent` of the traffic, beside the
    /// default endpoint's, which is the rolled-out one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub legacy_canary: Vec<DesiredComponent>,
}

impl DesiredService {
    pub fn component(&self, kind: ComponentKind) -> Option<&DesiredComponent> {
        self.components.iter().find(|c| c.kind == kind)
    }
}

/// The desired state of one component (predictor, transformer or explainer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredComponent {
    pub kind: ComponentKind,
    /// The component's service name, `<isvc>-predictor`; revisions are `<name>-00001`, ...
    pub name: String,
    /// `custom`, a framework shorthand (`sklearn`), or `model` (`model.modelFormat`).
    pub implementation: String,
    /// The ServingRuntime chosen for a framework or model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// Changes exactly when `template` changes: a new revision.
    pub revision_key: String,
    /// What the containers run.
    pub template: RevisionTemplate,
    /// Everything that applies in place to running revisions.
    pub scaling: Scaling,
}

/// What a revision's containers run. Anything here changing makes a new revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionTemplate {
    pub container: EffectiveContainer,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<Container>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Value>,
    /// Where the model comes from (`storageUri`, or `STORAGE_URI` on a custom container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_uri: Option<String>,
    pub placement: Placement,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// The `serving.kserve.io/storageSecretName` annotation: the Secret that gives access to
    /// the model's storage, instead of the service account's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_secret_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_network: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_ipc: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_pid: bool,
}

/// The model-server container as it will run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveContainer {
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    pub port: ServingPort,
    pub resources: Resources,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
}

/// The one port Knative routes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServingPort {
    pub container_port: i64,
    /// `http1` (default) or `h2c`.
    pub protocol: String,
}

/// Requests and limits after KServe's defaults and Kubernetes' rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    pub requests: BTreeMap<String, Quantity>,
    pub limits: BTreeMap<String, Quantity>,
    pub cpu_request_millis: i64,
    pub cpu_limit_millis: i64,
    pub memory_request_bytes: i64,
    pub memory_limit_bytes: i64,
    pub gpus: i64,
}

/// Where a replica may run: evaluated against GPU and host labels by the scheduler.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: StringMap,
    /// ORed terms; each term's expressions are ANDed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<NodeSelectorTerm>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred: Vec<PreferredSchedulingTerm>,
}

/// Settings that apply to running revisions in place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scaling {
    pub min_replicas: i32,
    /// 0 means unlimited.
    pub max_replicas: i32,
    /// 0 means unlimited.
    pub container_concurrency: i64,
    pub timeout_seconds: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_traffic_percent: Option<i64>,
    /// `serving.kserve.io/enable-tag-routing: "true"`: the latest revision's traffic target
    /// gets the `latest` tag and its own host.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tag_routing: bool,
    pub autoscaling: Autoscaling,
}

/// Normalises a validated InferenceService (v1alpha2 already converted). `legacy_canary` is
/// v1alpha2's canary endpoint.
pub fn normalize(
    isvc: &InferenceService,
    legacy_canary: Option<&InferenceServiceSpec>,
    layout: &Layout,
    canary_layout: &Layout,
    ctx: &Context,
) -> Result<DesiredService, Vec<Finding>> {
    let mut findings = Vec::new();
    let mut components = normalize_endpoint(isvc, &isvc.spec, layout, ctx, &mut findings);
    let mut legacy_canary = legacy_canary
        .map(|spec| normalize_endpoint(isvc, spec, canary_layout, ctx, &mut findings))
        .unwrap_or_default();
    if !findings.is_empty() {
        return Err(findings);
    }
    if layout.legacy {
        // v1alpha2's canaryTrafficPercent is the canary endpoint's share (0 when unset): it
        // goes with the canary's components; the default endpoint alone takes everything.
        let percent = components
            .iter()
            .find_map(|c| c.scaling.canary_traffic_percent)
            .unwrap_or(0);
        for c in &mut components {
            c.scaling.canary_traffic_percent = None;
        }
        for c in &mut legacy_canary {
            c.scaling.canary_traffic_percent = Some(percent);
        }
    }
    Ok(DesiredService {
        namespace: ctx.namespace.to_string(),
        name: isvc.metadata.name.clone().unwrap_or_default(),
        api_version: isvc.api_version.clone(),
        components,
        legacy_canary,
    })
}

fn normalize_endpoint(
    isvc: &InferenceService,
    spec: &InferenceServiceSpec,
    layout: &Layout,
    ctx: &Context,
    findings: &mut Vec<Finding>,
) -> Vec<DesiredComponent> {
    let mut out = Vec::new();
    if let Some(p) = &spec.predictor {
        out.extend(predictor(isvc, p, layout, ctx, findings));
    }
    if let Some(t) = &spec.transformer {
        out.extend(transformer(isvc, &t.common(), layout, ctx, findings));
    }
    if let Some(e) = &spec.explainer {
        out.extend(explainer(isvc, e, layout, ctx, findings));
    }
    out
}

/// The name KServe gives the model-server container (KFServing's `kfserving-container` is
/// accepted as the same thing).
const MAIN_CONTAINER: &str = runtime::KSERVE_CONTAINER;

/// Splits custom containers into the model server and its sidecars (KServe v0.15: the one
/// named `kserve-container`, else the first; renamed when it is alone or unnamed).
fn split_custom(containers: &[Container]) -> (Container, Vec<Container>) {
    let index = containers
        .iter()
        .position(|c| {
            matches!(
                c.name.as_deref(),
                Some(MAIN_CONTAINER | "kfserving-container")
            )
        })
        .unwrap_or(0);
    let mut sidecars = containers.to_vec();
    let mut main = sidecars.remove(index);
    if containers.len() == 1 || main.name.is_none() {
        main.name = Some(MAIN_CONTAINER.to_string());
    }
    (main, sidecars)
}

fn predictor(
    isvc: &InferenceService,
    p: &super::types::PredictorSpec,
    layout: &Layout,
    ctx: &Context,
    findings: &mut Vec<Finding>,
) -> Option<DesiredComponent> {
    let kind = ComponentKind::Predictor;
    let mut common = p.common();
    let (implementation, main, sidecars, storage_uri, runtime_name, protocol) =
        if let Some((framework, model, model_container, field)) = model_of(p, layout) {
            let request = ModelRequest {
                format: model.model_format.name.clone(),
                format_version: model.model_format.version.clone(),
                runtime: model.runtime.clone(),
                protocol_version: model.protocol_version.clone(),
                multi_node: false,
            };
            let selection = match runtime::select_runtime(
                &request,
                ctx.namespace,
                ctx.runtimes,
                runtime::builtin_runtimes(),
            ) {
                Ok(s) => s,
                Err(e) => {
                    findings.push(Finding::error(field, e.to_string()));
                    return None;
                }
            };
            let gpu = requests_gpu(&model_container);
            // Templates see the object as the API server stored it: with its namespace.
            let mut meta = isvc.metadata.clone();
            meta.namespace = Some(ctx.namespace.to_string());
            let built = match runtime::build_container(
                &selection.runtime.spec,
                &selection.name,
                &meta,
                &model_container,
                model.runtime_version.as_deref(),
                gpu,
                model.storage_uri.is_some() || model.storage.is_some(),
                &selection.protocol_version,
                &model.model_format.name,
            ) {
                Ok(b) => b,
                Err(e) => {
                    findings.push(Finding::error(field, e.to_string()));
                    return None;
                }
            };
            let mut sidecars = built.sidecars;
            sidecars.extend(common.containers.iter().cloned());
            // The runtime's pod volumes join the predictor's (the predictor's win by name).
            let name_of =
                |v: &serde_yaml::Value| v.get("name").and_then(|n| n.as_str()).map(String::from);
            let own: Vec<Option<String>> = common.volumes.iter().map(name_of).collect();
            common.volumes.extend(
                built
                    .volumes
                    .into_iter()
                    .filter(|v| !own.contains(&name_of(v))),
            );
            (
                framework,
                built.container,
                sidecars,
                model.storage_uri.clone(),
                Some(selection.name.clone()),
                Some(selection.protocol_version.clone()),
            )
        } else {
            let (main, sidecars) = split_custom(&common.containers);
            let storage = env_value(&main, "STORAGE_URI");
            let protocol = env_value(&main, "PROTOCOL");
            (
                "custom".to_string(),
                main,
                sidecars,
                storage,
                None,
                protocol,
            )
        };
    component(
        isvc,
        kind,
        &common,
        layout,
        ctx,
        Parts {
            implementation,
            main,
            sidecars,
            storage_uri,
            runtime: runtime_name,
            protocol,
        },
        findings,
    )
}

/// The model a framework shorthand or `model:` asks for, with its inline container and the
/// path to report runtime errors at.
fn model_of(
    p: &super::types::PredictorSpec,
    layout: &Layout,
) -> Option<(
    String,
    super::types::ModelSpec,
    Container,
    super::yaml::FieldPath,
)> {
    let base = layout.component(ComponentKind::Predictor);
    // Validation made sure no `kserve-container` sits beside them: other containers are
    // sidecars.
    if let Some(model) = &p.model {
        let container = model.container();
        return Some((
            "model".into(),
            (**model).clone(),
            container,
            base.key("model"),
        ));
    }
    let (name, ext) = p.frameworks().into_iter().next()?;
    let model = runtime::shorthand_model(name, ext);
    Some((name.to_string(), model, ext.container(), base.key(name)))
}

fn transformer(
    isvc: &InferenceService,
    common: &ComponentCommon,
    layout: &Layout,
    ctx: &Context,
    findings: &mut Vec<Finding>,
) -> Option<DesiredComponent> {
    let (mut main, sidecars) = split_first(&common.containers)?;
    let name = isvc.metadata.name.clone().unwrap_or_default();
    append_component_args(
        &mut main,
        &name,
        ctx.namespace,
        common.container_concurrency,
    );
    let storage_uri = env_value(&main, "STORAGE_URI");
    let protocol = env_value(&main, "PROTOCOL");
    component(
        isvc,
        ComponentKind::Transformer,
        common,
        layout,
        ctx,
        Parts {
            implementation: "custom".into(),
            main,
            sidecars,
            storage_uri,
            runtime: None,
            protocol,
        },
        findings,
    )
}

/// Transformers and custom explainers: the first container is the server, renamed.
fn split_first(containers: &[Container]) -> Option<(Container, Vec<Container>)> {
    let mut rest = containers.to_vec();
    if rest.is_empty() {
        return None;
    }
    let mut main = rest.remove(0);
    main.name = Some(MAIN_CONTAINER.to_string());
    Some((main, rest))
}

/// KServe appends these to a transformer's (and explainer's) arguments unless present.
fn append_component_args(c: &mut Container, isvc: &str, namespace: &str, cc: Option<i64>) {
    let mut add = |flag: &str, value: String| {
        let present = c
            .args
            .iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")));
        if !present {
            c.args.push(flag.to_string());
            c.args.push(value);
        }
    };
    add("--model_name", isvc.to_string());
    add("--predictor_host", format!("{isvc}-predictor.{namespace}"));
    add("--http_port", DEFAULT_PORT.to_string());
    if let Some(cc) = cc {
        add("--workers", cc.to_string());
    }
}

fn explainer(
    isvc: &InferenceService,
    e: &super::types::ExplainerSpec,
    layout: &Layout,
    ctx: &Context,
    findings: &mut Vec<Finding>,
) -> Option<DesiredComponent> {
    let common = e.common();
    let name = isvc.metadata.name.clone().unwrap_or_default();
    let parts = if let Some(art) = &e.art {
        let mut main = art.container();
        main.name = Some(MAIN_CONTAINER.to_string());
        if main.image.is_none() {
            let version = art
                .runtime_version
                .as_deref()
                .unwrap_or(runtime::KSERVE_VERSION);
            main.image = Some(format!("kserve/art-explainer:{version}"));
        }
        let mut args = vec![
            "--model_name".to_string(),
            name.clone(),
            "--http_port".into(),
            DEFAULT_PORT.to_string(),
            "--predictor_host".into(),
            format!("{name}-predictor.{}", ctx.namespace),
        ];
        if let Some(cc) = common.container_concurrency {
            args.extend(["--workers".to_string(), cc.to_string()]);
        }
        if art.storage_uri.is_some() {
            args.extend(["--storage_uri".to_string(), "/mnt/models".into()]);
        }
        args.extend([
            "--adversary_type".to_string(),
            art.explainer_type.clone().unwrap_or_default(),
        ]);
        for (k, v) in &art.config {
            args.extend([format!("--{k}"), v.clone()]);
        }
        args.extend(main.args);
        main.args = args;
        Parts {
            implementation: "art".into(),
            main,
            sidecars: Vec::new(),
            storage_uri: art.storage_uri.clone(),
            runtime: None,
            protocol: None,
        }
    } else {
        let (mut main, sidecars) = split_first(&common.containers)?;
        append_component_args(
            &mut main,
            &name,
            ctx.namespace,
            common.container_concurrency,
        );
        Parts {
            implementation: "custom".into(),
            storage_uri: env_value(&main, "STORAGE_URI"),
            protocol: env_value(&main, "PROTOCOL"),
            main,
            sidecars,
            runtime: None,
        }
    };
    component(
        isvc,
        ComponentKind::Explainer,
        &common,
        layout,
        ctx,
        parts,
        findings,
    )
}

struct Parts {
    implementation: String,
    main: Container,
    sidecars: Vec<Container>,
    storage_uri: Option<String>,
    runtime: Option<String>,
    protocol: Option<String>,
}

fn component(
    isvc: &InferenceService,
    kind: ComponentKind,
    common: &ComponentCommon,
    layout: &Layout,
    ctx: &Context,
    parts: Parts,
    findings: &mut Vec<Finding>,
) -> Option<DesiredComponent> {
    let isvc_name = isvc.metadata.name.clone().unwrap_or_default();
    let container_path = layout.container(kind, 0);
    let before = findings.len();
    let main = &parts.main;
    let image = match main.image.clone().filter(|i| !i.is_empty()) {
        Some(image) => image,
        None => {
            findings.push(Finding::error(
                container_path.key("image"),
                "Required value",
            ));
            String::new()
        }
    };
    let resources = resources(&main.resources, &container_path.key("resources"), findings);
    let port = main
        .ports
        .first()
        .map(|p: &ContainerPort| ServingPort {
            container_port: p.container_port,
            protocol: p
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "http1".into()),
        })
        .unwrap_or(ServingPort {
            container_port: DEFAULT_PORT,
            protocol: "http1".into(),
        });
    let placement = placement(
        isvc,
        common,
        &layout.component(kind),
        resources.gpus > 0,
        findings,
    );
    if findings.len() > before {
        return None;
    }

    let storage_secret_name = isvc
        .metadata
        .annotations
        .get(STORAGE_SECRET_ANNOTATION)
        .filter(|_| parts.storage_uri.is_some())
        .cloned();
    let template = RevisionTemplate {
        container: EffectiveContainer {
            name: main
                .name
                .clone()
                .unwrap_or_else(|| MAIN_CONTAINER.to_string()),
            image,
            command: main.command.clone(),
            args: main.args.clone(),
            working_dir: main.working_dir.clone(),
            env: main.env.clone(),
            env_from: main.env_from.clone(),
            port,
            resources,
            readiness_probe: main.readiness_probe.as_deref().cloned(),
            liveness_probe: main.liveness_probe.as_deref().cloned(),
            startup_probe: main.startup_probe.as_deref().cloned(),
            volume_mounts: main.volume_mounts.clone(),
            security_context: main.security_context.as_deref().cloned(),
            image_pull_policy: main.image_pull_policy.clone(),
        },
        sidecars: parts.sidecars,
        init_containers: common.init_containers.clone(),
        volumes: common.volumes.clone(),
        storage_uri: parts.storage_uri,
        placement,
        service_account_name: common.service_account_name.clone(),
        storage_secret_name,
        termination_grace_period_seconds: common.termination_grace_period_seconds,
        host_network: common.host_network,
        host_ipc: common.host_ipc,
        host_pid: common.host_pid,
    };

    let revision_annotations = revision_annotations(isvc, common, ctx.autoscaling);
    let container_concurrency = common.container_concurrency.unwrap_or(0);
    let autoscaling = autoscaling::resolve(
        ctx.autoscaling,
        &revision_annotations,
        container_concurrency,
    );
    let scaling = Scaling {
        min_replicas: autoscaling.min_scale,
        max_replicas: autoscaling.max_scale,
        container_concurrency,
        timeout_seconds: common
            .timeout
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_TIMEOUT_SECONDS),
        canary_traffic_percent: common.canary_traffic_percent,
        tag_routing: isvc
            .metadata
            .annotations
            .get(ENABLE_TAG_ROUTING_ANNOTATION)
            .is_some_and(|v| v == "true"),
        autoscaling,
    };

    Some(DesiredComponent {
        kind,
        name: format!("{isvc_name}-{}", kind.as_str()),
        implementation: parts.implementation,
        runtime: parts.runtime,
        protocol_version: parts.protocol,
        revision_key: revision_key(&template),
        template,
        scaling,
    })
}

/// The annotation that names the Secret for a model's storage (KServe's).
pub const STORAGE_SECRET_ANNOTATION: &str = "serving.kserve.io/storageSecretName";

/// The annotation that adds the `latest` tag to the latest revision's traffic target
/// (KServe's `constants.EnableRoutingTagAnnotationKey`).
pub const ENABLE_TAG_ROUTING_ANNOTATION: &str = "serving.kserve.io/enable-tag-routing";

/// A stable digest of what the containers run.
pub fn revision_key(template: &RevisionTemplate) -> String {
    let json = serde_json::to_vec(template).expect("a template always serialises");
    let digest = Sha256::digest(&json);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn env_value(c: &Container, name: &str) -> Option<String> {
    c.env
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

fn requests_gpu(c: &Container) -> bool {
    [&c.resources.limits, &c.resources.requests]
        .iter()
        .any(|m| m.get(GPU_RESOURCE).is_some_and(|q| !q.is_zero()))
}

/// KServe fills cpu and memory per key (requests and limits 1 / 2Gi); a request missing where
/// its limit is given equals the limit, as Kubernetes does; then Kubernetes' checks.
fn resources(
    given: &super::types::ResourceRequirements,
    path: &super::yaml::FieldPath,
    findings: &mut Vec<Finding>,
) -> Resources {
    let mut requests = given.requests.clone();
    let mut limits = given.limits.clone();
    for (key, default) in [("cpu", DEFAULT_CPU), ("memory", DEFAULT_MEMORY)] {
        let default = Quantity::parse(default).expect("a valid default");
        if !requests.contains_key(key) {
            let value = limits.get(key).cloned().unwrap_or_else(|| default.clone());
            requests.insert(key.to_string(), value);
        }
        limits.entry(key.to_string()).or_insert(default);
    }
    for (name, limit) in &limits {
        if let Some(request) = requests.get(name) {
            if request > limit && !is_extended(name) {
                findings.push(Finding::error(
                    path.key("requests"),
                    format!(
                        "Invalid value: \"{request}\": must be less than or equal to {name} limit of {limit}"
                    ),
                ));
            }
        }
    }
    for (name, values) in [("requests", &requests), ("limits", &limits)] {
        for (key, q) in values.iter() {
            if q.nano_value() < 0 {
                findings.push(Finding::error(
                    path.key(name).key(key.clone()),
                    format!("Invalid value: \"{q}\": must be greater than or equal to 0"),
                ));
            }
        }
    }
    // Extended resources (GPUs): integers, never overcommitted.
    let gpu_path = path.key("limits").key(GPU_RESOURCE);
    match (requests.get(GPU_RESOURCE).cloned(), limits.get(GPU_RESOURCE).cloned()) {
        (Some(_), None) => findings.push(Finding::error(
            path.key("limits"),
            format!("Required value: Limit must be set for non overcommitable resources: {GPU_RESOURCE}"),
        )),
        (Some(r), Some(l)) if r != l => findings.push(Finding::error(
            path.key("requests").key(GPU_RESOURCE),
            format!("Invalid value: \"{r}\": must be equal to {GPU_RESOURCE} limit of {l}"),
        )),
        (None, Some(l)) => {
            requests.insert(GPU_RESOURCE.into(), l);
        }
        _ => {}
    }
    if let Some(l) = limits.get(GPU_RESOURCE) {
        if !l.is_integer() {
            findings.push(Finding::error(
                gpu_path,
                format!("Invalid value: \"{l}\": must be an integer"),
            ));
        }
    }
    let get = |m: &BTreeMap<String, Quantity>, k: &str| m.get(k).cloned();
    Resources {
        cpu_request_millis: get(&requests, "cpu").map_or(0, |q| q.milli_value()),
        cpu_limit_millis: get(&limits, "cpu").map_or(0, |q| q.milli_value()),
        memory_request_bytes: get(&requests, "memory").map_or(0, |q| q.value()),
        memory_limit_bytes: get(&limits, "memory").map_or(0, |q| q.value()),
        gpus: get(&limits, GPU_RESOURCE).map_or(0, |q| q.value()),
        requests,
        limits,
    }
}

fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.starts_with("kubernetes.io/")
}

/// Node selector, node affinity, and the `gke-accelerator` annotation as a GPU class
/// selector.
fn placement(
    isvc: &InferenceService,
    common: &ComponentCommon,
    base: &super::yaml::FieldPath,
    requests_gpus: bool,
    findings: &mut Vec<Finding>,
) -> Placement {
    let mut out = Placement {
        node_selector: common.node_selector.clone(),
        ..Placement::default()
    };
    // As KServe's accelerator injector: only for containers that ask for GPUs.
    if let Some(class) = isvc
        .metadata
        .annotations
        .get(GKE_ACCELERATOR)
        .filter(|_| requests_gpus)
    {
        out.node_selector
            .entry(GPU_CLASS_LABEL.to_string())
            .or_insert_with(|| class.clone());
    }
    if let Some(node) = common
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
    {
        let affinity = base.key("affinity").key("nodeAffinity");
        if let Some(required) = &node.required_during_scheduling_ignored_during_execution {
            let path = affinity
                .key("requiredDuringSchedulingIgnoredDuringExecution")
                .key("nodeSelectorTerms");
            for (i, term) in required.node_selector_terms.iter().enumerate() {
                check_term(term, &path.index(i), findings);
            }
            out.required = required.node_selector_terms.clone();
        }
        let path = affinity.key("preferredDuringSchedulingIgnoredDuringExecution");
        for (i, p) in node
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            if !(1..=100).contains(&p.weight) {
                findings.push(Finding::error(
                    path.index(i).key("weight"),
                    format!("Invalid value: {}: must be in the range 1-100", p.weight),
                ));
            }
            check_term(&p.preference, &path.index(i).key("preference"), findings);
        }
        out.preferred = node
            .preferred_during_scheduling_ignored_during_execution
            .clone();
    }
    out
}

/// Kubernetes' node selector requirement rules.
fn check_term(term: &NodeSelectorTerm, path: &super::yaml::FieldPath, findings: &mut Vec<Finding>) {
    for (j, req) in term.match_expressions.iter().enumerate() {
        let at = path.key("matchExpressions").index(j);
        match req.operator.as_str() {
            "In" | "NotIn" if req.values.is_empty() => findings.push(Finding::error(
                at.key("values"),
                "Required value: must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !req.values.is_empty() => findings.push(Finding::error(
                at.key("values"),
                "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "Gt" | "Lt" if req.values.len() != 1 || req.values[0].parse::<i64>().is_err() => {
                findings.push(Finding::error(
                    at.key("values"),
                    "Required value: must be specified single value when `operator` is 'Lt' or 'Gt'",
                ))
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
            other => findings.push(Finding::error(
                at.key("operator"),
                format!(
                    "Unsupported value: \"{other}\": supported values: \"DoesNotExist\", \"Exists\", \"Gt\", \"In\", \"Lt\", \"NotIn\""
                ),
            )),
        }
    }
}
