//! KServe's and Knative's validation texts, through the whole loader: one table row per
//! mistake, each with the diagnostics a user sees (line:col, severity, field, message).

mod support;

use support::{isvc_with, load, rendered, CUSTOM};

fn check(annotations: &str, predictor: &str, expected: &[&str]) {
    let text = isvc_with(annotations, predictor);
    let got = rendered(&load(&[("m.yaml", &text)]));
    let got_errors: Vec<&String> = got.iter().filter(|d| d.contains("error: ")).collect();
    assert_eq!(
        got_errors,
        expected.iter().collect::<Vec<_>>(),
        "for:\n{text}"
    );
}

#[test]
fn kserve_component_texts() {
    let rows: &[(&str, &str, &[&str])] = &[
        ("", CUSTOM, &[]),
        ("", &format!("minReplicas: -1\n{CUSTOM}"), &["7:5: error: spec.predictor.minReplicas: 'MinReplicas' cannot be less than 0"]),
        ("", &format!("maxReplicas: -2\n{CUSTOM}"), &["7:5: error: spec.predictor.maxReplicas: 'MaxReplicas' cannot be less than 0"]),
        ("", &format!("minReplicas: 3\nmaxReplicas: 2\n{CUSTOM}"), &["7:5: error: spec.predictor.minReplicas: 'MinReplicas' cannot be greater than MaxReplicas"]),
        ("", &format!("minReplicas: 3\nmaxReplicas: 0\n{CUSTOM}"), &[]),
        ("", &format!("containerConcurrency: -1\n{CUSTOM}"), &["7:5: error: spec.predictor.containerConcurrency: parallelism cannot be less than 0"]),
        ("", &format!("containerConcurrency: 1001\n{CUSTOM}"), &["7:5: error: expected 0 <= 1001 <= 1000: spec.predictor.containerConcurrency"]),
        ("", &format!("canaryTrafficPercent: 101\n{CUSTOM}"), &["7:5: error: spec.predictor.canaryTrafficPercent: TrafficPercent must be between [0, 100]."]),
        ("", &format!("canaryTrafficPercent: -1\n{CUSTOM}"), &["7:5: error: spec.predictor.canaryTrafficPercent: TrafficPercent must be between [0, 100]."]),
        ("", &format!("timeout: 601\n{CUSTOM}"), &["7:5: error: expected 0 <= 601 <= 600: spec.predictor.timeout"]),
        ("", &format!("scaleMetric: rps\nscaleTarget: 0\n{CUSTOM}"), &["8:5: error: spec.predictor.scaleTarget: the target for rps should be greater than 1"]),
        ("", &format!("logger: {{mode: everything}}\n{CUSTOM}"), &["7:14: error: spec.predictor.logger.mode: invalid logger type"]),
        ("", "sklearn: {storageUri: gs://a}\ntensorflow: {storageUri: gs://b}", &["6:3: error: spec.predictor: exactly one of [SKLearn, XGBoost, Tensorflow, PyTorch, Triton, ONNX, HuggingFace, PMML, LightGBM, Paddle, Model, WorkerSpec, PodSpec] must be specified in PredictorSpec"]),
        ("", "minReplicas: 1", &["6:3: error: spec.predictor: exactly one of [SKLearn, XGBoost, Tensorflow, PyTorch, Triton, ONNX, HuggingFace, PMML, LightGBM, Paddle, Model, WorkerSpec, PodSpec] must be specified in PredictorSpec"]),
        ("serving.kserve.io/autoscalerClass: magic", CUSTOM, &["6:5: error: metadata.annotations.serving.kserve.io/autoscalerClass: [magic] is not a supported autoscaler class type"]),
        ("", &format!("{CUSTOM}  env: [{{name: PROTOCOL, value: v3}}]"), &["10:30: error: spec.predictor.containers[0].env[0].value: invalid protocol v1, v2. Must be one of [v3]"]),
        ("", &format!("{CUSTOM}  env: [{{name: PORT, value: '9000'}}]"), &["10:14: error: spec.predictor.containers[0].env[0].name: \"PORT\" is a reserved environment variable"]),
        ("", "sklearn: {storageUri: 'ftp://x/y'}", &["7:15: error: spec.predictor.sklearn.storageUri: StorageURI not supported: storageUri, must be one of: [gs://, s3://, pvc://, file://, https://, http://, hdfs://, webhdfs://, oci://, hf://] or match https://{}.blob.core.windows.net/{}/{} or be an absolute or relative local path. StorageUri [ftp://x/y] is not supported"]),
        ("", &format!("{CUSTOM}  resources: {{requests: {{cpu: '4'}}, limits: {{cpu: '2'}}}}"), &["10:19: error: spec.predictor.containers[0].resources.requests: Invalid value: \"4\": must be less than or equal to cpu limit of 2"]),
        ("", &format!("{CUSTOM}  resources: {{limits: {{nvidia.com/gpu: 0.5}}}}"), &["10:28: error: spec.predictor.containers[0].resources.limits.nvidia.com/gpu: Invalid value: \"0.5\": must be an integer"]),
        ("", &format!("{CUSTOM}  resources: {{limits: {{cpu: lots}}}}"), &["10:28: error: spec.predictor.containers[0].resources.limits.cpu: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"]),
        ("", &format!("minReplicas: many\n{CUSTOM}"), &["7:5: error: spec.predictor.minReplicas: invalid type: string \"many\", expected an integer"]),
    ];
    for (annotations, predictor, expected) in rows {
        check(annotations, predictor, expected);
    }
}

