//! GPUs: the inventory gantry schedules onto, found through NVML (or read from a file on
//! machines without GPUs), and the labels each GPU carries like a Kubernetes node
//! (`gpu.nvidia.com/class`, `gpu.nvidia.com/model`, `gpu.nvidia.com/vram`, ...).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One GPU as the probe sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gpu {
    /// `GPU-5f1e2d3c-...`: how gantry names a GPU everywhere (never by index).
    pub uuid: String,
    /// The NVML name, e.g. `NVIDIA A40`, `Quadro RTX 5000`.
    pub name: String,
    /// Total memory in bytes.
    pub memory_bytes: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_bus_id: Option<String>,
    /// NUMA node, where known (multi-GPU replicas prefer GPUs on the same one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_used_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization_percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_celsius: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_milliwatts: Option<u32>,
}

/// Every GPU of the machine, in a stable order (by PCI bus id, then UUID).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    pub gpus: Vec<Gpu>,
    /// Where it came from: `nvml`, `file:<path>`, or `none` (with the reason).
    pub source: String,
}

/// A GPU's labels: its own (class, model, vram, count) merged with the host's.
pub type Labels = BTreeMap<String, String>;
