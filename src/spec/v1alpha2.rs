//! KFServing's `serving.kubeflow.org/v1alpha2` InferenceService (CoreWeave's GPT-2 and object
//! detector examples) and its conversion to v1beta1, as KFServing v0.6 converted it
//! (`inferenceservice_conversion.go`, kserve-spec.md §1.6).
//!
//! Unlike KFServing, the `canary` endpoint is not dropped: it is converted too and kept beside
//! the default one, so that canary rollouts can apply it.

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use super::types::{
    nullable, BatcherSpec, Container, ExplainerSpec, InferenceService, InferenceServiceSpec,
    LoggerSpec, ObjectMeta, PredictorExtension, PredictorSpec, ResourceRequirements,
    TransformerSpec,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InferenceServiceV1alpha2 {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: SpecV1alpha2,
    pub status: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpecV1alpha2 {
    pub default: EndpointSpec,
    pub canary: Option<EndpointSpec>,
    pub canary_traffic_percent: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointSpec {
    pub predictor: Box<PredictorV1alpha2>,
    pub transformer: Option<Box<TransformerV1alpha2>>,
    pub explainer: Option<Box<ExplainerV1alpha2>>,
}

/// Declares a v1alpha2 component: its implementations plus `DeploymentSpec`.
macro_rules! with_deployment_fields {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $( pub $field:ident : $ty:ty, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            $( pub $field: $ty, )*
            pub service_account_name: Option<String>,
            pub min_replicas: Option<i32>,
            #[serde(default, deserialize_with = "nullable")]
            pub max_replicas: i32,
            pub parallelism: Option<i64>,
            pub logger: Option<LoggerSpec>,
            pub batcher: Option<BatcherSpec>,
        }

        impl $name {
            fn deployment(&self) -> Deployment {
                Deployment {
                    service_account_name: self.service_account_name.clone(),
                    min_replicas: self.min_replicas,
                    max_replicas: self.max_replicas,
                    parallelism: self.parallelism,
                    logger: self.logger.clone(),
                    batcher: self.batcher.clone(),
                }
            }
        }
    };
}

with_deployment_fields! {
    pub struct PredictorV1alpha2 {
        pub custom: Option<CustomSpec>,
        pub tensorflow: Option<FrameworkV1alpha2>,
        pub triton: Option<FrameworkV1alpha2>,
        pub sklearn: Option<FrameworkV1alpha2>,
        pub xgboost: Option<FrameworkV1alpha2>,
        pub onnx: Option<FrameworkV1alpha2>,
        pub pytorch: Option<FrameworkV1alpha2>,
    }
}

with_deployment_fields! {
    pub struct TransformerV1alpha2 {
        pub custom: Option<CustomSpec>,
        pub feast: Option<Value>,
    }
}

with_deployment_fields! {
    pub struct ExplainerV1alpha2 {
        pub custom: Option<CustomSpec>,
        pub alibi: Option<Value>,
        pub aix: Option<Value>,
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomSpec {
    pub container: Box<Container>,
}

/// The v1alpha2 framework structs (`tensorflow`, `sklearn`, ...), merged: `nthread` is
/// XGBoost's and `modelClassName` PyTorch's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrameworkV1alpha2 {
    pub storage_uri: String,
    pub runtime_version: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub resources: ResourceRequirements,
    pub nthread: Option<i64>,
    pub model_class_name: Option<String>,
}

struct Deployment {
    service_account_name: Option<String>,
    min_replicas: Option<i32>,
    max_replicas: i32,
    parallelism: Option<i64>,
    logger: Option<LoggerSpec>,
    batcher: Option<BatcherSpec>,
}

/// A conversion that cannot be made, with the field it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversionError {
    pub field: String,
    pub message: String,
}

/// The v1beta1 equivalent: the default endpoint as the InferenceService, and the canary
/// endpoint (if any) as a second spec.
pub struct Converted {
    pub isvc: InferenceService,
    pub canary: Option<InferenceServiceSpec>,
}

impl InferenceServiceV1alpha2 {
    pub fn convert(&self) -> Result<Converted, Vec<ConversionError>> {
        let mut errors = Vec::new();
        if self.spec.canary_traffic_percent.is_some_and(|p| p > 0) && self.spec.canary.is_none() {
            errors.push(ConversionError {
                field: "spec.canaryTrafficPercent".into(),
                message: "Canary must be specified when CanaryTrafficPercent > 0.".into(),
            });
        }
        let mut spec = convert_endpoint(&self.spec.default, "spec.default", &mut errors);
        if let Some(p) = spec.predictor.as_mut() {
            p.canary_traffic_percent = self.spec.canary_traffic_percent;
        }
        let canary = self
            .spec
            .canary
            .as_ref()
            .map(|c| convert_endpoint(c, "spec.canary", &mut errors));
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Converted {
            isvc: InferenceService {
                api_version: self.api_version.clone(),
                kind: self.kind.clone(),
                metadata: self.metadata.clone(),
                spec,
                status: None,
            },
            canary,
        })
    }
}

fn convert_endpoint(
    endpoint: &EndpointSpec,
    field: &str,
    errors: &mut Vec<ConversionError>,
) -> InferenceServiceSpec {
    let p = &endpoint.predictor;
    let mut predictor = PredictorSpec::default();
    apply_deployment(&p.deployment(), &mut predictor);
    if let Some(custom) = &p.custom {
        predictor.containers = vec![(*custom.container).clone()];
    }
    for (fw, slot) in [
        (&p.tensorflow, &mut predictor.tensorflow),
        (&p.triton, &mut predictor.triton),
        (&p.sklearn, &mut predictor.sklearn),
        (&p.xgboost, &mut predictor.xgboost),
        (&p.onnx, &mut predictor.onnx),
        (&p.pytorch, &mut predictor.pytorch),
    ] {
        if let Some(fw) = fw {
            *slot = Some(Box::new(PredictorExtension {
                storage_uri: Some(fw.storage_uri.clone()),
                runtime_version: fw.runtime_version.clone(),
                resources: fw.resources.clone(),
                ..Default::default()
            }));
        }
    }

    let transformer = endpoint.transformer.as_ref().map(|t| {
        let mut out = TransformerSpec::default();
        apply_deployment(&t.deployment(), &mut out);
        if let Some(custom) = &t.custom {
            out.containers = vec![(*custom.container).clone()];
        }
        if t.feast.is_some() {
            errors.push(ConversionError {
                field: format!("{field}.transformer.feast"),
                message: "the Feast transformer was removed from KServe; use a custom \
                          transformer (custom.container)"
                    .into(),
            });
        }
        Box::new(out)
    });

    let explainer = endpoint.explainer.as_ref().map(|e| {
        let mut out = ExplainerSpec::default();
        apply_deployment(&e.deployment(), &mut out);
        if let Some(custom) = &e.custom {
            out.containers = vec![(*custom.container).clone()];
        }
        for (name, set, release) in [
            ("alibi", e.alibi.is_some(), "v0.13"),
            ("aix", e.aix.is_some(), "v0.11"),
        ] {
            if set {
                errors.push(ConversionError {
                    field: format!("{field}.explainer.{name}"),
                    message: format!(
                        "the {name} explainer was removed in KServe {release}; use a custom \
                         explainer (custom.container)"
                    ),
                });
            }
        }
        Box::new(out)
    });

    InferenceServiceSpec {
        predictor: Some(Box::new(predictor)),
        transformer,
        explainer,
    }
}

/// Copies the v1alpha2 `DeploymentSpec` onto a v1beta1 component (`parallelism` becomes
/// `containerConcurrency`).
trait DeploymentTarget {
    fn set(&mut self, d: &Deployment);
}

macro_rules! deployment_target {
    ($($t:ty),*) => {$(
        impl DeploymentTarget for $t {
            fn set(&mut self, d: &Deployment) {
                self.service_account_name = d.service_account_name.clone();
                self.min_replicas = d.min_replicas;
                self.max_replicas = d.max_replicas;
                self.container_concurrency = d.parallelism;
                self.logger = d.logger.clone();
                self.batcher = d.batcher.clone();
            }
        }
    )*};
}
deployment_target!(PredictorSpec, TransformerSpec, ExplainerSpec);

fn apply_deployment(d: &Deployment, target: &mut impl DeploymentTarget) {
    target.set(d);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::yaml::{decode, documents, UnknownFields};

    fn convert(text: &str) -> Result<Converted, Vec<ConversionError>> {
        let (docs, err) = documents(text);
        assert!(err.is_none());
        let (isvc, diags) = decode::<InferenceServiceV1alpha2>(&docs[0], UnknownFields::Error);
        assert!(diags.is_empty(), "{diags:?}");
        isvc.unwrap().convert()
    }

    #[test]
    fn default_and_canary_both_convert() {
        let c = convert(
            "apiVersion: serving.kubeflow.org/v1alpha2
kind: InferenceService
metadata: {name: my-model}
spec:
  default:
    predictor:
      parallelism: 4
      minReplicas: 0
      tensorflow: {storageUri: gs://a/1}
    transformer:
      custom: {container: {image: t:1, name: user-container}}
  canaryTrafficPercent: 10
  canary:
    predictor:
      tensorflow: {storageUri: gs://a/2}
",
        )
        .unwrap();
        let p = c.isvc.spec.predictor.unwrap();
        assert_eq!(p.container_concurrency, Some(4));
        assert_eq!(p.min_replicas, Some(0));
        assert_eq!(p.canary_traffic_percent, Some(10));
        assert_eq!(
            p.tensorflow.unwrap().storage_uri.as_deref(),
            Some("gs://a/1")
        );
        let t = c.isvc.spec.transformer.unwrap();
        assert_eq!(t.containers[0].image.as_deref(), Some("t:1"));
        let canary = c.canary.unwrap().predictor.unwrap();
        assert_eq!(
            canary.tensorflow.unwrap().storage_uri.as_deref(),
            Some("gs://a/2")
        );
    }

    #[test]
    fn removed_explainers_are_refused_with_the_reason() {
        let errors = convert(
            "apiVersion: serving.kubeflow.org/v1alpha2
kind: InferenceService
metadata: {name: imagenet}
spec:
  default:
    predictor: {tensorflow: {storageUri: gs://a}}
    explainer: {alibi: {type: AnchorImages, storageUri: gs://b}}
",
        )
        .err()
        .unwrap();
        assert_eq!(errors[0].field, "spec.default.explainer.alibi");
        assert!(errors[0].message.contains("removed in KServe v0.13"));
    }
}
