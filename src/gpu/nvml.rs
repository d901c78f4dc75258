//! The NVML probe: what the NVIDIA driver says about the machine's GPUs.
//!
//! NVML calls are blocking FFI; the daemon calls [`GpuProbe::snapshot`] on a thread of its
//! own. NVML is initialised once, in [`NvmlProbe::new`]; each snapshot walks the devices
//! again, so a GPU that falls off the bus leaves the inventory and the order never depends
//! on NVML's (or CUDA's) indices.
//!
//! A machine without the library (`libnvidia-ml.so.1`) or without the driver loaded is not an
//! error: gantry then serves CPU-only services. The probe logs one warning and reports an
//! empty inventory whose source is `none: <reason>`. When the library is there but the
//! driver is not (yet) loaded, later snapshots try again quietly, so a daemon started before
//! the kernel module finds its GPUs when it comes.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::error::{nvml_try, NvmlError};
use nvml_wrapper::{Device, Nvml};
use tracing::{debug, info, warn};

use super::{normalize_pci_bus_id, Gpu, Inventory};

/// The library NVML is loaded from when no path is given (what nvml-wrapper opens).
pub const DEFAULT_NVML_LIBRARY: &str = "libnvidia-ml.so.1";

/// Anything that can tell which GPUs the machine has. Blocking: call it off the async
/// runtime.
pub trait GpuProbe: Send + Sync {
    /// The GPUs now, in the inventory's stable order (by PCI bus id, then UUID).
    fn snapshot(&self) -> Inventory;
}

/// The probe on the NVIDIA driver, through `nvml-wrapper`.
pub struct NvmlProbe {
    lib_path: Option<PathBuf>,
    /// Where `/sys` is (NUMA nodes are read from `bus/pci/devices/<bus id>/numa_node`).
    sysfs: PathBuf,
    state: Mutex<State>,
}

enum State {
    Ready {
        // Boxed: an `Nvml` is 12 kB of function pointers.
        nvml: Box<Nvml>,
        driver_version: Option<String>,
        /// The per-GPU problems already logged, so a poll loop does not repeat them.
        reported: BTreeSet<String>,
    },
    Unavailable {
        reason: String,
        /// Whether a later snapshot should try to initialise NVML again.
        retry: bool,
    },
}

impl NvmlProbe {
    /// Loads NVML from `lib_path` (default: `libnvidia-ml.so.1` through the loader's search
    /// path) and initialises it. Never fails: when NVML cannot be used it logs one warning
    /// and its snapshots are empty, with the reason.
    pub fn new(lib_path: Option<&Path>) -> NvmlProbe {
        NvmlProbe::with_sysfs(lib_path, Path::new("/sys"))
    }

    /// Like [`NvmlProbe::new`], reading NUMA nodes under `sysfs` instead of `/sys`.
    pub fn with_sysfs(lib_path: Option<&Path>, sysfs: &Path) -> NvmlProbe {
        let lib_path = lib_path.map(Path::to_path_buf);
        let state = match init(lib_path.as_deref()) {
            Ok(nvml) => ready(nvml),
            Err(unavailable) => {
                warn!(
                    "no NVIDIA GPUs: {}; gantry runs CPU-only services",
                    unavailable.reason
                );
                State::Unavailable {
                    reason: unavailable.reason,
                    retry: unavailable.retry,
                }
            }
        };
        NvmlProbe {
            lib_path,
            sysfs: sysfs.to_path_buf(),
            state: Mutex::new(state),
        }
    }

    /// Why NVML cannot be used, when it cannot.
    pub fn unavailable_reason(&self) -> Option<String> {
        match &*self.state.lock().unwrap_or_else(PoisonError::into_inner) {
            State::Ready { .. } => None,
            State::Unavailable { reason, .. } => Some(reason.clone()),
        }
    }

    fn source(&self) -> String {
        match &self.lib_path {
            None => "nvml".to_string(),
            Some(path) => format!("nvml:{}", path.display()),
        }
    }
}

impl GpuProbe for NvmlProbe {
    fn snapshot(&self) -> Inventory {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let State::Unavailable { retry: true, .. } = &*state {
            if let Ok(nvml) = init(self.lib_path.as_deref()) {
                info!("NVML is available now");
                *state = ready(nvml);
            }
        }
        match &mut *state {
            State::Unavailable { reason, .. } => Inventory::none(reason),
            State::Ready {
                nvml,
                driver_version,
                reported,
            } => {
                let (gpus, problems) = read_gpus(nvml, &self.sysfs);
                for problem in problems.difference(reported) {
                    warn!("{problem}");
                }
                *reported = problems;
                let mut inventory = Inventory {
                    gpus,
                    source: self.source(),
                    driver_version: driver_version.clone(),
                };
                inventory.sort();
                inventory
            }
        }
    }
}

struct Unavailable {
    reason: String,
    retry: bool,
}

