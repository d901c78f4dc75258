//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

pub mod daemon;
pub mod http;
pub mod inprocess;

use gantry::spec::catalog::{next_catalog, parse_file, Catalog, LoadOptions};

/// Loads YAML texts as if they were the files of one folder.
pub fn load(files: &[(&str, &str)]) -> Catalog {
    load_with(files, &LoadOptions::default())
}

pub fn load_with(files: &[(&str, &str)], opts: &LoadOptions) -> Catalog {
    let parsed: Vec<_> = files
        .iter()
        .map(|(path, text)| Arc::new(parse_file(path, text, opts)))
        .collect();
    next_catalog(&Catalog::default(), &parsed, opts)
}

/// Every diagnostic as `line:col: severity: text`.
pub fn rendered(c: &Catalog) -> Vec<String> {
    c.all_diagnostics()
        .iter()
        .map(|d| {
            let at = d
                .position
                .map(|p| format!("{}:{}: ", p.line, p.column))
                .unwrap_or_default();
            format!("{at}{}: {}", d.severity, d.text())
        })
        .collect()
}

/// An InferenceService with the given predictor body (indented under `predictor:`).
pub fn isvc_with(annotations: &str, predictor: &str) -> String {
    let mut text = String::from(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: m\n",
    );
    if !annotations.is_empty() {
        text.push_str("  annotations:\n");
        for line in annotations.lines() {
            text.push_str(&format!("    {line}\n"));
        }
    }
    text.push_str("spec:\n  predictor:\n");
    for line in predictor.lines() {
        text.push_str(&format!("    {line}\n"));
    }
    text
}

/// A custom container predictor plus extra predictor fields.
pub const CUSTOM: &str = "containers:\n- name: kserve-container\n  image: img:1\n";

/// Four fake GPUs of two classes, as a `--gpus-file`.
pub const FOUR_GPUS: &str = "gpus:
- {uuid: GPU-a40-0, name: NVIDIA A40, memory: 48Gi, pciBusId: '0000:17:00.0'}
- {uuid: GPU-a40-1, name: NVIDIA A40, memory: 48Gi, pciBusId: '0000:31:00.0'}
- {uuid: GPU-a6000-0, name: NVIDIA RTX A6000, memory: 48Gi, pciBusId: '0000:b1:00.0'}
- {uuid: GPU-a6000-1, name: NVIDIA RTX A6000, memory: 48Gi, pciBusId: '0000:ca:00.0'}
";
