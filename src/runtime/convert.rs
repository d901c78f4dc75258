//! From a component's desired state to one replica's container: the pure conversion behind
//! [`container_spec`].
//!
//! It does what Kubernetes, KServe and Knative do between an accepted InferenceService and a
//! running container: the kubelet resolves `env` (`valueFrom`, `envFrom`, `$(VAR)` expansion)
//! and maps requests and limits to cgroups, KServe mounts the model at `/mnt/models` and points
//! `STORAGE_URI` there, Knative adds `PORT`, `K_SERVICE`, `K_REVISION` and `K_CONFIGURATION`.
//! What Docker would refuse, and what the daemon's [`SecurityPolicy`] forbids, is refused here
//! with the field it comes from, so that a bad spec is reported before any container exists.
//!
//! Nothing here touches the file system: a model path is turned into a bind mount as written,
//! and the caller checks that it exists.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use super::{labels, ContainerSpec, DockerResources, Mount};
use crate::spec::catalog::{ObjectKey, OtherObject};
use crate::spec::normalize::{DesiredComponent, GPU_RESOURCE};
use crate::spec::objects::{describe, object_data, ObjectProblem, Source};
use crate::spec::quantity::Quantity;
use crate::spec::types::{
    EnvFromSource, EnvVarSource, FieldSelector, KeySelector, ResourceFieldSelector,
    SecurityContext, VolumeMount,
};
use crate::spec::validate::ComponentKind;
use crate::spec::yaml::FieldPath;
use crate::storage::uri::{self, clean, ModelSource};

/// Where KFServing mounted a `pvc://` claim (`/mnt/models` then held links into it).
pub const PVC_MOUNT_PATH: &str = "/mnt/pvc";

/// Where KServe mounts the model in the model-server container.
pub const MODEL_MOUNT_PATH: &str = "/mnt/models";
/// The environment variable a custom container reads its model location from; KServe
/// rewrites it to [`MODEL_MOUNT_PATH`] once the model is mounted.
pub const STORAGE_URI_ENV: &str = "STORAGE_URI";
/// Kubernetes' `terminationGracePeriodSeconds` default.
pub const DEFAULT_STOP_TIMEOUT_SECONDS: i64 = 30;
/// Docker's smallest memory limit and memory reservation (`linuxMinMemory`): it refuses
/// anything below with "Minimum memory limit allowed is 6MB".
pub const DOCKER_MIN_MEMORY_BYTES: i64 = 6 * 1024 * 1024;
/// Kubernetes' bounds on cpu shares (`MinShares`, `MaxShares`).
const MIN_CPU_SHARES: i64 = 2;
const MAX_CPU_SHARES: i64 = 262_144;
/// Kubernetes' smallest CFS quota is 1 ms per 100 ms period (`MinQuotaPeriod`): it raises
/// smaller cpu limits to 10m, and so does gantry (the kernel refuses a smaller quota).
const MIN_CPU_LIMIT_MILLIS: i64 = 10;
/// A volume mounted here sizes `/dev/shm` instead of becoming a mount.
const SHM_PATH: &str = "/dev/shm";
/// The variables Knative gives every user container, in Knative's order after `PORT`.
const K_REVISION: &str = "K_REVISION";
const K_CONFIGURATION: &str = "K_CONFIGURATION";
const K_SERVICE: &str = "K_SERVICE";
const PORT: &str = "PORT";

/// What the daemon configuration allows containers to do (`allow-privileged`,
/// `allow-host-network`, `allow-host-path`). Everything is refused by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityPolicy {
    pub allow_privileged: bool,
    pub allow_host_network: bool,
    pub allow_host_path: bool,
}

/// Everything [`container_spec`] needs besides the component.
#[derive(Debug, Clone, Copy)]
pub struct ConvertContext<'a> {
    /// The InferenceService's namespace.
    pub namespace: &'a str,
    /// The InferenceService's name (`iris`); the component's own service name
    /// (`iris-predictor`, Knative's `K_SERVICE`) is `DesiredComponent::name`.
    pub service: &'a str,
    /// The revision's name, `<isvc>-predictor-00001`.
    pub revision: &'a str,
    /// The replica's index within its revision.
    pub replica: u32,
    /// The folder of the YAML file, for model paths relative to it. Must be absolute for a
    /// relative model path to be usable.
    pub source_dir: &'a Path,
    /// The Secrets and ConfigMaps (and other objects) found in the folder.
    pub objects: &'a BTreeMap<ObjectKey, OtherObject>,
    pub policy: &'a SecurityPolicy,
    /// The size of `/dev/shm` unless the spec mounts a sized `emptyDir` there.
    pub shm_size_bytes: i64,
    /// The GPUs the scheduler placed the replica on, by UUID: exactly as many as the
    /// component's `nvidia.com/gpu` limit.
    pub gpu_uuids: &'a [String],
    /// The data plane's port: a transformer's `--predictor_host` gets it when it is not 80.
    pub data_plane_port: u16,
    /// Where the model is on this machine, when it is not a local path (which is mounted as
    /// it is): a download in the model cache, a `pvc://` volume's host folder.
    pub model: Option<&'a ModelMounts>,
}

/// A model's host folders, as the executor resolved its storage URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelMounts {
    /// Mounted read-only at `/mnt/models`.
    pub model: PathBuf,
    /// A `pvc://` volume's root, also mounted read-only at `/mnt/pvc` (the KFServing-era
    /// layout some images read).
    pub pvc_root: Option<PathBuf>,
}

/// Why a component cannot become a container: the field (a path into the InferenceService,
/// as Kubernetes prints them) and what was expected and found. Never holds a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConvertError {
    /// `spec.predictor.containers[0].env[2].valueFrom.secretKeyRef`, ...
    pub field: String,
    pub message: String,
}

/// The container of replica `ctx.replica` of revision `ctx.revision` of `component`, or every
/// reason it cannot be created.
pub fn container_spec(
    component: &DesiredComponent,
    ctx: &ConvertContext,
) -> Result<ContainerSpec, Vec<ConvertError>> {
    let mut conv = Converter {
        component,
        ctx,
        paths: Paths::of(component),
        errors: Vec::new(),
    };
    let container = &component.template.container;
    let name = container_name(ctx.namespace, ctx.revision, ctx.replica);

    if container.image.is_empty() {
        let at = conv.paths.container.key("image");
        conv.error(&at, "Required value");
    }
    let port = conv.port();
    let model = conv.model_mounts();
    let env = conv.environment(&name, port, !model.is_empty());
    let entrypoint = container
        .command
        .iter()
        .map(|c| expand(c, |n| env.get(n)))
        .collect();
    let mut cmd: Vec<String> = container
        .args
        .iter()
        .map(|a| expand(a, |n| env.get(n)))
        .collect();
    if component.kind != ComponentKind::Predictor {
        with_data_plane_port(&mut cmd, ctx.data_plane_port);
    }
    let resources = conv.resources();
    let (mounts, shm_size_bytes) = conv.mounts(model);
    let security = conv.security();
    conv.host_namespaces();
    conv.gpus();
    let always_pull = conv.always_pull();

    if !conv.errors.is_empty() {
        return Err(conv.errors);
    }
    let template = &component.template;
    Ok(ContainerSpec {
        name,
        image: container.image.clone(),
        entrypoint,
        cmd,
        env: env.into_docker(),
        working_dir: container.working_dir.clone().filter(|w| !w.is_empty()),
        labels: container_labels(component, ctx),
        port,
        resources,
        mounts,
        gpu_uuids: ctx.gpu_uuids.to_vec(),
        shm_size_bytes,
        user: security.user,
        read_only_root_fs: security.read_only_root_fs,
        cap_add: security.cap_add,
        cap_drop: security.cap_drop,
        privileged: security.privileged,
        host_network: template.host_network,
        host_ipc: template.host_ipc,
        stop_timeout_seconds: stop_timeout(template.termination_grace_period_seconds),
        always_pull,
        extra_hosts: service_hosts(ctx.service, ctx.namespace)
            .into_iter()
            .chain(["host.docker.internal".to_string()])
            .map(|h| format!("{h}:host-gateway"))
            .collect(),
    })
}

/// The names a KServe component calls its service's components by, inside a cluster: they
/// resolve to the host (Docker's `host-gateway`), where gantry's router answers for them.
pub fn service_hosts(service: &str, namespace: &str) -> Vec<String> {
    let names = [
        service.to_string(),
        format!("{service}-predictor"),
        format!("{service}-transformer"),
        format!("{service}-explainer"),
    ];
    names
        .iter()
        .flat_map(|n| {
            ["", ".svc", ".svc.cluster.local"].map(|suffix| format!("{n}.{namespace}{suffix}"))
        })
        .collect()
}

/// KServe gives a transformer `--predictor_host <name>-predictor.<namespace>`, port 80 implied;
/// gantry's router answers on `port`, so a host without one gets it.
fn with_data_plane_port(args: &mut [String], port: u16) {
    if port == 80 {
        return;
    }
    let mut next_is_host = false;
    for arg in args.iter_mut() {
        if next_is_host {
            next_is_host = false;
            if !arg.contains(':') {
                arg.push_str(&format!(":{port}"));
            }
        } else if arg == "--predictor_host" {
            next_is_host = true;
        } else if let Some(host) = arg.strip_prefix("--predictor_host=") {
            if !host.contains(':') {
                *arg = format!("--predictor_host={host}:{port}");
            }
        }
    }
}

/// `gantry-<namespace>-<revision>-<replica>`: unique per replica, and readable in `docker ps`.
pub fn container_name(namespace: &str, revision: &str, replica: u32) -> String {
    format!("gantry-{namespace}-{revision}-{replica}")
}

