//! `gantry serve`: the daemon.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tokio::sync::watch;
use tracing::{info, warn};

use std::sync::Arc;

use crate::api::logs::LogSource;
use crate::api::{router, ApiState};
use crate::config::{Config, Overrides};
use crate::gpu::{GpuProbe, Inventory, Labels, NvmlProbe, StaticProbe};
use crate::reconcile::executor::{RuntimeStatus, Settings};
use crate::reconcile::model::ModelAccess;
use crate::router::Router;
use crate::runtime::docker::Docker;
use crate::scheduler::{self, Host};
use crate::spec::catalog::LoadOptions;
use crate::storage::models::Models;
use crate::store::Store;
use crate::watch::{FolderState, WatchSettings};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The folder of InferenceService YAML to serve (watched, with subfolders).
    #[arg(long, env = "GANTRY_DIR")]
    dir: Option<PathBuf>,
    /// Data plane listen address, where services answer (default 127.0.0.1:8080).
    #[arg(long, env = "GANTRY_LISTEN")]
    listen: Option<SocketAddr>,
    /// Management API listen address (default 127.0.0.1:8081).
    #[arg(long, env = "GANTRY_API")]
    api: Option<SocketAddr>,
    /// Where gantry keeps its state (default ~/.local/state/gantry, /var/lib/gantry as root).
    #[arg(long, env = "GANTRY_STATE_DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    config: super::ConfigFileArgs,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "GANTRY_LOG_JSON")]
    log_json: bool,
    /// Watch and validate only: start no containers and need no Docker engine.
    #[arg(long, env = "GANTRY_NO_CONTAINERS")]
    no_containers: bool,
    /// Read the GPU inventory from this file instead of NVML (machines without GPUs, tests).
    #[arg(long, env = "GANTRY_GPUS_FILE", conflicts_with = "nvml_lib")]
    gpus_file: Option<PathBuf>,
    /// Load this NVML library instead of `libnvidia-ml.so.1`.
    #[arg(long, env = "GANTRY_NVML_LIB")]
    nvml_lib: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_tracing(args.log_json);
    let mut config = Config::load(args.config.config.as_deref())?;
    config.apply(Overrides {
        dir: args.dir,
        listen: args.listen,
        api: args.api,
        state_dir: args.state_dir,
    });
    // Revisions remember where their YAML lives: relative model paths need an absolute base.
    config.dir = std::path::absolute(&config.dir)
        .with_context(|| format!("cannot resolve the folder {}", config.dir.display()))?;
    let problems = config.validate();
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{p}");
        }
        anyhow::bail!("the configuration is invalid");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let gpus = GpuSource {
        file: args.gpus_file,
        nvml_lib: args.nvml_lib,
    };
    runtime.block_on(serve(config, gpus, !args.no_containers))?;
    Ok(ExitCode::SUCCESS)
}

fn init_tracing(json: bool) {
    use tracing_subscriber::{fmt, prelude::*, EnvFilter};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    // Logs go to stderr either way; colours only when a person is watching.
    if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .init();
    } else {
        use std::io::IsTerminal;
        registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .init();
    }
}

/// Where the GPU inventory comes from.
#[derive(Debug, Clone, Default)]
pub struct GpuSource {
    pub file: Option<PathBuf>,
    pub nvml_lib: Option<PathBuf>,
}

/// How often the GPU inventory is read again.
const GPU_POLL: std::time::Duration = std::time::Duration::from_secs(10);

/// Polls the GPU probe on its own thread (NVML calls block), publishing each inventory.
fn gpu_inventory(source: &GpuSource) -> anyhow::Result<watch::Receiver<Inventory>> {
    let probe: Box<dyn GpuProbe> = match &source.file {
        Some(file) => Box::new(StaticProbe::from_file(file).map_err(|diagnostics| {
            anyhow::anyhow!(diagnostics
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n"))
        })?),
        None => Box::new(NvmlProbe::new(source.nvml_lib.as_deref())),
    };
    let first = probe.snapshot();
    info!(gpus = first.gpus.len(), source = %first.source, "GPU inventory");
    let (publish, inventory) = watch::channel(first);
    std::thread::spawn(move || loop {
        std::thread::sleep(GPU_POLL);
        if publish.send_if_modified(|old| {
            let new = probe.snapshot();
            let changed = old
                .gpus
                .iter()
                .map(|g| &g.uuid)
                .ne(new.gpus.iter().map(|g| &g.uuid));
            *old = new;
            changed
        }) {
            info!("the GPU inventory changed");
        }
        if publish.is_closed() {
            return;
        }
    });
    Ok(inventory)
}

/// The host label gantry derives from `/proc/cpuinfo`: the CPU's model name as a label value.
pub const CPU_MODEL_LABEL: &str = "gantry.dev/cpu-model";

/// This machine as a scheduling target: its labels ([`host_labels`]) and its cpu and memory
/// less the configured reservation.
fn this_host(config: &Config) -> Host {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<i64>().ok())
        })
        .map_or(i64::MAX, |kib| kib.saturating_mul(1024));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let (allocatable_cpu_millis, allocatable_memory_bytes) = scheduler::allocatable(
        cpus.saturating_mul(1000),
        memory,
        config.reserved_cpu_millis(),
        config.reserved_memory_bytes(),
    );
    Host {
        labels: host_labels(&hostname, &cpuinfo, &config.host_labels),
        allocatable_cpu_millis,
        allocatable_memory_bytes,
    }
}

