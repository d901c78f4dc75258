//! Typed KServe `serving.kserve.io/v1beta1` InferenceService and the Kubernetes types it
//! embeds, as users write them.
//!
//! Every struct denies unknown fields, as `kubectl apply`'s strict validation does; the YAML
//! module turns what it finds into diagnostics with a did-you-mean. Fields that Kubernetes
//! accepts but that have no meaning on one machine are kept as raw values and reported as
//! ignored by the validator. Lists and maps accept `null` as empty, as Kubernetes does.
//!
//! KServe inlines several Go structs into one YAML object (a component is a PodSpec plus
//! ComponentExtensionSpec plus its implementation; a framework is a Container plus
//! PredictorExtensionSpec). serde's `flatten` cannot deny unknown fields, so the macros below
//! write each field list once and splice it into the structs that share it.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_yaml::Value;

use super::quantity::Quantity;

/// `null` in YAML means "absent", as it does for Kubernetes.
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// A string map that tolerates `null` and scalar values of any type (Kubernetes would
/// refuse a number as a label value; we read it as its text and let validation judge).
pub type StringMap = BTreeMap<String, String>;

/// Kubernetes `ObjectMeta`: what gantry uses, and the server-set fields users copy from
/// `kubectl get -o yaml` (accepted and ignored).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    pub name: Option<String>,
    pub generate_name: Option<String>,
    pub namespace: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub labels: StringMap,
    #[serde(default, deserialize_with = "nullable")]
    pub annotations: StringMap,
    pub uid: Option<Value>,
    pub resource_version: Option<Value>,
    pub generation: Option<Value>,
    pub creation_timestamp: Option<Value>,
    pub deletion_timestamp: Option<Value>,
    pub deletion_grace_period_seconds: Option<Value>,
    pub self_link: Option<Value>,
    pub managed_fields: Option<Value>,
    pub finalizers: Option<Value>,
    pub owner_references: Option<Value>,
    pub cluster_name: Option<Value>,
}

/// An int-or-string, as Kubernetes ports and similar fields are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceRequirements {
    #[serde(default, deserialize_with = "nullable")]
    pub limits: BTreeMap<String, Quantity>,
    #[serde(default, deserialize_with = "nullable")]
    pub requests: BTreeMap<String, Quantity>,
    pub claims: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    pub value: Option<String>,
    pub value_from: Option<EnvVarSource>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVarSource {
    pub secret_key_ref: Option<KeySelector>,
    pub config_map_key_ref: Option<KeySelector>,
    pub field_ref: Option<FieldSelector>,
    pub resource_field_ref: Option<ResourceFieldSelector>,
}

