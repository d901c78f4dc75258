//! `gantry get isvc`, `gantry get gpus` and `gantry describe isvc NAME`: kubectl-like views of
//! the daemon's API.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use super::{ApiArgs, Output, Resource};
use crate::api::{ApiError, GpuList, GpuView, ServiceList, ServiceView};
use crate::reconcile::plan::{ComponentStatus, TrafficTarget};
use crate::reconcile::traffic::PREV_TAG;

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

/// `gantry get isvc`: KServe's printer columns (PREV, LATEST, PREVROLLEDOUTREVISION and
/// LATESTREADYREVISION are the predictor's, as `kubectl get isvc` shows them) between the
/// namespace and gantry's own SPEC and FILE.
pub fn table(items: &[ServiceView]) -> String {
    const COLUMNS: [&str; 10] = [
        "NAMESPACE",
        "NAME",
        "URL",
        "READY",
        "PREV",
        "LATEST",
        "PREVROLLEDOUTREVISION",
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
        let (ready, [prev, latest, prev_revision], latest_ready) = match &s.status {
            None => ("-".to_string(), Default::default(), "-".to_string()),
            Some(st) => {
                let predictor = st.predictor();
                (
                    st.conditions
                        .iter()
                        .find(|c| c.kind == "Ready")
                        .map_or_else(|| "Unknown".into(), |c| c.status.clone()),
                    traffic_columns(predictor.map_or(&[], |c| &c.traffic)),
                    predictor
                        .and_then(|c| c.latest_ready_revision.clone())
                        .unwrap_or_else(|| "<none>".into()),
                )
            }
        };
        rows.push([
            s.namespace.clone(),
            s.name.clone(),
            s.url.clone(),
            ready,
            prev,
            latest,
            prev_revision,
            latest_ready,
            spec,
            s.file.clone(),
        ]);
    }
    columns(&rows)
}

