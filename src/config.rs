//! The daemon's configuration: every setting, its documented default, and the file that
//! overrides them.
//!
//! Precedence, lowest first: built-in defaults ← config file (`--config FILE`,
//! `GANTRY_CONFIG`) ← environment (`GANTRY_DIR`, `GANTRY_API`, `GANTRY_STATE_DIR`) ←
//! command-line flags. clap resolves the last two (its `env` feature), so [`Overrides`]
//! arrives holding the winner and [`Config::apply`] only has to lay it over the file.
//!
//! The config file is read through the one YAML module ([`crate::spec::yaml`]): unknown
//! settings are errors with a did-you-mean, and every problem names the file, the line and
//! the setting. [`defaults_yaml`] prints the defaults as a commented file for users to copy
//! (`gantry config defaults`); a test parses it back, so the documentation cannot drift.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use crate::runtime::convert::SecurityPolicy;
use crate::spec::autoscaling::{validate_defaults, AutoscalingDefaults};
use crate::spec::diagnostic::Diagnostic;
use crate::spec::duration::GoDuration;
use crate::spec::quantity::Quantity;
use crate::spec::yaml::{self, FieldPath, UnknownFields, DEFAULT_MAX_FILE_BYTES};
use crate::storage::StorageConfig;

/// The management API's default address (DESIGN.md, "Ports").
pub const DEFAULT_API: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 8081);

/// The data plane's default address (DESIGN.md, "Ports").
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 8080);

/// Requests one revision may hold waiting for a replica: the activator's nominal depth.
pub const DEFAULT_QUEUE_DEPTH: usize = 10_000;

/// The config file itself is refused beyond this size (it is read before `max-file-bytes`
/// is known, so it has its own bound).
pub const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;

/// The daemon's configuration. Field names are the config file's keys in kebab-case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Config {
    /// The watched folder of InferenceService YAML.
    pub dir: PathBuf,
    /// The data plane's listen address: every service's URL.
    pub listen: SocketAddr,
    /// The management API's listen address.
    pub api: SocketAddr,
    /// Where gantry keeps its own state (see [`default_state_dir`]).
    pub state_dir: PathBuf,
    /// Services answer at `<name>.<namespace>.<domain>`.
    pub domain: String,
    /// Requests one revision may hold waiting for a free replica slot; beyond it the router
    /// answers 503 with `Retry-After`.
    pub queue_depth: usize,
    /// The namespace of documents that set none.
    pub default_namespace: String,
    /// Whether a field no type knows rejects the document (`error`, as `kubectl apply`) or
    /// only warns.
    pub unknown_fields: UnknownFields,
    /// Files larger than this are refused before they are parsed.
    pub max_file_bytes: usize,
    /// How long the folder must be quiet before it is rescanned (a Go duration).
    pub debounce: String,
    /// How often the whole folder is rescanned in case file events were lost (a Go duration).
    pub resync_interval: String,
    /// The size of every replica's `/dev/shm` (a Kubernetes quantity); model servers need more
    /// than Docker's 64 MiB.
    pub shm_size: String,
    /// Whether `securityContext.privileged: true` is honoured (otherwise refused).
    pub allow_privileged: bool,
    /// Whether `hostNetwork: true` is honoured (otherwise refused).
    pub allow_host_network: bool,
    /// Whether `hostPath` volumes are honoured (otherwise refused).
    pub allow_host_path: bool,
    /// NVML name (exact) → `gpu.nvidia.com/class`, overriding gantry's own mapping
    /// ([`crate::gpu::class_for`]).
    pub gpu_classes: BTreeMap<String, String>,
    /// Labels of the machine, as a node's (`topology.kubernetes.io/region: LAS1`), laid over
    /// the ones gantry finds itself (`kubernetes.io/hostname`, `gantry.dev/cpu-model`).
    pub host_labels: BTreeMap<String, String>,
    /// Cpu kept back from replicas (a Kubernetes quantity: `2`, `500m`), as a kubelet's
    /// `system-reserved`: the scheduler's allocatable cpu is the machine's minus this.
    pub reserved_cpu: String,
    /// Memory kept back from replicas (a Kubernetes quantity: `4Gi`).
    pub reserved_memory: String,
    /// The daemon-wide autoscaler defaults (Knative `config-autoscaler` keys).
    pub autoscaling: AutoscalingDefaults,
    /// Models: the cache, `pvc://` volumes, and storage access (docs/storage.md).
    pub storage: StorageConfig,
}

/// Built-in value of `debounce`.
const DEFAULT_DEBOUNCE: &str = "50ms";
/// Built-in value of `resync-interval`.
const DEFAULT_RESYNC_INTERVAL: &str = "30s";
/// Built-in value of `shm-size`.
const DEFAULT_SHM_SIZE: &str = "1Gi";
/// Built-in value of `reserved-cpu` and `reserved-memory`: nothing kept back.
const DEFAULT_RESERVED: &str = "0";
/// Labels that are facts of each GPU or of the machine's GPU count: gantry sets them, so
/// `host-labels` may not.
const GPU_LABELS: [&str; 4] = [
    crate::scheduler::CLASS_LABEL,
    crate::scheduler::MODEL_LABEL,
    crate::scheduler::VRAM_LABEL,
    crate::scheduler::COUNT_LABEL,
];

impl Default for Config {
    /// The built-in defaults. `state-dir` depends on the user and the environment
    /// ([`default_state_dir`]); everything else is constant.
    fn default() -> Self {
        Config {
            dir: PathBuf::from("services"),
            listen: DEFAULT_LISTEN,
            api: DEFAULT_API,
            state_dir: default_state_dir(),
            domain: "localhost".into(),
            queue_depth: DEFAULT_QUEUE_DEPTH,
            default_namespace: "default".into(),
            unknown_fields: UnknownFields::Error,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            debounce: DEFAULT_DEBOUNCE.into(),
            resync_interval: DEFAULT_RESYNC_INTERVAL.into(),
            shm_size: DEFAULT_SHM_SIZE.into(),
            allow_privileged: false,
            allow_host_network: false,
            allow_host_path: false,
            gpu_classes: BTreeMap::new(),
            host_labels: BTreeMap::new(),
            reserved_cpu: DEFAULT_RESERVED.into(),
            reserved_memory: DEFAULT_RESERVED.into(),
            autoscaling: AutoscalingDefaults::default(),
            storage: StorageConfig::default(),
        }
    }
}