/// `secretKeyRef` / `configMapKeyRef`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeySelector {
    pub name: Option<String>,
    pub key: String,
    pub optional: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldSelector {
    pub api_version: Option<String>,
    pub field_path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceFieldSelector {
    pub container_name: Option<String>,
    pub resource: String,
    pub divisor: Option<Quantity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvFromSource {
    pub prefix: Option<String>,
    pub config_map_ref: Option<LocalObjectReference>,
    pub secret_ref: Option<LocalObjectReference>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectReference {
    pub name: Option<String>,
    pub optional: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerPort {
    pub container_port: i64,
    pub name: Option<String>,
    pub protocol: Option<String>,
    pub host_port: Option<i64>,
    #[serde(rename = "hostIP")]
    pub host_ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    pub read_only: Option<bool>,
    pub sub_path: Option<String>,
    pub sub_path_expr: Option<String>,
    pub mount_propagation: Option<String>,
    pub recursive_read_only: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Probe {
    pub http_get: Option<HttpGetAction>,
    pub tcp_socket: Option<TcpSocketAction>,
    pub exec: Option<ExecAction>,
    pub grpc: Option<GrpcAction>,
    pub initial_delay_seconds: Option<i32>,
    pub period_seconds: Option<i32>,
    pub timeout_seconds: Option<i32>,
    pub success_threshold: Option<i32>,
    pub failure_threshold: Option<i32>,
    pub termination_grace_period_seconds: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGetAction {
    pub path: Option<String>,
    pub port: Option<IntOrString>,
    pub host: Option<String>,
    pub scheme: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub http_headers: Vec<HttpHeader>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpSocketAction {
    pub port: IntOrString,
    pub host: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecAction {
    #[serde(default, deserialize_with = "nullable")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcAction {
    pub port: i32,
    pub service: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityContext {
    pub privileged: Option<bool>,
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: Option<bool>,
    pub read_only_root_filesystem: Option<bool>,
    pub allow_privilege_escalation: Option<bool>,
    pub capabilities: Option<Capabilities>,
    pub proc_mount: Option<String>,
    pub se_linux_options: Option<Value>,
    pub seccomp_profile: Option<Value>,
    pub app_armor_profile: Option<Value>,
    pub windows_options: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capabilities {
    #[serde(default, deserialize_with = "nullable")]
    pub add: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub drop: Vec<String>,
}

/// Declares a struct whose fields are `corev1.Container`'s plus the given extra fields, and a
/// `container()` method that returns the Container part.
macro_rules! with_container_fields {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            pub name: Option<String>,
            pub image: Option<String>,
            #[serde(default, deserialize_with = "nullable")]
            pub command: Vec<String>,
            #[serde(default, deserialize_with = "nullable")]
            pub args: Vec<String>,
            pub working_dir: Option<String>,
            #[serde(default, deserialize_with = "nullable")]
            pub ports: Vec<ContainerPort>,
            #[serde(default, deserialize_with = "nullable")]
            pub env_from: Vec<EnvFromSource>,
            #[serde(default, deserialize_with = "nullable")]
            pub env: Vec<EnvVar>,
            #[serde(default, deserialize_with = "nullable")]
            pub resources: ResourceRequirements,
            #[serde(default, deserialize_with = "nullable")]
            pub volume_mounts: Vec<VolumeMount>,
            pub liveness_probe: Option<Box<Probe>>,
            pub readiness_probe: Option<Box<Probe>>,
            pub startup_probe: Option<Box<Probe>>,
            pub image_pull_policy: Option<String>,
            pub security_context: Option<Box<SecurityContext>>,
            pub termination_message_path: Option<String>,
            pub termination_message_policy: Option<String>,
            pub lifecycle: Option<Value>,
            pub volume_devices: Option<Value>,
            pub resize_policy: Option<Value>,
            pub restart_policy: Option<Value>,
            pub stdin: Option<Value>,
            pub stdin_once: Option<Value>,
            pub tty: Option<Value>,
        }

        impl $name {
            /// The `corev1.Container` part of this object.
            pub fn container(&self) -> Container {
                Container {
                    name: self.name.clone(),
                    image: self.image.clone(),
                    command: self.command.clone(),
                    args: self.args.clone(),
                    working_dir: self.working_dir.clone(),
                    ports: self.ports.clone(),
                    env_from: self.env_from.clone(),
                    env: self.env.clone(),
                    resources: self.resources.clone(),
                    volume_mounts: self.volume_mounts.clone(),
                    liveness_probe: self.liveness_probe.clone(),
                    readiness_probe: self.readiness_probe.clone(),
                    startup_probe: self.startup_probe.clone(),
                    image_pull_policy: self.image_pull_policy.clone(),
                    security_context: self.security_context.clone(),
                    termination_message_path: self.termination_message_path.clone(),
                    termination_message_policy: self.termination_message_policy.clone(),
                    lifecycle: self.lifecycle.clone(),
                    volume_devices: self.volume_devices.clone(),
                    resize_policy: self.resize_policy.clone(),
                    restart_policy: self.restart_policy.clone(),
                    stdin: self.stdin.clone(),
                    stdin_once: self.stdin_once.clone(),
                    tty: self.tty.clone(),
                }
            }
        }
    };
}

with_container_fields! {
    /// `corev1.Container`.
    pub struct Container {}
}

/// `nodeSelectorTerm` / `matchExpressions`, as used by node affinity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default, deserialize_with = "nullable")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelectorTerm {
    #[serde(default, deserialize_with = "nullable")]
    pub match_expressions: Vec<NodeSelectorRequirement>,
    #[serde(default, deserialize_with = "nullable")]
    pub match_fields: Vec<NodeSelectorRequirement>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelector {
    #[serde(default, deserialize_with = "nullable")]
    pub node_selector_terms: Vec<NodeSelectorTerm>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreferredSchedulingTerm {
    pub weight: i32,
    pub preference: NodeSelectorTerm,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeAffinity {
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
    #[serde(default, deserialize_with = "nullable")]
    pub preferred_during_scheduling_ignored_during_execution: Vec<PreferredSchedulingTerm>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Affinity {
    pub node_affinity: Option<NodeAffinity>,
    /// Pod (anti-)affinity has no meaning with one node; accepted and ignored.
    pub pod_affinity: Option<Value>,
    pub pod_anti_affinity: Option<Value>,
}

/// KServe's logger (`spec.<component>.logger`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoggerSpec {
    pub url: Option<String>,
    pub mode: Option<String>,
    pub storage: Option<Value>,
    pub metadata_headers: Option<Value>,
    pub metadata_annotations: Option<Value>,
}

/// KServe's batcher (`spec.<component>.batcher`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatcherSpec {
    pub max_batch_size: Option<i64>,
    pub max_latency: Option<i64>,
    pub timeout: Option<i64>,
}

/// `storage: {key, path, schemaPath, parameters}`, the alternative to `storageUri`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageSpec {
    pub key: Option<String>,
    pub path: Option<String>,
    pub schema_path: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub parameters: StringMap,
}

/// Declares a component struct: the given implementation fields, then KServe's inline
/// PodSpec and ComponentExtensionSpec fields.
macro_rules! with_component_fields {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            // ComponentExtensionSpec
            pub min_replicas: Option<i32>,
            #[serde(default, deserialize_with = "nullable")]
            pub max_replicas: i32,
            pub scale_target: Option<i32>,
            pub scale_metric: Option<String>,
            pub scale_metric_type: Option<String>,
            pub auto_scaling: Option<Value>,
            pub container_concurrency: Option<i64>,
            pub timeout: Option<i64>,
            pub canary_traffic_percent: Option<i64>,
            pub logger: Option<LoggerSpec>,
            pub batcher: Option<BatcherSpec>,
            #[serde(default, deserialize_with = "nullable")]
            pub labels: StringMap,
            #[serde(default, deserialize_with = "nullable")]
            pub annotations: StringMap,
            pub deployment_strategy: Option<Value>,
            // PodSpec (containers optional)
            #[serde(default, deserialize_with = "nullable")]
            pub containers: Vec<Container>,
            #[serde(default, deserialize_with = "nullable")]
            pub volumes: Vec<Value>,
            #[serde(default, deserialize_with = "nullable")]
            pub init_containers: Vec<Container>,
            #[serde(default, deserialize_with = "nullable")]
            pub node_selector: StringMap,
            pub affinity: Option<Affinity>,
            pub service_account_name: Option<String>,
            pub service_account: Option<String>,
            pub termination_grace_period_seconds: Option<i64>,
            pub host_network: Option<bool>,
            #[serde(rename = "hostIPC")]
            pub host_ipc: Option<bool>,
            #[serde(rename = "hostPID")]
            pub host_pid: Option<bool>,
            pub security_context: Option<Value>,
            pub image_pull_secrets: Option<Value>,
            pub ephemeral_containers: Option<Value>,
            pub restart_policy: Option<Value>,
            pub active_deadline_seconds: Option<Value>,
            pub dns_policy: Option<Value>,
            pub automount_service_account_token: Option<Value>,
            pub node_name: Option<Value>,
            pub share_process_namespace: Option<Value>,
            pub hostname: Option<Value>,
            pub subdomain: Option<Value>,
            pub scheduler_name: Option<Value>,
            pub tolerations: Option<Value>,
            pub host_aliases: Option<Value>,
            pub priority_class_name: Option<Value>,
            pub priority: Option<Value>,
            pub dns_config: Option<Value>,
            pub readiness_gates: Option<Value>,
            pub runtime_class_name: Option<Value>,
            pub enable_service_links: Option<Value>,
            pub preemption_policy: Option<Value>,
            pub overhead: Option<Value>,
            pub topology_spread_constraints: Option<Value>,
            #[serde(rename = "setHostnameAsFQDN")]
            pub set_hostname_as_fqdn: Option<Value>,
            pub os: Option<Value>,
            pub host_users: Option<Value>,
            pub scheduling_gates: Option<Value>,
            pub resource_claims: Option<Value>,
            pub resources: Option<Value>,
        }

        impl $name {
            /// The component-extension and pod-level part shared by every component.
            pub fn common(&self) -> ComponentCommon {
                ComponentCommon {
                    min_replicas: self.min_replicas,
                    max_replicas: self.max_replicas,
                    scale_target: self.scale_target,
                    scale_metric: self.scale_metric.clone(),
                    container_concurrency: self.container_concurrency,
                    timeout: self.timeout,
                    canary_traffic_percent: self.canary_traffic_percent,
                    logger: self.logger.clone(),
                    labels: self.labels.clone(),
                    annotations: self.annotations.clone(),
                    deployment_strategy: self.deployment_strategy.is_some(),
                    containers: self.containers.clone(),
                    volumes: self.volumes.clone(),
                    init_containers: self.init_containers.clone(),
                    node_selector: self.node_selector.clone(),
                    affinity: self.affinity.clone(),
                    service_account_name: self
                        .service_account_name
                        .clone()
                        .or_else(|| self.service_account.clone()),
                    termination_grace_period_seconds: self.termination_grace_period_seconds,
                    host_network: self.host_network.unwrap_or(false),
                    host_ipc: self.host_ipc.unwrap_or(false),
                    host_pid: self.host_pid.unwrap_or(false),
                    ignored: {
                        const ONE_MACHINE: &str = "has no meaning on a single machine";
                        [
                            ("tolerations", self.tolerations.is_some(), ONE_MACHINE),
                            ("nodeName", self.node_name.is_some(), ONE_MACHINE),
                            ("schedulerName", self.scheduler_name.is_some(), ONE_MACHINE),
                            ("priorityClassName", self.priority_class_name.is_some(), ONE_MACHINE),
                            ("priority", self.priority.is_some(), ONE_MACHINE),
                            ("topologySpreadConstraints", self.topology_spread_constraints.is_some(), ONE_MACHINE),
                            ("dnsPolicy", self.dns_policy.is_some(), ONE_MACHINE),
                            ("dnsConfig", self.dns_config.is_some(), ONE_MACHINE),
                            ("hostAliases", self.host_aliases.is_some(), ONE_MACHINE),
                            ("hostname", self.hostname.is_some(), ONE_MACHINE),
                            ("subdomain", self.subdomain.is_some(), ONE_MACHINE),
                            ("automountServiceAccountToken", self.automount_service_account_token.is_some(), ONE_MACHINE),
                            ("readinessGates", self.readiness_gates.is_some(), ONE_MACHINE),
                            ("runtimeClassName", self.runtime_class_name.is_some(), ONE_MACHINE),
                            ("enableServiceLinks", self.enable_service_links.is_some(), ONE_MACHINE),
                            ("preemptionPolicy", self.preemption_policy.is_some(), ONE_MACHINE),
                            ("overhead", self.overhead.is_some(), ONE_MACHINE),
                            ("restartPolicy", self.restart_policy.is_some(), ONE_MACHINE),
                            ("activeDeadlineSeconds", self.active_deadline_seconds.is_some(), ONE_MACHINE),
                            ("shareProcessNamespace", self.share_process_namespace.is_some(), ONE_MACHINE),
                            ("setHostnameAsFQDN", self.set_hostname_as_fqdn.is_some(), ONE_MACHINE),
                            ("os", self.os.is_some(), ONE_MACHINE),
                            ("hostUsers", self.host_users.is_some(), ONE_MACHINE),
                            ("schedulingGates", self.scheduling_gates.is_some(), ONE_MACHINE),
                            ("resourceClaims", self.resource_claims.is_some(), ONE_MACHINE),
                            ("resources", self.resources.is_some(), "pod-level resources are not used: set them on the container"),
                            ("ephemeralContainers", self.ephemeral_containers.is_some(), ONE_MACHINE),
                            ("securityContext", self.security_context.is_some(), "the pod-level security context is not applied yet: set it on the container"),
                            ("imagePullSecrets", self.image_pull_secrets.is_some(), "images are pulled with the Docker engine's own credentials"),
                            ("scaleMetricType", self.scale_metric_type.is_some(), "only used by HPA and KEDA; gantry scales with Knative's KPA"),
                            ("autoScaling", self.auto_scaling.is_some(), "only used by HPA and KEDA; gantry scales with Knative's KPA"),
                            ("logger", self.logger.is_some(), "gantry does not inject KServe's request logger yet"),
                            ("batcher", self.batcher.is_some(), "gantry does not inject KServe's batcher yet"),
                        ]
                        .into_iter()
                        .filter(|(_, set, _)| *set)
                        .map(|(name, _, why)| (name, why))
                        .collect()
                    },
                }
            }
        }
    };
}

/// What every component has, whatever its implementation: KServe's ComponentExtensionSpec
/// and the pod-level fields that matter on one machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentCommon {
    pub min_replicas: Option<i32>,
    pub max_replicas: i32,
    pub scale_target: Option<i32>,
    pub scale_metric: Option<String>,
    pub container_concurrency: Option<i64>,
    pub timeout: Option<i64>,
    pub canary_traffic_percent: Option<i64>,
    pub logger: Option<LoggerSpec>,
    pub labels: StringMap,
    pub annotations: StringMap,
    pub deployment_strategy: bool,
    pub containers: Vec<Container>,
    pub volumes: Vec<Value>,
    pub init_containers: Vec<Container>,
    pub node_selector: StringMap,
    pub affinity: Option<Affinity>,
    pub service_account_name: Option<String>,
    pub termination_grace_period_seconds: Option<i64>,
    pub host_network: bool,
    pub host_ipc: bool,
    pub host_pid: bool,
    /// Fields that are set but not used, each with the reason (reported as warnings).
    pub ignored: Vec<(&'static str, &'static str)>,
}

with_container_fields! {
    /// KServe's `PredictorExtensionSpec`: a framework shorthand (`sklearn`, `tensorflow`, ...).
    pub struct PredictorExtension {
        pub storage_uri: Option<String>,
        pub runtime_version: Option<String>,
        pub protocol_version: Option<String>,
        pub storage: Option<StorageSpec>,
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelFormat {
    pub name: String,
    pub version: Option<String>,
}

with_container_fields! {
    /// KServe's `model:` (v0.8+): a model format resolved to a ServingRuntime.
    pub struct ModelSpec {
        pub model_format: ModelFormat,
        pub runtime: Option<String>,
        pub storage_uri: Option<String>,
        pub runtime_version: Option<String>,
        pub protocol_version: Option<String>,
        pub storage: Option<StorageSpec>,
    }
}

with_container_fields! {
    /// The ART explainer.
    pub struct ArtExplainer {
        #[serde(rename = "type")]
        pub explainer_type: Option<String>,
        pub storage_uri: Option<String>,
        pub runtime_version: Option<String>,
        #[serde(default, deserialize_with = "nullable")]
        pub config: StringMap,
    }
}

with_component_fields! {
    /// `spec.predictor`.
    pub struct PredictorSpec {
        pub sklearn: Option<Box<PredictorExtension>>,
        pub xgboost: Option<Box<PredictorExtension>>,
        pub tensorflow: Option<Box<PredictorExtension>>,
        pub pytorch: Option<Box<PredictorExtension>>,
        pub triton: Option<Box<PredictorExtension>>,
        pub onnx: Option<Box<PredictorExtension>>,
        pub huggingface: Option<Box<PredictorExtension>>,
        pub pmml: Option<Box<PredictorExtension>>,
        pub lightgbm: Option<Box<PredictorExtension>>,
        pub paddle: Option<Box<PredictorExtension>>,
        pub model: Option<Box<ModelSpec>>,
        pub worker_spec: Option<Value>,
    }
}

with_component_fields! {
    /// `spec.transformer`: a PodSpec.
    pub struct TransformerSpec {}
}

with_component_fields! {
    /// `spec.explainer`.
    pub struct ExplainerSpec {
        pub art: Option<Box<ArtExplainer>>,
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InferenceServiceSpec {
    pub predictor: Option<Box<PredictorSpec>>,
    pub transformer: Option<Box<TransformerSpec>>,
    pub explainer: Option<Box<ExplainerSpec>>,
}

/// A `serving.kserve.io/v1beta1` (or `serving.kubeflow.org/v1beta1`) InferenceService.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InferenceService {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: InferenceServiceSpec,
    /// A status copied from a cluster is accepted and ignored.
    pub status: Option<Value>,
}

impl PredictorSpec {
    /// The framework shorthands that are set, by their KServe field name.
    pub fn frameworks(&self) -> Vec<(&'static str, &PredictorExtension)> {
        [
            ("sklearn", &self.sklearn),
            ("xgboost", &self.xgboost),
            ("tensorflow", &self.tensorflow),
            ("pytorch", &self.pytorch),
            ("triton", &self.triton),
            ("onnx", &self.onnx),
            ("huggingface", &self.huggingface),
            ("pmml", &self.pmml),
            ("lightgbm", &self.lightgbm),
            ("paddle", &self.paddle),
        ]
        .into_iter()
        .filter_map(|(name, ext)| ext.as_deref().map(|e| (name, e)))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::yaml::{decode, documents, UnknownFields};

    fn parse(text: &str) -> InferenceService {
        let (docs, err) = documents(text);
        assert!(err.is_none());
        let (isvc, diags) = decode::<InferenceService>(&docs[0], UnknownFields::Error);
        assert!(diags.is_empty(), "{diags:?}");
        isvc.unwrap()
    }

    #[test]
    fn a_custom_predictor_with_gpu_limits() {
        let isvc = parse(
            "apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: gptj, annotations: {autoscaling.knative.dev/target: '1'}}
spec:
  predictor:
    minReplicas: 0
    containerConcurrency: 1
    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms:
          - matchExpressions:
            - {key: gpu.nvidia.com/class, operator: In, values: [A40]}
    containers:
    - name: kserve-container
      image: ghcr.io/x/gptj:1
      env: [{name: STORAGE_URI, value: 'pvc://model/gptj'}]
      readinessProbe: null
      resources:
        limits: {cpu: 2, memory: 16Gi, nvidia.com/gpu: 1}
",
        );
        let predictor = isvc.spec.predictor.unwrap();
        assert_eq!(predictor.min_replicas, Some(0));
        let c = &predictor.containers[0];
        assert_eq!(c.resources.limits["nvidia.com/gpu"].value(), 1);
        assert_eq!(c.resources.limits["memory"].value(), 16 << 30);
        assert!(c.readiness_probe.is_none());
        let terms = predictor
            .affinity
            .unwrap()
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms[0].match_expressions[0].values, ["A40"]);
    }

    #[test]
    fn a_framework_shorthand_keeps_its_container_fields() {
        let isvc = parse(
            "apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: iris}
spec:
  predictor:
    sklearn:
      name: kserve-container
      storageUri: gs://kfserving-examples/models/sklearn/1.0/model
      resources: {requests: {cpu: 100m}}
",
        );
        let predictor = isvc.spec.predictor.unwrap();
        let frameworks = predictor.frameworks();
        assert_eq!(frameworks.len(), 1);
        let (name, ext) = frameworks[0];
        assert_eq!(name, "sklearn");
        assert_eq!(ext.container().name.as_deref(), Some("kserve-container"));
        assert_eq!(ext.container().resources.requests["cpu"].milli_value(), 100);
    }
}
