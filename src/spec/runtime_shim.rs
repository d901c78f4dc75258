//! TEMPORARY: stands in for the runtime selection being written in runtime.rs.
#![allow(dead_code, unused_variables, clippy::too_many_arguments)]
use super::runtime::ServingRuntime;
use super::runtime::ServingRuntimeSpec;
use super::types::{Container, ModelFormat, ModelSpec, ObjectMeta, PredictorExtension, StringMap};

pub const KSERVE_VERSION: &str = "v0.15.2";
pub struct ModelRequest { pub format: String, pub format_version: Option<String>, pub runtime: Option<String>, pub protocol_version: Option<String>, pub multi_node: bool }
pub struct Selection { pub runtime: ServingRuntime, pub name: String, pub cluster_scoped: bool, pub protocol_version: String }
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RuntimeError(pub String);
pub struct BuiltContainer { pub container: Container, pub sidecars: Vec<Container>, pub labels: StringMap }
pub fn builtin_runtimes() -> &'static [ServingRuntime] { &[] }
pub fn select_runtime(model: &ModelRequest, namespace: &str, user: &[&ServingRuntime], builtins: &[ServingRuntime]) -> Result<Selection, RuntimeError> {
    Err(RuntimeError(format!("no runtime found to support predictor with model type: {{{} <nil>}}", model.format)))
}
pub fn build_container(runtime: &ServingRuntimeSpec, name: &str, meta: &ObjectMeta, c: &Container, v: Option<&str>, gpu: bool, storage: bool, protocol: &str) -> Result<BuiltContainer, RuntimeError> {
    Err(RuntimeError("pending".into()))
}
pub fn shorthand_model(framework: &str, ext: &PredictorExtension) -> ModelSpec {
    ModelSpec { model_format: ModelFormat { name: framework.into(), version: None }, storage_uri: ext.storage_uri.clone(), ..Default::default() }
}
pub fn validate_runtimes(r: &[&ServingRuntime]) -> Vec<(usize, String)> { Vec::new() }