/// The host's labels: `kubernetes.io/hostname` (the hostname in lower case, as the kubelet
/// names its node) and `gantry.dev/cpu-model` ([`cpu_model`]), with the config's
/// `host-labels` laid over them.
pub fn host_labels(hostname: &str, cpuinfo: &str, configured: &Labels) -> Labels {
    let mut labels = Labels::new();
    let hostname = scheduler::label_value(&hostname.trim().to_lowercase());
    if !hostname.is_empty() {
        labels.insert(scheduler::HOSTNAME_LABEL.to_string(), hostname);
    }
    if let Some(model) = cpu_model(cpuinfo) {
        labels.insert(CPU_MODEL_LABEL.to_string(), model);
    }
    labels.extend(configured.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}

/// The first `model name` of `/proc/cpuinfo` as a label value: the trademark marks and the
/// `@` dropped, every other run of characters a label value cannot hold turned into one `-`
/// (`Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz` → `Intel-Xeon-Gold-6248R-CPU-3.00GHz`,
/// `AMD EPYC 7763 64-Core Processor` → `AMD-EPYC-7763-64-Core-Processor`). `None` where the
/// kernel reports no model name (most ARM machines).
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    let name = cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim())
    })?;
    let mut text = name.to_string();
    for mark in ["(R)", "(r)", "(TM)", "(tm)"] {
        text = text.replace(mark, " ");
    }
    let words: Vec<&str> = text.split_whitespace().filter(|w| *w != "@").collect();
    let value = scheduler::label_value(&words.join(" "));
    let mut collapsed = String::with_capacity(value.len());
    for c in value.chars() {
        if !(c == '-' && collapsed.ends_with('-')) {
            collapsed.push(c);
        }
    }
    (!collapsed.is_empty()).then_some(collapsed)
}