/// PREV, LATEST and PREVROLLEDOUTREVISION as KServe's printer columns select them from the
/// traffic: `traffic[?(@.tag=='prev')].percent`, `traffic[?(@.latestRevision==true)].percent`
/// and `traffic[?(@.tag=='prev')].revisionName`. A cell is blank where no target matches, as
/// kubectl prints it (no `prev` target without a canary; no target at all while no revision
/// is ready). KServe's split has at most one target of each kind; more would be listed with
/// commas.
fn traffic_columns(traffic: &[TrafficTarget]) -> [String; 3] {
    let prev = || {
        traffic
            .iter()
            .filter(|t| t.tag.as_deref() == Some(PREV_TAG))
    };
    let join = |cells: Vec<String>| cells.join(",");
    [
        join(prev().map(|t| t.percent.to_string()).collect()),
        join(
            traffic
                .iter()
                .filter(|t| t.latest_revision)
                .map(|t| t.percent.to_string())
                .collect(),
        ),
        join(prev().map(|t| t.revision_name.clone()).collect()),
    ]
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
            let line = format!("  {:<16} {:<6} {why}", c.kind, c.status);
            let _ = writeln!(out, "{}", line.trim_end());
        }
        for c in &st.components {
            describe_revisions(&mut out, c);
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

/// A component's revisions, KServe's rollout bookkeeping and where its traffic goes: one row
/// per traffic target, with the URL that reaches a tagged target's revision alone.
fn describe_revisions(out: &mut String, c: &ComponentStatus) {
    use std::fmt::Write;
    let none = |r: &Option<String>| r.clone().unwrap_or_else(|| "<none>".into());
    let _ = writeln!(out, "Revisions ({}):", c.component);
    for (field, revision) in [
        ("Latest created:", &c.latest_created_revision),
        ("Latest ready:", &c.latest_ready_revision),
        ("Latest rolled out:", &c.latest_rolledout_revision),
        ("Previous rolled out:", &c.previous_rolledout_revision),
    ] {
        let _ = writeln!(out, "  {field:<22}{}", none(revision));
    }
    if c.traffic.is_empty() {
        let _ = writeln!(out, "  {:<22}<none>", "Traffic:");
        return;
    }
    let _ = writeln!(out, "  Traffic:");
    let mut rows = vec![["PERCENT", "REVISION", "LATEST", "TAG", "URL"].map(String::from)];
    for t in &c.traffic {
        rows.push([
            format!("{}%", t.percent),
            t.revision_name.clone(),
            t.latest_revision.to_string(),
            t.tag.clone().unwrap_or_default(),
            t.url.clone().unwrap_or_default(),
        ]);
    }
    for line in columns(&rows).lines() {
        let _ = writeln!(out, "    {line}");
    }
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
    use crate::reconcile::executor::ServiceStatus;
    use crate::reconcile::plan::{ComponentStatus, Condition, TrafficTarget};

    const REV1: &str = "iris-predictor-00001";
    const REV2: &str = "iris-predictor-00002";

    fn target(revision: &str, percent: u32, latest: bool, tag: Option<&str>) -> TrafficTarget {
        TrafficTarget::new(revision, percent, latest, tag)
    }

    /// Service `name` with one predictor: its latest ready revision, rolled-out bookkeeping
    /// (latest, previous) and traffic, through the API's view as the CLI reads it.
    fn service(
        name: &str,
        latest_ready: Option<&str>,
        rolled_out: (Option<&str>, Option<&str>),
        traffic: Vec<TrafficTarget>,
    ) -> ServiceView {
        let status = ServiceStatus {
            conditions: vec![Condition {
                kind: "Ready".into(),
                status: "True".into(),
                reason: None,
                message: None,
            }],
            components: vec![ComponentStatus {
                component: "predictor".into(),
                latest_created_revision: latest_ready.map(Into::into),
                latest_ready_revision: latest_ready.map(Into::into),
                latest_rolledout_revision: rolled_out.0.map(Into::into),
                previous_rolledout_revision: rolled_out.1.map(Into::into),
                traffic,
                ready: true,
                reason: None,
                message: None,
            }],
            ..ServiceStatus::default()
        };
        ServiceView {
            namespace: "default".into(),
            name: name.into(),
            url: crate::api::service_url(name, "default", "localhost", 8080),
            file: format!("/srv/{name}.yaml"),
            spec_status: "Valid".into(),
            generation: 1,
            diagnostics: Vec::new(),
            spec: None,
            status: Some({
                let mut status = status;
                crate::api::add_tag_urls(&mut status, name, "default", "localhost", 8080);
                status
            }),
            autoscaling: Vec::new(),
        }
    }

    /// 10 % to the canary (00002), 90 % to the rolled-out 00001, tag routing on.
    fn canary() -> ServiceView {
        service(
            "iris",
            Some(REV2),
            (Some(REV1), None),
            vec![
                target(REV2, 10, true, Some("latest")),
                target(REV1, 90, false, Some("prev")),
            ],
        )
    }

    #[test]
    fn the_table_shows_the_predictor_split_as_kserve_prints_it() {
        let mut no_containers = service("off", None, (None, None), Vec::new());
        no_containers.status = None;
        let mut not_ready = service("new", None, (None, None), Vec::new());
        if let Some(st) = &mut not_ready.status {
            st.conditions[0].status = "False".into();
        }
        let table = table(&[
            canary(),
            // canaryTrafficPercent: 0 pins every request to the rolled-out revision.
            service(
                "pinned",
                Some("pinned-predictor-00002"),
                (Some("pinned-predictor-00001"), None),
                vec![
                    target("pinned-predictor-00002", 0, true, None),
                    target("pinned-predictor-00001", 100, false, Some("prev")),
                ],
            ),
            // Promoted: the canary has it all and there is no prev target.
            service(
                "promoted",
                Some("promoted-predictor-00002"),
                (
                    Some("promoted-predictor-00002"),
                    Some("promoted-predictor-00001"),
                ),
                vec![target("promoted-predictor-00002", 100, true, None)],
            ),
            // Rolled back after a promotion: the same revision on both sides of the split.
            service(
                "back",
                Some("back-predictor-00001"),
                (Some("back-predictor-00001"), None),
                vec![
                    target("back-predictor-00001", 10, true, None),
                    target("back-predictor-00001", 90, false, Some("prev")),
                ],
            ),
            // Nothing ready yet: no traffic.
            not_ready,
            no_containers,
        ]);
        assert_eq!(
            table,
            "NAMESPACE   NAME       URL                                      READY   PREV   LATEST   PREVROLLEDOUTREVISION    LATESTREADYREVISION        SPEC    FILE\n\
             default     iris       http://iris.default.localhost:8080       True    90     10       iris-predictor-00001     iris-predictor-00002       Valid   /srv/iris.yaml\n\
             default     pinned     http://pinned.default.localhost:8080     True    100    0        pinned-predictor-00001   pinned-predictor-00002     Valid   /srv/pinned.yaml\n\
             default     promoted   http://promoted.default.localhost:8080   True           100                               promoted-predictor-00002   Valid   /srv/promoted.yaml\n\
             default     back       http://back.default.localhost:8080       True    90     10       back-predictor-00001     back-predictor-00001       Valid   /srv/back.yaml\n\
             default     new        http://new.default.localhost:8080        False                                            <none>                     Valid   /srv/new.yaml\n\
             default     off        http://off.default.localhost:8080        -                                                -                          Valid   /srv/off.yaml\n"
        );
    }

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

    /// The lines `describe` prints from `Revisions (` up to the replicas.
    fn revisions_block(v: &ServiceView) -> String {
        let text = describe(v);
        let start = text.find("Revisions (").expect(&text);
        let end = text.find("Replicas:").expect(&text);
        text[start..end].to_string()
    }

    #[test]
    fn describe_lists_the_traffic_targets_and_the_rollout() {
        assert_eq!(
            revisions_block(&canary()),
            "Revisions (predictor):\n\
             \x20 Latest created:       iris-predictor-00002\n\
             \x20 Latest ready:         iris-predictor-00002\n\
             \x20 Latest rolled out:    iris-predictor-00001\n\
             \x20 Previous rolled out:  <none>\n\
             \x20 Traffic:\n\
             \x20   PERCENT   REVISION               LATEST   TAG      URL\n\
             \x20   10%       iris-predictor-00002   true     latest   http://latest-iris-predictor.default.localhost:8080\n\
             \x20   90%       iris-predictor-00001   false    prev     http://prev-iris-predictor.default.localhost:8080\n"
        );
        let promoted = service(
            "iris",
            Some(REV2),
            (Some(REV2), Some(REV1)),
            vec![target(REV2, 100, true, None)],
        );
        assert_eq!(
            revisions_block(&promoted),
            "Revisions (predictor):\n\
             \x20 Latest created:       iris-predictor-00002\n\
             \x20 Latest ready:         iris-predictor-00002\n\
             \x20 Latest rolled out:    iris-predictor-00002\n\
             \x20 Previous rolled out:  iris-predictor-00001\n\
             \x20 Traffic:\n\
             \x20   PERCENT   REVISION               LATEST   TAG   URL\n\
             \x20   100%      iris-predictor-00002   true\n"
        );
        let not_ready = service("iris", None, (None, None), Vec::new());
        assert_eq!(
            revisions_block(&not_ready),
            "Revisions (predictor):\n\
             \x20 Latest created:       <none>\n\
             \x20 Latest ready:         <none>\n\
             \x20 Latest rolled out:    <none>\n\
             \x20 Previous rolled out:  <none>\n\
             \x20 Traffic:              <none>\n"
        );
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
