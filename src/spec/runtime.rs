//! ServingRuntime and ClusterServingRuntime (`serving.kserve.io/v1alpha1`): the types, KServe's
//! shipped runtimes as a built-in table, and how `model.modelFormat` picks one
//! (kserve-spec.md §7).

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use super::types::{nullable, Affinity, Container, ObjectMeta, StringMap};

/// A `ServingRuntime` (namespaced) or `ClusterServingRuntime` (cluster-wide); `kind` tells.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServingRuntime {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: ServingRuntimeSpec,
    pub status: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SupportedModelFormat {
    pub name: String,
    pub version: Option<String>,
    pub auto_select: Option<bool>,
    pub priority: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServingRuntimeSpec {
    #[serde(default, deserialize_with = "nullable")]
    pub supported_model_formats: Vec<SupportedModelFormat>,
    #[serde(default, deserialize_with = "nullable")]
    pub protocol_versions: Vec<String>,
    pub multi_model: Option<bool>,
    pub disabled: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub containers: Vec<Container>,
    #[serde(default, deserialize_with = "nullable")]
    pub volumes: Vec<Value>,
    #[serde(default, deserialize_with = "nullable")]
    pub node_selector: StringMap,
    pub affinity: Option<Affinity>,
    pub tolerations: Option<Value>,
    #[serde(default, deserialize_with = "nullable")]
    pub labels: StringMap,
    #[serde(default, deserialize_with = "nullable")]
    pub annotations: StringMap,
    pub image_pull_secrets: Option<Value>,
    #[serde(rename = "hostIPC")]
    pub host_ipc: Option<bool>,
    pub host_network: Option<bool>,
    pub worker_spec: Option<Value>,
    // ModelMesh only: accepted, meaningless to single-model serving.
    pub grpc_endpoint: Option<String>,
    pub grpc_data_endpoint: Option<String>,
    pub http_data_endpoint: Option<String>,
    pub replicas: Option<i32>,
    pub storage_helper: Option<Value>,
    pub built_in_adapter: Option<Value>,
}

impl ServingRuntime {
    pub fn is_cluster_scoped(&self) -> bool {
        self.kind == "ClusterServingRuntime"
    }

    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}