/// The labels of [`labels`] that say who owns the container and what it runs. The executor
/// adds the operational ones it alone knows (`PROBES`, `STOP_TIMEOUT`, `INSTANCE`).
fn container_labels(
    component: &DesiredComponent,
    ctx: &ConvertContext,
) -> BTreeMap<String, String> {
    [
        (labels::MANAGED_BY, "true".to_string()),
        (labels::NAMESPACE, ctx.namespace.to_string()),
        (labels::SERVICE, ctx.service.to_string()),
        (labels::COMPONENT, component.kind.as_str().to_string()),
        (labels::REVISION, ctx.revision.to_string()),
        (labels::REPLICA, ctx.replica.to_string()),
        (labels::SPEC_HASH, component.revision_key.clone()),
        (labels::KSERVE_ISVC, ctx.service.to_string()),
        (labels::KNATIVE_REVISION, ctx.revision.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `terminationGracePeriodSeconds`, 30 when unset; the API server turns a negative value
/// into 1.
fn stop_timeout(grace: Option<i64>) -> i64 {
    match grace {
        None => DEFAULT_STOP_TIMEOUT_SECONDS,
        Some(s) if s < 0 => 1,
        Some(s) => s,
    }
}

/// Expands `$(VAR)` references as Kubernetes does in `env` values, `command` and `args`
/// (`third_party/forked/golang/expansion`): a defined variable is replaced, an undefined
/// reference is kept as written, `$$` is a literal `$`, and any other `$` is kept.
pub fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] != b'$' || cursor + 1 >= bytes.len() {
            cursor += 1;
            continue;
        }
        out.push_str(&input[checkpoint..cursor]);
        let rest = &input[cursor + 1..];
        match bytes[cursor + 1] {
            b'$' => {
                out.push('$');
                cursor += 2;
            }
            b'(' => match rest[1..].find(')') {
                Some(end) => {
                    let name = &rest[1..1 + end];
                    match lookup(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    cursor += 2 + end + 1;
                }
                // An unclosed reference is kept, and scanning goes on after it.
                None => {
                    out.push_str("$(");
                    cursor += 2;
                }
            },
            _ => {
                let next = rest.chars().next().expect("a byte follows the operator");
                out.push('$');
                out.push(next);
                cursor += 1 + next.len_utf8();
            }
        }
        checkpoint = cursor;
    }
    out.push_str(&input[checkpoint..]);
    out
}

/// Where the parts of a component are in the InferenceService, for error fields. A
/// component does not remember its document's layout, so these are the v1beta1 paths: a
/// custom model server is taken to be the first container, and variables a ServingRuntime
/// contributed are reported at the model's own field.
struct Paths {
    /// `spec.predictor`.
    component: FieldPath,
    /// `spec.predictor.containers[0]`, `spec.predictor.model`, `spec.predictor.sklearn`, ...
    container: FieldPath,
    /// Where the storage URI was written.
    storage: FieldPath,
}

impl Paths {
    fn of(component: &DesiredComponent) -> Paths {
        let base = FieldPath::root().key("spec").key(component.kind.as_str());
        let custom = component.implementation == "custom";
        let container = if custom {
            base.key("containers").index(0)
        } else {
            base.key(component.implementation.clone())
        };
        let storage = if custom {
            let c = &component.template.container;
            match c.env.iter().position(|e| e.name == STORAGE_URI_ENV) {
                Some(i) => container.key("env").index(i).key("value"),
                None => container.key("env"),
            }
        } else {
            container.key("storageUri")
        };
        Paths {
            component: base,
            container,
            storage,
        }
    }
}

/// The container's environment in order; setting a name again replaces its value in place
/// (Docker would otherwise take the last of two).
#[derive(Debug, Default)]
struct Environment {
    vars: Vec<(String, String)>,
}

impl Environment {
    fn set(&mut self, name: &str, value: String) {
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some(var) => var.1 = value,
            None => self.vars.push((name.to_string(), value)),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn into_docker(self) -> Vec<String> {
        self.vars
            .into_iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect()
    }
}

/// What the security context asks for, once allowed.
struct Security {
    user: Option<String>,
    read_only_root_fs: bool,
    cap_add: Vec<String>,
    cap_drop: Vec<String>,
    privileged: bool,
}

struct Converter<'c, 'a> {
    component: &'c DesiredComponent,
    ctx: &'c ConvertContext<'a>,
    paths: Paths,
    errors: Vec<ConvertError>,
}

impl Converter<'_, '_> {
    fn error(&mut self, field: &FieldPath, message: impl Into<String>) {
        self.errors.push(ConvertError {
            field: field.to_string(),
            message: message.into(),
        });
    }

    fn port(&mut self) -> u16 {
        let port = self.component.template.container.port.container_port;
        match u16::try_from(port) {
            Ok(p) if p > 0 => p,
            _ => {
                let at = self
                    .paths
                    .container
                    .key("ports")
                    .index(0)
                    .key("containerPort");
                self.error(
                    &at,
                    format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
                );
                0
            }
        }
    }

    // --- environment -------------------------------------------------------------------

    /// The kubelet's order: `envFrom` first, then `env` (each value expanded against the
    /// variables before it), then what Knative appends. Knative's variables come last, so a
    /// user's `$(PORT)` in `env` stays as written while one in `command` or `args` expands.
    fn environment(&mut self, pod_name: &str, port: u16, model_mounted: bool) -> Environment {
        let container = &self.component.template.container;
        let base = self.paths.container.clone();
        let mut env = Environment::default();
        for (i, source) in container.env_from.iter().enumerate() {
            self.env_from(source, &base.key("envFrom").index(i), &mut env);
        }
        for (j, var) in container.env.iter().enumerate() {
            let at = base.key("env").index(j);
            if let Some(problem) = env_name_problem(&var.name) {
                self.error(&at.key("name"), problem);
                continue;
            }
            let value = match &var.value_from {
                Some(from) => {
                    let at = at.key("valueFrom");
                    if var.value.as_deref().is_some_and(|v| !v.is_empty()) {
                        self.error(
                            &at,
                            "Invalid value: \"\": may not be specified when `value` is not empty",
                        );
                        continue;
                    }
                    match self.value_from(from, &at, pod_name) {
                        Some(v) => v,
                        None => continue,
                    }
                }
                None if model_mounted && var.name == STORAGE_URI_ENV => {
                    MODEL_MOUNT_PATH.to_string()
                }
                None => expand(var.value.as_deref().unwrap_or(""), |n| env.get(n)),
            };
            env.set(&var.name, value);
        }
        env.set(PORT, port.to_string());
        env.set(K_REVISION, self.ctx.revision.to_string());
        env.set(K_CONFIGURATION, self.component.name.clone());
        env.set(K_SERVICE, self.component.name.clone());
        env
    }

    fn env_from(&mut self, source: &EnvFromSource, at: &FieldPath, env: &mut Environment) {
        let (kind, reference, field) = match (&source.config_map_ref, &source.secret_ref) {
            (Some(r), None) => (Source::ConfigMap, r, "configMapRef"),
            (None, Some(r)) => (Source::Secret, r, "secretRef"),
            (Some(_), Some(_)) => {
                return self.error(
                    at,
                    "Invalid value: \"\": may not have more than one field specified at a time",
                )
            }
            (None, None) => {
                return self.error(
                    at,
                    "Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`",
                )
            }
        };
        let at = at.key(field);
        let Some(name) = reference.name.as_deref().filter(|n| !n.is_empty()) else {
            return self.error(&at.key("name"), "Required value");
        };
        let data = match object_data(self.ctx.objects, kind, self.ctx.namespace, name) {
            Ok(Some(data)) => data,
            Ok(None) if reference.optional == Some(true) => return,
            Ok(None) => return self.error(&at, not_found(kind, name)),
            Err(ObjectProblem(message)) => return self.error(&at, message),
        };
        let prefix = source.prefix.as_deref().unwrap_or("");
        for (key, value) in data {
            let var = format!("{prefix}{key}");
            match env_name_problem(&var) {
                Some(problem) => self.error(
                    &at,
                    format!(
                        "key {key} of {}: {problem}",
                        describe(kind, self.ctx.namespace, name)
                    ),
                ),
                None => env.set(&var, value),
            }
        }
    }

    /// The value of a `valueFrom`, or `None` when the variable is left out (an optional
    /// reference to something missing) or cannot be resolved (an error is recorded).
    fn value_from(
        &mut self,
        from: &EnvVarSource,
        at: &FieldPath,
        pod_name: &str,
    ) -> Option<String> {
        let set = [
            from.field_ref.is_some(),
            from.resource_field_ref.is_some(),
            from.config_map_key_ref.is_some(),
            from.secret_key_ref.is_some(),
        ]
        .into_iter()
        .filter(|s| *s)
        .count();
        if set != 1 {
            let message = if set == 0 {
                "Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, \
                 `configMapKeyRef` or `secretKeyRef`"
            } else {
                "Invalid value: \"\": may not have more than one field specified at a time"
            };
            self.error(at, message);
            return None;
        }
        if let Some(s) = &from.secret_key_ref {
            return self.key_ref(Source::Secret, s, &at.key("secretKeyRef"));
        }
        if let Some(s) = &from.config_map_key_ref {
            return self.key_ref(Source::ConfigMap, s, &at.key("configMapKeyRef"));
        }
        if let Some(f) = &from.field_ref {
            return self.field_ref(f, &at.key("fieldRef"), pod_name);
        }
        let r = from.resource_field_ref.as_ref().expect("one source is set");
        self.resource_field_ref(r, &at.key("resourceFieldRef"))
    }

    fn key_ref(&mut self, kind: Source, selector: &KeySelector, at: &FieldPath) -> Option<String> {
        let Some(name) = selector.name.as_deref().filter(|n| !n.is_empty()) else {
            self.error(&at.key("name"), "Required value");
            return None;
        };
        let optional = selector.optional == Some(true);
        let mut data = match object_data(self.ctx.objects, kind, self.ctx.namespace, name) {
            Ok(Some(data)) => data,
            Ok(None) if optional => return None,
            Ok(None) => {
                self.error(at, not_found(kind, name));
                return None;
            }
            Err(ObjectProblem(message)) => {
                self.error(at, message);
                return None;
            }
        };
        match data.remove(&selector.key) {
            Some(value) => Some(value),
            None if optional => None,
            None => {
                self.error(
                    at,
                    format!(
                        "couldn't find key {} in {}",
                        selector.key,
                        describe(kind, self.ctx.namespace, name)
                    ),
                );
                None
            }
        }
    }

    fn field_ref(
        &mut self,
        selector: &FieldSelector,
        at: &FieldPath,
        pod_name: &str,
    ) -> Option<String> {
        if let Some(version) = selector.api_version.as_deref().filter(|v| *v != "v1") {
            self.error(
                &at.key("apiVersion"),
                format!("Unsupported value: \"{version}\": supported values: \"v1\""),
            );
            return None;
        }
        match selector.field_path.as_str() {
            "metadata.name" => Some(pod_name.to_string()),
            "metadata.namespace" => Some(self.ctx.namespace.to_string()),
            other => {
                self.error(
                    &at.key("fieldPath"),
                    format!(
                        "Unsupported value: \"{other}\": supported values: \"metadata.name\", \
                         \"metadata.namespace\" (a gantry replica is a container, not a pod: \
                         other pod fields have no value)"
                    ),
                );
                None
            }
        }
    }

    /// The kubelet's `ExtractContainerResourceValue`: the quantity divided by the divisor
    /// (default 1), rounded up.
    fn resource_field_ref(
        &mut self,
        selector: &ResourceFieldSelector,
        at: &FieldPath,
    ) -> Option<String> {
        let container = &self.component.template.container;
        if let Some(name) = selector.container_name.as_deref().filter(|n| !n.is_empty()) {
            if name != container.name {
                self.error(
                    &at.key("containerName"),
                    format!(
                        "Not found: \"{name}\": gantry runs the model server container \"{}\" \
                         only, so a variable can refer to its resources alone",
                        container.name
                    ),
                );
                return None;
            }
        }
        let resource = selector.resource.as_str();
        let (map, key, cpu) = match resource {
            "limits.cpu" => (&container.resources.limits, "cpu", true),
            "limits.memory" => (&container.resources.limits, "memory", false),
            "requests.cpu" => (&container.resources.requests, "cpu", true),
            "requests.memory" => (&container.resources.requests, "memory", false),
            other => {
                self.error(
                    &at.key("resource"),
                    format!(
                        "Unsupported value: \"{other}\": supported values: \"limits.cpu\", \
                         \"limits.memory\", \"requests.cpu\", \"requests.memory\""
                    ),
                );
                return None;
            }
        };
        let one = Quantity::parse("1").expect("a valid quantity");
        let divisor = selector
            .divisor
            .clone()
            .filter(|d| !d.is_zero())
            .unwrap_or(one);
        if !valid_divisor(&divisor, cpu) {
            let allowed = if cpu {
                "only divisor's values 1m and 1 are supported with the cpu resource"
            } else {
                "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei \
                 are supported with the memory resource"
            };
            self.error(
                &at.key("divisor"),
                format!("Invalid value: \"{resource}\": {allowed}"),
            );
            return None;
        }
        let Some(quantity) = map.get(key) else {
            self.error(
                at,
                format!("{resource} is not set for container \"{}\"", container.name),
            );
            return None;
        };
        let (value, unit) = if cpu {
            (quantity.milli_value(), divisor.milli_value())
        } else {
            (quantity.value(), divisor.value())
        };
        Some(div_ceil(value, unit).to_string())
    }

    // --- the model ---------------------------------------------------------------------

    /// The model at `/mnt/models` (read-only): a local path as it is, anything else as the
    /// executor resolved it (a cached download, a `pvc://` volume, also at `/mnt/pvc`).
    fn model_mounts(&mut self) -> Vec<Mount> {
        let Some(uri) = self
            .component
            .template
            .storage_uri
            .as_deref()
            .filter(|u| !u.is_empty())
        else {
            return Vec::new();
        };
        let read_only = |source: &Path, target: &str| Mount {
            source: source.to_string_lossy().into_owned(),
            target: target.to_string(),
            read_only: true,
        };
        if let Some(model) = self.ctx.model {
            let mut out = vec![read_only(&model.model, MODEL_MOUNT_PATH)];
            if let Some(root) = &model.pvc_root {
                out.push(read_only(root, PVC_MOUNT_PATH));
            }
            return out;
        }
        match uri::parse(uri, self.ctx.source_dir) {
            Ok(ModelSource::Local(path)) => vec![read_only(&path, MODEL_MOUNT_PATH)],
            Ok(remote) => {
                let at = self.paths.storage.clone();
                self.error(
                    &at,
                    format!(
                        "a {}:// model is fetched into the model cache, and none was given \
                         to this conversion; a local path is mounted as it is (file:///abs/path, \
                         /abs/path, or a path relative to the YAML file's folder)",
                        remote.scheme()
                    ),
                );
                Vec::new()
            }
            Err(message) => {
                let at = self.paths.storage.clone();
                self.error(&at, message);
                Vec::new()
            }
        }
    }

    // --- resources ---------------------------------------------------------------------

    /// Requests and limits as the kubelet maps them to cgroups, checked as Docker checks
    /// them (`verifyPlatformContainerResources`).
    fn resources(&mut self) -> DockerResources {
        let r = &self.component.template.container.resources;
        let at = self.paths.container.key("resources");
        let shown = |map: &BTreeMap<String, Quantity>, key: &str| {
            map.get(key).map(|q| q.to_string()).unwrap_or_default()
        };
        let mut out = DockerResources {
            nano_cpus: (r.cpu_limit_millis > 0).then(|| {
                r.cpu_limit_millis
                    .max(MIN_CPU_LIMIT_MILLIS)
                    .saturating_mul(1_000_000)
            }),
            cpu_shares: Some(cpu_shares(r.cpu_request_millis)),
            memory: (r.memory_limit_bytes > 0).then_some(r.memory_limit_bytes),
            memory_reservation: (r.memory_request_bytes > 0).then_some(r.memory_request_bytes),
        };
        if let Some(limit) = out.memory.filter(|m| *m < DOCKER_MIN_MEMORY_BYTES) {
            self.error(
                &at.key("limits").key("memory"),
                format!(
                    "Invalid value: \"{}\": Docker refuses a memory limit below 6Mi \
                     (\"Minimum memory limit allowed is 6MB\"), found {limit} bytes",
                    shown(&r.limits, "memory")
                ),
            );
            out.memory = None;
        }
        if let Some(request) = out.memory_reservation {
            if request < DOCKER_MIN_MEMORY_BYTES {
                self.error(
                    &at.key("requests").key("memory"),
                    format!(
                        "Invalid value: \"{}\": Docker refuses a memory reservation below 6Mi \
                         (\"Minimum memory reservation allowed is 6MB\"), found {request} bytes",
                        shown(&r.requests, "memory")
                    ),
                );
            } else if out.memory.is_some_and(|limit| limit < request) {
                self.error(
                    &at.key("requests").key("memory"),
                    format!(
                        "Invalid value: \"{}\": must be less than or equal to memory limit of {} \
                         (Docker: \"Minimum memory limit can not be less than memory reservation \
                         limit\")",
                        shown(&r.requests, "memory"),
                        shown(&r.limits, "memory")
                    ),
                );
            }
        }
        out
    }

    // --- volumes -----------------------------------------------------------------------

    /// The model mount, the container's volume mounts as bind mounts, and the size of
    /// `/dev/shm`.
    fn mounts(&mut self, model: Vec<Mount>) -> (Vec<Mount>, i64) {
        let template = &self.component.template;
        let volumes_at = self.paths.component.key("volumes");
        let mut volumes: BTreeMap<&str, (usize, &Value)> = BTreeMap::new();
        for (i, volume) in template.volumes.iter().enumerate() {
            if volume.get("hostPath").is_some() && !self.ctx.policy.allow_host_path {
                self.error(
                    &volumes_at.index(i).key("hostPath"),
                    "Forbidden: hostPath volumes are disallowed by gantry's policy (set \
                     allow-host-path: true in the gantry config to allow them)",
                );
            }
            if let Some(name) = volume.get("name").and_then(Value::as_str) {
                volumes.insert(name, (i, volume));
            }
        }

        let mut shm = self.ctx.shm_size_bytes;
        let mut mounts: Vec<Mount> = model;
        let mounts_at = self.paths.container.key("volumeMounts");
        for (k, vm) in template.container.volume_mounts.iter().enumerate() {
            let at = mounts_at.index(k);
            let declared = volumes.get(vm.name.as_str()).copied();
            if vm.mount_path == SHM_PATH {
                // Kubernetes' idiom for a larger /dev/shm: a memory emptyDir mounted there.
                if let Some((i, volume)) = declared {
                    if let Some(size) = self.shm_size_limit(volume, &volumes_at.index(i)) {
                        shm = size;
                    }
                }
                continue;
            }
            if !vm.mount_path.starts_with('/') {
                self.error(
                    &at.key("mountPath"),
                    format!(
                        "Invalid value: \"{}\": must be an absolute path",
                        vm.mount_path
                    ),
                );
                continue;
            }
            let target = clean(Path::new(&vm.mount_path));
            if mounts.iter().any(|m| m.target == target) {
                let why = if target == MODEL_MOUNT_PATH {
                    " (the model is mounted there)"
                } else {
                    ""
                };
                self.error(
                    &at.key("mountPath"),
                    format!("Invalid value: \"{}\": must be unique{why}", vm.mount_path),
                );
                continue;
            }
            let Some((i, volume)) = declared else {
                self.error(&at.key("name"), format!("Not found: \"{}\"", vm.name));
                continue;
            };
            match volume_type(volume) {
                "hostPath" => {
                    if self.ctx.policy.allow_host_path {
                        if let Some(mount) =
                            self.host_path_mount(volume, vm, &volumes_at.index(i), &at)
                        {
                            mounts.push(mount);
                        }
                    }
                }
                other => self.error(
                    &at,
                    format!(
                        "volume \"{}\" is a {other} volume, which gantry cannot mount yet: it \
                         mounts hostPath volumes (with allow-host-path) and an emptyDir at \
                         /dev/shm",
                        vm.name
                    ),
                ),
            }
        }
        (mounts, shm)
    }

    /// The `sizeLimit` of an `emptyDir` mounted at `/dev/shm`, when it has one.
    fn shm_size_limit(&mut self, volume: &Value, at: &FieldPath) -> Option<i64> {
        let limit = volume.get("emptyDir")?.get("sizeLimit")?;
        let text = match limit {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        match Quantity::parse(&text) {
            Ok(q) if q.value() > 0 => Some(q.value()),
            Ok(_) => None,
            Err(e) => {
                self.error(
                    &at.key("emptyDir").key("sizeLimit"),
                    format!("Invalid value: \"{text}\": {e}"),
                );
                None
            }
        }
    }

    fn host_path_mount(
        &mut self,
        volume: &Value,
        vm: &VolumeMount,
        volume_at: &FieldPath,
        mount_at: &FieldPath,
    ) -> Option<Mount> {
        let path_at = volume_at.key("hostPath").key("path");
        let Some(path) = volume
            .get("hostPath")
            .and_then(|h| h.get("path"))
            .and_then(Value::as_str)
        else {
            self.error(&path_at, "Required value");
            return None;
        };
        if !path.starts_with('/') {
            self.error(
                &path_at,
                format!("Invalid value: \"{path}\": must be an absolute path (Docker binds absolute host paths only)"),
            );
            return None;
        }
        if vm.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty()) {
            self.error(
                &mount_at.key("subPathExpr"),
                "Forbidden: subPathExpr is not supported by gantry",
            );
            return None;
        }
        let mut source = PathBuf::from(path);
        if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            let sub_path = Path::new(sub);
            if sub_path.is_absolute() || sub_path.components().any(|c| c == Component::ParentDir) {
                self.error(
                    &mount_at.key("subPath"),
                    format!("Invalid value: \"{sub}\": must be a relative path without '..'"),
                );
                return None;
            }
            source.push(sub_path);
        }
        Some(Mount {
            source: clean(&source),
            target: clean(Path::new(&vm.mount_path)),
            read_only: vm.read_only.unwrap_or(false),
        })
    }

    // --- security ----------------------------------------------------------------------

    fn security(&mut self) -> Security {
        let default = SecurityContext::default();
        let sc = self
            .component
            .template
            .container
            .security_context
            .as_ref()
            .unwrap_or(&default);
        let at = self.paths.container.key("securityContext");
        let mut privileged = sc.privileged == Some(true);
        if privileged && !self.ctx.policy.allow_privileged {
            self.error(
                &at.key("privileged"),
                "Forbidden: disallowed by cluster policy (gantry refuses privileged containers \
                 unless allow-privileged: true is set in its config)",
            );
            privileged = false;
        }
        if privileged && sc.allow_privilege_escalation == Some(false) {
            self.error(
                &at,
                "Invalid value: \"\": cannot set `allowPrivilegeEscalation` to false and \
                 `privileged` to true",
            );
        }
        for (field, id) in [
            ("runAsUser", sc.run_as_user),
            ("runAsGroup", sc.run_as_group),
        ] {
            if let Some(id) = id.filter(|id| !(0..=i64::from(i32::MAX)).contains(id)) {
                self.error(
                    &at.key(field),
                    format!("Invalid value: {id}: must be between 0 and 2147483647, inclusive"),
                );
            }
        }
        // Docker takes `uid[:gid]`; like Kubernetes on Docker (dockershim), a group needs a
        // user.
        let user = match (sc.run_as_user, sc.run_as_group) {
            (Some(uid), Some(gid)) => Some(format!("{uid}:{gid}")),
            (Some(uid), None) => Some(uid.to_string()),
            (None, Some(_)) => {
                self.error(
                    &at.key("runAsGroup"),
                    "runAsGroup is specified without a runAsUser (Docker needs a user to set \
                     a group)",
                );
                None
            }
            (None, None) => None,
        };
        if sc.run_as_non_root == Some(true) && sc.run_as_user == Some(0) {
            self.error(
                &at.key("runAsUser"),
                "container's runAsUser breaks non-root policy (runAsNonRoot is true and \
                 runAsUser is 0)",
            );
        }
        let capabilities = sc.capabilities.clone().unwrap_or_default();
        Security {
            user,
            read_only_root_fs: sc.read_only_root_filesystem == Some(true),
            cap_add: capabilities.add,
            cap_drop: capabilities.drop,
            privileged,
        }
    }

    fn host_namespaces(&mut self) {
        let template = &self.component.template;
        if template.host_network && !self.ctx.policy.allow_host_network {
            let at = self.paths.component.key("hostNetwork");
            self.error(
                &at,
                "Forbidden: host networking is disallowed by gantry's policy (set \
                 allow-host-network: true in the gantry config to allow it)",
            );
        }
        if template.host_pid {
            let at = self.paths.component.key("hostPID");
            self.error(
                &at,
                "Forbidden: gantry does not run containers in the host's PID namespace",
            );
        }
    }

    fn gpus(&mut self) {
        let asked = self.component.template.container.resources.gpus;
        let given = self.ctx.gpu_uuids.len();
        if usize::try_from(asked).ok() != Some(given) {
            let at = self
                .paths
                .container
                .key("resources")
                .key("limits")
                .key(GPU_RESOURCE);
            self.error(
                &at,
                format!("the component asks for {asked} GPU(s) but {given} were assigned to the replica"),
            );
        }
    }

    /// `imagePullPolicy`. Kubernetes defaults a `latest` tag (or none) to `Always`; on one
    /// machine images are usually built locally and a registry may be out of reach, so gantry
    /// pulls an image it already has only when `imagePullPolicy: Always` says so (Docker's own
    /// default). `Never` pulls no more than `IfNotPresent`: only an absent image is pulled.
    fn always_pull(&mut self) -> bool {
        let container = &self.component.template.container;
        match container.image_pull_policy.as_deref() {
            Some("Always") => true,
            Some("IfNotPresent") | Some("Never") => false,
            Some(other) => {
                let at = self.paths.container.key("imagePullPolicy");
                self.error(
                    &at,
                    format!(
                        "Unsupported value: \"{other}\": supported values: \"Always\", \
                         \"IfNotPresent\", \"Never\""
                    ),
                );
                false
            }
            None => false,
        }
    }
}

/// Kubernetes' `MilliCPUToShares`.
fn cpu_shares(request_millis: i64) -> i64 {
    if request_millis <= 0 {
        return MIN_CPU_SHARES;
    }
    (request_millis.saturating_mul(1024) / 1000).clamp(MIN_CPU_SHARES, MAX_CPU_SHARES)
}

/// The divisors Kubernetes' validation accepts for `resourceFieldRef`.
fn valid_divisor(divisor: &Quantity, cpu: bool) -> bool {
    let allowed: &[&str] = if cpu {
        &["1m", "1"]
    } else {
        &[
            "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
        ]
    };
    allowed
        .iter()
        .any(|a| Quantity::parse(a).is_ok_and(|q| &q == divisor))
}

fn div_ceil(value: i64, unit: i64) -> i64 {
    if unit <= 0 {
        return value;
    }
    let q = value / unit;
    if value % unit > 0 {
        q + 1
    } else {
        q
    }
}

/// Kubernetes (since 1.30) accepts any printable ASCII but `=` in a variable name; Docker's
/// `NAME=value` form needs the same.
fn env_name_problem(name: &str) -> Option<String> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=');
    (!valid).then(|| {
        format!(
            "Invalid value: \"{name}\": a valid environment variable name must consist only of \
             printable ASCII characters other than '='"
        )
    })
}

