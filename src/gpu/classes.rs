//! GPU class names: the value of the `gpu.nvidia.com/class` label.
//!
//! InferenceServices written for the reference platform select GPUs with
//! `gpu.nvidia.com/class In [A40]` (or the `gke-accelerator` annotation). Those names are not
//! NVML's: NVML says `NVIDIA A100-SXM4-80GB` where the platform says `A100_NVLINK_80GB`. This
//! module maps one to the other, so the same YAML selects the same kind of GPU here.
//!
//! The mapping, in order:
//!
//! 1. the daemon config's overrides (exact NVML name → class) win;
//! 2. the families the reference platform names differently from NVML (A100, H100, V100,
//!    GeForce) are mapped by form factor and memory size;
//! 3. everything else gets the NVML name with the `NVIDIA ` prefix dropped and every run of
//!    non-alphanumeric characters turned into one `_` (`NVIDIA RTX A6000` → `RTX_A6000`,
//!    `NVIDIA A40` → `A40`, `Quadro RTX 5000` → `Quadro_RTX_5000`, `NVIDIA L40S` → `L40S`).
//!    For most of the platform's names this rule alone gives the platform's spelling, which is
//!    why the platform's names look the way they do.
//!
//! H200: the reference platform publishes no label for it that could be checked, so gantry does
//! not invent one; it gets the NVML-derived name like any other GPU (`NVIDIA H200` → `H200`,
//! `NVIDIA H200 NVL` → `H200_NVL`). An operator whose YAML says otherwise sets an override.
//!
//! The function is pure: the name, the memory and the overrides are arguments.

use std::collections::BTreeMap;

const GIB: i64 = 1 << 30;

/// The longest label value Kubernetes accepts.
const MAX_LABEL_VALUE: usize = 63;

/// The `gpu.nvidia.com/class` of a GPU with this NVML name and total memory (bytes; 0 when
/// unknown). `overrides` maps exact NVML names to classes (the daemon config's
/// `gpu-classes`) and wins over everything else.
pub fn class_for(
    nvml_name: &str,
    memory_bytes: i64,
    overrides: &BTreeMap<String, String>,
) -> String {
    let name = nvml_name.trim();
    if let Some(class) = overrides.get(name) {
        return class.clone();
    }
    known_class(name, memory_bytes).unwrap_or_else(|| fallback_class(name))
}

/// How a card is connected, as its NVML name tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FormFactor {
    /// SXM modules on an NVLink/NVSwitch baseboard (HGX, DGX).
    Sxm,
    /// PCIe cards.
    Pcie,
    /// PCIe cards sold in NVLink-bridged pairs (`H100 NVL`, `H200 NVL`).
    Nvl,
    /// The name does not say.
    Unstated,
}

/// The NVML name's words, upper-cased, split at spaces, dashes and underscores, with the
/// vendor prefix dropped.
fn words(name: &str) -> Vec<String> {
    let mut words: Vec<String> = name
        .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    if words.first().is_some_and(|w| w == "NVIDIA") {
        words.remove(0);
    }
    words
}

/// The memory size a name states (`80GB` → 80), if it states one.
fn stated_gb(words: &[String]) -> Option<i64> {
    words
        .iter()
        .find_map(|w| w.strip_suffix("GB").and_then(|n| n.parse::<i64>().ok()))
}

fn form_factor(words: &[String]) -> FormFactor {
    let has = |w: &str| words.iter().any(|x| x == w);
    if words.iter().any(|w| w.starts_with("SXM")) || has("HGX") {
        FormFactor::Sxm
    } else if has("PCIE") {
        FormFactor::Pcie
    } else if has("NVL") {
        FormFactor::Nvl
    } else {
        FormFactor::Unstated
    }
}