fn ready(nvml: Nvml) -> State {
    let driver_version = nvml.sys_driver_version().ok();
    State::Ready {
        nvml: Box::new(nvml),
        driver_version,
        reported: BTreeSet::new(),
    }
}

/// Why a statically linked gantry does not load NVML. Seen on a real H200 (driver
/// 580.159.04): glibc's `dlopen` from a static binary pulls the driver's library in next to a
/// second C library and the process dies of SIGFPE inside `nvmlInit`, before any error can be
/// reported. A clear refusal is better than a crash.
const STATIC_BINARY: &str = "this gantry binary is statically linked and cannot load NVML \
     (glibc's dlopen from a static binary crashes in the driver's library): use the ordinary \
     dynamically linked build (`cargo build --release`)";

fn init(lib_path: Option<&Path>) -> Result<Nvml, Unavailable> {
    if cfg!(target_feature = "crt-static") {
        return Err(Unavailable {
            reason: STATIC_BINARY.to_string(),
            retry: false,
        });
    }
    let mut builder = Nvml::builder();
    if let Some(path) = lib_path {
        builder.lib_path(path.as_os_str());
    }
    builder.init().map_err(|err| unavailable(&err, lib_path))
}

/// Why NVML cannot be used, in words, and whether it may work later.
fn unavailable(err: &NvmlError, lib_path: Option<&Path>) -> Unavailable {
    let library = lib_path.map_or(OsStr::new(DEFAULT_NVML_LIBRARY), Path::as_os_str);
    let library = library.to_string_lossy();
    let (reason, retry) = match err {
        NvmlError::LibloadingError(load) => {
            let hint = if lib_path.is_none() {
                " (is the NVIDIA driver installed?)"
            } else {
                ""
            };
            (
                format!("cannot load the NVML library {library}{hint}: {load}"),
                false,
            )
        }
        NvmlError::DriverNotLoaded => (
            format!("the NVIDIA driver is not loaded ({library} was found, nvmlInit failed)"),
            true,
        ),
        NvmlError::FailedToLoadSymbol(symbol) => (
            format!("{library} is not a usable NVML library (the driver may be too old): {symbol}"),
            false,
        ),
        other => (
            format!("NVML failed to initialise from {library}: {other}"),
            true,
        ),
    };
    Unavailable { reason, retry }
}

/// Every GPU NVML lists, and the problems met reading them (one line each).
fn read_gpus(nvml: &Nvml, sysfs: &Path) -> (Vec<Gpu>, BTreeSet<String>) {
    let mut problems = BTreeSet::new();
    let count = match nvml.device_count() {
        Ok(count) => count,
        Err(err) => {
            problems.insert(format!("NVML cannot count the GPUs: {err}"));
            return (Vec::new(), problems);
        }
    };
    let mut gpus = Vec::with_capacity(count as usize);
    for index in 0..count {
        match read_gpu(nvml, index, sysfs, &mut problems) {
            Ok(gpu) => gpus.push(gpu),
            // A GPU gantry cannot name by UUID cannot be handed to a container.
            Err(err) => {
                problems.insert(format!("GPU at NVML index {index} left out: {err}"));
            }
        }
    }
    (gpus, problems)
}

fn read_gpu(
    nvml: &Nvml,
    index: u32,
    sysfs: &Path,
    problems: &mut BTreeSet<String>,
) -> Result<Gpu, NvmlError> {
    let device = nvml.device_by_index(index)?;
    let uuid = device.uuid()?;
    let name = device.name().unwrap_or_else(|err| {
        problems.insert(format!("GPU {uuid}: cannot read its name: {err}"));
        String::new()
    });
    let (memory_bytes, memory_used_bytes) = match memory(nvml, &device) {
        Ok((total, used)) => (to_i64(total), Some(to_i64(used))),
        Err(err) => {
            problems.insert(format!("GPU {uuid}: cannot read its memory: {err}"));
            (0, None)
        }
    };
    let pci_bus_id = optional(&uuid, "PCI bus id", device.pci_info())
        .and_then(|pci| normalize_pci_bus_id(&pci.bus_id));
    let numa_node = pci_bus_id
        .as_deref()
        .and_then(|bus_id| sysfs_numa_node(sysfs, bus_id))
        .or_else(|| {
            optional(&uuid, "NUMA node", device.numa_node_id()).and_then(|n| i32::try_from(n).ok())
        });
    Ok(Gpu {
        memory_bytes,
        pci_bus_id,
        numa_node,
        memory_used_bytes,
        utilization_percent: optional(&uuid, "utilisation", device.utilization_rates())
            .map(|u| u.gpu),
        temperature_celsius: optional(
            &uuid,
            "temperature",
            device.temperature(TemperatureSensor::Gpu),
        ),
        power_milliwatts: optional(&uuid, "power", device.power_usage()),
        uuid,
        name,
    })
}

