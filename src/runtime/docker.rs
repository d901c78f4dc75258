//! The Docker implementation of [`ContainerRuntime`] and [`ContainerEvents`], on bollard.
//!
//! Things worth knowing before changing this file (each was verified against Docker 20.10,
//! see `shared/research/rust-stack.md` §1.1):
//! - bollard has one client-wide request timeout, applied to getting the response headers.
//!   `POST /containers/{id}/stop` only answers once the container has stopped, so [`Docker::stop`]
//!   uses a copy of the client whose timeout is the grace period plus [`STOP_TIMEOUT_MARGIN`].
//! - bollard streams are lazy: the HTTP request goes out on the first poll. The event
//!   subscription therefore asks the engine for its clock first and subscribes with `since`
//!   set to it, so the engine replays anything that happened between that instant and the
//!   moment the request is actually registered (see [`Docker::subscribe`]).
//! - The ephemeral host port is chosen at start and may change on every start: it is re-read
//!   from `NetworkSettings.Ports` by every [`Docker::inspect`].
//! - A GPU is requested by UUID through a `DeviceRequest` with the `nvidia` driver, never by
//!   count: Docker refuses `Count` together with `DeviceIDs`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, DeviceRequest,
    EventMessage, HostConfig, Mount as DockerMount, MountType, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder,
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{
    labels, ContainerEvent, ContainerEvents, ContainerInfo, ContainerRuntime, ContainerSpec,
    ContainerState, PullProgress, Result, RuntimeError, RuntimeSignal,
};

/// Where the engine is looked for when neither the caller nor `DOCKER_HOST` says.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// The client-wide request timeout (time to the response headers; streamed bodies such as
/// logs and events are not cut). Stops use their own, longer one.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How long [`Docker::connect`] waits for the engine to answer its first requests.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Added to a stop's grace period to get that request's timeout: Docker answers a stop only
/// after the grace period and the kill that follows it.
pub const STOP_TIMEOUT_MARGIN: Duration = Duration::from_secs(30);

/// First and longest wait between two attempts to re-open a lost event stream.
pub const EVENTS_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
pub const EVENTS_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The oldest engine API gantry accepts: `DeviceRequests` (GPUs by UUID) came with 1.40
/// (Docker 19.03).
pub const MIN_API_VERSION: (u32, u32) = (1, 40);

/// A connection to a Docker engine. Cheap to clone; clones share the connection settings.
#[derive(Clone)]
pub struct Docker {
    client: bollard::Docker,
    host: String,
    api_version: String,
    server_version: String,
}

impl std::fmt::Debug for Docker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Docker")
            .field("host", &self.host)
            .field("api_version", &self.api_version)
            .field("server_version", &self.server_version)
            .finish()
    }
}

impl Docker {
    /// Connects to the engine at `host`, or `DOCKER_HOST`, or [`DEFAULT_HOST`], negotiates the
    /// API version and checks that the engine answers. When none does, the error says where
    /// gantry looked and how to start one.
    pub async fn connect(host: Option<&str>) -> Result<Docker> {
        let env_host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty());
        let (host, source) = match (host, env_host) {
            (Some(h), _) => (h.to_string(), "given"),
            (None, Some(h)) => (h, "from DOCKER_HOST"),
            (None, None) => (DEFAULT_HOST.to_string(), "the default"),
        };
        let unavailable = |why: String| {
            RuntimeError::Unavailable(format!(
                "no Docker engine answers at {host} ({source}): {why}. {}",
                start_hint(&host)
            ))
        };