/// The reference platform's name for the families it spells differently from NVML.
fn known_class(name: &str, memory_bytes: i64) -> Option<String> {
    let words = words(name);
    // A MIG slice is not the board it is cut from; it keeps its own NVML name.
    if words.iter().any(|w| w == "MIG") {
        return None;
    }
    let family = words.first()?.as_str();
    let form = form_factor(&words);
    // The size the name states wins; otherwise the memory NVML reports, which is a little
    // under the marketing size (an 80 GB A100 reports 80 GiB, an 80 GB H100 79.6 GiB), so
    // variants are told apart by a threshold between them, never by equality.
    let gb = stated_gb(&words).or((memory_bytes > 0).then_some(memory_bytes / GIB));
    let class = match family {
        "A100" => {
            let big = gb.map(|g| g > 60)?;
            match (form, big) {
                (FormFactor::Sxm, false) => "A100_NVLINK",
                (FormFactor::Sxm, true) => "A100_NVLINK_80GB",
                (FormFactor::Pcie, false) => "A100_PCIE_40GB",
                (FormFactor::Pcie, true) => "A100_PCIE_80GB",
                _ => return None,
            }
        }
        "H100" => match form {
            FormFactor::Pcie => "H100_PCIE",
            FormFactor::Nvl => "H100_NVL",
            // `NVIDIA H100 80GB HBM3` is the SXM5 board of HGX/DGX H100; its name states no
            // form factor. Other H100 SXM sizes (64 GB, 94 GB) are not the platform's class.
            FormFactor::Sxm | FormFactor::Unstated
                if words
                    .iter()
                    .any(|w| w.starts_with("HBM") || w.starts_with("SXM"))
                    && gb.is_some_and(|g| (70..=90).contains(&g)) =>
            {
                "H100_NVLINK_80GB"
            }
            _ => return None,
        },
        // The platform has one class for every V100 (`Tesla_V100`, also the value of the
        // `gke-accelerator` annotation in its examples), whatever the board or size.
        "TESLA" if words.get(1).is_some_and(|w| w == "V100") => "Tesla_V100",
        // Consumer cards: `NVIDIA GeForce RTX 4090` → `RTX_4090` (the brand says nothing a
        // selector needs).
        "GEFORCE" => {
            let rest: Vec<&str> = name
                .split_whitespace()
                .skip_while(|w| !w.eq_ignore_ascii_case("GeForce"))
                .skip(1)
                .collect();
            if rest.is_empty() {
                return None;
            }
            return Some(fallback_class(&rest.join(" ")));
        }
        _ => return None,
    };
    Some(class.to_string())
}