/// The settings the environment and the command line can set, already resolved by clap
/// (flag over environment). `None` leaves the config file's value (or the default) alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--dir` / `GANTRY_DIR`.
    pub dir: Option<PathBuf>,
    /// `--listen` / `GANTRY_LISTEN`.
    pub listen: Option<SocketAddr>,
    /// `--api` / `GANTRY_API`.
    pub api: Option<SocketAddr>,
    /// `--state-dir` / `GANTRY_STATE_DIR`.
    pub state_dir: Option<PathBuf>,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named with `--config` / `GANTRY_CONFIG` is not there.
    #[error("config file {} does not exist", .path.display())]
    NotFound {
        /// The file as given.
        path: PathBuf,
    },
    /// The file is there but cannot be read (permissions, a folder, not UTF-8, ...).
    #[error("cannot read config file {}: {source}", .path.display())]
    Read {
        /// The file as given.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_FILE_BYTES`].
    #[error(
        "config file {} is larger than {limit} bytes; a gantry config file is a few hundred bytes",
        .path.display()
    )]
    TooLarge {
        /// The file as given.
        path: PathBuf,
        /// The bound it exceeds.
        limit: u64,
    },
    /// The file was read but is not a valid configuration.
    #[error("{}", DiagnosticLines(.diagnostics))]
    Invalid {
        /// The file as given.
        path: PathBuf,
        /// Every problem found, each naming the file, the line and the setting.
        diagnostics: Vec<Diagnostic>,
    },
}

/// Prints diagnostics one per line, as `gantry validate` does.
struct DiagnosticLines<'a>(&'a [Diagnostic]);

impl fmt::Display for DiagnosticLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Parses and validates a config file's text. `file` names it in the diagnostics.
    /// Settings the file leaves out take their defaults; an empty file is all defaults.
    pub fn from_yaml(text: &str, file: &str) -> Result<Config, Vec<Diagnostic>> {
        let config: Config = yaml::from_str_strict(text, file).map_err(explain_addresses)?;
        let problems = config.validate();
        if problems.is_empty() {
            return Ok(config);
        }
        // The text parsed once already; parse it again only to position the problems.
        let (docs, _) = yaml::documents(text);
        Err(problems
            .into_iter()
            .map(|d| {
                let position = match (docs.first(), &d.field) {
                    (Some(doc), Some(field)) => doc.position(&setting_path(field)),
                    _ => None,
                };
                d.at(position).in_file(file)
            })
            .collect())
    }

    /// Reads the config file at `path`, or returns the built-in defaults when there is none.
    /// A file given explicitly that does not exist is an error naming it.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = read_bounded(path)?;
        Config::from_yaml(&text, &path.display().to_string()).map_err(|diagnostics| {
            ConfigError::Invalid {
                path: path.to_path_buf(),
                diagnostics,
            }
        })
    }

    /// Lays the environment and the command line over the file's values.
    pub fn apply(&mut self, overrides: Overrides) {
        let Overrides {
            dir,
            listen,
            api,
            state_dir,
        } = overrides;
        if let Some(dir) = dir {
            self.dir = dir;
        }
        if let Some(listen) = listen {
            self.listen = listen;
        }
        if let Some(api) = api {
            self.api = api;
        }
        if let Some(state_dir) = state_dir {
            self.state_dir = state_dir;
        }
    }

    /// Every problem of the settings, each naming its setting in `field` (no file or
    /// position: [`Config::from_yaml`] adds them). Empty when the configuration is usable.
    pub fn validate(&self) -> Vec<Diagnostic> {
        let mut problems = Vec::new();
        if self.dir.as_os_str().is_empty() {
            problems.push(Diagnostic::error("dir must not be empty").at_field("dir"));
        }
        if self.state_dir.as_os_str().is_empty() {
            problems.push(Diagnostic::error("state-dir must not be empty").at_field("state-dir"));
        }
        if self.queue_depth == 0 {
            problems
                .push(Diagnostic::error("queue-depth must be at least 1").at_field("queue-depth"));
        }
        if self.listen == self.api {
            problems.push(
                Diagnostic::error(format!(
                    "listen and api are both {}: the data plane and the management API need \
                     their own addresses",
                    self.listen
                ))
                .at_field("listen"),
            );
        }
        if let Some(message) = dns_subdomain_problem(&self.domain) {
            problems.push(Diagnostic::error(format!("domain: {message}")).at_field("domain"));
        }
        if let Some(message) = dns_label_problem(&self.default_namespace) {
            problems.push(
                Diagnostic::error(format!("default-namespace: {message}"))
                    .at_field("default-namespace"),
            );
        }
        if self.max_file_bytes == 0 {
            problems.push(
                Diagnostic::error("max-file-bytes must be positive, was: 0")
                    .at_field("max-file-bytes"),
            );
        }
        for (key, value) in [
            ("debounce", &self.debounce),
            ("resync-interval", &self.resync_interval),
        ] {
            if let Err(message) = positive_duration(key, value) {
                problems.push(Diagnostic::error(message).at_field(key));
            }
        }
        for (key, value) in [
            ("shm-size", &self.shm_size),
            ("storage.max-unpacked-size", &self.storage.max_unpacked_size),
        ] {
            if let Err(message) = positive_quantity(key, value) {
                problems.push(Diagnostic::error(message).at_field(key));
            }
        }
        if self.storage.parallel_downloads == 0 {
            problems.push(
                Diagnostic::error("storage.parallel-downloads must be positive, was: 0")
                    .at_field("storage.parallel-downloads"),
            );
        }
        let s3 = &self.storage.s3;
        if s3.access_key_id.is_some() != s3.secret_access_key.is_some() {
            problems.push(
                Diagnostic::error(
                    "storage.s3: access-key-id and secret-access-key go together; one is set \
                     without the other",
                )
                .at_field("storage.s3"),
            );
        }
        for (claim, dir) in &self.storage.volumes {
            if !dir.is_absolute() {
                let field = format!("storage.volumes.{claim}");
                problems.push(
                    Diagnostic::error(format!(
                        "{field}: expected an absolute host folder, found \"{}\"",
                        dir.display()
                    ))
                    .at_field(&field),
                );
            }
        }
        for (key, value) in [
            ("reserved-cpu", &self.reserved_cpu),
            ("reserved-memory", &self.reserved_memory),
            ("storage.cache-size", &self.storage.cache_size),
        ] {
            if let Err(message) = non_negative_quantity(key, value) {
                problems.push(Diagnostic::error(message).at_field(key));
            }
        }
        for (name, class) in &self.gpu_classes {
            let field = format!("gpu-classes.{name}");
            if name.trim().is_empty() || name.trim() != name {
                problems.push(
                    Diagnostic::error(format!(
                        "Invalid value: \"{name}\": an NVML name, exactly as \
                         `gantry gpus` shows it, without spaces around it"
                    ))
                    .at_field(field.clone()),
                );
            }
            let problem = if class.is_empty() {
                Some("must not be empty".to_string())
            } else {
                label_value_problem(class)
            };
            if let Some(problem) = problem {
                problems.push(
                    Diagnostic::error(format!(
                        "gpu-classes.{name}: Invalid value: \"{class}\": {problem}"
                    ))
                    .at_field(field),
                );
            }
        }
        for (key, value) in &self.host_labels {
            let field = format!("host-labels.{key}");
            if let Some(problem) = label_key_problem(key) {
                problems.push(
                    Diagnostic::error(format!("Invalid value: \"{key}\": {problem}"))
                        .at_field(field.clone()),
                );
            } else if GPU_LABELS.contains(&key.as_str()) {
                problems.push(
                    Diagnostic::error(
                        "Forbidden: set by gantry from each GPU (use gpu-classes to rename \
                         a class)",
                    )
                    .at_field(field.clone()),
                );
            }
            if let Some(problem) = label_value_problem(value) {
                problems.push(
                    Diagnostic::error(format!(
                        "host-labels.{key}: Invalid value: \"{value}\": {problem}"
                    ))
                    .at_field(field),
                );
            }
        }
        let keys = autoscaling_keys();
        for message in validate_defaults(&self.autoscaling) {
            let field = match setting_named_in(&message, &keys) {
                Some(key) => format!("autoscaling.{key}"),
                None => "autoscaling".to_string(),
            };
            problems.push(Diagnostic::error(message).at_field(field));
        }
        problems
    }

    /// This configuration as a commented YAML file (what [`defaults_yaml`] prints for the
    /// defaults), for showing the effective settings.
    pub fn to_yaml(&self) -> String {
        render(self)
    }

    /// `debounce` as a duration. A configuration that passed [`Config::validate`] always has
    /// one; an invalid value built in code falls back to the built-in default.
    pub fn debounce(&self) -> Duration {
        duration_or(&self.debounce, DEFAULT_DEBOUNCE)
    }

    /// `resync-interval` as a duration (same fallback as [`Config::debounce`]).
    pub fn resync_interval(&self) -> Duration {
        duration_or(&self.resync_interval, DEFAULT_RESYNC_INTERVAL)
    }

    /// `shm-size` in bytes (same fallback as [`Config::debounce`]).
    pub fn shm_size_bytes(&self) -> i64 {
        positive_quantity("", &self.shm_size)
            .or_else(|_| positive_quantity("", DEFAULT_SHM_SIZE))
            .unwrap_or_default()
    }

    /// `reserved-cpu` in millicores (0 for a value that does not parse: a configuration that
    /// passed [`Config::validate`] always has one).
    pub fn reserved_cpu_millis(&self) -> i64 {
        non_negative_quantity("", &self.reserved_cpu).map_or(0, |q| q.milli_value())
    }

    /// What the model cache is and may hold.
    pub fn model_settings(&self) -> crate::storage::ModelSettings {
        crate::storage::ModelSettings {
            cache_dir: self
                .storage
                .cache_dir
                .clone()
                .unwrap_or_else(|| self.state_dir.join("models")),
            cache_limit: non_negative_quantity("", &self.storage.cache_size)
                .map_or(0, |q| q.value().max(0) as u64),
            parallel: self.storage.parallel_downloads.max(1),
            verify_checksums: self.storage.verify_checksums,
            max_unpacked: positive_quantity("", &self.storage.max_unpacked_size)
                .map_or(1 << 40, |bytes| bytes.max(0) as u64),
        }
    }

    /// `reserved-memory` in bytes (same fallback as [`Config::reserved_cpu_millis`]).
    pub fn reserved_memory_bytes(&self) -> i64 {
        non_negative_quantity("", &self.reserved_memory).map_or(0, |q| q.value())
    }

    /// What containers may do: `allow-privileged`, `allow-host-network`, `allow-host-path`.
    pub fn security_policy(&self) -> SecurityPolicy {
        SecurityPolicy {
            allow_privileged: self.allow_privileged,
            allow_host_network: self.allow_host_network,
            allow_host_path: self.allow_host_path,
        }
    }
}