#[test]
fn knative_annotation_texts() {
    let rows: &[(&str, &[&str])] = &[
        ("autoscaling.knative.dev/window: 1s", &["6:5: error: expected 6s <= 1s <= 1h0m0s: metadata.annotations.autoscaling.knative.dev/window"]),
        ("autoscaling.knative.dev/target: '-11'", &["6:5: error: target -11 should be at least 0.01: metadata.annotations.autoscaling.knative.dev/target"]),
        ("autoscaling.knative.dev/panic-threshold-percentage: fifty", &["6:5: error: invalid value: fifty: metadata.annotations.autoscaling.knative.dev/panic-threshold-percentage"]),
        ("autoscaling.knative.dev/metric: cpu", &["6:5: error: invalid value: cpu: metadata.annotations.autoscaling.knative.dev/metric"]),
        ("autoscaling.knative.dev/max-scale: never", &["6:5: error: invalid value: never: metadata.annotations.autoscaling.knative.dev/max-scale"]),
        ("autoscaling.knative.dev/scale-down-delay: 311m", &["6:5: error: expected 0s <= 311m <= 1h0m0s: metadata.annotations.autoscaling.knative.dev/scale-down-delay"]),
        ("autoscaling.knative.dev/window: 1984s", &[]),
        ("autoscaling.knative.dev/target-burst-capacity: '-1'", &[]),
    ];
    for (annotations, expected) in rows {
        check(annotations, CUSTOM, expected);
    }
}

#[test]
fn every_problem_of_a_document_is_reported() {
    let text = isvc_with(
        "autoscaling.knative.dev/window: 1s",
        &format!("minReplicas: -1\ncontainerConcurrency: -3\n{CUSTOM}"),
    );
    let errors = rendered(&load(&[("m.yaml", &text)]));
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn unknown_fields_are_errors_or_warnings_with_did_you_mean() {
    let text = isvc_with("", &format!("minReplica: 1\n{CUSTOM}  imagee: x\n"));
    assert_eq!(
        rendered(&load(&[("m.yaml", &text)])),
        [
            "7:5: error: unknown field \"spec.predictor.minReplica\"; did you mean \"minReplicas\"?",
            "11:7: error: unknown field \"spec.predictor.containers[0].imagee\"; did you mean \"image\"?",
        ]
    );
    let lenient = gantry::spec::catalog::LoadOptions {
        unknown_fields: gantry::spec::yaml::UnknownFields::Warn,
        ..Default::default()
    };
    let c = support::load_with(&[("m.yaml", &text)], &lenient);
    assert!(c.services.values().next().unwrap().desired.is_some());
    assert!(rendered(&c).iter().all(|d| d.contains("warning: ")));
}

#[test]
fn ignored_fields_are_listed() {
    let text = isvc_with(
        "",
        &format!("tolerations: [{{key: gpu, operator: Exists}}]\nnodeName: box\n{CUSTOM}"),
    );
    assert_eq!(
        rendered(&load(&[("m.yaml", &text)])),
        [
            "7:5: warning: spec.predictor.tolerations: ignored: has no meaning on a single machine",
            "8:5: warning: spec.predictor.nodeName: ignored: has no meaning on a single machine",
        ]
    );
}

#[test]
fn a_storage_spec_without_a_storage_uri_is_a_warning() {
    let text = isvc_with(
        "",
        "model:\n  modelFormat: {name: sklearn}\n  storage: {key: localMinIO, path: sklearn}\n",
    );
    let c = load(&[("m.yaml", &text)]);
    assert_eq!(
        rendered(&c),
        ["9:7: warning: spec.predictor.model.storage: the storage spec (key, path, parameters) is not supported by gantry: no model is mounted; use storageUri"]
    );
    assert!(c.services.values().next().unwrap().desired.is_some());
}

#[test]
fn v1alpha2_canary_requires_a_canary() {
    let text = "apiVersion: serving.kubeflow.org/v1alpha2
kind: InferenceService
metadata: {name: m}
spec:
  canaryTrafficPercent: 10
  default:
    predictor:
      custom: {container: {image: 'img:1'}}
";
    assert_eq!(
        rendered(&load(&[("m.yaml", text)])),
        ["5:3: error: spec.canaryTrafficPercent: Canary must be specified when CanaryTrafficPercent > 0."]
    );
}

#[test]
fn limits_on_file_size_and_aliases() {
    let mut bomb = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        bomb.push_str(&format!(
            "  a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(", ")
        ));
    }
    let errors = rendered(&load(&[("bomb.yaml", &bomb)]));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("repetition limit exceeded"),
        "{errors:?}"
    );
}

#[test]
fn multi_document_files_and_other_kinds() {
    let text = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: s3}}\nstringData: {{AWS_SECRET_ACCESS_KEY: hunter2}}\n---\n{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n",
        isvc_with("", CUSTOM)
    );
    let c = load(&[("all.yaml", &text)]);
    assert!(rendered(&c).is_empty(), "{:?}", rendered(&c));
    assert_eq!(c.services.len(), 1);
    assert_eq!(c.objects.len(), 2);
    let secret = c.objects.values().find(|o| o.key.kind == "Secret").unwrap();
    assert!(
        !format!("{secret:?}").contains("hunter2"),
        "a Secret's data never shows"
    );
}