fn not_found(kind: Source, name: &str) -> String {
    format!("{} \"{name}\" not found", kind.resource())
}

/// The volume's source type: its one key besides `name`.
fn volume_type(volume: &Value) -> &str {
    volume
        .as_mapping()
        .and_then(|m| m.keys().filter_map(Value::as_str).find(|k| *k != "name"))
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_transformer_reaches_its_predictor_on_the_data_plane_port() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut spaced = args(&[
            "--model_name",
            "m",
            "--predictor_host",
            "m-predictor.default",
        ]);
        with_data_plane_port(&mut spaced, 8080);
        assert_eq!(spaced[3], "m-predictor.default:8080");
        let mut joined = args(&["--predictor_host=m-predictor.default", "--http_port=8080"]);
        with_data_plane_port(&mut joined, 9000);
        assert_eq!(joined[0], "--predictor_host=m-predictor.default:9000");
        let mut given = args(&["--predictor_host", "elsewhere:1234"]);
        with_data_plane_port(&mut given, 8080);
        assert_eq!(given[1], "elsewhere:1234", "a port the user gave stays");
        let mut default_port = args(&["--predictor_host", "m-predictor.default"]);
        with_data_plane_port(&mut default_port, 80);
        assert_eq!(default_port[1], "m-predictor.default");
    }
    use crate::spec::catalog::{next_catalog, parse_file, Catalog, LoadOptions};
    use crate::spec::normalize::Resources;
    use crate::spec::types::EnvVar;

    /// Where the tests' YAML files live.
    const SOURCE_DIR: &str = "/srv/gantry/services";

    /// Secrets and ConfigMaps the environment tests refer to, in the folder with the service.
    const OBJECTS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: s3}