/// The settings whose keys are free text (NVML names, label keys with dots and slashes).
const MAP_SETTINGS: [&str; 4] = ["gpu-classes", "host-labels", "volumes", "s3"];

/// A diagnostic's field as a path into the file: `host-labels.topology.kubernetes.io/region`
/// is the key `topology.kubernetes.io/region` of `host-labels`, not four nested keys.
fn setting_path(field: &str) -> FieldPath {
    match field.split_once('.') {
        Some((setting, key)) if MAP_SETTINGS.contains(&setting) => {
            FieldPath::root().key(setting).key(key)
        }
        _ => FieldPath::parse(field),
    }
}

/// serde's text for a bad `SocketAddr` says neither what is expected nor that a host name
/// is not accepted.
fn explain_addresses(diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diagnostics
        .into_iter()
        .map(|mut d| {
            if d.message == "invalid socket address syntax" {
                d.message = "invalid socket address syntax: expected IP:PORT, such as \
                             127.0.0.1:8081 or [::1]:8081 (not a host name)"
                    .into();
            }
            d
        })
        .collect()
}

/// The default `state-dir` for whoever runs gantry: `/var/lib/gantry` as root, else
/// `$XDG_STATE_HOME/gantry`, else `~/.local/state/gantry`. Reads the environment and
/// `/proc`, so it is called once, at the edge ([`Config::default`]).
pub fn default_state_dir() -> PathBuf {
    state_dir_for(
        running_as_root(),
        std::env::var_os("XDG_STATE_HOME"),
        std::env::var_os("HOME"),
    )
}

/// The rule behind [`default_state_dir`], with the environment as arguments. The XDG spec
/// says a relative `XDG_STATE_HOME` is invalid and must be ignored. With neither variable
/// set, `gantry-state` in the working directory.
pub fn state_dir_for(
    root: bool,
    xdg_state_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> PathBuf {
    if root {
        return PathBuf::from("/var/lib/gantry");
    }
    let absolute = |v: Option<std::ffi::OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(state) = absolute(xdg_state_home) {
        return state.join("gantry");
    }
    if let Some(home) = absolute(home) {
        return home.join(".local/state/gantry");
    }
    PathBuf::from("gantry-state")
}

/// Whether the effective user is root, from `/proc/self/status` (`Uid: real effective ...`).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn read_bounded(path: &Path) -> Result<String, ConfigError> {
    let read_error = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::NotFound => ConfigError::NotFound {
            path: path.to_path_buf(),
        },
        _ => ConfigError::Read {
            path: path.to_path_buf(),
            source,
        },
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut text = String::new();
    file.take(MAX_CONFIG_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_CONFIG_FILE_BYTES,
        });
    }
    Ok(text)
}