        let client = bollard::Docker::connect_with_host(&host)
            .map_err(|e| unavailable(describe_connect_error(&e)))?
            .with_timeout(REQUEST_TIMEOUT);
        let handshake = async {
            let client = client.negotiate_version().await?;
            client.ping().await?;
            let version = client.version().await?;
            Ok::<_, BollardError>((client, version))
        };
        let (client, version) = match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(unavailable(describe_connect_error(&e))),
            Err(_) => {
                return Err(unavailable(format!(
                    "it did not answer within {}s",
                    CONNECT_TIMEOUT.as_secs()
                )))
            }
        };
        let api_version = version.api_version.clone().unwrap_or_default();
        let server_version = version.version.clone().unwrap_or_default();
        match parse_api_version(&api_version) {
            Some(v) if v >= MIN_API_VERSION => {}
            _ => {
                return Err(RuntimeError::Unavailable(format!(
                    "the Docker engine at {host} speaks API {api_version:?} (Docker \
                     {server_version}); gantry needs API {}.{} (Docker 19.03) or newer for GPU \
                     device requests",
                    MIN_API_VERSION.0, MIN_API_VERSION.1
                )))
            }
        }
        debug!(%host, %api_version, %server_version, "connected to the Docker engine");
        Ok(Docker {
            client,
            host,
            api_version,
            server_version,
        })
    }

    /// The default bridge network's gateway: the host's address as containers see it
    /// (`host-gateway`), where gantry opens a second data-plane listener so that a
    /// transformer reaches its predictor through the router. `None` when the engine has no
    /// such network or does not say.
    pub async fn bridge_gateway(&self) -> Option<std::net::IpAddr> {
        let network = self
            .client
            .inspect_network(
                "bridge",
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
            .ok()?;
        network
            .ipam?
            .config?
            .into_iter()
            .find_map(|c| c.gateway.and_then(|g| g.parse().ok()))
    }

    /// The address this client talks to (`unix:///var/run/docker.sock`, `tcp://...`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The engine's API version, as it reported it (`1.41`).
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// The engine's own version (`20.10.24+dfsg1`).
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// The underlying bollard client, for what the runtime traits do not cover (tests use it
    /// to look at what Docker made of a container).
    pub fn client(&self) -> &bollard::Docker {
        &self.client
    }

    /// The engine's clock, as `seconds.nanoseconds` (the form `/events?since=` takes). Falls
    /// back to this machine's clock, a second early, when the engine does not say.
    async fn engine_now(&self) -> std::result::Result<String, BollardError> {
        let info = self.client.info().await?;
        if let Some(t) = info.system_time.as_deref().and_then(rfc3339_to_unix) {
            return Ok(format!("{}.{:09}", t.0, t.1));
        }
        warn!(
            system_time = ?info.system_time,
            "the Docker engine did not report a readable clock; subscribing from this machine's"
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(Duration::from_secs(1));
        Ok(format!("{}.{:09}", now.as_secs(), now.subsec_nanos()))
    }

    /// Opens the event stream from `since` (engine time), filtered to gantry's containers.
    fn open_events(
        &self,
        since: &str,
    ) -> impl Stream<Item = std::result::Result<EventMessage, BollardError>> + Send + 'static {
        let filters = HashMap::from([
            ("type", vec!["container".to_string()]),
            ("label", vec![format!("{}=true", labels::MANAGED_BY)]),
        ]);
        let options = EventsOptionsBuilder::default()
            .since(since)
            .filters(&filters)
            .build();
        self.client.events(Some(options))
    }
}

/// How to bring an engine up, for the "no engine" message.
fn start_hint(host: &str) -> String {
    if host.starts_with("unix://") {
        "Start the engine with `sudo systemctl start docker` (or run `sudo dockerd` where there \
         is no systemd; `./install.sh` installs and starts one), or point DOCKER_HOST at a \
         running engine"
            .to_string()
    } else {
        "Check that the engine at that address is running and reachable; without DOCKER_HOST, \
         gantry uses the local socket (unix:///var/run/docker.sock)"
            .to_string()
    }
}

fn describe_connect_error(e: &BollardError) -> String {
    match e {
        BollardError::SocketNotFoundError(path) => format!("the socket {path} does not exist"),
        BollardError::UnsupportedURISchemeError { uri } => {
            format!("{uri:?} is not an address gantry can use (unix:// or tcp://)")
        }
        other => {
            let text = error_chain(other);
            if text.contains("Permission denied") || text.contains("permission denied") {
                format!(
                    "{text} (add your user to the `docker` group: `sudo usermod -aG docker \
                     $USER`, then log in again)"
                )
            } else {
                text
            }
        }
    }
}

/// An error and its sources, on one line (hyper's errors hide the useful part in the source).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