/// The NVML name as a label value: `NVIDIA ` dropped, each run of characters other than ASCII
/// letters and digits turned into one `_`, no `_` at either end, at most 63 characters (a
/// Kubernetes label value).
fn fallback_class(name: &str) -> String {
    let name = name.trim();
    let name = name
        .strip_prefix("NVIDIA ")
        .or_else(|| name.strip_prefix("Nvidia "))
        .unwrap_or(name);
    let mut class = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            class.push(c);
        } else if !class.is_empty() && !class.ends_with('_') {
            class.push('_');
        }
    }
    class.truncate(MAX_LABEL_VALUE);
    while class.ends_with('_') {
        class.pop();
    }
    if class.is_empty() {
        class.push_str("unknown");
    }
    class
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: i64 = 1 << 20;

    fn check(name: &str, memory_bytes: i64, expected: &str) {
        assert_eq!(
            class_for(name, memory_bytes, &BTreeMap::new()),
            expected,
            "class of {name:?} with {memory_bytes} bytes"
        );
    }

    /// NVML names as drivers report them, with the memory they report.
    #[test]
    fn reference_platform_classes() {
        for (name, memory, class) in [
            ("Quadro RTX 4000", 8192 * MIB, "Quadro_RTX_4000"),
            ("Quadro RTX 5000", 16125 * MIB, "Quadro_RTX_5000"),
            ("NVIDIA Quadro RTX 5000", 16125 * MIB, "Quadro_RTX_5000"),
            ("Quadro RTX 6000", 24576 * MIB, "Quadro_RTX_6000"),
            ("NVIDIA RTX A4000", 16376 * MIB, "RTX_A4000"),
            ("NVIDIA RTX A5000", 24564 * MIB, "RTX_A5000"),
            ("NVIDIA RTX A6000", 49140 * MIB, "RTX_A6000"),
            ("NVIDIA A40", 46068 * MIB, "A40"),
            ("Tesla V100-SXM2-16GB", 16160 * MIB, "Tesla_V100"),
            ("Tesla V100-SXM2-32GB", 32510 * MIB, "Tesla_V100"),
            ("Tesla V100-PCIE-16GB", 16160 * MIB, "Tesla_V100"),
            ("Tesla V100-PCIE-32GB", 32510 * MIB, "Tesla_V100"),
            ("NVIDIA A100-SXM4-40GB", 40960 * MIB, "A100_NVLINK"),
            ("A100-SXM4-40GB", 40960 * MIB, "A100_NVLINK"),
            ("NVIDIA A100-SXM4-80GB", 81920 * MIB, "A100_NVLINK_80GB"),
            ("NVIDIA A100-SXM-80GB", 81920 * MIB, "A100_NVLINK_80GB"),
            ("NVIDIA A100-PCIE-40GB", 40960 * MIB, "A100_PCIE_40GB"),
            ("A100-PCIE-40GB", 40960 * MIB, "A100_PCIE_40GB"),
            ("NVIDIA A100 80GB PCIe", 81920 * MIB, "A100_PCIE_80GB"),
            ("NVIDIA H100 80GB HBM3", 81559 * MIB, "H100_NVLINK_80GB"),
            ("NVIDIA H100 PCIe", 81559 * MIB, "H100_PCIE"),
            ("NVIDIA H100 NVL", 95830 * MIB, "H100_NVL"),
            ("NVIDIA H200", 143771 * MIB, "H200"),
            ("NVIDIA H200 NVL", 143771 * MIB, "H200_NVL"),
            ("NVIDIA L40", 46068 * MIB, "L40"),
            ("NVIDIA L40S", 46068 * MIB, "L40S"),
            ("NVIDIA L4", 23034 * MIB, "L4"),
            ("NVIDIA GeForce RTX 4090", 24564 * MIB, "RTX_4090"),
            ("NVIDIA GeForce RTX 3090 Ti", 24564 * MIB, "RTX_3090_Ti"),
            ("NVIDIA GeForce GTX 1080", 8192 * MIB, "GTX_1080"),
        ] {
            check(name, memory, class);
        }
    }

    /// Where the name states no size, the memory NVML reports decides.
    #[test]
    fn memory_tells_variants_apart() {
        for (name, memory, class) in [
            ("NVIDIA A100-SXM4", 40960 * MIB, "A100_NVLINK"),
            ("NVIDIA A100-SXM4", 81920 * MIB, "A100_NVLINK_80GB"),
            ("NVIDIA A100 PCIe", 40536 * MIB, "A100_PCIE_40GB"),
            ("NVIDIA A100 PCIe", 80994 * MIB, "A100_PCIE_80GB"),
            // A stated size wins over a reported one (reported memory shrinks with ECC).
            ("NVIDIA A100-PCIE-40GB", 81920 * MIB, "A100_PCIE_40GB"),
            // Not the platform's H100 SXM class: other sizes get their NVML name.
            ("NVIDIA H100 SXM5 64GB", 64 * 1024 * MIB, "H100_SXM5_64GB"),
            ("NVIDIA H100 80GB HBM3", 81559 * MIB, "H100_NVLINK_80GB"),
        ] {
            check(name, memory, class);
        }
    }

    /// Names nothing maps: the NVML name, made a label value.
    #[test]
    fn unknown_names_fall_back_deterministically() {
        for (name, memory, class) in [
            ("NVIDIA GH200 480GB", 97871 * MIB, "GH200_480GB"),
            ("NVIDIA A100 80GB", 0, "A100_80GB"),
            ("NVIDIA A100-SXM4", 0, "A100_SXM4"),
            ("NVIDIA A800-SXM4-80GB", 81920 * MIB, "A800_SXM4_80GB"),
            (
                "Tesla V100S-PCIE-32GB",
                32510 * MIB,
                "Tesla_V100S_PCIE_32GB",
            ),
            ("Tesla T4", 15360 * MIB, "Tesla_T4"),
            ("NVIDIA H100 NVL MIG 3g.47gb", 0, "H100_NVL_MIG_3g_47gb"),
            (
                "Quadro RTX 5000 with Max-Q Design",
                0,
                "Quadro_RTX_5000_with_Max_Q_Design",
            ),
            ("NVIDIA B200", 183359 * MIB, "B200"),
            ("  NVIDIA  (weird)  name!  ", 0, "weird_name"),
            ("NVIDIA GeForce", 0, "GeForce"),
            ("", 0, "unknown"),
            ("---", 0, "unknown"),
            ("NVIDIA", 0, "NVIDIA"),
        ] {
            check(name, memory, class);
        }
        let long = format!("NVIDIA {}", "X".repeat(100));
        check(&long, 0, &"X".repeat(63));
        let long = format!("{} Y", "X".repeat(62));
        check(&long, 0, &"X".repeat(62));
    }

    #[test]
    fn overrides_win() {
        let overrides = BTreeMap::from([
            ("NVIDIA H200".to_string(), "H200_NVLINK_141GB".to_string()),
            ("NVIDIA A40".to_string(), "RTX_A6000".to_string()),
            (
                "Tesla V100-SXM2-16GB".to_string(),
                "Tesla_V100_NVLINK".to_string(),
            ),
        ]);
        for (name, class) in [
            ("NVIDIA H200", "H200_NVLINK_141GB"),
            ("NVIDIA A40", "RTX_A6000"),
            ("Tesla V100-SXM2-16GB", "Tesla_V100_NVLINK"),
            // Only the exact NVML name is overridden.
            ("Tesla V100-PCIE-16GB", "Tesla_V100"),
            ("NVIDIA H200 NVL", "H200_NVL"),
        ] {
            assert_eq!(class_for(name, 0, &overrides), class, "{name}");
        }
    }

    /// Every class is a valid Kubernetes label value.
    #[test]
    fn classes_are_label_values() {
        for name in [
            "NVIDIA A100-SXM4-80GB",
            "Quadro RTX 5000 with Max-Q Design",
            "__x__",
            "NVIDIA GeForce RTX 4090 D",
            "é GPU ü",
        ] {
            let class = class_for(name, 0, &BTreeMap::new());
            assert!(class.len() <= 63, "{class}");
            assert!(
                class.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{class}"
            );
            assert!(
                class.starts_with(|c: char| c.is_ascii_alphanumeric()),
                "{class}"
            );
            assert!(
                class.ends_with(|c: char| c.is_ascii_alphanumeric()),
                "{class}"
            );
        }
    }
}
