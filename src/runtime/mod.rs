//! The container runtime: what gantry asks of a container engine, behind one small trait, and
//! its Docker implementation (`docker.rs`, on bollard).
//!
//! [`ContainerSpec`] is everything needed to create one replica's container; the pure
//! conversion from a component's desired state to it lives in `convert.rs`. The reconciler only
//! talks to [`ContainerRuntime`], so its logic is tested without an engine and the Docker
//! implementation is tested against a real one.

pub mod convert;
pub mod docker;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Labels that say who owns a container. Every gantry container carries all of them.
pub mod labels {
    /// `true` on every container gantry manages; the one label gantry lists by.
    pub const MANAGED_BY: &str = "gantry.dev/managed-by";
    pub const NAMESPACE: &str = "gantry.dev/namespace";
    pub const SERVICE: &str = "gantry.dev/inferenceservice";
    pub const COMPONENT: &str = "gantry.dev/component";
    /// The Knative-style revision name, `<isvc>-predictor-00001`.
    pub const REVISION: &str = "gantry.dev/revision";
    /// The replica's index within its revision (0, 1, ...).
    pub const REPLICA: &str = "gantry.dev/replica";
    /// The revision key (`DesiredComponent::revision_key`): what the container runs.
    pub const SPEC_HASH: &str = "gantry.dev/spec-hash";
    /// The replica's probes (JSON), so that an adopted container is probed as it was created.
    pub const PROBES: &str = "gantry.dev/probes";
    /// The GPUs assigned to it, by UUID, comma-separated: allocations are recovered from
    /// these after a daemon restart, so no GPU is handed out twice.
    pub const GPUS: &str = "gantry.dev/gpus";
    /// Its cpu request (millicores) and memory request (bytes), for the scheduler's accounting.
    pub const CPU_REQUEST: &str = "gantry.dev/cpu-request-millis";
    pub const MEMORY_REQUEST: &str = "gantry.dev/memory-request-bytes";
    /// The daemon that owns it (a digest of its state directory).
    pub const INSTANCE: &str = "gantry.dev/instance";
    /// Seconds between SIGTERM and SIGKILL when gantry stops it.
    pub const STOP_TIMEOUT: &str = "gantry.dev/stop-timeout";
    /// KServe's own pod labels, for users' tooling.
    pub const KSERVE_ISVC: &str = "serving.kserve.io/inferenceservice";
    pub const KNATIVE_REVISION: &str = "serving.knative.dev/revision";
}

/// One replica's container, as the engine must create it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    /// The container name: `gantry-<namespace>-<revision>-<replica>`, to which the
    /// reconciler appends `-<instance>` (the owning daemon).
    pub name: String,
    pub image: String,
    /// Overrides the image's ENTRYPOINT when not empty (Kubernetes' `command`).
    pub entrypoint: Vec<String>,
    /// Overrides the image's CMD when not empty (Kubernetes' `args`).
    pub cmd: Vec<String>,
    /// `NAME=value`, in order. May hold secrets: never log it.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The container port the model server listens on; published on 127.0.0.1 with an
    /// ephemeral host port.
    pub port: u16,
    pub resources: DockerResources,
    /// Bind mounts (`/mnt/models` read-only, ...).
    pub mounts: Vec<Mount>,
    /// GPUs by UUID (never by index); empty for none.
    pub gpu_uuids: Vec<String>,
    /// Size of `/dev/shm` in bytes.
    pub shm_size_bytes: i64,
    pub user: Option<String>,
    pub read_only_root_fs: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub host_network: bool,
    pub host_ipc: bool,
    /// Seconds between SIGTERM and SIGKILL when stopped.
    pub stop_timeout_seconds: i64,
    /// Always pull (`imagePullPolicy: Always`); otherwise pull only when absent.
    pub always_pull: bool,
    /// `/etc/hosts` entries, `name:address` (`iris-predictor.default:host-gateway`).
    pub extra_hosts: Vec<String>,
}

/// Kubernetes requests and limits, as Docker takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerResources {
    /// cpu limit: 1 CPU = 1e9.
    pub nano_cpus: Option<i64>,
    /// cpu request: relative weight, 1024 per CPU (Kubernetes' cgroup v1 mapping, min 2).
    pub cpu_shares: Option<i64>,
    /// memory limit, bytes.
    pub memory: Option<i64>,
    /// memory request, bytes (a soft limit).
    pub memory_reservation: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    /// Absolute path on the host.
    pub source: String,
    /// Absolute path in the container.
    pub target: String,
    pub read_only: bool,
}

/// What the engine says about a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub state: ContainerState,
    /// The host port the container port is published on (known only while running).
    pub host_port: Option<u16>,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// RFC 3339 times as the engine reports them.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// How many times the engine itself restarted it (gantry restarts by recreating).
    pub restart_count: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

/// A change the engine reports about a gantry container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub id: String,
    /// Docker's action: `start`, `die`, `oom`, `destroy`, ...
    pub action: String,
    pub labels: BTreeMap<String, String>,
}

/// Progress of an image pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullProgress {
    pub image: String,
    pub status: String,
    pub current: Option<i64>,
    pub total: Option<i64>,
}

/// Why the engine refused.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0}")]
    Unavailable(String),
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("image {image} not found: {message}")]
    ImageNotFound { image: String, message: String },
    #[error("{0}")]
    Engine(String),
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

/// What gantry needs from a container engine. Every method is cancel-safe to drop.
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Every gantry container (running or not).
    fn list(&self) -> impl Future<Output = Result<Vec<ContainerInfo>>> + Send;
    fn inspect(&self, id: &str) -> impl Future<Output = Result<ContainerInfo>> + Send;
    /// Pulls the image when absent (or always, per the spec), reporting progress.
    fn ensure_image(
        &self,
        image: &str,
        always_pull: bool,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> impl Future<Output = Result<()>> + Send;
    /// Creates the container; returns its id.
    fn create(&self, spec: &ContainerSpec) -> impl Future<Output = Result<String>> + Send;
    fn start(&self, id: &str) -> impl Future<Output = Result<()>> + Send;
    /// SIGTERM, then SIGKILL after `grace`.
    fn stop(&self, id: &str, grace: Duration) -> impl Future<Output = Result<()>> + Send;
    fn remove(&self, id: &str) -> impl Future<Output = Result<()>> + Send;
    /// The last `tail` lines of stdout and stderr.
    fn logs(&self, id: &str, tail: usize) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Runs a command in the container (exec probes); returns its exit code.
    fn exec(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> impl Future<Output = Result<i64>> + Send;
}

/// What an event subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeSignal {
    Event(ContainerEvent),
    /// The connection to the engine was lost and re-established: events in the gap are lost,
    /// so the subscriber must list again.
    Resync,
}

/// Event and log streams, separate from [`ContainerRuntime`] so that both stay object-free
/// and `Send`.
pub trait ContainerEvents: Send + Sync + 'static {
    /// Subscribes to events of gantry containers. The subscription is live when this returns,
    /// so nothing that happens after it is missed; reconnects are reported as
    /// [`RuntimeSignal::Resync`].
    fn subscribe(
        &self,
    ) -> impl Future<Output = Result<tokio::sync::mpsc::UnboundedReceiver<RuntimeSignal>>> + Send;
    /// Follows a container's output (`logs -f`), starting with the last `tail` lines.
    fn follow_logs(
        &self,
        id: &str,
        tail: usize,
    ) -> impl Future<Output = Result<tokio::sync::mpsc::UnboundedReceiver<String>>> + Send;
}