data:
  AWS_KEY: QUtJQTEyMw==        # AKIA123
  AWS_SECRET: |
    c2VjcmV0
    LXZhbHVl
stringData:
  REGION: eu-west-1
---
apiVersion: v1
kind: Secret
metadata: {name: s3, namespace: prod}
data: {AWS_KEY: cHJvZA==}
---
apiVersion: v1
kind: Secret
metadata: {name: only-prod, namespace: prod}
stringData: {K: prod}
---
apiVersion: v1
kind: Secret
metadata: {name: both}
data: {K: ZnJvbS1kYXRh}        # from-data
stringData: {K: from-stringData}
---
apiVersion: v1
kind: Secret
metadata: {name: broken}
data: {K: "not base64!"}
---
apiVersion: v1
kind: Secret
metadata: {name: binary}
data: {K: /w==}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {LOG_LEVEL: debug, WORKERS: "4", GREETING: "hello $(LOG_LEVEL)"}
binaryData: {BLOB: AAE=}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: typed}
data: {PORT_NUMBER: 8080}
"#;

    /// A custom predictor with a local model, as a user writes it.
    const SERVICE: &str = r#"
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: demo}
spec:
  predictor:
    containers:
    - name: kserve-container
      image: registry.local/demo:1.0
      env:
      - {name: STORAGE_URI, value: ../models/demo}
      resources:
        requests: {cpu: 100m, memory: 64Mi}
        limits: {cpu: 500m, memory: 128Mi}