fn parse_api_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// What a failed request meant, for the operation `what` on the container `id`.
fn map_error(e: BollardError, what: &str, id: &str) -> RuntimeError {
    match e {
        BollardError::DockerResponseServerError {
            status_code: 404,
            message,
        } => {
            debug!(%id, %message, "{what}: not found");
            RuntimeError::NotFound(id.to_string())
        }
        BollardError::DockerResponseServerError {
            status_code: 409,
            message,
        } => RuntimeError::Conflict(format!("{what} {id}: {message}")),
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => RuntimeError::Engine(format!(
            "{what} {id}: the engine answered {status_code}: {message}{}",
            device_hint(&message)
        )),
        e @ (BollardError::RequestTimeoutError
        | BollardError::HyperLegacyError { .. }
        | BollardError::HyperResponseError { .. }
        | BollardError::IOError { .. }
        | BollardError::SocketNotFoundError(_)) => RuntimeError::Unavailable(format!(
            "{what} {id}: the Docker engine did not answer: {}",
            error_chain(&e)
        )),
        e => RuntimeError::Engine(format!("{what} {id}: {}", error_chain(&e))),
    }
}

/// The engine refuses an `nvidia` device request when no NVIDIA runtime hook was on its PATH
/// when it started; say so, since the engine's own text does not.
fn device_hint(message: &str) -> &'static str {
    if message.contains("could not select device driver") {
        " (is the NVIDIA Container Toolkit installed, and was dockerd restarted after it was?)"
    } else {
        ""
    }
}

/// `name` → `name:latest`: without a tag, Docker's pull API fetches every tag of the
/// repository.
pub fn pull_reference(image: &str) -> String {
    if image.contains('@') {
        return image.to_string();
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// `2026-11-28T14:05:51.157457205Z` (or with a `+01:00` offset) → (unix seconds, nanos).
fn rfc3339_to_unix(s: &str) -> Option<(i64, u32)> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let zone_at = rest.find(['Z', 'z', '+', '-'])?;
    let (clock, zone) = rest.split_at(zone_at);
    let (hms, frac) = match clock.split_once('.') {
        Some((hms, frac)) => (hms, frac),
        None => (clock, ""),
    };
    let mut t = hms.splitn(3, ':');
    let hour: i64 = t.next()?.parse().ok()?;
    let minute: i64 = t.next()?.parse().ok()?;
    let second: i64 = t.next()?.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().take(9).collect();
        format!("{digits:0<9}").parse().ok()?
    };
    let offset_seconds: i64 = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = zone[1..].split_once(':')?;
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some((secs, nanos))
}

/// Docker's "never" time.
fn real_time(t: Option<String>) -> Option<String> {
    t.filter(|t| !t.is_empty() && !t.starts_with("0001-01-01"))
}

fn state_of(status: Option<ContainerStateStatusEnum>, running: bool) -> ContainerState {
    match status {
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        // Still running until the stop completes; gantry has no separate state for it.
        Some(ContainerStateStatusEnum::RUNNING | ContainerStateStatusEnum::STOPPING) => {
            ContainerState::Running
        }
        Some(ContainerStateStatusEnum::PAUSED) => ContainerState::Paused,
        Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting,
        Some(ContainerStateStatusEnum::REMOVING) => ContainerState::Removing,
        Some(ContainerStateStatusEnum::EXITED) => ContainerState::Exited,
        Some(ContainerStateStatusEnum::DEAD) => ContainerState::Dead,
        Some(ContainerStateStatusEnum::EMPTY) | None if running => ContainerState::Running,
        Some(ContainerStateStatusEnum::EMPTY) | None => ContainerState::Created,
    }
}

/// What gantry reads from `docker inspect`.
pub fn container_info(c: ContainerInspectResponse) -> ContainerInfo {
    let host_port = published_port(&c);
    let state = c.state.unwrap_or_default();
    let container_state = state_of(state.status, state.running.unwrap_or(false));
    let labels: BTreeMap<String, String> = c
        .config
        .as_ref()
        .and_then(|cfg| cfg.labels.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let exited = matches!(
        container_state,
        ContainerState::Exited | ContainerState::Dead
    );
    ContainerInfo {
        id: c.id.unwrap_or_default(),
        name: c
            .name
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        labels,
        state: container_state,
        host_port,
        exit_code: if exited { state.exit_code } else { None },
        oom_killed: state.oom_killed.unwrap_or(false),
        started_at: real_time(state.started_at),
        finished_at: real_time(state.finished_at),
        restart_count: c.restart_count.unwrap_or(0),
    }
}

/// The host port of the container port gantry published (the one key of the container's
/// `PortBindings`), re-read from `NetworkSettings.Ports`, where Docker writes the port it
/// chose at start. With host networking the container port is the host port.
fn published_port(c: &ContainerInspectResponse) -> Option<u16> {
    let host_config = c.host_config.as_ref();
    if host_config.and_then(|h| h.network_mode.as_deref()) == Some("host") {
        let running = c.state.as_ref().and_then(|s| s.running).unwrap_or(false);
        let exposed = c.config.as_ref()?.exposed_ports.as_ref()?;
        let mut ports: Vec<u16> = exposed.iter().filter_map(|p| container_port(p)).collect();
        ports.sort_unstable();
        return ports.first().copied().filter(|_| running);
    }
    let mut keys: Vec<&String> = host_config?.port_bindings.as_ref()?.keys().collect();
    keys.sort();
    let key = keys.into_iter().find(|k| k.ends_with("/tcp"))?;
    let bindings = c
        .network_settings
        .as_ref()?
        .ports
        .as_ref()?
        .get(key)?
        .as_ref()?;
    let preferred = bindings
        .iter()
        .find(|b| b.host_ip.as_deref() == Some("127.0.0.1"))
        .or_else(|| bindings.first())?;
    preferred.host_port.as_deref()?.parse().ok()
}

/// `8080/tcp` → 8080.
fn container_port(key: &str) -> Option<u16> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    if proto == "tcp" {
        port.parse().ok()
    } else {
        None
    }
}