/// A positive Go duration, or the message that names `key` and says why not.
fn positive_duration(key: &str, value: &str) -> Result<Duration, String> {
    match GoDuration::parse(value) {
        Ok(d) if d > GoDuration::ZERO => d
            .to_std()
            .ok_or_else(|| format!("{key} must be positive, was: {d}")),
        Ok(d) => Err(format!("{key} must be positive, was: {d}")),
        Err(e) => Err(format!("failed to parse \"{key}\": {e}")),
    }
}

/// A positive Kubernetes quantity in bytes (rounded up, as Kubernetes' `Value()`), or the
/// message that names `key` and says why not.
fn positive_quantity(key: &str, value: &str) -> Result<i64, String> {
    match Quantity::parse(value) {
        Ok(q) if q.nano_value() > 0 => Ok(q.value()),
        Ok(q) => Err(format!("{key} must be positive, was: {q}")),
        Err(e) => Err(format!("failed to parse \"{key}\": {e}")),
    }
}

/// A Kubernetes quantity that is zero or more, or the message that names `key` and says why
/// not.
fn non_negative_quantity(key: &str, value: &str) -> Result<Quantity, String> {
    match Quantity::parse(value) {
        Ok(q) if q.nano_value() >= 0 => Ok(q),
        Ok(q) => Err(format!("{key} must not be negative, was: {q}")),
        Err(e) => Err(format!("failed to parse \"{key}\": {e}")),
    }
}

/// Kubernetes' rule for a label value (`IsValidLabelValue`), with its text.
fn label_value_problem(value: &str) -> Option<String> {
    if value.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let valid = value.is_empty()
        || (value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()));
    (!valid).then(|| {
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' \
         or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or \
         'my_value',  or '12345', regex used for validation is \
         '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
            .to_string()
    })
}

/// Kubernetes' rule for a label key (`IsQualifiedName`: an optional DNS subdomain prefix and
/// `/`, then a name), with its text.
fn label_key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Some("prefix part must be non-empty".into());
        }
        if let Some(problem) = dns_subdomain_problem(prefix) {
            return Some(format!(
                "prefix part {}",
                problem.trim_start_matches(&format!("Invalid value: \"{prefix}\": "))
            ));
        }
    }
    if name.is_empty() {
        return Some("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    let valid = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    (!valid).then(|| {
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start \
         and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
         '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
            .to_string()
    })
}

fn duration_or(value: &str, default: &str) -> Duration {
    positive_duration("", value)
        .or_else(|_| positive_duration("", default))
        .unwrap_or_default()
}

/// The kebab-case keys of [`AutoscalingDefaults`], as its serialisation names them.
fn autoscaling_keys() -> Vec<String> {
    match serde_json::to_value(AutoscalingDefaults::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The setting a Knative `config-autoscaler` message is about: the one it starts with
/// (`stable-window = 5s, ...`) or quotes (`failed to parse "stable-window": ...`). The
/// longest match wins, so `max-scale-limit` is not taken for `max-scale`.
fn setting_named_in<'a>(message: &str, keys: &'a [String]) -> Option<&'a str> {
    let ends_word = |rest: &str| {
        rest.chars()
            .next()
            .is_none_or(|c| c != '-' && !c.is_ascii_alphanumeric())
    };
    keys.iter()
        .filter(|key| {
            message.strip_prefix(key.as_str()).is_some_and(ends_word)
                || message.contains(&format!("\"{key}\""))
        })
        .max_by_key(|key| key.len())
        .map(String::as_str)
}