"#;

    /// Loads YAML files through the real pipeline: the first service's predictor and the
    /// folder's objects.
    fn load(files: &[(&str, &str)]) -> (DesiredComponent, BTreeMap<ObjectKey, OtherObject>) {
        let opts = LoadOptions::default();
        let parsed: Vec<_> = files
            .iter()
            .map(|(path, text)| Arc::new(parse_file(path, text, &opts)))
            .collect();
        let catalog = next_catalog(&Catalog::default(), &parsed, &opts);
        let entry = catalog.services.values().next().expect("a service");
        let desired = entry
            .desired
            .as_ref()
            .unwrap_or_else(|| panic!("invalid service: {:?}", entry.diagnostics));
        (desired.components[0].clone(), catalog.objects)
    }

    fn demo() -> (DesiredComponent, BTreeMap<ObjectKey, OtherObject>) {
        load(&[
            ("/srv/gantry/services/demo.yaml", SERVICE),
            ("/srv/gantry/services/objects.yaml", OBJECTS),
        ])
    }

    const NO_GPUS: &[String] = &[];

    fn convert_with(
        component: &DesiredComponent,
        objects: &BTreeMap<ObjectKey, OtherObject>,
        policy: &SecurityPolicy,
        gpu_uuids: &[String],
    ) -> Result<ContainerSpec, Vec<String>> {
        let ctx = ConvertContext {
            namespace: "default",
            service: "demo",
            revision: "demo-predictor-00001",
            replica: 0,
            source_dir: Path::new(SOURCE_DIR),
            objects,
            policy,
            shm_size_bytes: 1 << 30,
            gpu_uuids,
            data_plane_port: 8080,
            model: None,
        };
        container_spec(component, &ctx).map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    fn convert(
        component: &DesiredComponent,
        objects: &BTreeMap<ObjectKey, OtherObject>,
    ) -> Result<ContainerSpec, Vec<String>> {
        convert_with(component, objects, &SecurityPolicy::default(), NO_GPUS)
    }

    fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
        serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    const KNATIVE_ENV: [&str; 4] = [
        "PORT=8080",
        "K_REVISION=demo-predictor-00001",
        "K_CONFIGURATION=demo-predictor",
        "K_SERVICE=demo-predictor",
    ];

    // --- environment ---------------------------------------------------------------------

    #[test]
    fn env_resolution() {
        let (base, objects) = demo();
        // (env, envFrom, the user's variables before Knative's, or the errors)
        let check = |env: &str, env_from: &str, expected: Result<&[&str], &[&str]>| {
            let mut c = base.clone();
            c.template.storage_uri = None;
            c.template.container.env = yaml::<Vec<EnvVar>>(env);
            c.template.container.env_from = yaml(env_from);
            let got = convert(&c, &objects).map(|spec| {
                let (user, knative) = spec.env.split_at(spec.env.len() - 4);
                assert_eq!(knative, KNATIVE_ENV, "{env}");
                user.to_vec()
            });
            let expected = expected
                .map(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>())
                .map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>());
            assert_eq!(got, expected, "env: {env} envFrom: {env_from}");
        };
        let p = "spec.predictor.containers[0]";
        check("[]", "[]", Ok(&[]));
        check("[{name: A, value: x}, {name: B}]", "[]", Ok(&["A=x", "B="]));
        // Secrets: data is base64 (line breaks allowed), stringData plain and over data.
        check(
            "[{name: KEY, valueFrom: {secretKeyRef: {name: s3, key: AWS_KEY}}},
              {name: SECRET, valueFrom: {secretKeyRef: {name: s3, key: AWS_SECRET}}},
              {name: REGION, valueFrom: {secretKeyRef: {name: s3, key: REGION}}},
              {name: K, valueFrom: {secretKeyRef: {name: both, key: K}}}]",
            "[]",
            Ok(&[
                "KEY=AKIA123",
                "SECRET=secret-value",
                "REGION=eu-west-1",
                "K=from-stringData",
            ]),
        );
        check(
            "[{name: L, valueFrom: {configMapKeyRef: {name: settings, key: LOG_LEVEL}}}]",
            "[]",
            Ok(&["L=debug"]),
        );
        // A value from an object is not expanded.
        check(
            "[{name: LOG_LEVEL, value: info}, {name: G, valueFrom: {configMapKeyRef: {name: settings, key: GREETING}}}]",
            "[]",
            Ok(&["LOG_LEVEL=info", "G=hello $(LOG_LEVEL)"]),
        );
        // Missing objects and keys: errors in the kubelet's words, unless optional.
        check(
            "[{name: A, valueFrom: {secretKeyRef: {name: nope, key: K}}}]",
            "[]",
            Err(&[&format!(
                "{p}.env[0].valueFrom.secretKeyRef: secret \"nope\" not found"
            )]),
        );
        check(
            "[{name: A, valueFrom: {secretKeyRef: {name: s3, key: AWS_TOKEN}}}]",
            "[]",
            Err(&[&format!("{p}.env[0].valueFrom.secretKeyRef: couldn't find key AWS_TOKEN in Secret default/s3")]),
        );
        check(
            "[{name: A, value: a}, {name: B, valueFrom: {configMapKeyRef: {name: nope, key: K}}}]",
            "[]",
            Err(&[&format!(
                "{p}.env[1].valueFrom.configMapKeyRef: configmap \"nope\" not found"
            )]),
        );
        check(
            "[{name: B, valueFrom: {configMapKeyRef: {name: settings, key: BLOB}}}]",
            "[]",
            Err(&[&format!("{p}.env[0].valueFrom.configMapKeyRef: couldn't find key BLOB in ConfigMap default/settings")]),
        );
        check(
            "[{name: A, valueFrom: {secretKeyRef: {name: nope, key: K, optional: true}}},
              {name: B, valueFrom: {secretKeyRef: {name: s3, key: NOPE, optional: true}}},
              {name: C, valueFrom: {configMapKeyRef: {name: nope, key: K, optional: true}}},
              {name: D, value: d}]",
            "[]",
            Ok(&["D=d"]),
        );
        // Objects of another namespace are not visible.
        check(
            "[{name: A, valueFrom: {secretKeyRef: {name: s3, key: AWS_KEY, optional: false}}}]",
            "[]",
            Ok(&["A=AKIA123"]),
        );
        check(
            "[{name: A, valueFrom: {secretKeyRef: {name: only-prod, key: K}}}]",
            "[]",
            Err(&[&format!(
                "{p}.env[0].valueFrom.secretKeyRef: secret \"only-prod\" not found"
            )]),
        );
        // Broken objects: the reason, never the value.
        check(
            "[{name: A, valueFrom: {secretKeyRef: {name: broken, key: K}}}]",
            "[]",
            Err(&[&format!("{p}.env[0].valueFrom.secretKeyRef: Secret default/broken: data.K: expected base64 data (use stringData for plain text)")]),
        );
        check(
            "[{name: A, valueFrom: {secretKeyRef: {name: binary, key: K}}}]",
            "[]",
            Err(&[&format!("{p}.env[0].valueFrom.secretKeyRef: Secret default/binary: data.K: the decoded value is not UTF-8 text, which an environment variable must be")]),
        );
        check(
            "[{name: A, valueFrom: {configMapKeyRef: {name: typed, key: PORT_NUMBER}}}]",
            "[]",
            Err(&[&format!("{p}.env[0].valueFrom.configMapKeyRef: ConfigMap default/typed: data.PORT_NUMBER: expected a string, found a number (quote it)")]),
        );
        check(
            "[{name: A, valueFrom: {secretKeyRef: {key: K}}}]",
            "[]",
            Err(&[&format!(
                "{p}.env[0].valueFrom.secretKeyRef.name: Required value"
            )]),
        );
        // Kubernetes' rules for valueFrom.
        check(
            "[{name: A, value: x, valueFrom: {secretKeyRef: {name: s3, key: AWS_KEY}}}]",
            "[]",
            Err(&[&format!("{p}.env[0].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty")]),
        );
        check(
            "[{name: A, valueFrom: {}}]",
            "[]",
            Err(&[&format!("{p}.env[0].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`")]),
        );
        check(
            "[{name: A, valueFrom: {secretKeyRef: {name: s3, key: AWS_KEY}, fieldRef: {fieldPath: metadata.name}}}]",
            "[]",
            Err(&[&format!("{p}.env[0].valueFrom: Invalid value: \"\": may not have more than one field specified at a time")]),
        );
        check(
            "[{name: 'A=B', value: x}]",
            "[]",
            Err(&[&format!("{p}.env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='")]),
        );
        // fieldRef: the replica's name and namespace.
        check(
            "[{name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}},
              {name: NS, valueFrom: {fieldRef: {apiVersion: v1, fieldPath: metadata.namespace}}}]",
            "[]",
            Ok(&["POD=gantry-default-demo-predictor-00001-0", "NS=default"]),
        );
        check(
            "[{name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]",
            "[]",
            Err(&[&format!("{p}.env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"status.podIP\": supported values: \"metadata.name\", \"metadata.namespace\" (a gantry replica is a container, not a pod: other pod fields have no value)")]),
        );
        check(
            "[{name: N, valueFrom: {fieldRef: {apiVersion: v2, fieldPath: metadata.name}}}]",
            "[]",
            Err(&[&format!("{p}.env[0].valueFrom.fieldRef.apiVersion: Unsupported value: \"v2\": supported values: \"v1\"")]),
        );
        // resourceFieldRef: divided by the divisor, rounded up (requests 100m / 64Mi,
        // limits 500m / 128Mi).
        check(
            "[{name: A, valueFrom: {resourceFieldRef: {resource: limits.cpu}}},
              {name: B, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}},
              {name: C, valueFrom: {resourceFieldRef: {resource: requests.cpu, divisor: '0.001'}}},
              {name: D, valueFrom: {resourceFieldRef: {resource: limits.memory}}},
              {name: E, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}},
              {name: F, valueFrom: {resourceFieldRef: {resource: requests.memory, divisor: 1G}}},
              {name: G, valueFrom: {resourceFieldRef: {containerName: kserve-container, resource: requests.memory, divisor: '0'}}}]",
            "[]",
            Ok(&["A=1", "B=500", "C=100", "D=134217728", "E=128", "F=1", "G=67108864"]),
        );
        check(
            "[{name: A, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1Mi}}}]",
            "[]",
            Err(&[&format!("{p}.env[0].valueFrom.resourceFieldRef.divisor: Invalid value: \"limits.cpu\": only divisor's values 1m and 1 are supported with the cpu resource")]),
        );
        check(
            "[{name: A, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1m}}}]",
            "[]",
            Err(&[&format!("{p}.env[0].valueFrom.resourceFieldRef.divisor: Invalid value: \"limits.memory\": only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource")]),
        );
        check(
            "[{name: A, valueFrom: {resourceFieldRef: {resource: limits.nvidia.com/gpu}}}]",
            "[]",
            Err(&[&format!("{p}.env[0].valueFrom.resourceFieldRef.resource: Unsupported value: \"limits.nvidia.com/gpu\": supported values: \"limits.cpu\", \"limits.memory\", \"requests.cpu\", \"requests.memory\"")]),
        );
        check(
            "[{name: A, valueFrom: {resourceFieldRef: {containerName: sidecar, resource: limits.cpu}}}]",
            "[]",
            Err(&[&format!("{p}.env[0].valueFrom.resourceFieldRef.containerName: Not found: \"sidecar\": gantry runs the model server container \"kserve-container\" only, so a variable can refer to its resources alone")]),
        );
        // envFrom: every key, sorted, with the prefix; env after it overrides in place.
        check(
            "[{name: WORKERS, value: '8'}, {name: X, value: '$(CFG_LOG_LEVEL)-$(AWS_KEY)'}]",
            "[{configMapRef: {name: settings}, prefix: CFG_}, {secretRef: {name: s3}}]",
            Ok(&[
                "CFG_GREETING=hello $(LOG_LEVEL)",
                "CFG_LOG_LEVEL=debug",
                "CFG_WORKERS=4",
                "AWS_KEY=AKIA123",
                "AWS_SECRET=secret-value",
                "REGION=eu-west-1",
                "WORKERS=8",
                "X=debug-AKIA123",
            ]),
        );
        check(
            "[{name: LOG_LEVEL, value: info}]",
            "[{configMapRef: {name: settings}}]",
            Ok(&["GREETING=hello $(LOG_LEVEL)", "LOG_LEVEL=info", "WORKERS=4"]),
        );
        check(
            "[]",
            "[{secretRef: {name: nope, optional: true}}, {configMapRef: {name: nope2, optional: true}}]",
            Ok(&[]),
        );
        check(
            "[]",
            "[{secretRef: {name: nope}}, {configMapRef: {name: nope}}]",
            Err(&[
                &format!("{p}.envFrom[0].secretRef: secret \"nope\" not found"),
                &format!("{p}.envFrom[1].configMapRef: configmap \"nope\" not found"),
            ]),
        );
        check(
            "[]",
            "[{secretRef: {name: s3}, configMapRef: {name: settings}}, {prefix: X}]",
            Err(&[
                &format!("{p}.envFrom[0]: Invalid value: \"\": may not have more than one field specified at a time"),
                &format!("{p}.envFrom[1]: Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`"),
            ]),
        );
        // A prefix can make names a container cannot have.
        check("[]", "[{configMapRef: {name: settings}, prefix: 'A='}]", Err(&[
            &format!("{p}.envFrom[0].configMapRef: key GREETING of ConfigMap default/settings: Invalid value: \"A=GREETING\": a valid environment variable name must consist only of printable ASCII characters other than '='"),
            &format!("{p}.envFrom[0].configMapRef: key LOG_LEVEL of ConfigMap default/settings: Invalid value: \"A=LOG_LEVEL\": a valid environment variable name must consist only of printable ASCII characters other than '='"),
            &format!("{p}.envFrom[0].configMapRef: key WORKERS of ConfigMap default/settings: Invalid value: \"A=WORKERS\": a valid environment variable name must consist only of printable ASCII characters other than '='"),
        ]));
    }

    #[test]
    fn secret_values_never_appear_in_errors() {
        let (mut c, objects) = demo();
        c.template.container.env = yaml(
            "[{name: A, valueFrom: {secretKeyRef: {name: broken, key: K}}},
              {name: B, valueFrom: {secretKeyRef: {name: s3, key: MISSING}}}]",
        );
        let errors = convert(&c, &objects).unwrap_err().join("\n");
        for secret in [
            "not base64",
            "AKIA123",
            "QUtJQTEyMw",
            "secret-value",
            "eu-west-1",
        ] {
            assert!(!errors.contains(secret), "{errors}");
        }
    }

    #[test]
    fn knative_variables_override_objects() {
        let (mut c, mut objects) = demo();
        let (_, more) = load(&[(
            "/srv/gantry/services/x.yaml",
            &format!(
                "{SERVICE}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ports}}\ndata: {{PORT: '9999', K_SERVICE: other}}\n"
            ),
        )]);
        objects.extend(more);
        c.template.container.env_from = yaml("[{configMapRef: {name: ports}}]");
        let spec = convert(&c, &objects).unwrap();
        assert_eq!(
            spec.env,
            [
                "K_SERVICE=demo-predictor",
                "PORT=8080",
                "STORAGE_URI=/mnt/models",
                "K_REVISION=demo-predictor-00001",
                "K_CONFIGURATION=demo-predictor",
            ]
        );
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let vars = [("A", "a"), ("EMPTY", ""), ("B", "$(A)")];
        let lookup = |n: &str| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
        let check = |input: &str, expected: &str| {
            assert_eq!(expand(input, lookup), expected, "{input}");
        };
        check("", "");
        check("plain", "plain");
        check("$(A)", "a");
        check("x$(A)y$(A)z", "xayaz");
        check("$(EMPTY)", "");
        check("$(UNDEFINED)", "$(UNDEFINED)");
        check("$(B)", "$(A)"); // values are not expanded twice
        check("$$(A)", "$(A)");
        check("$$$(A)", "$a");
        check("$$", "$");
        check("$", "$");
        check("a$", "a$");
        check("$A", "$A");
        check("$(A", "$(A");
        check("$(A$(A)", "$(A$(A)"); // the name runs to the first ')'
        check("$()", "$()");
        check("($(A))", "(a)");
        check("$é$(A)", "$éa");
        check("é$(A)é", "éaé");
    }

    #[test]
    fn command_and_args_expand_with_the_whole_environment() {
        let (mut c, objects) = demo();
        c.template.container.env = yaml(
            "[{name: STORAGE_URI, value: ../models/demo}, {name: NAME, value: demo},
              {name: EARLY, value: '$(PORT)'}]",
        );
        c.template.container.command = vec!["/bin/server".into(), "--model=$(NAME)".into()];
        c.template.container.args = vec![
            "--port=$(PORT)".into(),
            "--dir=$(STORAGE_URI)".into(),
            "$$(NAME)".into(),
            "$(MISSING)".into(),
        ];
        let spec = convert(&c, &objects).unwrap();
        assert_eq!(spec.entrypoint, ["/bin/server", "--model=demo"]);
        assert_eq!(
            spec.cmd,
            ["--port=8080", "--dir=/mnt/models", "$(NAME)", "$(MISSING)"]
        );
        // Knative's PORT comes after the user's variables, as in the kubelet.
        assert!(spec.env.contains(&"EARLY=$(PORT)".to_string()));
    }

    // --- the model -----------------------------------------------------------------------

    #[test]
    fn model_path_forms() {
        let (base, objects) = demo();
        let check = |uri: &str, source_dir: &str, expected: Result<&str, &str>| {
            let mut c = base.clone();
            c.template.storage_uri = Some(uri.to_string());
            let ctx = ConvertContext {
                namespace: "default",
                service: "demo",
                revision: "demo-predictor-00001",
                replica: 0,
                source_dir: Path::new(source_dir),
                objects: &objects,
                policy: &SecurityPolicy::default(),
                shm_size_bytes: 1 << 30,
                gpu_uuids: NO_GPUS,
                data_plane_port: 8080,
                model: None,
            };
            let got = container_spec(&c, &ctx)
                .map(|spec| {
                    assert_eq!(spec.mounts.len(), 1);
                    assert_eq!(spec.mounts[0].target, "/mnt/models");
                    assert!(spec.mounts[0].read_only);
                    assert!(spec.env.contains(&"STORAGE_URI=/mnt/models".to_string()));
                    spec.mounts[0].source.clone()
                })
                .map_err(|e| {
                    e.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                });
            assert_eq!(
                got,
                expected.map(String::from).map_err(String::from),
                "{uri} in {source_dir}"
            );
        };
        let dir = "/srv/gantry/services";
        check("file:///models/iris", dir, Ok("/models/iris"));
        check("file:///models/iris/", dir, Ok("/models/iris"));
        check("/models/./iris//v1/..", dir, Ok("/models/iris"));
        check("../models/iris", dir, Ok("/srv/gantry/models/iris"));
        check("models/iris", dir, Ok("/srv/gantry/services/models/iris"));
        check("./iris", dir, Ok("/srv/gantry/services/iris"));
        check(
            "file://models/iris",
            dir,
            Ok("/srv/gantry/services/models/iris"),
        );
        check("../../../../../x", dir, Ok("/x"));
        check(
            "../models/iris",
            "services",
            Err("spec.predictor.containers[0].env[0].value: Invalid value: \"../models/iris\": a relative model path needs the YAML file's folder as an absolute path, found \"services\""),
        );
        check(
            "file://",
            dir,
            Err("spec.predictor.containers[0].env[0].value: Invalid value: \"file://\": expected a path after file://"),
        );
        let remote = |scheme: &str| {
            format!(
                "spec.predictor.containers[0].env[0].value: a {scheme}:// model is fetched into the model cache, and none was given to this conversion; a local path is mounted as it is (file:///abs/path, /abs/path, or a path relative to the YAML file's folder)"
            )
        };
        for (uri, scheme) in [
            ("s3://bucket/models/iris", "s3"),
            ("gs://kfserving-examples/models/sklearn/1.0/model", "gs"),
            ("https://user:token@example.com/model.tar.gz", "https"),
            ("http://example.com/model.joblib", "http"),
            ("pvc://models-pvc/iris", "pvc"),
            ("hf://meta-llama/Llama-3.1-8B", "hf"),
        ] {
            let message = remote(scheme);
            check(uri, dir, Err(&message));
            assert!(!message.contains("token"));
        }
        check(
            "hdfs://namenode/models",
            dir,
            Err("spec.predictor.containers[0].env[0].value: the hdfs:// scheme is not supported by gantry; copy the model to S3, GCS, an HTTP server or a local folder and point storageUri there"),
        );
    }

    #[test]
    fn the_model_of_a_framework_is_reported_at_its_storage_uri() {
        let (c, objects) = load(&[(
            "/srv/gantry/services/sk.yaml",
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: sk}\n\
             spec:\n  predictor:\n    sklearn:\n      storageUri: s3://bucket/sk\n",
        )]);
        let errors = convert(&c, &objects).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("spec.predictor.sklearn.storageUri: a s3:// model"),
            "{errors:?}"
        );
        let (c, objects) = load(&[(
            "/srv/gantry/services/sk.yaml",
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: sk}\n\
             spec:\n  predictor:\n    model:\n      modelFormat: {name: sklearn}\n      storageUri: file:///models/sk\n",
        )]);
        let spec = convert(&c, &objects).unwrap();
        assert_eq!(spec.mounts[0].source, "/models/sk");
        assert!(
            spec.cmd.iter().any(|a| a.contains("/mnt/models")),
            "{:?}",
            spec.cmd
        );
    }

    #[test]
    fn no_model_no_mount() {
        let (mut c, objects) = demo();
        c.template.storage_uri = None;
        c.template.container.env.clear();
        let spec = convert(&c, &objects).unwrap();
        assert!(spec.mounts.is_empty());
        assert_eq!(spec.env, KNATIVE_ENV);
    }

    // --- resources -----------------------------------------------------------------------

    fn resources(requests: (&str, &str), limits: (&str, &str)) -> Resources {
        let map = |(cpu, memory): (&str, &str)| -> BTreeMap<String, Quantity> {
            [("cpu", cpu), ("memory", memory)]
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_string(), Quantity::parse(v).unwrap()))
                .collect()
        };
        let (requests, limits) = (map(requests), map(limits));
        let milli = |m: &BTreeMap<String, Quantity>| m.get("cpu").map_or(0, Quantity::milli_value);
        let bytes = |m: &BTreeMap<String, Quantity>| m.get("memory").map_or(0, Quantity::value);
        Resources {
            cpu_request_millis: milli(&requests),
            cpu_limit_millis: milli(&limits),
            memory_request_bytes: bytes(&requests),
            memory_limit_bytes: bytes(&limits),
            gpus: 0,
            requests,
            limits,
        }
    }

    #[test]
    fn resources_map_to_docker() {
        let (base, objects) = demo();
        let check = |requests: (&str, &str),
                     limits: (&str, &str),
                     expected: Result<DockerResources, &[&str]>| {
            let mut c = base.clone();
            c.template.container.resources = resources(requests, limits);
            let got = convert(&c, &objects).map(|s| s.resources);
            let expected =
                expected.map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>());
            assert_eq!(got, expected, "requests {requests:?} limits {limits:?}");
        };
        let docker = |nano_cpus, cpu_shares, memory, memory_reservation| DockerResources {
            nano_cpus,
            cpu_shares,
            memory,
            memory_reservation,
        };
        const MI: i64 = 1024 * 1024;
        check(
            ("100m", "64Mi"),
            ("500m", "128Mi"),
            Ok(docker(
                Some(500_000_000),
                Some(102),
                Some(128 * MI),
                Some(64 * MI),
            )),
        );
        check(
            ("1", "2Gi"),
            ("1", "2Gi"),
            Ok(docker(
                Some(1_000_000_000),
                Some(1024),
                Some(2048 * MI),
                Some(2048 * MI),
            )),
        );
        check(
            ("2.5", "1G"),
            ("4", "1G"),
            Ok(docker(
                Some(4_000_000_000),
                Some(2560),
                Some(1_000_000_000),
                Some(1_000_000_000),
            )),
        );
        // Kubernetes' cpu shares: at least 2, at most 262144; 1m is 1 share, raised to 2.
        check(("1m", ""), ("", ""), Ok(docker(None, Some(2), None, None)));
        check(("", ""), ("", ""), Ok(docker(None, Some(2), None, None)));
        check(
            ("1000", ""),
            ("", ""),
            Ok(docker(None, Some(262_144), None, None)),
        );
        // A cpu limit under Kubernetes' smallest quota (10m) is raised to it.
        check(
            ("1m", ""),
            ("1m", ""),
            Ok(docker(Some(10_000_000), Some(2), None, None)),
        );
        check(
            ("10m", ""),
            ("10m", ""),
            Ok(docker(Some(10_000_000), Some(10), None, None)),
        );
        // Docker's memory rules: equal is fine; at least 6MB; a reservation above the limit
        // is refused.
        check(
            ("", "6Mi"),
            ("", "6Mi"),
            Ok(docker(None, Some(2), Some(6 * MI), Some(6 * MI))),
        );
        check(("", "6Mi"), ("", "6291455"), Err(&[
            "spec.predictor.containers[0].resources.limits.memory: Invalid value: \"6291455\": Docker refuses a memory limit below 6Mi (\"Minimum memory limit allowed is 6MB\"), found 6291455 bytes",
        ]));
        check(("", "4Mi"), ("", "4Mi"), Err(&[
            "spec.predictor.containers[0].resources.limits.memory: Invalid value: \"4Mi\": Docker refuses a memory limit below 6Mi (\"Minimum memory limit allowed is 6MB\"), found 4194304 bytes",
            "spec.predictor.containers[0].resources.requests.memory: Invalid value: \"4Mi\": Docker refuses a memory reservation below 6Mi (\"Minimum memory reservation allowed is 6MB\"), found 4194304 bytes",
        ]));
        check(("", "1Mi"), ("", ""), Err(&[
            "spec.predictor.containers[0].resources.requests.memory: Invalid value: \"1Mi\": Docker refuses a memory reservation below 6Mi (\"Minimum memory reservation allowed is 6MB\"), found 1048576 bytes",
        ]));
        check(("", "256Mi"), ("", "128Mi"), Err(&[
            "spec.predictor.containers[0].resources.requests.memory: Invalid value: \"256Mi\": must be less than or equal to memory limit of 128Mi (Docker: \"Minimum memory limit can not be less than memory reservation limit\")",
        ]));
    }

    #[test]
    fn gpus_come_from_the_placement() {
        let (mut c, objects) = demo();
        let uuids = vec!["GPU-0f0e".to_string(), "GPU-1a2b".to_string()];
        let spec = convert_with(&c, &objects, &SecurityPolicy::default(), NO_GPUS).unwrap();
        assert!(spec.gpu_uuids.is_empty());
        c.template.container.resources.gpus = 2;
        let spec = convert_with(&c, &objects, &SecurityPolicy::default(), &uuids).unwrap();
        assert_eq!(spec.gpu_uuids, uuids);
        assert_eq!(
            convert_with(&c, &objects, &SecurityPolicy::default(), &uuids[..1]).unwrap_err(),
            ["spec.predictor.containers[0].resources.limits.nvidia.com/gpu: the component asks for 2 GPU(s) but 1 were assigned to the replica"]
        );
    }

    // --- security ------------------------------------------------------------------------

    #[test]
    fn security_rules() {
        let (base, objects) = demo();
        type Edit = fn(&mut DesiredComponent);
        let check =
            |edit: Edit,
             policy: SecurityPolicy,
             expected: Result<(Option<&str>, bool, bool, bool), &[&str]>| {
                let mut c = base.clone();
                edit(&mut c);
                let got = convert_with(&c, &objects, &policy, NO_GPUS)
                    .map(|s| (s.user, s.privileged, s.host_network, s.read_only_root_fs));
                let expected = expected
                    .map(|(u, p, h, r)| (u.map(String::from), p, h, r))
                    .map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>());
                assert_eq!(got, expected, "{policy:?}");
            };
        let all = SecurityPolicy {
            allow_privileged: true,
            allow_host_network: true,
            allow_host_path: true,
        };
        let none = SecurityPolicy::default();
        fn sc(c: &mut DesiredComponent, text: &str) {
            c.template.container.security_context = Some(yaml(text));
        }
        check(|_| {}, none, Ok((None, false, false, false)));
        check(|c| sc(c, "{privileged: true}"), none, Err(&[
            "spec.predictor.containers[0].securityContext.privileged: Forbidden: disallowed by cluster policy (gantry refuses privileged containers unless allow-privileged: true is set in its config)",
        ]));
        check(
            |c| sc(c, "{privileged: true}"),
            all,
            Ok((None, true, false, false)),
        );
        check(
            |c| sc(c, "{privileged: false}"),
            none,
            Ok((None, false, false, false)),
        );
        check(|c| sc(c, "{privileged: true, allowPrivilegeEscalation: false}"), all, Err(&[
            "spec.predictor.containers[0].securityContext: Invalid value: \"\": cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        ]));
        check(|c| c.template.host_network = true, none, Err(&[
            "spec.predictor.hostNetwork: Forbidden: host networking is disallowed by gantry's policy (set allow-host-network: true in the gantry config to allow it)",
        ]));
        check(
            |c| c.template.host_network = true,
            all,
            Ok((None, false, true, false)),
        );
        check(|c| c.template.host_pid = true, all, Err(&[
            "spec.predictor.hostPID: Forbidden: gantry does not run containers in the host's PID namespace",
        ]));
        check(
            |c| sc(c, "{runAsUser: 1000}"),
            none,
            Ok((Some("1000"), false, false, false)),
        );
        check(
            |c| {
                sc(
                    c,
                    "{runAsUser: 1000, runAsGroup: 100, readOnlyRootFilesystem: true}",
                )
            },
            none,
            Ok((Some("1000:100"), false, false, true)),
        );
        check(
            |c| sc(c, "{runAsUser: 0, runAsNonRoot: false}"),
            none,
            Ok((Some("0"), false, false, false)),
        );
        check(|c| sc(c, "{runAsGroup: 100}"), none, Err(&[
            "spec.predictor.containers[0].securityContext.runAsGroup: runAsGroup is specified without a runAsUser (Docker needs a user to set a group)",
        ]));
        check(|c| sc(c, "{runAsUser: 0, runAsNonRoot: true}"), none, Err(&[
            "spec.predictor.containers[0].securityContext.runAsUser: container's runAsUser breaks non-root policy (runAsNonRoot is true and runAsUser is 0)",
        ]));
        check(|c| sc(c, "{runAsUser: -1}"), none, Err(&[
            "spec.predictor.containers[0].securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
        ]));
        // Everything refused at once.
        check(
            |c| {
                sc(c, "{privileged: true}");
                c.template.host_network = true;
                c.template.volumes = vec![yaml("{name: data, hostPath: {path: /data}}")];
            },
            none,
            Err(&[
                "spec.predictor.volumes[0].hostPath: Forbidden: hostPath volumes are disallowed by gantry's policy (set allow-host-path: true in the gantry config to allow them)",
                "spec.predictor.containers[0].securityContext.privileged: Forbidden: disallowed by cluster policy (gantry refuses privileged containers unless allow-privileged: true is set in its config)",
                "spec.predictor.hostNetwork: Forbidden: host networking is disallowed by gantry's policy (set allow-host-network: true in the gantry config to allow it)",
            ]),
        );
    }

    #[test]
    fn capabilities_and_host_ipc_pass_through() {
        let (mut c, objects) = demo();
        c.template.container.security_context =
            Some(yaml("{capabilities: {add: [SYS_PTRACE], drop: [ALL]}}"));
        c.template.host_ipc = true;
        let spec = convert(&c, &objects).unwrap();
        assert_eq!(spec.cap_add, ["SYS_PTRACE"]);
        assert_eq!(spec.cap_drop, ["ALL"]);
        assert!(spec.host_ipc);
    }

    // --- volumes -------------------------------------------------------------------------

    /// Bind mounts as `(source, target, read-only)`, and the size of `/dev/shm`.
    type MountsAndShm<'a> = (&'a [(&'a str, &'a str, bool)], i64);

    #[test]
    fn volumes() {
        let (base, objects) = demo();
        let allow = SecurityPolicy {
            allow_host_path: true,
            ..SecurityPolicy::default()
        };
        let check = |volumes: &str,
                     mounts: &str,
                     policy: &SecurityPolicy,
                     expected: Result<MountsAndShm, &[&str]>| {
            let mut c = base.clone();
            c.template.volumes = yaml(volumes);
            c.template.container.volume_mounts = yaml(mounts);
            let got = convert_with(&c, &objects, policy, NO_GPUS).map(|s| {
                let mounts: Vec<(String, String, bool)> = s
                    .mounts
                    .into_iter()
                    .skip(1) // the model
                    .map(|m| (m.source, m.target, m.read_only))
                    .collect();
                (mounts, s.shm_size_bytes)
            });
            let expected = expected
                .map(|(m, shm)| {
                    (
                        m.iter()
                            .map(|(s, t, r)| (s.to_string(), t.to_string(), *r))
                            .collect::<Vec<_>>(),
                        shm,
                    )
                })
                .map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>());
            assert_eq!(got, expected, "{volumes} {mounts}");
        };
        let gib = 1 << 30;
        check("[]", "[]", &allow, Ok((&[], gib)));
        check(
            "[{name: data, hostPath: {path: /data/}}]",
            "[{name: data, mountPath: /data, readOnly: true}, {name: data, mountPath: /cache/, subPath: cache}]",
            &allow,
            Ok((&[("/data", "/data", true), ("/data/cache", "/cache", false)], gib)),
        );
        // The Kubernetes idiom for a larger /dev/shm sizes it; without a size, the default.
        check(
            "[{name: shm, emptyDir: {medium: Memory, sizeLimit: 2Gi}}]",
            "[{name: shm, mountPath: /dev/shm}]",
            &allow,
            Ok((&[], 2 * gib)),
        );
        check(
            "[{name: shm, emptyDir: {medium: Memory}}]",
            "[{name: shm, mountPath: /dev/shm}]",
            &allow,
            Ok((&[], gib)),
        );
        // A runtime's /dev/shm mount whose volume normalisation does not carry.
        check(
            "[]",
            "[{name: devshm, mountPath: /dev/shm}]",
            &allow,
            Ok((&[], gib)),
        );
        check(
            "[{name: shm, emptyDir: {sizeLimit: lots}}]",
            "[{name: shm, mountPath: /dev/shm}]",
            &allow,
            Err(&["spec.predictor.volumes[0].emptyDir.sizeLimit: Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"]),
        );
        check(
            "[{name: data, hostPath: {path: /data}}]",
            "[{name: data, mountPath: /data}]",
            &SecurityPolicy::default(),
            Err(&["spec.predictor.volumes[0].hostPath: Forbidden: hostPath volumes are disallowed by gantry's policy (set allow-host-path: true in the gantry config to allow them)"]),
        );
        check(
            "[{name: data, hostPath: {path: /data}}]",
            "[{name: data, mountPath: /mnt/models}, {name: data, mountPath: x}, {name: nope, mountPath: /nope}]",
            &allow,
            Err(&[
                "spec.predictor.containers[0].volumeMounts[0].mountPath: Invalid value: \"/mnt/models\": must be unique (the model is mounted there)",
                "spec.predictor.containers[0].volumeMounts[1].mountPath: Invalid value: \"x\": must be an absolute path",
                "spec.predictor.containers[0].volumeMounts[2].name: Not found: \"nope\"",
            ]),
        );
        check(
            "[{name: data, hostPath: {path: data}}, {name: cfg, configMap: {name: settings}}]",
            "[{name: data, mountPath: /data}, {name: data, mountPath: /data2, subPath: ../etc}, {name: cfg, mountPath: /etc/cfg}]",
            &allow,
            Err(&[
                "spec.predictor.volumes[0].hostPath.path: Invalid value: \"data\": must be an absolute path (Docker binds absolute host paths only)",
                "spec.predictor.volumes[0].hostPath.path: Invalid value: \"data\": must be an absolute path (Docker binds absolute host paths only)",
                "spec.predictor.containers[0].volumeMounts[2]: volume \"cfg\" is a configMap volume, which gantry cannot mount yet: it mounts hostPath volumes (with allow-host-path) and an emptyDir at /dev/shm",
            ]),
        );
        check(
            "[{name: data, hostPath: {path: /data}}]",
            "[{name: data, mountPath: /data2, subPath: ../etc}]",
            &allow,
            Err(&["spec.predictor.containers[0].volumeMounts[0].subPath: Invalid value: \"../etc\": must be a relative path without '..'"]),
        );
    }

    // --- everything else -----------------------------------------------------------------

    #[test]
    fn image_pull_policy_defaults_as_kubernetes() {
        let (base, objects) = demo();
        let check = |image: &str, policy: Option<&str>, expected: Result<bool, &str>| {
            let mut c = base.clone();
            c.template.container.image = image.into();
            c.template.container.image_pull_policy = policy.map(String::from);
            let got = convert(&c, &objects).map(|s| s.always_pull);
            assert_eq!(
                got,
                expected.map_err(|e| vec![e.to_string()]),
                "{image} {policy:?}"
            );
        };
        // Unlike Kubernetes, `latest` does not mean "always pull" (see `always_pull`).
        check("model-server", None, Ok(false));
        check("model-server:latest", None, Ok(false));
        check("model-server:1.0", None, Ok(false));
        check("localhost:5000/team/model-server:latest", None, Ok(false));
        check("model-server@sha256:0123456789abcdef", None, Ok(false));
        check("model-server:1.0", Some("Always"), Ok(true));
        check("model-server:latest", Some("IfNotPresent"), Ok(false));
        check("model-server", Some("Never"), Ok(false));
        check(
            "model-server",
            Some("Sometimes"),
            Err("spec.predictor.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\""),
        );
    }

    #[test]
    fn labels_say_who_owns_the_container() {
        let (c, objects) = demo();
        let ctx = ConvertContext {
            namespace: "team-a",
            service: "demo",
            revision: "demo-predictor-00003",
            replica: 2,
            source_dir: Path::new(SOURCE_DIR),
            objects: &objects,
            policy: &SecurityPolicy::default(),
            shm_size_bytes: 1 << 30,
            gpu_uuids: NO_GPUS,
            data_plane_port: 8080,
            model: None,
        };
        let spec = container_spec(&c, &ctx).unwrap();
        assert_eq!(spec.name, "gantry-team-a-demo-predictor-00003-2");
        let expected: BTreeMap<String, String> = [
            ("gantry.dev/managed-by", "true"),
            ("gantry.dev/namespace", "team-a"),
            ("gantry.dev/inferenceservice", "demo"),
            ("gantry.dev/component", "predictor"),
            ("gantry.dev/revision", "demo-predictor-00003"),
            ("gantry.dev/replica", "2"),
            ("gantry.dev/spec-hash", c.revision_key.as_str()),
            ("serving.kserve.io/inferenceservice", "demo"),
            ("serving.knative.dev/revision", "demo-predictor-00003"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(spec.labels, expected);
    }

    #[test]
    fn stop_timeout_port_and_working_dir() {
        let (base, objects) = demo();
        let spec = convert(&base, &objects).unwrap();
        assert_eq!(spec.stop_timeout_seconds, 30);
        assert_eq!(spec.port, 8080);
        assert_eq!(spec.working_dir, None);
        let mut c = base.clone();
        c.template.termination_grace_period_seconds = Some(120);
        c.template.container.working_dir = Some("/app".into());
        c.template.container.port.container_port = 9000;
        let spec = convert(&c, &objects).unwrap();
        assert_eq!(spec.stop_timeout_seconds, 120);
        assert_eq!(spec.port, 9000);
        assert!(spec.env.contains(&"PORT=9000".to_string()));
        assert_eq!(spec.working_dir.as_deref(), Some("/app"));
        c.template.termination_grace_period_seconds = Some(-5);
        assert_eq!(convert(&c, &objects).unwrap().stop_timeout_seconds, 1);
        c.template.container.port.container_port = 70000;
        assert_eq!(
            convert(&c, &objects).unwrap_err(),
            ["spec.predictor.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"]
        );
    }

    /// The example service, end to end: what `docker create` will be asked for.
    #[test]
    fn iris_example_snapshot() {
        let text = include_str!("../../examples/services/iris.yaml");
        let (component, objects) = load(&[("/srv/gantry/services/iris.yaml", text)]);
        let ctx = ConvertContext {
            namespace: "default",
            service: "iris",
            revision: "iris-predictor-00001",
            replica: 0,
            source_dir: Path::new(SOURCE_DIR),
            objects: &objects,
            policy: &SecurityPolicy::default(),
            shm_size_bytes: 1 << 30,
            gpu_uuids: NO_GPUS,
            data_plane_port: 8080,
            model: None,
        };
        let mut spec = container_spec(&component, &ctx).unwrap();
        // The revision key follows normalisation's serialisation; it is checked here, and
        // kept out of the snapshot so that unrelated template changes do not churn it.
        let hash = spec.labels.get_mut(labels::SPEC_HASH).unwrap();
        assert_eq!(*hash, component.revision_key);
        *hash = "<revision key>".into();
        insta::assert_yaml_snapshot!(spec);
    }
}