/// The create request for a spec: a pure conversion, kept apart so that it can be tested
/// without an engine.
pub fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let port_key = format!("{}/tcp", spec.port);
    let mut labels: HashMap<String, String> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // The one label gantry lists by: a container without it would be invisible to gantry.
    labels.insert(labels::MANAGED_BY.to_string(), "true".to_string());
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let resources = &spec.resources;

    let host_config = HostConfig {
        nano_cpus: resources.nano_cpus,
        cpu_shares: resources.cpu_shares,
        memory: resources.memory,
        // Kubernetes gives a memory-limited container no swap; Docker's default is as much
        // swap again.
        memory_swap: resources.memory,
        memory_reservation: resources.memory_reservation,
        shm_size: (spec.shm_size_bytes > 0).then_some(spec.shm_size_bytes),
        // docker-init as PID 1 forwards SIGTERM and reaps zombies: many model servers run as
        // PID 1 and would otherwise ignore SIGTERM until the grace period ends.
        init: Some(true),
        port_bindings: (!spec.host_network).then(|| {
            HashMap::from([(
                port_key.clone(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".to_string()),
                    // Empty: Docker picks a free port at start.
                    host_port: Some(String::new()),
                }]),
            )])
        }),
        mounts: (!spec.mounts.is_empty()).then(|| {
            spec.mounts
                .iter()
                .map(|m| DockerMount {
                    typ: Some(MountType::BIND),
                    source: Some(m.source.clone()),
                    target: Some(m.target.clone()),
                    read_only: Some(m.read_only),
                    ..Default::default()
                })
                .collect()
        }),
        device_requests: (!spec.gpu_uuids.is_empty()).then(|| {
            vec![DeviceRequest {
                driver: Some("nvidia".to_string()),
                // By UUID, never by index or count (Count with DeviceIDs is refused).
                device_ids: Some(spec.gpu_uuids.clone()),
                capabilities: Some(vec![vec![
                    "gpu".to_string(),
                    "compute".to_string(),
                    "utility".to_string(),
                ]]),
                ..Default::default()
            }]
        }),
        readonly_rootfs: spec.read_only_root_fs.then_some(true),
        cap_add: non_empty(&spec.cap_add),
        cap_drop: non_empty(&spec.cap_drop),
        privileged: spec.privileged.then_some(true),
        network_mode: spec.host_network.then(|| "host".to_string()),
        extra_hosts: non_empty(&spec.extra_hosts),
        ipc_mode: spec.host_ipc.then(|| "host".to_string()),
        ..Default::default()
    };

    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: non_empty(&spec.entrypoint),
        cmd: non_empty(&spec.cmd),
        env: non_empty(&spec.env),
        working_dir: spec.working_dir.clone(),
        user: spec.user.clone(),
        labels: Some(labels),
        exposed_ports: Some(vec![port_key]),
        stop_timeout: Some(spec.stop_timeout_seconds),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// Splits the engine's output frames into lines, per stream (stdout and stderr arrive as
