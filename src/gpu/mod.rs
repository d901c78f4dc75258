//! GPUs: the inventory gantry schedules onto, found through NVML (or read from a file on
//! machines without GPUs), and the labels each GPU carries like a Kubernetes node
//! (`gpu.nvidia.com/class`, `gpu.nvidia.com/model`, `gpu.nvidia.com/vram`, ...).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod classes;
pub mod file;
pub mod nvml;

pub use classes::class_for;
pub use file::StaticProbe;
pub use nvml::{GpuProbe, NvmlProbe};

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
    /// Where it came from: `nvml` (`nvml:<library>` when a library path was given),
    /// `file:<path>`, or `none: <reason>`.
    pub source: String,
    /// The NVIDIA driver's version, when NVML reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
}

impl Inventory {
    /// No GPUs, and why (`none: <reason>`).
    pub fn none(reason: impl std::fmt::Display) -> Inventory {
        Inventory {
            gpus: Vec::new(),
            source: format!("none: {reason}"),
            driver_version: None,
        }
    }

    /// Puts the GPUs in the inventory's stable order: by PCI bus id (GPUs without one last),
    /// then by UUID.
    pub fn sort(&mut self) {
        self.gpus.sort_by(|a, b| {
            (a.pci_bus_id.is_none(), &a.pci_bus_id, &a.uuid).cmp(&(
                b.pci_bus_id.is_none(),
                &b.pci_bus_id,
                &b.uuid,
            ))
        });
    }
}

/// A PCI address in the form Linux uses under `/sys/bus/pci/devices`: `0000:3b:00.0` (domain
/// of at least four hex digits, lower case). NVML writes `00000000:3B:00.0`; both, and the
/// domain-less `3b:00.0`, are accepted. `None` when the text is not a PCI address.
pub fn normalize_pci_bus_id(text: &str) -> Option<String> {
    let text = text.trim();
    let (rest, function) = text.rsplit_once('.')?;
    let mut parts: Vec<&str> = rest.split(':').collect();
    if parts.len() == 2 {
        parts.insert(0, "0");
    }
    let [domain, bus, device] = parts[..] else {
        return None;
    };
    let hex = |s: &str, max: u32| {
        (!s.is_empty() && s.len() <= 8 && s.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(s, 16).ok())
            .flatten()
            .filter(|v| *v <= max)
    };
    let domain = hex(domain, u32::MAX)?;
    let bus = hex(bus, 0xff)?;
    let device = hex(device, 0x1f)?;
    let function = hex(function, 0x7)?;
    Some(format!("{domain:04x}:{bus:02x}:{device:02x}.{function:x}"))
}

/// A GPU's labels: its own (class, model, vram, count) merged with the host's.
pub type Labels = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_bus_ids_take_the_sysfs_form() {
        for (text, expected) in [
            ("0000:3b:00.0", Some("0000:3b:00.0")),
            ("00000000:3B:00.0", Some("0000:3b:00.0")),
            ("0001:17:1F.7", Some("0001:17:1f.7")),
            ("3b:00.0", Some("0000:3b:00.0")),
            ("00010000:01:00.0", Some("10000:01:00.0")),
            (" 0000:3b:00.0 ", Some("0000:3b:00.0")),
            ("0000:3b:00", None),
            ("0000:3b:20.0", None),
            ("0000:3b:00.8", None),
            ("0000:100:00.0", None),
            ("x:3b:00.0", None),
            ("0:0:0:0.0", None),
            ("", None),
            ("GPU-1", None),
        ] {
            assert_eq!(normalize_pci_bus_id(text).as_deref(), expected, "{text:?}");
        }
    }

    #[test]
    fn inventory_order_is_bus_id_then_uuid() {
        let gpu = |uuid: &str, bus: Option<&str>| Gpu {
            uuid: uuid.into(),
            name: "NVIDIA A40".into(),
            memory_bytes: 1,
            pci_bus_id: bus.map(str::to_string),
            numa_node: None,
            memory_used_bytes: None,
            utilization_percent: None,
            temperature_celsius: None,
            power_milliwatts: None,
        };
        let mut inventory = Inventory {
            gpus: vec![
                gpu("GPU-d", None),
                gpu("GPU-c", Some("0000:b1:00.0")),
                gpu("GPU-b", Some("0000:17:00.0")),
                gpu("GPU-a", None),
                gpu("GPU-e", Some("0000:17:00.0")),
            ],
            source: "test".into(),
            driver_version: None,
        };
        inventory.sort();
        let order: Vec<&str> = inventory.gpus.iter().map(|g| g.uuid.as_str()).collect();
        assert_eq!(order, ["GPU-b", "GPU-e", "GPU-c", "GPU-a", "GPU-d"]);
    }
}
