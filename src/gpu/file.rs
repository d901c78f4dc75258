//! A static GPU inventory read from a file (`--gpus-file`), for machines without GPUs (CI,
//! laptops) and for trying placements before buying hardware:
//!
//! ```yaml
//! gpus:
//!   - uuid: GPU-5f1e2d3c-0000-4000-8000-000000000001
//!     name: Quadro RTX 5000          # the NVML name; the class is derived from it
//!     memory: 16Gi                   # a Kubernetes quantity
//!     pciBusId: "0000:3b:00.0"       # optional
//!     numaNode: 0                    # optional
//! ```
//!
//! Problems are reported like every YAML gantry reads: `file:line:col: error: message`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{normalize_pci_bus_id, Gpu, GpuProbe, Inventory};
use crate::spec::diagnostic::Diagnostic;
use crate::spec::quantity::Quantity;
use crate::spec::yaml::{self, FieldPath, DEFAULT_MAX_FILE_BYTES};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct InventoryFile {
    gpus: Vec<GpuEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GpuEntry {
    // Required, but checked after decoding: a value of the wrong type is then reported once,
    // not once as wrong and once more as missing.
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    memory: Option<Quantity>,
    #[serde(default)]
    pci_bus_id: Option<String>,
    #[serde(default)]
    numa_node: Option<i64>,
}

/// Reads an inventory file. The inventory's source is `file:<path>`.
pub fn read(path: &Path) -> Result<Inventory, Vec<Diagnostic>> {
    let file = path.display().to_string();
    let fail = |message: String| vec![Diagnostic::error(message).in_file(file.clone())];
    let bytes =
        std::fs::read(path).map_err(|e| fail(format!("cannot read the GPU inventory: {e}")))?;
    if bytes.len() > DEFAULT_MAX_FILE_BYTES {
        return Err(fail(format!(
            "the GPU inventory is {} bytes, more than the {DEFAULT_MAX_FILE_BYTES} bytes gantry reads",
            bytes.len()
        )));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| fail("the GPU inventory is not UTF-8 text".into()))?;
    parse(&text, &file)
}

/// Parses an inventory file's text; `file` names it in diagnostics and in the source.
pub fn parse(text: &str, file: &str) -> Result<Inventory, Vec<Diagnostic>> {
    let parsed: InventoryFile = yaml::from_str_strict(text, file)?;
    let mut problems: Vec<(FieldPath, String)> = Vec::new();
    let mut first_index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut gpus = Vec::with_capacity(parsed.gpus.len());
    for (i, entry) in parsed.gpus.iter().enumerate() {
        let at = FieldPath::root().key("gpus").index(i);
        let uuid = entry.uuid.as_deref().unwrap_or_default().trim();
        if uuid.is_empty() {
            problems.push((
                at.key("uuid"),
                "Required value: a GPU's UUID (as `nvidia-smi -L` shows it)".into(),
            ));
        } else if let Some(first) = first_index.insert(uuid, i) {
            first_index.insert(uuid, first);
            problems.push((
                at.key("uuid"),
                format!("Duplicate value: \"{uuid}\" (also gpus[{first}].uuid)"),
            ));
        }
        let name = entry.name.as_deref().unwrap_or_default().trim();
        if name.is_empty() {
            problems.push((
                at.key("name"),
                "Required value: the GPU's NVML name, e.g. \"NVIDIA A40\"".into(),
            ));
        }
        let memory_bytes = match &entry.memory {
            None => {
                problems.push((
                    at.key("memory"),
                    "Required value: the GPU's memory, e.g. 16Gi".into(),
                ));
                0
            }
            Some(memory) if memory.nano_value() <= 0 || !memory.is_integer() => {
                problems.push((
                    at.key("memory"),
                    format!("Invalid value: \"{memory}\": must be a positive whole number of bytes, e.g. 16Gi"),
                ));
                0
            }
            Some(memory) => memory.value(),
        };
        let pci_bus_id = match &entry.pci_bus_id {
            None => None,
            Some(text) => {
                let normalized = normalize_pci_bus_id(text);
                if normalized.is_none() {
                    problems.push((
                        at.key("pciBusId"),
                        format!("Invalid value: \"{text}\": expected a PCI address like \"0000:3b:00.0\""),
                    ));
                }
                normalized
            }
        };
        let numa_node = match entry.numa_node {
            None => None,
            Some(n) => match i32::try_from(n) {
                Ok(n) if n >= 0 => Some(n),
                _ => {
                    problems.push((
                        at.key("numaNode"),
                        format!("Invalid value: {n}: must be a NUMA node number (0 or more)"),
                    ));
                    None
                }
            },
        };
        gpus.push(Gpu {
            uuid: uuid.to_string(),
            name: name.to_string(),
            memory_bytes,
            pci_bus_id,
            numa_node,
            memory_used_bytes: None,
            utilization_percent: None,
            temperature_celsius: None,
            power_milliwatts: None,
        });
    }
    if !problems.is_empty() {
        return Err(positioned(text, file, problems));
    }
    let mut inventory = Inventory {
        gpus,
        source: format!("file:{file}"),
        driver_version: None,
    };
    inventory.sort();
    Ok(inventory)
}

/// The semantic problems, with the line and column of the field each is about.
fn positioned(text: &str, file: &str, problems: Vec<(FieldPath, String)>) -> Vec<Diagnostic> {
    let (docs, _) = yaml::documents(text);
    let mut out: Vec<Diagnostic> = problems
        .into_iter()
        .map(|(path, message)| match docs.first() {
            Some(doc) => doc.diagnostic(crate::spec::diagnostic::Severity::Error, &path, message),
            None => Diagnostic::error(message).at_field(path.to_string()),
        })
        .map(|d| d.in_file(file))
        .collect();
    out.sort_by_key(|d| d.position);
    out
}

/// A probe that always reports the same inventory (read once from a file).
#[derive(Debug, Clone)]
pub struct StaticProbe {
    inventory: Inventory,
}

impl StaticProbe {
    pub fn new(inventory: Inventory) -> StaticProbe {
        StaticProbe { inventory }
    }

    /// Reads `path` once; later snapshots do not read it again.
    pub fn from_file(path: &Path) -> Result<StaticProbe, Vec<Diagnostic>> {
        read(path).map(StaticProbe::new)
    }
}

impl GpuProbe for StaticProbe {
    fn snapshot(&self) -> Inventory {
        self.inventory.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: i64 = 1 << 30;

    fn rendered(text: &str) -> Vec<String> {
        match parse(text, "gpus.yaml") {
            Ok(inventory) => panic!("expected diagnostics, got {inventory:?}"),
            Err(diags) => diags.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn the_issue_example_reads() {
        let inventory = parse(
            "gpus:\n  - uuid: GPU-5f1e2d3c-0000-4000-8000-000000000001\n    name: Quadro RTX 5000\n    memory: 16Gi\n    pciBusId: \"0000:3b:00.0\"     # optional\n",
            "gpus.yaml",
        )
        .unwrap();
        assert_eq!(inventory.source, "file:gpus.yaml");
        assert_eq!(
            inventory.gpus,
            [Gpu {
                uuid: "GPU-5f1e2d3c-0000-4000-8000-000000000001".into(),
                name: "Quadro RTX 5000".into(),
                memory_bytes: 16 * GIB,
                pci_bus_id: Some("0000:3b:00.0".into()),
                numa_node: None,
                memory_used_bytes: None,
                utilization_percent: None,
                temperature_celsius: None,
                power_milliwatts: None,
            }]
        );
    }

    #[test]
    fn gpus_are_sorted_and_bus_ids_normalised() {
        let inventory = parse(
            "gpus:\n\
             - {uuid: GPU-c, name: NVIDIA A40, memory: 46068Mi, pciBusId: \"00000000:CA:00.0\", numaNode: 1}\n\
             - {uuid: GPU-a, name: NVIDIA A40, memory: 48305799168, pciBusId: \"0000:17:00.0\", numaNode: 0}\n\
             - {uuid: GPU-b, name: NVIDIA A40, memory: 45Gi}\n",
            "f",
        )
        .unwrap();
        let got: Vec<_> = inventory
            .gpus
            .iter()
            .map(|g| {
                (
                    g.uuid.as_str(),
                    g.pci_bus_id.as_deref(),
                    g.numa_node,
                    g.memory_bytes,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("GPU-a", Some("0000:17:00.0"), Some(0), 48305799168),
                ("GPU-c", Some("0000:ca:00.0"), Some(1), 46068 << 20),
                ("GPU-b", None, None, 45 * GIB),
            ]
        );
    }

    #[test]
    fn an_empty_list_is_no_gpus() {
        let inventory = parse("gpus: []\n", "f").unwrap();
        assert!(inventory.gpus.is_empty());
    }

    #[test]
    fn problems_name_the_file_line_and_field() {
        for (text, expected) in [
            (
                "gpus:\n- uuid: GPU-1\n  name: A40\n  memory: 1Gi\n- uuid: GPU-1\n  name: A40\n  memory: 1Gi\n",
                vec!["gpus.yaml:5:3: error: gpus[1].uuid: Duplicate value: \"GPU-1\" (also gpus[0].uuid)"],
            ),
            (
                "gpus:\n- uuid: \"\"\n  name: \" \"\n  memory: 0\n",
                vec![
                    "gpus.yaml:2:3: error: gpus[0].uuid: Required value: a GPU's UUID (as `nvidia-smi -L` shows it)",
                    "gpus.yaml:3:3: error: gpus[0].name: Required value: the GPU's NVML name, e.g. \"NVIDIA A40\"",
                    "gpus.yaml:4:3: error: gpus[0].memory: Invalid value: \"0\": must be a positive whole number of bytes, e.g. 16Gi",
                ],
            ),
            (
                "gpus:\n- uuid: GPU-1\n  name: A40\n  memory: 500m\n  pciBusId: bus-1\n  numaNode: -1\n",
                vec![
                    "gpus.yaml:4:3: error: gpus[0].memory: Invalid value: \"500m\": must be a positive whole number of bytes, e.g. 16Gi",
                    "gpus.yaml:5:3: error: gpus[0].pciBusId: Invalid value: \"bus-1\": expected a PCI address like \"0000:3b:00.0\"",
                    "gpus.yaml:6:3: error: gpus[0].numaNode: Invalid value: -1: must be a NUMA node number (0 or more)",
                ],
            ),
        ] {
            assert_eq!(rendered(text), expected, "{text}");
        }
    }

    #[test]
    fn structural_problems_come_from_the_yaml_module() {
        let got = rendered("gpus:\n- uuid: GPU-1\n  name: A40\n  memory: 16GB\n  pciBusID: x\n");
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].starts_with("gpus.yaml:4:"), "{got:#?}");
        assert!(got[0].contains("quantities must match"), "{got:#?}");
        assert!(
            got[1].starts_with("gpus.yaml:5:3: error: unknown field \"gpus[0].pciBusID\""),
            "{got:#?}"
        );
        assert!(got[1].contains("did you mean \"pciBusId\""), "{got:#?}");

        // A value of the wrong type is reported once (not also as missing).
        let got = rendered("gpus:\n- name: A40\n  memory: 1Gi\n  uuid: [GPU-1]\n");
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(got[0].starts_with("gpus.yaml:4:"), "{got:#?}");

        let got = rendered("gpus:\n- name: A40\n  uuid: GPU-1\n");
        assert_eq!(
            got,
            ["gpus.yaml:2:3: error: gpus[0].memory: Required value: the GPU's memory, e.g. 16Gi"]
        );

        let got = rendered("gpu: []\n");
        assert!(
            got.iter().any(|d| d.contains("unknown field \"gpu\"")),
            "{got:#?}"
        );
        let got = rendered("gpus: [\n");
        assert!(got[0].starts_with("gpus.yaml:"), "{got:#?}");
        assert!(got[0].contains("invalid YAML"), "{got:#?}");
    }

    #[test]
    fn a_missing_file_is_a_diagnostic() {
        let err = read(Path::new("/nonexistent/gpus.yaml")).unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(
            err[0]
                .to_string()
                .starts_with("/nonexistent/gpus.yaml: error: cannot read the GPU inventory: "),
            "{}",
            err[0]
        );
    }

    #[test]
    fn the_static_probe_repeats_its_inventory() {
        let inventory = parse(
            "gpus:\n- {uuid: GPU-1, name: NVIDIA A40, memory: 48Gi}\n",
            "f",
        )
        .unwrap();
        let probe = StaticProbe::new(inventory.clone());
        assert_eq!(probe.snapshot(), inventory);
        assert_eq!(probe.snapshot(), inventory);
    }
}