/// separate frames, and one line may span frames).
#[derive(Default)]
struct LineSplitter {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, frame: bollard::container::LogOutput, out: &mut Vec<String>) {
        use bollard::container::LogOutput;
        let (buf, bytes) = match frame {
            LogOutput::StdErr { message } => (&mut self.stderr, message),
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                (&mut self.stdout, message)
            }
            LogOutput::StdIn { .. } => return,
        };
        buf.extend_from_slice(&bytes);
        while let Some(at) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=at).collect();
            out.push(line_text(&line[..line.len() - 1]));
        }
    }

    fn finish(&mut self, out: &mut Vec<String>) {
        for buf in [&mut self.stdout, &mut self.stderr] {
            if !buf.is_empty() {
                out.push(line_text(buf));
                buf.clear();
            }
        }
    }
}

fn line_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

fn event_of(message: EventMessage) -> Option<ContainerEvent> {
    let actor = message.actor?;
    Some(ContainerEvent {
        id: actor.id?,
        action: message.action.unwrap_or_default(),
        // Docker's event attributes: the container's labels, plus `name`, `image` and, for
        // `die`, `exitCode`.
        labels: actor.attributes.unwrap_or_default().into_iter().collect(),
    })
}

impl ContainerRuntime for Docker {
    async fn list(&self) -> Result<Vec<ContainerInfo>> {
        let filters = HashMap::from([("label", vec![format!("{}=true", labels::MANAGED_BY)])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = self
            .client
            .list_containers(Some(options))
            .await
            .map_err(|e| map_error(e, "list", "containers"))?;
        // The summary lacks exit codes, OOM kills and times: inspect each. One removed in
        // between is simply gone.
        let ids: Vec<String> = summaries.into_iter().filter_map(|s| s.id).collect();
        let inspected = futures_util::future::join_all(ids.iter().map(|id| self.inspect(id))).await;
        let mut infos = Vec::with_capacity(ids.len());
        for result in inspected {
            match result {
                Ok(info) => infos.push(info),
                Err(RuntimeError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(infos)
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        let c = self
            .client
            .inspect_container(id, None)
            .await
            .map_err(|e| map_error(e, "inspect", id))?;
        Ok(container_info(c))
    }

    async fn ensure_image(
        &self,
        image: &str,
        always_pull: bool,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<()> {
        let present = match self.client.inspect_image(image).await {
            Ok(_) => true,
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => false,
            Err(e) => return Err(map_error(e, "inspect image", image)),
        };
        if present && !always_pull {
            return Ok(());
        }
        let reference = pull_reference(image);
        info!(%image, present, always_pull, "pulling image");
        let options = CreateImageOptionsBuilder::default()
            .from_image(&reference)
            .build();
        let mut pull = self.client.create_image(Some(options), None, None);
        let mut failure = None;
        while let Some(item) = pull.next().await {
            match item {
                Ok(info) => {
                    let status = match (info.id, info.status) {
                        (Some(id), Some(s)) => format!("{id}: {s}"),
                        (None, Some(s)) => s,
                        (Some(id), None) => id,
                        (None, None) => continue,
                    };
                    let detail = info.progress_detail.unwrap_or_default();
                    progress(PullProgress {
                        image: image.to_string(),
                        status,
                        current: detail.current,
                        total: detail.total,
                    });
                }
                Err(e) => {
                    failure = Some(match e {
                        BollardError::DockerResponseServerError { message, .. } => message,
                        BollardError::DockerStreamError { error } => error,
                        e => error_chain(&e),
                    });
                    break;
                }
            }
        }
        match failure {
            None => Ok(()),
            Some(message) if !present => Err(RuntimeError::ImageNotFound {
                image: image.to_string(),
                message: format!("it is not on this machine and pulling it failed: {message}"),
            }),
            Some(message) => Err(RuntimeError::Engine(format!(
                "pulling {image} failed (the pull policy is Always; a copy is on this machine): \
                 {message}"
            ))),
        }
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        match self
            .client
            .create_container(Some(options), create_body(spec))
            .await
        {
            Ok(created) => {
                for warning in &created.warnings {
                    warn!(container = %spec.name, %warning, "the engine warned at create");
                }
                Ok(created.id)
            }
            // Create's only 404 is the image.
            Err(BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            }) => Err(RuntimeError::ImageNotFound {
                image: spec.image.clone(),
                message,
            }),
            Err(e) => Err(map_error(e, "create", &spec.name)),
        }
    }

    async fn start(&self, id: &str) -> Result<()> {
        self.client
            .start_container(id, None)
            .await
            .map_err(|e| map_error(e, "start", id))
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        // Whole seconds, rounded up: Docker's `t` is in seconds.
        let seconds = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        let t = i32::try_from(seconds).unwrap_or(i32::MAX);
        let client = self
            .client
            .clone()
            .with_timeout(Duration::from_secs(seconds) + STOP_TIMEOUT_MARGIN);
        let options = StopContainerOptionsBuilder::default().t(t).build();
        client
            .stop_container(id, Some(options))
            .await
            .map_err(|e| map_error(e, "stop", id))
    }

    async fn remove(&self, id: &str) -> Result<()> {
        // `v`: anonymous volumes (an image's VOLUME) would otherwise pile up.
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        self.client
            .remove_container(id, Some(options))
            .await
            .map_err(|e| map_error(e, "remove", id))
    }

    async fn logs(&self, id: &str, tail: usize) -> Result<Vec<String>> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&tail.to_string())
            .build();
        let mut stream = self.client.logs(id, Some(options));
        let mut splitter = LineSplitter::default();
        let mut lines = Vec::new();
        while let Some(frame) = stream.next().await {
            let frame = frame.map_err(|e| map_error(e, "logs", id))?;
            splitter.push(frame, &mut lines);
        }
        splitter.finish(&mut lines);
        Ok(lines)
    }

    async fn exec(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<i64> {
        let run = async {
            let exec = self
                .client
                .create_exec(
                    id,
                    CreateExecOptions {
                        cmd: Some(cmd.to_vec()),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| map_error(e, "exec in", id))?;
            match self
                .client
                .start_exec(&exec.id, None)
                .await
                .map_err(|e| map_error(e, "exec in", id))?
            {
                // The output ends when the command does; drain it so that it can.
                StartExecResults::Attached { mut output, .. } => {
                    while let Some(frame) = output.next().await {
                        frame.map_err(|e| map_error(e, "exec in", id))?;
                    }
                }
                StartExecResults::Detached => {}
            }
            let inspected = self
                .client
                .inspect_exec(&exec.id)
                .await
                .map_err(|e| map_error(e, "exec in", id))?;
            inspected.exit_code.ok_or_else(|| {
                RuntimeError::Engine(format!(
                    "exec in {id}: the engine reported no exit code for {cmd:?}"
                ))
            })
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(RuntimeError::Engine(format!(
                "exec in {id}: {cmd:?} did not finish within {timeout:?}"
            ))),
        }
    }
}

impl ContainerEvents for Docker {
    /// Liveness: the engine's clock is read first (which also proves the engine answers), and
    /// the event request carries `since=<that instant>`. Docker replays the events it buffered
    /// since then before streaming new ones, so an event that happens after `subscribe`
    /// returns is delivered even if the lazily sent request reaches the engine later. The
    /// stream is also polled once before returning, so the request is on its way and an
    /// immediate refusal is returned as an error.
    ///
    /// When the stream breaks, it is re-opened with backoff ([`EVENTS_BACKOFF_INITIAL`]
    /// doubling to [`EVENTS_BACKOFF_MAX`]) and [`RuntimeSignal::Resync`] is sent once it is
    /// open again: events in the gap are lost, so the subscriber must list. The task ends when
    /// the receiver is dropped.
    async fn subscribe(&self) -> Result<mpsc::UnboundedReceiver<RuntimeSignal>> {
        let since = self
            .engine_now()
            .await
            .map_err(|e| map_error(e, "subscribe to", "events"))?;
        let mut stream = Box::pin(self.open_events(&since));
        let (tx, rx) = mpsc::unbounded_channel();
        match futures_util::poll!(stream.next()) {
            std::task::Poll::Ready(Some(Err(e))) => {
                return Err(map_error(e, "subscribe to", "events"))
            }
            std::task::Poll::Ready(Some(Ok(message))) => {
                if let Some(event) = event_of(message) {
                    let _ = tx.send(RuntimeSignal::Event(event));
                }
            }
            std::task::Poll::Ready(None) => {
                return Err(RuntimeError::Unavailable(format!(
                    "subscribe to events: the Docker engine at {} closed the stream at once",
                    self.host
                )))
            }
            std::task::Poll::Pending => {}
        }
        let docker = self.clone();
        tokio::spawn(async move {
            let mut backoff = EVENTS_BACKOFF_INITIAL;
            loop {
                let opened = tokio::time::Instant::now();
                let why = loop {
                    tokio::select! {
                        _ = tx.closed() => return,
                        item = stream.next() => match item {
                            Some(Ok(message)) => {
                                if let Some(event) = event_of(message) {
                                    if tx.send(RuntimeSignal::Event(event)).is_err() {
                                        return;
                                    }
                                }
                            }
                            Some(Err(e)) => break error_chain(&e),
                            None => break "the engine closed the stream".to_string(),
                        },
                    }
                };
                if opened.elapsed() > EVENTS_BACKOFF_MAX {
                    backoff = EVENTS_BACKOFF_INITIAL;
                }
                warn!(host = %docker.host, error = %why, "Docker event stream lost; reconnecting");
                // Re-open: wait, ask for the engine's clock (it answers again), subscribe
                // from then, and tell the subscriber to list. A change after that instant
                // arrives as an event (replayed through `since`), one before it is seen by
                // the subscriber's list.
                stream = loop {
                    tokio::select! {
                        _ = tx.closed() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(EVENTS_BACKOFF_MAX);
                    match docker.engine_now().await {
                        Ok(since) => break Box::pin(docker.open_events(&since)),
                        Err(e) => warn!(
                            host = %docker.host,
                            error = %error_chain(&e),
                            retry_in = ?backoff,
                            "Docker engine still not answering"
                        ),
                    }
                };
                info!(host = %docker.host, "Docker event stream re-opened");
                if tx.send(RuntimeSignal::Resync).is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    async fn follow_logs(&self, id: &str, tail: usize) -> Result<mpsc::UnboundedReceiver<String>> {
        // Fail now, not in the background, when the container is not there.
        self.client
            .inspect_container(id, None)
            .await
            .map_err(|e| map_error(e, "logs of", id))?;
        let options = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .tail(&tail.to_string())
            .build();
        let mut stream = self.client.logs(id, Some(options));
        let (tx, rx) = mpsc::unbounded_channel();
        let id = id.to_string();
        tokio::spawn(async move {
            let mut splitter = LineSplitter::default();
            let mut lines = Vec::new();
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    frame = stream.next() => match frame {
                        Some(Ok(frame)) => splitter.push(frame, &mut lines),
                        Some(Err(e)) => {
                            debug!(container = %id, error = %error_chain(&e), "log stream ended");
                            break;
                        }
                        None => break,
                    },
                }
                for line in lines.drain(..) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            }
            splitter.finish(&mut lines);
            for line in lines {
                let _ = tx.send(line);
            }
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{DockerResources, Mount};

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "gantry-default-iris-predictor-00001-0".into(),
            image: "img:1".into(),
            entrypoint: vec![],
            cmd: vec!["--model_name=iris".into()],
            env: vec!["PORT=8080".into()],
            working_dir: None,
            labels: BTreeMap::from([("gantry.dev/revision".into(), "r1".into())]),
            port: 8080,
            resources: DockerResources {
                nano_cpus: Some(500_000_000),
                cpu_shares: Some(102),
                memory: Some(1 << 30),
                memory_reservation: Some(1 << 29),
            },
            mounts: vec![Mount {
                source: "/models/iris".into(),
                target: "/mnt/models".into(),
                read_only: true,
            }],
            gpu_uuids: vec![],
            shm_size_bytes: 1 << 30,
            user: None,
            read_only_root_fs: false,
            cap_add: vec![],
            cap_drop: vec![],
            privileged: false,
            host_network: false,
            host_ipc: false,
            stop_timeout_seconds: 30,
            always_pull: false,
            extra_hosts: vec![],
        }
    }

    #[test]
    fn create_body_publishes_the_port_on_loopback_with_an_ephemeral_host_port() {
        let body = create_body(&spec());
        assert_eq!(body.exposed_ports, Some(vec!["8080/tcp".to_string()]));
        let hc = body.host_config.unwrap();
        let bindings = hc.port_bindings.unwrap();
        let b = bindings["8080/tcp"].as_ref().unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(b[0].host_port.as_deref(), Some(""));
        assert_eq!(hc.network_mode, None);
        assert_eq!(hc.init, Some(true));
        assert_eq!(hc.nano_cpus, Some(500_000_000));
        assert_eq!(hc.memory_swap, Some(1 << 30));
        assert_eq!(hc.device_requests, None);
        assert_eq!(hc.privileged, None);
        assert_eq!(body.entrypoint, None);
        assert_eq!(body.stop_timeout, Some(30));
        assert_eq!(
            body.labels.unwrap()[labels::MANAGED_BY],
            "true",
            "the list label is always set"
        );
        let mounts = hc.mounts.unwrap();
        assert_eq!(mounts[0].typ, Some(MountType::BIND));
        assert_eq!(mounts[0].read_only, Some(true));
    }

    #[test]
    fn create_body_requests_gpus_by_uuid_never_by_count() {
        let mut s = spec();
        s.gpu_uuids = vec!["GPU-aaaa".into(), "GPU-bbbb".into()];
        let hc = create_body(&s).host_config.unwrap();
        let requests = hc.device_requests.unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].driver.as_deref(), Some("nvidia"));
        assert_eq!(requests[0].count, None);
        assert_eq!(
            requests[0].device_ids,
            Some(vec!["GPU-aaaa".to_string(), "GPU-bbbb".to_string()])
        );
        assert_eq!(
            requests[0].capabilities,
            Some(vec![vec![
                "gpu".to_string(),
                "compute".to_string(),
                "utility".to_string()
            ]])
        );
    }

    #[test]
    fn create_body_with_host_network_publishes_nothing() {
        let mut s = spec();
        s.host_network = true;
        s.host_ipc = true;
        let hc = create_body(&s).host_config.unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("host"));
        assert_eq!(hc.ipc_mode.as_deref(), Some("host"));
        assert_eq!(hc.port_bindings, None);
    }

    #[test]
    fn pull_reference_adds_latest_only_without_a_tag_or_digest() {
        for (image, expected) in [
            ("busybox", "busybox:latest"),
            ("busybox:1.36", "busybox:1.36"),
            ("localhost:5000/iris", "localhost:5000/iris:latest"),
            ("localhost:5000/iris:v2", "localhost:5000/iris:v2"),
            (
                "kserve/sklearnserver@sha256:abcd",
                "kserve/sklearnserver@sha256:abcd",
            ),
        ] {
            assert_eq!(pull_reference(image), expected, "{image}");
        }
    }

    #[test]
    fn rfc3339_times_become_unix_seconds_and_nanos() {
        for (text, expected) in [
            ("1970-01-01T00:00:00Z", Some((0, 0))),
            (
                "2026-11-28T14:05:51.157457205Z",
                Some((1_795_874_751, 157_457_205)),
            ),
            (
                "2026-11-28T15:05:51.5+01:00",
                Some((1_795_874_751, 500_000_000)),
            ),
            ("2000-02-29T00:00:00-00:30", Some((951_784_200, 0))),
            ("yesterday", None),
        ] {
            assert_eq!(rfc3339_to_unix(text), expected, "{text}");
        }
    }

    #[test]
    fn api_versions_compare_numerically() {
        assert!(parse_api_version("1.41").unwrap() >= MIN_API_VERSION);
        assert!(parse_api_version("1.9").unwrap() < MIN_API_VERSION);
        assert_eq!(parse_api_version("x"), None);
    }

    #[test]
    fn lines_are_split_per_stream_across_frames() {
        use bollard::container::LogOutput;
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.push(
            LogOutput::StdOut {
                message: "a\nb".into(),
            },
            &mut out,
        );
        s.push(
            LogOutput::StdErr {
                message: "e\r\n".into(),
            },
            &mut out,
        );
        s.push(
            LogOutput::StdOut {
                message: "c\n".into(),
            },
            &mut out,
        );
        s.push(
            LogOutput::StdOut {
                message: "tail".into(),
            },
            &mut out,
        );
        s.finish(&mut out);
        assert_eq!(out, ["a", "e", "bc", "tail"]);
    }

    #[test]
    fn status_codes_map_to_runtime_errors() {
        let server = |status_code, message: &str| BollardError::DockerResponseServerError {
            status_code,
            message: message.into(),
        };
        assert!(matches!(
            map_error(server(404, "No such container: x"), "start", "x"),
            RuntimeError::NotFound(id) if id == "x"
        ));
        assert!(matches!(
            map_error(server(409, "name in use"), "create", "x"),
            RuntimeError::Conflict(_)
        ));
        let RuntimeError::Engine(text) = map_error(
            server(500, "could not select device driver \"nvidia\""),
            "start",
            "x",
        ) else {
            panic!("expected Engine");
        };
        assert!(text.contains("NVIDIA Container Toolkit"), "{text}");
        assert!(matches!(
            map_error(BollardError::RequestTimeoutError, "stop", "x"),
            RuntimeError::Unavailable(_)
        ));
    }
}