/// Kubernetes' DNS-1123 label rule (namespaces), with its text.
fn dns_label_problem(value: &str) -> Option<String> {
    let valid = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    (!valid).then(|| {
        format!(
            "Invalid value: \"{value}\": a lowercase RFC 1123 label must consist of lower case \
             alphanumeric characters or '-', and must start and end with an alphanumeric \
             character (e.g. 'my-name',  or '123-abc', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        )
    })
}

/// Kubernetes' DNS-1123 subdomain rule (the domain services answer under), with its text.
fn dns_subdomain_problem(value: &str) -> Option<String> {
    let valid = !value.is_empty()
        && value.len() <= 253
        && value
            .split('.')
            .all(|label| dns_label_problem(label).is_none());
    (!valid).then(|| {
        format!(
            "Invalid value: \"{value}\": a lowercase RFC 1123 subdomain must consist of lower \
             case alphanumeric characters, '-' or '.', and must start and end with an \
             alphanumeric character (e.g. 'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    })
}

/// What each setting does, as printed above it by [`defaults_yaml`]. A test checks that
/// every field of [`Config`] and [`AutoscalingDefaults`] has an entry.
fn comment(key: &str) -> Option<&'static str> {
    Some(match key {
        "dir" => {
            "The watched folder of InferenceService YAML (*.yaml, *.yml, subfolders\n\
                  included), relative to the working directory. Flag --dir, env GANTRY_DIR."
        }
        "listen" => {
            "Listen address of the data plane: services answer here, at\n\
                  http://<name>.<namespace>.<domain>:<port>. Loopback only by default.\n\
                  Flag --listen, env GANTRY_LISTEN."
        }
        "queue-depth" => {
            "Requests one revision may hold waiting for a free replica slot;\n\
                          beyond it the router answers 503 with Retry-After."
        }
        "api" => {
            "Listen address of the management API and `gantry get` / `describe`.\n\
                  Loopback only by default. Flag --api, env GANTRY_API."
        }
        "state-dir" => {
            "Where gantry keeps its own state. Default: /var/lib/gantry as root,\n\
                        else $XDG_STATE_HOME/gantry, else ~/.local/state/gantry; the value\n\
                        below is the default for the user who printed this file.\n\
                        Flag --state-dir, env GANTRY_STATE_DIR."
        }
        "domain" => "Services answer at <name>.<namespace>.<domain>; `localhost` needs no DNS.",
        "default-namespace" => "The namespace of documents that set no metadata.namespace.",
        "unknown-fields" => {
            "A field no type knows: `error` rejects the document (as\n\
                             `kubectl apply` does), `warn` accepts it with a warning."
        }
        "max-file-bytes" => "YAML files larger than this many bytes are refused unread.",
        "debounce" => {
            "How long the folder must be quiet after a change before it is\n\
                       rescanned (a Go duration: 50ms, 1s, ...)."
        }
        "resync-interval" => {
            "How often the whole folder is rescanned in case file events\n\
                              were lost (a Go duration)."
        }
        "shm-size" => {
            "Size of every replica's /dev/shm (a Kubernetes quantity: 1Gi, 512Mi).\n\
             Model servers need more than Docker's 64Mi. A service that mounts an\n\
             emptyDir with a sizeLimit at /dev/shm gets that size instead."
        }
        "allow-privileged" => {
            "Whether securityContext.privileged: true is honoured. false refuses\n\
             such services with a reason."
        }
        "allow-host-network" => {
            "Whether hostNetwork: true is honoured (the container shares the\n\
             host's network). false refuses such services with a reason."
        }
        "allow-host-path" => {
            "Whether hostPath volumes are honoured (bind mounts of host folders).\n\
             false refuses such services with a reason."
        }
        "gpu-classes" => {
            "NVML name (exactly as `gantry gpus` shows it) -> the GPU's\n\
             gpu.nvidia.com/class, overriding gantry's own mapping, e.g.\n\
             {\"NVIDIA H200\": H200_NVLINK_141GB}. Classes are label values."
        }
        "host-labels" => {
            "Labels of this machine, matched by nodeSelector and node affinity like a\n\
             node's, e.g. {topology.kubernetes.io/region: LAS1}. They are laid over the\n\
             ones gantry sets itself (kubernetes.io/hostname, gantry.dev/cpu-model);\n\
             the gpu.nvidia.com/* labels come from each GPU and cannot be set here."
        }
        "reserved-cpu" => {
            "Cpu kept back from replicas for the system and gantry (a Kubernetes\n\
             quantity: \"2\", 500m), as a kubelet's system-reserved: replicas may\n\
             request the machine's cpus minus this."
        }
        "reserved-memory" => {
            "Memory kept back from replicas (a Kubernetes quantity: 4Gi): replicas\n\
             may request the machine's memory (MemTotal) minus this."
        }
        "storage" => {
            "Models named by a storageUri (docs/storage.md): the cache, pvc:// volumes\n\
             and storage access. Secrets and ServiceAccounts in the folder come first,\n\
             then these, then the environment (AWS_*, HF_TOKEN)."
        }
        "cache-dir" => "Where downloaded models are kept (null: <state-dir>/models).",
        "cache-size" => {
            "The most the model cache may hold (a Kubernetes quantity: 200Gi; 0: no\n\
             bound). Least recently used models no service names go first."
        }
        "parallel-downloads" => {
            "Requests in flight for one model: files and 16 MiB ranges of large objects\n\
             together."
        }
        "max-unpacked-size" => {
            "The most one archive may unpack to (a guard against archive bombs)."
        }
        "volumes" => {
            "pvc://<claim>/<path>: each claim's host folder, e.g. {models: /srv/models}.\n\
             Mounted read-only at /mnt/models (the path) and /mnt/pvc (the claim)."
        }
        "s3" => {
            "S3 access when no Secret gives one: endpoint (host:port or URL), region,\n\
             access-key-id, secret-access-key, use-https, verify-ssl, anonymous,\n\
             virtual-bucket (as KServe's serving.kserve.io/s3-* annotations)."
        }
        "hf-endpoint" => "The Hugging Face hub for hf:// (HF_ENDPOINT overrides it).",
        "verify-checksums" => {
            "Whether downloaded files are checked against their source's checksum (the\n\
             MD5 of a single-part S3 object, the SHA-256 of a Hugging Face file); sizes\n\
             are always checked."
        }
        "autoscaling" => {
            "Autoscaler defaults for every service (Knative `config-autoscaler`\n\
                          keys; GPU-tuned values). Services override them with\n\
                          `autoscaling.knative.dev/*` annotations and spec fields."
        }
        "enable-scale-to-zero" => {
            "Whether a service with minReplicas 0 may scale to zero\n\
                                   replicas (false keeps at least one)."
        }
        "container-concurrency-target-percentage" => {
            "Percent of the concurrency target the autoscaler actually aims at."
        }
        "container-concurrency-target-default" => {
            "Concurrent requests per replica aimed at when neither containerConcurrency\n\
             nor a target annotation is set."
        }
        "requests-per-second-target-default" => {
            "Requests per second per replica aimed at for the `rps` metric."
        }
        "target-burst-capacity" => {
            "Spare request capacity kept for bursts (-1: unlimited). The router is\n\
             always in the path, so this is validated and reported only."
        }
        "stable-window" => "The window whose average concurrency drives scaling (6s to 1h).",
        "panic-window-percentage" => {
            "The panic window, as a percentage of the stable window (1 to 100)."
        }
        "panic-threshold-percentage" => {
            "Panic mode starts when the panic window's load reaches this percentage\n\
             of the current capacity."
        }
        "max-scale-up-rate" => "At most this many times the current replicas per decision.",
        "max-scale-down-rate" => "At most the current replicas divided by this per decision.",
        "scale-to-zero-grace-period" => {
            "Once the autoscaler decides to scale to zero, the last replica is removed\n\
             within this long (the router holds new requests from then on)."
        }
        "scale-to-zero-pod-retention-period" => {
            "The last replica stays at least this long after the decision to scale to zero."
        }
        "scale-down-delay" => "Scale down only after the lower load has lasted this long.",
        "initial-scale" => "Replicas started when a revision is created.",
        "allow-zero-initial-scale" => "Whether initial-scale (and the annotation) may be 0.",
        "min-scale" => {
            "Lower replica bound for services that set neither minReplicas nor\n\
                        an annotation (KServe sets minReplicas 1 when it is unset)."
        }
        "max-scale" => "Upper replica bound when a service sets none (0: unlimited).",
        "max-scale-limit" => "Largest max-scale a service may ask for (0: no limit).",
        "tick-interval" => "How often the autoscaler decides (Knative's fixed 2s).",
        _ => return None,
    })
}

/// The built-in defaults as a commented YAML file (`gantry config defaults`).
pub fn defaults_yaml() -> String {
    render(&Config::default())
}

/// `config` as a YAML file with every setting under a comment saying what it does.
fn render(config: &Config) -> String {
    let mut out = String::from(
        "# gantry daemon configuration: every setting with its built-in default.\n\
         # Use it with `gantry serve --config FILE` (or GANTRY_CONFIG=FILE). Settings left out\n\
         # keep their defaults; unknown settings are errors. Precedence, lowest first:\n\
         # built-in defaults <- this file <- environment (GANTRY_*) <- command-line flags.\n",
    );
    // Paths are the only fields whose serialisation can fail (non-UTF-8); print them lossily.
    let mut printable = config.clone();
    printable.dir = PathBuf::from(printable.dir.to_string_lossy().into_owned());
    printable.state_dir = PathBuf::from(printable.state_dir.to_string_lossy().into_owned());
    if let Ok(Value::Mapping(settings)) = serde_yaml::to_value(&printable) {
        render_mapping(&mut out, &settings, "");
    }
    out
}

fn render_mapping(out: &mut String, settings: &serde_yaml::Mapping, indent: &str) {
    for (key, value) in settings {
        let key = key.as_str().unwrap_or_default();
        out.push('\n');
        for line in comment(key).unwrap_or("(undocumented)").lines() {
            out.push_str(&format!("{indent}# {}\n", line.trim()));
        }
        match value {
            // Free-form maps: their keys are data, not settings with comments of their own.
            Value::Mapping(inner) if MAP_SETTINGS.contains(&key) => {
                if inner.is_empty() {
                    out.push_str(&format!("{indent}{key}: {{}}\n"));
                } else {
                    out.push_str(&format!("{indent}{key}:\n"));
                    let text = serde_yaml::to_string(inner).unwrap_or_default();
                    for line in text.lines() {
                        out.push_str(&format!("{indent}  {line}\n"));
                    }
                }
            }
            Value::Mapping(inner) => {
                out.push_str(&format!("{indent}{key}:\n"));
                render_mapping(out, inner, &format!("{indent}  "));
            }
            scalar => {
                let text = serde_yaml::to_string(scalar).unwrap_or_default();
                out.push_str(&format!("{indent}{key}: {}\n", text.trim_end()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration that does not depend on who runs the tests.
    fn test_config() -> Config {
        Config {
            state_dir: PathBuf::from("/tmp/gantry-test-state"),
            ..Config::default()
        }
    }

    fn errors(text: &str) -> Vec<String> {
        Config::from_yaml(text, "gantry.yaml")
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn defaults_yaml_round_trips_to_the_defaults() {
        let text = defaults_yaml();
        assert_eq!(
            Config::from_yaml(&text, "defaults.yaml").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn any_config_round_trips_through_its_yaml() {
        let mut config = test_config();
        config.api = "0.0.0.0:9000".parse().unwrap();
        config.domain = "example.com".into();
        config.unknown_fields = UnknownFields::Warn;
        config.debounce = "1s".into();
        config.shm_size = "2Gi".into();
        config.allow_host_path = true;
        config.autoscaling.max_scale_down_rate = 2.5;
        config.autoscaling.stable_window = "1m".into();
        config.gpu_classes = BTreeMap::from([
            ("NVIDIA H200".into(), "H200_NVLINK_141GB".into()),
            ("Tesla V100-SXM2-16GB".into(), "1".into()),
        ]);
        config.host_labels = BTreeMap::from([
            ("topology.kubernetes.io/region".into(), "LAS1".into()),
            ("example.com/rack".into(), "007".into()),
            ("plain".into(), "".into()),
        ]);
        config.reserved_cpu = "1500m".into();
        config.reserved_memory = "4Gi".into();
        assert_eq!(
            Config::from_yaml(&config.to_yaml(), "c.yaml").unwrap(),
            config
        );
    }

    #[test]
    fn gpu_and_host_settings() {
        let config = Config::from_yaml(
            "gpu-classes:\n  NVIDIA H200: H200_NVLINK_141GB\n\
             host-labels:\n  topology.kubernetes.io/region: LAS1\n\
             reserved-cpu: 500m\nreserved-memory: 2Gi\n",
            "c.yaml",
        )
        .unwrap();
        assert_eq!(config.gpu_classes["NVIDIA H200"], "H200_NVLINK_141GB");
        assert_eq!(config.host_labels["topology.kubernetes.io/region"], "LAS1");
        assert_eq!(config.reserved_cpu_millis(), 500);
        assert_eq!(config.reserved_memory_bytes(), 2 << 30);
        let defaults = Config::default();
        assert_eq!(
            (
                defaults.reserved_cpu_millis(),
                defaults.reserved_memory_bytes()
            ),
            (0, 0)
        );
        assert_eq!(
            Config::from_yaml("reserved-cpu: \"2\"\n", "c.yaml")
                .unwrap()
                .reserved_cpu_millis(),
            2000
        );

        let check = |text: &str, expected: &[&str]| assert_eq!(errors(text), expected, "{text}");
        check(
            "reserved-cpu: \"-1\"\n",
            &["gantry.yaml:1:1: error: reserved-cpu must not be negative, was: -1"],
        );
        check(
            "reserved-memory: lots\n",
            &[
                "gantry.yaml:1:1: error: failed to parse \"reserved-memory\": quantities must \
               match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            ],
        );
        // Problems point at the key, dots and slashes included.
        check(
            "host-labels:\n  a: b\n  topology.kubernetes.io/region: Las Vegas\n",
            &[
                "gantry.yaml:3:3: error: host-labels.topology.kubernetes.io/region: Invalid \
               value: \"Las Vegas\": a valid label must be an empty string or consist of \
               alphanumeric characters, '-', '_' or '.', and must start and end with an \
               alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used \
               for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ],
        );
        check(
            "host-labels:\n  Example.com/rack: r1\n",
            &[
                "gantry.yaml:2:3: error: host-labels.Example.com/rack: Invalid value: \"Example.com/rack\": prefix \
               part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
               characters, '-' or '.', and must start and end with an alphanumeric character \
               (e.g. 'example.com', regex used for validation is \
               '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            ],
        );
        let name = errors("host-labels:\n  rack!: r1\n");
        assert!(
            name[0].starts_with(
                "gantry.yaml:2:3: error: host-labels.rack!: Invalid value: \"rack!\": name part must \
                 consist of"
            ),
            "{name:?}"
        );
        check(
            "host-labels:\n  gpu.nvidia.com/class: A40\n",
            &[
                "gantry.yaml:2:3: error: host-labels.gpu.nvidia.com/class: Forbidden: set by gantry \
               from each GPU (use gpu-classes to rename a class)",
            ],
        );
        check(
            "gpu-classes:\n  NVIDIA A40: \"\"\n",
            &[
                "gantry.yaml:2:3: error: gpu-classes.NVIDIA A40: Invalid value: \"\": must not be \
               empty",
            ],
        );
        let class = errors("gpu-classes:\n  NVIDIA A40: A40 (PCIe)\n");
        assert!(
            class[0].starts_with(
                "gantry.yaml:2:3: error: gpu-classes.NVIDIA A40: Invalid value: \"A40 (PCIe)\": \
                 a valid label must be"
            ),
            "{class:?}"
        );
        check(
            "gpu-classes:\n  ' NVIDIA A40': A40\n",
            &[
                "gantry.yaml:2:3: error: gpu-classes. NVIDIA A40: Invalid value: \" NVIDIA A40\": an NVML \
               name, exactly as `gantry gpus` shows it, without spaces around it",
            ],
        );
        check(
            "host-labels:\n  region: 1\n",
            &["gantry.yaml:2:3: error: host-labels.region: invalid type: integer `1`, expected a \
               string"],
        );
    }

    #[test]
    fn every_setting_is_printed_under_its_own_comment() {
        let text = defaults_yaml();
        let lines: Vec<&str> = text.lines().collect();
        let documented = |indent: &str, key: &str| {
            let at = lines
                .iter()
                .position(|l| l.starts_with(&format!("{indent}{key}:")))
                .unwrap_or_else(|| panic!("`{key}` is missing from defaults_yaml()"));
            assert!(
                lines[at - 1].trim_start().starts_with("# "),
                "`{key}` has no comment above it"
            );
            assert!(comment(key).is_some(), "`{key}` has no entry in comment()");
        };
        let config = serde_json::to_value(test_config()).unwrap();
        for key in config.as_object().unwrap().keys() {
            documented("", key);
        }
        let autoscaling = serde_json::to_value(AutoscalingDefaults::default()).unwrap();
        for key in autoscaling.as_object().unwrap().keys() {
            documented("  ", key);
        }
        assert!(!text.contains("(undocumented)"));
    }

    #[test]
    fn built_in_defaults() {
        let config = Config::default();
        assert_eq!(config.dir, PathBuf::from("services"));
        assert_eq!(config.api.to_string(), "127.0.0.1:8081");
        assert_eq!(config.domain, "localhost");
        assert_eq!(config.default_namespace, "default");
        assert_eq!(config.unknown_fields, UnknownFields::Error);
        assert_eq!(config.max_file_bytes, DEFAULT_MAX_FILE_BYTES);
        assert_eq!(config.debounce(), Duration::from_millis(50));
        assert_eq!(config.resync_interval(), Duration::from_secs(30));
        assert_eq!(config.shm_size_bytes(), 1 << 30);
        assert_eq!(config.security_policy(), SecurityPolicy::default());
        assert_eq!(config.autoscaling, AutoscalingDefaults::default());
        assert!(config.validate().is_empty());
    }

    #[test]
    fn empty_and_partial_files_keep_the_defaults() {
        assert_eq!(Config::from_yaml("", "c.yaml").unwrap(), Config::default());
        let config = Config::from_yaml(
            "debounce: 200ms\nunknown-fields: warn\nautoscaling:\n  stable-window: 60s\n",
            "c.yaml",
        )
        .unwrap();
        assert_eq!(config.debounce(), Duration::from_millis(200));
        assert_eq!(config.unknown_fields, UnknownFields::Warn);
        assert_eq!(config.autoscaling.stable_window, "60s");
        assert_eq!(config.autoscaling.max_scale_up_rate, 20.0);
        assert_eq!(config.domain, "localhost");
    }

    #[test]
    fn unknown_settings_get_a_did_you_mean_with_their_line() {
        assert_eq!(
            errors("domain: example.com\ndebunce: 1s\n"),
            ["gantry.yaml:2:1: error: unknown field \"debunce\"; did you mean \"debounce\"?"]
        );
        assert_eq!(
            errors("autoscaling:\n  stable-windw: 60s\n"),
            [
                "gantry.yaml:2:3: error: unknown field \"autoscaling.stable-windw\"; \
                 did you mean \"stable-window\"?"
            ]
        );
    }

    #[test]
    fn bad_values_name_the_setting_and_line() {
        let check = |text: &str, expected: &[&str]| assert_eq!(errors(text), expected, "{text}");
        check(
            "domain: localhost\ndebounce: fast\n",
            &["gantry.yaml:2:1: error: failed to parse \"debounce\": \
               time: invalid duration \"fast\""],
        );
        check(
            "resync-interval: 0s\n",
            &["gantry.yaml:1:1: error: resync-interval must be positive, was: 0s"],
        );
        check(
            "debounce: -5ms\n",
            &["gantry.yaml:1:1: error: debounce must be positive, was: -5ms"],
        );
        // A bare number is a YAML integer, not a duration: the type error names the setting.
        check(
            "debounce: 50\n",
            &["gantry.yaml:1:1: error: debounce: invalid type: integer `50`, expected a string"],
        );
        check(
            "debounce: 50x\n",
            &["gantry.yaml:1:1: error: failed to parse \"debounce\": \
               time: unknown unit \"x\" in duration \"50x\""],
        );
        check(
            "max-file-bytes: 0\n",
            &["gantry.yaml:1:1: error: max-file-bytes must be positive, was: 0"],
        );
        check(
            "\nautoscaling:\n  max-scale-up-rate: 1\n  stable-window: 5s\n",
            &[
                "gantry.yaml:3:3: error: autoscaling.max-scale-up-rate: \
                 max-scale-up-rate = 1, must be greater than 1.0",
                "gantry.yaml:4:3: error: autoscaling.stable-window: \
                 stable-window = 5s, must be in [6s; 1h0m0s] range",
            ],
        );
        check(
            "autoscaling:\n  tick-interval: soon\n",
            &[
                "gantry.yaml:2:3: error: autoscaling.tick-interval: failed to parse data: \
               failed to parse \"tick-interval\": time: invalid duration \"soon\"",
            ],
        );
        let domain = errors("domain: Example.COM\n");
        assert!(
            domain[0].starts_with("gantry.yaml:1:1: error: domain: Invalid value: \"Example.COM\""),
            "{domain:?}"
        );
        let namespace = errors("default-namespace: my_ns\n");
        assert!(
            namespace[0].contains("default-namespace: Invalid value: \"my_ns\""),
            "{namespace:?}"
        );
        check(
            "api: localhost:8081\n",
            &[
                "gantry.yaml:1:1: error: api: invalid socket address syntax: expected IP:PORT, \
               such as 127.0.0.1:8081 or [::1]:8081 (not a host name)",
            ],
        );
        let kind = errors("unknown-fields: ignore\n");
        assert!(
            kind[0]
                .contains("Unsupported value: \"ignore\": supported values: \"error\", \"warn\""),
            "{kind:?}"
        );
    }

    #[test]
    fn container_settings() {
        let config = Config::from_yaml(
            "shm-size: 512Mi\nallow-privileged: true\nallow-host-network: true\n",
            "c.yaml",
        )
        .unwrap();
        assert_eq!(config.shm_size_bytes(), 512 << 20);
        assert_eq!(
            config.security_policy(),
            SecurityPolicy {
                allow_privileged: true,
                allow_host_network: true,
                allow_host_path: false,
            }
        );
        assert_eq!(
            Config::from_yaml("shm-size: \"2e9\"\n", "c.yaml")
                .unwrap()
                .shm_size_bytes(),
            2_000_000_000
        );
        let check = |text: &str, expected: &[&str]| assert_eq!(errors(text), expected, "{text}");
        check(
            "shm-size: 1GB\n",
            &[
                "gantry.yaml:1:1: error: failed to parse \"shm-size\": quantities must match the \
               regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            ],
        );
        // As for durations, a bare YAML number is not taken for a quantity.
        check(
            "shm-size: 1073741824\n",
            &[
                "gantry.yaml:1:1: error: shm-size: invalid type: integer `1073741824`, \
               expected a string",
            ],
        );
        check(
            "shm-size: \"0\"\n",
            &["gantry.yaml:1:1: error: shm-size must be positive, was: 0"],
        );
        check(
            "allow-privileged: yes please\n",
            &[
                "gantry.yaml:1:1: error: allow-privileged: invalid type: string \"yes please\", \
               expected true or false",
            ],
        );
        let mut invalid = test_config();
        invalid.shm_size = "lots".into();
        assert_eq!(invalid.shm_size_bytes(), 1 << 30);
    }

    #[test]
    fn every_problem_is_reported() {
        let all = errors("debounce: x\nresync-interval: 0s\nmax-file-bytes: 0\n");
        assert_eq!(all.len(), 3, "{all:?}");
    }

    #[test]
    fn storage_settings_are_checked() {
        let all = errors(
            "storage:\n  cache-size: lots\n  parallel-downloads: 0\n  max-unpacked-size: '0'\n  \
             volumes: {models: relative/dir}\n  s3: {access-key-id: AKIA}\n",
        );
        let text = format!("{all:?}");
        for expected in [
            "storage.cache-size",
            "storage.parallel-downloads must be positive",
            "storage.max-unpacked-size",
            "storage.volumes.models: expected an absolute host folder",
            "access-key-id and secret-access-key go together",
        ] {
            assert!(text.contains(expected), "{expected} in {text}");
        }
        assert_eq!(all.len(), 5, "{all:?}");
        assert!(!text.contains("AKIA"));
    }

    #[test]
    fn a_problem_spanning_two_settings_names_the_first() {
        let keys = autoscaling_keys();
        let check = |message: &str, expected: Option<&str>| {
            assert_eq!(setting_named_in(message, &keys), expected, "{message}");
        };
        check(
            "max-scale = 5, must be in [1, max-scale-limit(3)] range",
            Some("max-scale"),
        );
        check(
            "max-scale-up-rate = 1, must be greater than 1.0",
            Some("max-scale-up-rate"),
        );
        check(
            "min-scale (3) must be less than max-scale (2)",
            Some("min-scale"),
        );
        check(
            "container-concurrency-target-percentage and container-concurrency-target-default \
             yield target concurrency of 0.001, can't be less than 0.01",
            Some("container-concurrency-target-percentage"),
        );
        check("something else", None);
    }

    #[test]
    fn precedence_defaults_then_file_then_overrides() {
        let mut config =
            Config::from_yaml("dir: from-file\napi: 127.0.0.1:9001\n", "c.yaml").unwrap();
        assert_eq!(config.dir, PathBuf::from("from-file"));
        let state_dir = config.state_dir.clone();
        config.apply(Overrides::default());
        assert_eq!(config.dir, PathBuf::from("from-file"));
        assert_eq!(config.api.to_string(), "127.0.0.1:9001");
        config.apply(Overrides {
            dir: Some(PathBuf::from("from-flag")),
            ..Overrides::default()
        });
        assert_eq!(config.dir, PathBuf::from("from-flag"));
        assert_eq!(
            config.api.to_string(),
            "127.0.0.1:9001",
            "the file's value stays"
        );
        assert_eq!(config.state_dir, state_dir, "the default stays");
        config.apply(Overrides {
            dir: None,
            listen: Some("127.0.0.1:9080".parse().unwrap()),
            api: Some("127.0.0.1:9002".parse().unwrap()),
            state_dir: Some(PathBuf::from("/srv/gantry")),
        });
        assert_eq!(config.dir, PathBuf::from("from-flag"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:9080");
        assert_eq!(config.api.to_string(), "127.0.0.1:9002");
        assert_eq!(config.state_dir, PathBuf::from("/srv/gantry"));
    }

    #[test]
    fn state_dir_rule() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        let check = |root, xdg, home, expected: &str| {
            assert_eq!(state_dir_for(root, xdg, home), PathBuf::from(expected));
        };
        check(true, os("/x"), os("/root"), "/var/lib/gantry");
        check(false, os("/x/state"), os("/home/a"), "/x/state/gantry");
        check(false, None, os("/home/a"), "/home/a/.local/state/gantry");
        check(
            false,
            os("relative"),
            os("/home/a"),
            "/home/a/.local/state/gantry",
        );
        check(false, os(""), os("/home/a"), "/home/a/.local/state/gantry");
        check(false, None, None, "gantry-state");
    }

    #[test]
    fn load_reads_the_named_file() {
        assert_eq!(Config::load(None).unwrap(), Config::default());

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.yaml");
        let err = Config::load(Some(&missing)).unwrap_err();
        assert!(matches!(err, ConfigError::NotFound { .. }));
        assert_eq!(
            err.to_string(),
            format!("config file {} does not exist", missing.display())
        );

        let file = dir.path().join("gantry.yaml");
        std::fs::write(&file, "domain: example.com\n").unwrap();
        assert_eq!(Config::load(Some(&file)).unwrap().domain, "example.com");

        std::fs::write(&file, "domian: example.com\n").unwrap();
        let err = Config::load(Some(&file)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}:1:1: error: unknown field \"domian\"; did you mean \"domain\"?",
                file.display()
            )
        );

        let err = Config::load(Some(dir.path())).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");

        let big = dir.path().join("big.yaml");
        std::fs::write(&big, "#".repeat(MAX_CONFIG_FILE_BYTES as usize + 1)).unwrap();
        assert!(matches!(
            Config::load(Some(&big)).unwrap_err(),
            ConfigError::TooLarge { .. }
        ));
    }

    #[test]
    fn duration_accessors_fall_back_on_invalid_values() {
        let mut config = test_config();
        config.debounce = "nonsense".into();
        config.resync_interval = "1m30s".into();
        assert_eq!(config.debounce(), Duration::from_millis(50));
        assert_eq!(config.resync_interval(), Duration::from_secs(90));
    }
}