/// A field not every GPU or driver has: absent when NVML says so.
fn optional<T>(uuid: &str, what: &str, result: Result<T, NvmlError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(NvmlError::NotSupported) => None,
        Err(err) => {
            debug!(gpu = uuid, "cannot read the {what}: {err}");
            None
        }
    }
}

/// (total, used) bytes. `nvmlDeviceGetMemoryInfo_v2` came with driver R510; older drivers
/// (still common on Turing and Volta workstations) only have the first version.
fn memory(nvml: &Nvml, device: &Device<'_>) -> Result<(u64, u64), NvmlError> {
    match device.memory_info() {
        Ok(info) => Ok((info.total, info.used)),
        Err(NvmlError::FailedToLoadSymbol(_)) => memory_v1(nvml, device),
        Err(err) => Err(err),
    }
}

fn memory_v1(nvml: &Nvml, device: &Device<'_>) -> Result<(u64, u64), NvmlError> {
    /// `nvmlMemory_t` of nvml.h.
    #[repr(C)]
    struct MemoryV1 {
        total: u64,
        free: u64,
        used: u64,
    }
    let symbol = nvml
        .lib()
        .nvmlDeviceGetMemoryInfo
        .as_ref()
        .map_err(|err| NvmlError::FailedToLoadSymbol(err.to_string()))?;
    let mut info = MemoryV1 {
        total: 0,
        free: 0,
        used: 0,
    };
    // SAFETY: the symbol is NVML's `nvmlDeviceGetMemoryInfo(nvmlDevice_t, nvmlMemory_t *)`,
    // the handle comes from this `Nvml`, which is alive, and `MemoryV1` has the layout of
    // `nvmlMemory_t` (three `unsigned long long`).
    let code = unsafe { symbol(device.handle(), (&mut info as *mut MemoryV1).cast()) };
    nvml_try(code)?;
    Ok((info.total, info.used))
}

fn to_i64(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// The NUMA node Linux gives the GPU's PCI device (`-1`: none). This is the node of the CPU
/// socket the GPU hangs off, which is what placement wants; NVML's own
/// `nvmlDeviceGetNumaNodeId` answers only where the GPU's memory is itself a NUMA node.
fn sysfs_numa_node(sysfs: &Path, bus_id: &str) -> Option<i32> {
    let path = sysfs.join("bus/pci/devices").join(bus_id).join("numa_node");
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().parse::<i32>().ok().filter(|n| *n >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_an_empty_inventory_with_the_reason() {
        let probe = NvmlProbe::new(Some(Path::new("/nonexistent/libnvidia-ml.so.1")));
        let inventory = probe.snapshot();
        assert!(inventory.gpus.is_empty());
        assert!(
            inventory
                .source
                .starts_with("none: cannot load the NVML library /nonexistent/libnvidia-ml.so.1: "),
            "{}",
            inventory.source
        );
        assert!(
            inventory.source.contains("No such file"),
            "{}",
            inventory.source
        );
        assert_eq!(
            probe.unavailable_reason().as_deref(),
            inventory.source.strip_prefix("none: ")
        );
        // Nothing to retry: the next snapshot says the same.
        assert_eq!(probe.snapshot(), inventory);
    }

    #[test]
    fn reasons_say_what_to_do() {
        let default = unavailable(&NvmlError::DriverNotLoaded, None);
        assert_eq!(
            default.reason,
            "the NVIDIA driver is not loaded (libnvidia-ml.so.1 was found, nvmlInit failed)"
        );
        assert!(default.retry);
        let symbol = unavailable(
            &NvmlError::FailedToLoadSymbol("undefined symbol: nvmlInit_v2".into()),
            Some(Path::new("/x/libnvidia-ml.so")),
        );
        assert_eq!(
            symbol.reason,
            "/x/libnvidia-ml.so is not a usable NVML library (the driver may be too old): \
             undefined symbol: nvmlInit_v2"
        );
        assert!(!symbol.retry);
        let other = unavailable(&NvmlError::NoPermission, None);
        assert!(other
            .reason
            .starts_with("NVML failed to initialise from libnvidia-ml.so.1: "));
        assert!(other.retry);
    }

    #[test]
    fn numa_nodes_come_from_sysfs() {
        let sysfs = tempfile::tempdir().unwrap();
        for (bus_id, node) in [("0000:17:00.0", "1\n"), ("0000:3b:00.0", "-1\n")] {
            let dir = sysfs.path().join("bus/pci/devices").join(bus_id);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("numa_node"), node).unwrap();
        }
        assert_eq!(sysfs_numa_node(sysfs.path(), "0000:17:00.0"), Some(1));
        assert_eq!(sysfs_numa_node(sysfs.path(), "0000:3b:00.0"), None);
        assert_eq!(sysfs_numa_node(sysfs.path(), "0000:ca:00.0"), None);
    }
}