/// Runs the daemon until SIGINT or SIGTERM. The GPU inventory is read in both modes (so
/// `gantry get gpus` answers without containers too); with `containers`, the reconciler runs
/// the services on the Docker engine.
pub async fn serve(config: Config, gpu_source: GpuSource, containers: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.state_dir).with_context(|| {
        format!(
            "cannot create the state directory {}",
            config.state_dir.display()
        )
    })?;
    let settings = WatchSettings {
        dir: config.dir.clone(),
        max_file_bytes: config.max_file_bytes,
        debounce: config.debounce(),
        resync_interval: config.resync_interval(),
        load: LoadOptions {
            unknown_fields: config.unknown_fields,
            default_namespace: config.default_namespace.clone(),
            autoscaling: config.autoscaling.clone(),
        },
    };
    let (publish, folder) = watch::channel(FolderState::default());
    let (stop, stopped) = watch::channel(false);
    let watcher = tokio::spawn(crate::watch::run(settings, publish, stopped.clone()));

    let gpus = gpu_inventory(&gpu_source)?;
    let host = this_host(&config);
    info!(
        labels = ?host.labels,
        allocatable_cpu_millis = host.allocatable_cpu_millis,
        allocatable_memory_bytes = host.allocatable_memory_bytes,
        "this host"
    );
    let (runtime_status, logs, scale_views, data_plane) = if containers {
        let docker = Arc::new(Docker::connect(None).await?);
        info!(
            engine = docker.host(),
            version = docker.server_version(),
            "connected to the Docker engine"
        );
        let store = Store::open(&config.state_dir)?;
        let (publish_status, status) = watch::channel(RuntimeStatus::default());
        let (publish_scale, scale) = watch::channel(BTreeMap::new());
        let (publish_views, views) = watch::channel(BTreeMap::new());
        let (data_plane, poked) =
            Router::new(&config.domain, config.listen.port(), config.queue_depth);
        let settings = Settings {
            policy: config.security_policy(),
            shm_size_bytes: config.shm_size_bytes(),
            instance: instance_of(&config.state_dir),
            gpus: gpus.clone(),
            host: host.clone(),
            gpu_classes: config.gpu_classes.clone(),
            scale,
            drain: Some(data_plane.clone()),
            data_plane_port: config.listen.port(),
            models: Some(ModelAccess {
                models: Models::open(config.model_settings()).with_context(|| {
                    format!(
                        "cannot open the model cache at {}",
                        config.model_settings().cache_dir.display()
                    )
                })?,
                config: config.storage.clone(),
                env: std::env::vars().collect(),
            }),
        };
        tokio::spawn(crate::reconcile::executor::run(
            docker.clone(),
            store,
            settings,
            folder.clone(),
            publish_status,
            stopped.clone(),
        ));
        tokio::spawn(crate::router::follow(
            data_plane.clone(),
            folder.clone(),
            status.clone(),
            stopped.clone(),
        ));
        tokio::spawn(crate::reconcile::scaling::run(
            data_plane.clone(),
            folder.clone(),
            status.clone(),
            publish_scale,
            publish_views,
            poked,
            stopped.clone(),
        ));
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} for the data plane (--listen)",
                    config.listen
                )
            })?;
        info!(listen = %config.listen, "data plane listening");
        tokio::spawn(crate::router::proxy::serve(
            listener,
            data_plane.clone(),
            stopped.clone(),
        ));
        // Containers reach the router on the bridge's gateway (`host-gateway`): a transformer
        // calls its predictor there. Not needed when the data plane already listens on every
        // address.
        if !config.listen.ip().is_unspecified() {
            match docker.bridge_gateway().await {
                Some(gateway) => {
                    let address = std::net::SocketAddr::new(gateway, config.listen.port());
                    match tokio::net::TcpListener::bind(address).await {
                        Ok(bridge) => {
                            info!(%address, "data plane listening for containers");
                            tokio::spawn(crate::router::proxy::serve(
                                bridge,
                                data_plane.clone(),
                                stopped.clone(),
                            ));
                        }
                        Err(e) => warn!(
                            %address,
                            error = %e,
                            "cannot listen on the Docker bridge: transformers cannot reach their predictors"
                        ),
                    }
                }
                None => warn!(
                    "the Docker engine has no bridge network: transformers cannot reach their predictors"
                ),
            }
        }

        (
            Some(status),
            Some(docker as Arc<dyn LogSource>),
            Some(views),
            Some(data_plane),
        )
    } else {
        info!("running without containers (--no-containers): watching and validating only");
        (None, None, None, None)
    };

    let listener = tokio::net::TcpListener::bind(config.api)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for the management API (--api)",
                config.api
            )
        })?;
    info!(api = %config.api, dir = %config.dir.display(), "gantry is serving");
    let app = router(ApiState {
        folder,
        runtime: runtime_status,
        logs,
        domain: config.domain.clone(),
        port: config.listen.port(),
        scale: scale_views,
        data_plane,
        dir: config.dir.display().to_string(),
        gpus: Some(gpus),
        host_labels: host.labels,
        gpu_classes: config.gpu_classes.clone(),
    });
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutting down");
        let _ = stop.send(true);
    });
    let mut on_stop = stopped;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = on_stop.wait_for(|s| *s).await;
        })
        .await
        .context("the management API failed")?;
    let _ = watcher.await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A short, stable name for this daemon: a digest of its (absolute) state directory.
fn instance_of(state_dir: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let path = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let digest = Sha256::digest(path.display().to_string().as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_models_are_label_values() {
        for (cpuinfo, expected) in [
            (
                "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz\n",
                Some("Intel-Xeon-Gold-6248R-CPU-3.00GHz"),
            ),
            (
                "model name\t: AMD EPYC 7763 64-Core Processor\nmodel name\t: other\n",
                Some("AMD-EPYC-7763-64-Core-Processor"),
            ),
            (
                "model name\t: 13th Gen Intel(R) Core(TM) i9-13900K\n",
                Some("13th-Gen-Intel-Core-i9-13900K"),
            ),
            ("model name\t: Weird / CPU, (v2) _\n", Some("Weird-CPU-v2")),
            ("processor\t: 0\nCPU part\t: 0xd0c\n", None),
            ("model name\t: (R)\n", None),
            ("", None),
        ] {
            assert_eq!(cpu_model(cpuinfo).as_deref(), expected, "{cpuinfo:?}");
        }
        let long = format!("model name : {}", "X".repeat(100));
        assert_eq!(cpu_model(&long).unwrap().len(), 63);
    }

    #[test]
    fn configured_host_labels_win() {
        let cpuinfo = "model name\t: AMD EPYC 7763 64-Core Processor\n";
        let labels = host_labels("GPU-Box-1\n", cpuinfo, &Labels::new());
        assert_eq!(
            labels,
            Labels::from([
                ("kubernetes.io/hostname".into(), "gpu-box-1".into()),
                (
                    CPU_MODEL_LABEL.into(),
                    "AMD-EPYC-7763-64-Core-Processor".into()
                ),
            ])
        );
        let configured = Labels::from([
            ("topology.kubernetes.io/region".into(), "LAS1".into()),
            ("kubernetes.io/hostname".into(), "node-a".into()),
        ]);
        let labels = host_labels("box", "", &configured);
        assert_eq!(labels["kubernetes.io/hostname"], "node-a");
        assert_eq!(labels["topology.kubernetes.io/region"], "LAS1");
        assert!(!labels.contains_key(CPU_MODEL_LABEL));
    }
}
