//! `gantry get isvc`, `gantry get gpus` and `gantry describe isvc NAME`: kubectl-like views of
//! the daemon's API.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use super::{ApiArgs, Output, Resource};
use crate::api::{ApiError, GpuList, GpuView, ServiceList, ServiceView};

#[derive(Debug, Args)]
pub struct GetArgs {
    /// What to list: `isvc` (InferenceServices) or `gpus`.
    resource: Resource,
    /// One service by name (one GPU by UUID).
    name: Option<String>,
    /// Only this namespace (default: all namespaces; GPUs have none).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Print JSON or YAML instead of a table.
    #[arg(short, long, value_enum)]
    output: Option<Output>,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// What to describe: `isvc`.
    resource: Resource,
    /// The service's name.
    name: String,
    /// Its namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Print JSON or YAML instead of text.
    #[arg(short, long, value_enum)]
    output: Option<Output>,
    #[command(flatten)]
    api: ApiArgs,
}

fn fetch<T: serde::de::DeserializeOwned>(api: &ApiArgs, path: &str) -> anyhow::Result<T> {
    let url = format!("http://{}{path}", api.api);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let response = reqwest::get(&url).await.with_context(|| {
            format!(
                "cannot reach the gantry daemon at {} (is `gantry serve` running? --api / GANTRY_API set the address)",
                api.api
            )
        })?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ApiError>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            bail!("{message}");
        }
        serde_json::from_slice(&body).with_context(|| format!("unexpected answer from {url}"))
    })
}

fn print_as<T: serde::Serialize>(value: &T, output: Output) -> anyhow::Result<()> {
    let value = crate::api::without_nulls(value);
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        Output::Yaml => print!("{}", serde_yaml::to_string(&value)?),
    }
    Ok(())
}

