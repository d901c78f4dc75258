//! `gantry gpus`: the inventory the probe sees, with each GPU's class, without a daemon or a
//! Docker engine, so GPU discovery can be checked on any machine.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use serde::Serialize;

use super::Output;
use crate::gpu::{class_for, file, Gpu, GpuProbe, Inventory, NvmlProbe};

#[derive(Debug, Args)]
pub struct GpusArgs {
    /// Load NVML from this library instead of `libnvidia-ml.so.1`.
    #[arg(long, value_name = "PATH", conflicts_with = "gpus_file")]
    nvml_lib: Option<PathBuf>,
    /// Read a static inventory instead of asking NVML (for machines without GPUs).
    #[arg(long, value_name = "FILE")]
    gpus_file: Option<PathBuf>,
    /// Give GPUs with this exact NVML name this class (repeatable), as the daemon config's
    /// GPU class overrides do: `--class "NVIDIA H200=H200_NVLINK_141GB"`.
    #[arg(long = "class", value_name = "NVML_NAME=CLASS")]
    classes: Vec<String>,
    /// Print JSON or YAML instead of a table.
    #[arg(short, long, value_enum)]
    output: Option<Output>,
}

/// What `-o json|yaml` prints: the inventory, each GPU with its class.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct InventoryView<'a> {
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    driver_version: Option<&'a str>,
    gpus: Vec<GpuView<'a>>,
}

#[derive(Debug, Serialize)]
struct GpuView<'a> {
    #[serde(flatten)]
    gpu: &'a Gpu,
    class: String,
}

pub fn run(args: GpusArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let overrides = parse_overrides(&args.classes)?;
    let inventory = match &args.gpus_file {
        Some(path) => match file::read(path) {
            Ok(inventory) => inventory,
            Err(diagnostics) => {
                for d in &diagnostics {
                    eprintln!("{d}");
                }
                return Ok(ExitCode::from(1));
            }
        },
        None => NvmlProbe::new(args.nvml_lib.as_deref()).snapshot(),
    };
    let view = InventoryView {
        source: &inventory.source,
        driver_version: inventory.driver_version.as_deref(),
        gpus: inventory
            .gpus
            .iter()
            .map(|gpu| GpuView {
                gpu,
                class: class_for(&gpu.name, gpu.memory_bytes, &overrides),
            })
            .collect(),
    };
    match args.output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&view)?),
        Some(Output::Yaml) => print!("{}", serde_yaml::to_string(&view)?),
        // When the probe found none it has said why, in its warning.
        None if view.gpus.is_empty() && inventory.source.starts_with("none") => {
            eprintln!("No GPUs found.")
        }
        None if view.gpus.is_empty() => eprintln!("No GPUs found ({}).", inventory.source),
        None => {
            print!("{}", table(&view.gpus));
            eprintln!("{}", source_line(&inventory));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The probe's warnings go to stderr; the daemon sets up its own logging.
fn init_logging() {
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .with_max_level(tracing::Level::WARN)
        .try_init();
}

fn parse_overrides(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut overrides = BTreeMap::new();
    for pair in pairs {
        match pair.rsplit_once('=') {
            Some((name, class)) if !name.trim().is_empty() && !class.trim().is_empty() => {
                overrides.insert(name.trim().to_string(), class.trim().to_string());
            }
            _ => bail!("--class {pair:?}: expected NVML_NAME=CLASS, e.g. \"NVIDIA H200=H200\""),
        }
    }
    Ok(overrides)
}

fn source_line(inventory: &Inventory) -> String {
    match &inventory.driver_version {
        Some(version) => format!("source: {}, driver {version}", inventory.source),
        None => format!("source: {}", inventory.source),
    }
}

/// kubectl-style columns, padded to the widest cell.
fn table(gpus: &[GpuView<'_>]) -> String {
    const COLUMNS: [&str; 9] = [
        "UUID",
        "NAME",
        "CLASS",
        "MEMORY",
        "USED",
        "UTIL",
        "TEMP",
        "PCI-BUS-ID",
        "NUMA",
    ];
    let dash = || "-".to_string();
    let mut rows = vec![COLUMNS.map(String::from)];
    for view in gpus {
        let gpu = view.gpu;
        rows.push([
            gpu.uuid.clone(),
            gpu.name.clone(),
            view.class.clone(),
            quantity(gpu.memory_bytes),
            gpu.memory_used_bytes.map_or_else(dash, quantity),
            gpu.utilization_percent
                .map_or_else(dash, |u| format!("{u}%")),
            gpu.temperature_celsius
                .map_or_else(dash, |t| format!("{t}C")),
            gpu.pci_bus_id.clone().unwrap_or_else(dash),
            gpu.numa_node.map_or_else(dash, |n| n.to_string()),
        ]);
    }
    super::get::columns(&rows)
}

/// Bytes as the largest exact Kubernetes binary quantity (`48Gi`, `46068Mi`), so a size
/// shown here can be copied into an inventory file or a resource request unchanged.
fn quantity(bytes: i64) -> String {
    for (shift, suffix) in [(40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")] {
        if bytes != 0 && bytes % (1i64 << shift) == 0 {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_exact_quantities() {
        for (bytes, text) in [
            (48 << 30, "48Gi"),
            (46068 << 20, "46068Mi"),
            (1 << 40, "1Ti"),
            (1536, "1536"),
            (2048, "2Ki"),
            (0, "0"),
            (1000, "1000"),
        ] {
            assert_eq!(quantity(bytes), text);
        }
    }

    #[test]
    fn overrides_are_name_equals_class() {
        let parsed = parse_overrides(&[
            "NVIDIA H200=H200_NVLINK_141GB".into(),
            " NVIDIA A40 = RTX_A6000 ".into(),
        ])
        .unwrap();
        assert_eq!(parsed["NVIDIA H200"], "H200_NVLINK_141GB");
        assert_eq!(parsed["NVIDIA A40"], "RTX_A6000");
        assert!(parse_overrides(&["NVIDIA A40".into()]).is_err());
        assert!(parse_overrides(&["=A40".into()]).is_err());
    }
}