pub fn run_get(args: GetArgs) -> anyhow::Result<ExitCode> {
    if args.resource == Resource::Gpus {
        return get_gpus(&args);
    }
    let items: Vec<ServiceView> = match &args.name {
        Some(name) => {
            let ns = args.namespace.as_deref().unwrap_or("default");
            vec![fetch(
                &args.api,
                &format!("/api/v1/namespaces/{ns}/inferenceservices/{name}"),
            )?]
        }
        None => {
            let path = match &args.namespace {
                Some(ns) => format!("/api/v1/namespaces/{ns}/inferenceservices"),
                None => "/api/v1/inferenceservices".to_string(),
            };
            fetch::<ServiceList>(&args.api, &path)?.items
        }
    };
    if let Some(output) = args.output {
        match (&args.name, items.first()) {
            (Some(_), Some(one)) => print_as(one, output)?,
            _ => print_as(&items, output)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    if items.is_empty() {
        eprintln!("No resources found");
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", table(&items));
    Ok(ExitCode::SUCCESS)
}

/// kubectl-style columns, padded to the widest cell.
/// kubectl-style columns: each padded to its widest cell, three spaces apart.
pub(super) fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

pub fn table(items: &[ServiceView]) -> String {
    const COLUMNS: [&str; 7] = [
        "NAMESPACE",
        "NAME",
        "URL",
        "READY",
        "LATESTREADYREVISION",
        "SPEC",
        "FILE",
    ];
    let mut rows = vec![COLUMNS.map(String::from)];
    for s in items {
        let errors = s.diagnostics.iter().filter(|d| d.is_error()).count();
        let spec = match errors {
            0 => s.spec_status.clone(),
            n => format!(
                "{} ({n} error{})",
                s.spec_status,
                if n == 1 { "" } else { "s" }
            ),
        };
        let (ready, latest_ready) = match &s.status {
            None => ("-".to_string(), "-".to_string()),
            Some(st) => (
                st.conditions
                    .iter()
                    .find(|c| c.kind == "Ready")
                    .map_or_else(|| "Unknown".into(), |c| c.status.clone()),
                st.components
                    .first()
                    .and_then(|c| c.latest_ready_revision.clone())
                    .unwrap_or_else(|| "<none>".into()),
            ),
        };
        rows.push([
            s.namespace.clone(),
            s.name.clone(),
            s.url.clone(),
            ready,
            latest_ready,
            spec,
            s.file.clone(),
        ]);
    }
    columns(&rows)
}

/// `gantry get gpus [UUID]`: like a node list, GPUs belong to no namespace.
fn get_gpus(args: &GetArgs) -> anyhow::Result<ExitCode> {
    let list: GpuList = fetch(&args.api, "/api/v1/gpus")?;
    let items: Vec<GpuView> = match &args.name {
        Some(uuid) => {
            let Some(one) = list.items.into_iter().find(|g| &g.gpu.uuid == uuid) else {
                bail!("gpus \"{uuid}\" not found (source: {})", list.source);
            };
            vec![one]
        }
        None => list.items,
    };
    if let Some(output) = args.output {
        match (&args.name, items.first()) {
            (Some(_), Some(one)) => print_as(one, output)?,
            _ => print_as(&items, output)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    if items.is_empty() {
        eprintln!("No GPUs found ({}).", list.source);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", gpu_table(&items));
    Ok(ExitCode::SUCCESS)
}

/// `UUID  CLASS  MEMORY  UTIL  HELD BY`, kubectl-style.
pub fn gpu_table(items: &[GpuView]) -> String {
    const COLUMNS: [&str; 5] = ["UUID", "CLASS", "MEMORY", "UTIL", "HELD BY"];
    let mut rows = vec![COLUMNS.map(String::from)];
    for g in items {
        rows.push([
            g.gpu.uuid.clone(),
            g.class.clone(),
            binary_quantity(g.gpu.memory_bytes),
            g.gpu
                .utilization_percent
                .map_or_else(|| "-".into(), |u| format!("{u}%")),
            g.held_by.as_ref().map_or_else(
                || "-".into(),
                |h| {
                    format!(
                        "{}/{} {} #{}",
                        h.namespace, h.service, h.revision, h.replica
                    )
                },
            ),
        ]);
    }
    columns(&rows)
}

/// Bytes as the largest exact binary quantity (`48Gi`, `46068Mi`), as `gantry gpus` prints
/// them.
fn binary_quantity(bytes: i64) -> String {
    for (shift, suffix) in [(40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")] {
        if bytes != 0 && bytes % (1i64 << shift) == 0 {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

pub fn run_describe(args: DescribeArgs) -> anyhow::Result<ExitCode> {
    if args.resource != Resource::Isvc {
        bail!("`describe` shows InferenceServices only (`describe isvc NAME`); `gantry get gpus -o yaml` shows every GPU in full");
    }
    let view: ServiceView = fetch(
        &args.api,
        &format!(
            "/api/v1/namespaces/{}/inferenceservices/{}",
            args.namespace, args.name
        ),
    )?;
    if let Some(output) = args.output {
        print_as(&view, output)?;
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", describe(&view));
    Ok(ExitCode::SUCCESS)
}

/// The text `describe` prints.
pub fn describe(v: &ServiceView) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "Name:         {}", v.name);
    let _ = writeln!(out, "Namespace:    {}", v.namespace);
    let _ = writeln!(out, "URL:          {}", v.url);
    let _ = writeln!(out, "File:         {}", v.file);
    let _ = writeln!(
        out,
        "Spec:         {} (generation {})",
        v.spec_status, v.generation
    );
    if let Some(spec) = &v.spec {
        let _ = writeln!(out, "API Version:  {}", spec.api_version);
        for c in &spec.components {
            let t = &c.template;
            let r = &t.container.resources;
            let _ = writeln!(out, "{}:", capitalise(c.kind.as_str()));
            let _ = writeln!(out, "  Service:          {}", c.name);
            let implementation = match &c.runtime {
                Some(rt) => format!("{} (runtime {rt})", c.implementation),
                None => c.implementation.clone(),
            };
            let _ = writeln!(out, "  Implementation:   {implementation}");
            let _ = writeln!(out, "  Revision key:     {}", c.revision_key);
            let _ = writeln!(out, "  Image:            {}", t.container.image);
            if !t.container.command.is_empty() {
                let _ = writeln!(out, "  Command:          {}", t.container.command.join(" "));
            }
            if !t.container.args.is_empty() {
                let _ = writeln!(out, "  Args:             {}", t.container.args.join(" "));
            }
            let _ = writeln!(
                out,
                "  Port:             {} ({})",
                t.container.port.container_port, t.container.port.protocol
            );
            let _ = writeln!(
                out,
                "  Resources:        cpu {}m/{}m, memory {}/{}, gpus {}  (request/limit)",
                r.cpu_request_millis,
                r.cpu_limit_millis,
                quantity(&r.requests, "memory"),
                quantity(&r.limits, "memory"),
                r.gpus
            );
            if let Some(uri) = &t.storage_uri {
                let _ = writeln!(out, "  Storage URI:      {uri}");
            }
            if !t.placement.node_selector.is_empty() || !t.placement.required.is_empty() {
                let _ = writeln!(
                    out,
                    "  Placement:        {}",
                    serde_json::to_string(&t.placement).unwrap_or_default()
                );
            }
            let s = &c.scaling;
            let max = if s.max_replicas == 0 {
                "unlimited".to_string()
            } else {
                s.max_replicas.to_string()
            };
            let _ = writeln!(out, "  Replicas:         min {}, max {max}", s.min_replicas);
            let cc = if s.container_concurrency == 0 {
                "unlimited".to_string()
            } else {
                s.container_concurrency.to_string()
            };
            let _ = writeln!(
                out,
                "  Concurrency:      {cc} per replica, timeout {}s",
                s.timeout_seconds
            );
            let a = &s.autoscaling;
            let _ = writeln!(
                out,
                "  Autoscaling:      {} target {} (of {}), stable window {}, panic window {}",
                a.metric, a.target_value, a.total_value, a.stable_window, a.panic_window
            );
            if let Some(p) = s.canary_traffic_percent {
                let _ = writeln!(out, "  Canary traffic:   {p}%");
            }
        }
    }
    if let Some(st) = &v.status {
        let _ = writeln!(out, "Conditions:");
        for c in &st.conditions {
            let why = [c.reason.as_deref(), c.message.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            let _ = writeln!(out, "  {:<16} {:<6} {why}", c.kind, c.status);
        }
        for c in &st.components {
            let traffic: Vec<String> = c
                .traffic
                .iter()
                .map(|t| format!("{}% {}", t.percent, t.revision_name))
                .collect();
            let _ = writeln!(
                out,
                "Revisions ({}):  latest created {}, latest ready {}, traffic {}",
                c.component,
                c.latest_created_revision.as_deref().unwrap_or("<none>"),
                c.latest_ready_revision.as_deref().unwrap_or("<none>"),
                if traffic.is_empty() {
                    "<none>".to_string()
                } else {
                    traffic.join(", ")
                }
            );
        }
        for a in &v.autoscaling {
            let average = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.2}"));
            let _ = writeln!(
                out,
                "Autoscaler ({}):  {}, {} replicas (desired {}, ready {}){}, observed stable {} panic {}",
                a.revision,
                a.activity,
                a.replicas,
                a.desired,
                a.ready,
                if a.panic { ", PANIC" } else { "" },
                average(a.stable),
                average(a.panic_value),
            );
            for e in &a.events {
                let _ = writeln!(out, "  {:<14} {}", e.reason, e.message);
            }
        }
        if st.replicas.is_empty() {
            let _ = writeln!(out, "Replicas:     <none>");
        } else {
            let _ = writeln!(out, "Replicas:");
            for r in &st.replicas {
                let port = r
                    .host_port
                    .map_or_else(|| "-".into(), |p| format!("127.0.0.1:{p}"));
                let _ = writeln!(
                    out,
                    "  {} #{}  {:?}{}  {port}  restarts {}  container {}",
                    r.revision,
                    r.replica,
                    r.state,
                    if r.ready { ", ready" } else { "" },
                    r.restarts,
                    &r.container_id[..r.container_id.len().min(12)]
                );
                if let Some(exit) = &r.last_exit {
                    let _ = writeln!(
                        out,
                        "    last exit: code {}{}{}",
                        exit.exit_code.map_or_else(|| "?".into(), |c| c.to_string()),
                        if exit.oom_killed { ", OOMKilled" } else { "" },
                        exit.finished_at
                            .as_deref()
                            .map(|t| format!(" at {t}"))
                            .unwrap_or_default()
                    );
                    for line in &exit.last_log_lines {
                        let _ = writeln!(out, "    | {line}");
                    }
                }
            }
        }
        if !st.models.is_empty() {
            let _ = writeln!(out, "Models:");
            for m in &st.models {
                let detail = match (&m.progress, &m.message) {
                    (Some(p), _) => p.to_string(),
                    (None, Some(message)) => message.clone(),
                    (None, None) => {
                        format!("{} downloaded", crate::storage::models::bytes(m.downloaded))
                    }
                };
                let _ = writeln!(out, "  {}  {}  {detail}", m.source, m.state);
            }
        }
        if !st.events.is_empty() {
            let _ = writeln!(out, "Events:");
            for e in &st.events {
                let _ = writeln!(out, "  {:<8} {:<16} {}", e.kind, e.reason, e.message);
            }
        }
    }
    if v.diagnostics.is_empty() {
        let _ = writeln!(out, "Diagnostics:  <none>");
    } else {
        let _ = writeln!(out, "Diagnostics:");
        for d in &v.diagnostics {
            let _ = writeln!(out, "  {d}");
        }
    }
    out
}

fn quantity(
    m: &std::collections::BTreeMap<String, crate::spec::quantity::Quantity>,
    key: &str,
) -> String {
    m.get(key).map_or_else(|| "-".into(), |q| q.to_string())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::GpuHolder;
    use crate::gpu::Gpu;

    fn view(uuid: &str, class: &str, util: Option<u32>, held: Option<GpuHolder>) -> GpuView {
        GpuView {
            gpu: Gpu {
                uuid: uuid.into(),
                name: "NVIDIA A40".into(),
                memory_bytes: 46068 << 20,
                pci_bus_id: None,
                numa_node: None,
                memory_used_bytes: None,
                utilization_percent: util,
                temperature_celsius: None,
                power_milliwatts: None,
            },
            class: class.into(),
            labels: Default::default(),
            held_by: held,
        }
    }

    #[test]
    fn gpu_table_names_the_holder() {
        let holder = GpuHolder {
            namespace: "default".into(),
            service: "llm".into(),
            revision: "llm-predictor-00002".into(),
            replica: 1,
            ready: true,
        };
        let table = gpu_table(&[
            view("GPU-a40-0", "A40", Some(93), Some(holder)),
            view("GPU-a40-1", "A40", None, None),
        ]);
        assert_eq!(
            table,
            "UUID        CLASS   MEMORY    UTIL   HELD BY\n\
             GPU-a40-0   A40     46068Mi   93%    default/llm llm-predictor-00002 #1\n\
             GPU-a40-1   A40     46068Mi   -      -\n"
        );
    }
}
