//! Normalisation: KServe's defaults, runtime selection, the KServe→Knative mapping, placement
//! and the revision key, checked on the desired state a user would see in the API.

mod support;

use gantry::spec::catalog::{Catalog, ServiceKey};
use gantry::spec::normalize::{DesiredComponent, DesiredService};
use support::{isvc_with, load, rendered, CUSTOM};

fn desired(text: &str) -> DesiredService {
    desired_of(&load(&[("m.yaml", text)]), "m")
}

fn desired_of(c: &Catalog, name: &str) -> DesiredService {
    let errors: Vec<String> = rendered(c)
        .into_iter()
        .filter(|d| d.contains("error"))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let key = ServiceKey {
        namespace: "default".into(),
        name: name.into(),
    };
    (*c.services[&key].desired.clone().unwrap()).clone()
}

fn predictor(text: &str) -> DesiredComponent {
    desired(text).components[0].clone()
}

#[test]
fn resources_defaults_per_key_and_request_equals_limit() {
    // (resources YAML, cpu request/limit millis, memory request/limit bytes, gpus)
    type Row = (&'static str, (i64, i64), (i64, i64), i64);
    let rows: &[Row] = &[
        ("", (1000, 1000), (2 << 30, 2 << 30), 0),
        (
            "resources: {limits: {nvidia.com/gpu: 1}}",
            (1000, 1000),
            (2 << 30, 2 << 30),
            1,
        ),
        (
            "resources: {limits: {cpu: 2, memory: 8Gi}}",
            (2000, 2000),
            (8 << 30, 8 << 30),
            0,
        ),
        (
            "resources: {requests: {cpu: 100m, memory: 64Mi}}",
            (100, 1000),
            (64 << 20, 2 << 30),
            0,
        ),
        (
            "resources: {requests: {cpu: 500m}, limits: {cpu: '2', nvidia.com/gpu: '2'}}",
            (500, 2000),
            (2 << 30, 2 << 30),
            2,
        ),
    ];
    for (resources, cpu, memory, gpus) in rows {
        let body = if resources.is_empty() {
            CUSTOM.to_string()
        } else {
            format!("{CUSTOM}  {resources}\n")
        };
        let r = predictor(&isvc_with("", &body))
            .template
            .container
            .resources;
        assert_eq!(
            (r.cpu_request_millis, r.cpu_limit_millis),
            *cpu,
            "{resources}"
        );
        assert_eq!(
            (r.memory_request_bytes, r.memory_limit_bytes),
            *memory,
            "{resources}"
        );
        assert_eq!(r.gpus, *gpus, "{resources}");
        if *gpus > 0 {
            assert_eq!(
                r.requests["nvidia.com/gpu"], r.limits["nvidia.com/gpu"],
                "an extended resource's request is its limit"
            );
        }
    }
}

#[test]
fn kserve_to_knative_mapping() {
    // (annotations, extra predictor fields, min, max, cc, target value, metric)
    let rows: &[(&str, &str, i32, i32, i64, f64, &str)] = &[
        ("", "", 1, 0, 0, 85.0, "concurrency"),
        (
            "",
            "minReplicas: 0\nmaxReplicas: 3\n",
            0,
            3,
            0,
            85.0,
            "concurrency",
        ),
        // minReplicas unset means 1, whatever the annotation says.
        (
            "autoscaling.knative.dev/min-scale: '0'",
            "",
            1,
            0,
            0,
            85.0,
            "concurrency",
        ),
        // maxReplicas 0 leaves a max-scale annotation in force.
        (
            "autoscaling.knative.dev/max-scale: '5'",
            "",
            1,
            5,
            0,
            85.0,
            "concurrency",
        ),
        (
            "",
            "containerConcurrency: 10\n",
            1,
            0,
            10,
            8.5,
            "concurrency",
        ),
        (
            "autoscaling.knative.dev/target: '1'",
            "containerConcurrency: 1\n",
            1,
            0,
            1,
            0.85,
            "concurrency",
        ),
        (
            "",
            "scaleTarget: 20\nscaleMetric: concurrency\ncontainerConcurrency: 10\n",
            1,
            0,
            10,
            8.5,
            "concurrency",
        ),
        (
            "",
            "scaleTarget: 50\nscaleMetric: rps\n",
            1,
            0,
            0,
            35.0,
            "rps",
        ),
        ("", "scaleMetric: rps\n", 1, 0, 0, 140.0, "rps"),
    ];
    for (annotations, fields, min, max, cc, target, metric) in rows {
        let c = predictor(&isvc_with(annotations, &format!("{fields}{CUSTOM}")));
        let s = &c.scaling;
        assert_eq!(
            (s.min_replicas, s.max_replicas, s.container_concurrency),
            (*min, *max, *cc),
            "{annotations} {fields}"
        );
        assert!(
            (s.autoscaling.target_value - target).abs() < 1e-9,
            "{annotations} {fields}: {}",
            s.autoscaling.target_value
        );
        assert_eq!(s.autoscaling.metric, *metric);
        assert_eq!(s.timeout_seconds, 300, "Knative's revision timeout default");
        assert_eq!(s.autoscaling.stable_window.to_string(), "3m0s");
        assert_eq!(
            s.autoscaling.panic_window.to_string(),
            "23s",
            "13% of 180s, rounded"
        );
    }
}

#[test]
fn framework_shorthands_resolve_to_kserve_runtimes() {
    let c = predictor(&isvc_with("", "sklearn:\n  storageUri: gs://bucket/iris\n"));
    assert_eq!(c.implementation, "sklearn");
    assert_eq!(c.runtime.as_deref(), Some("kserve-sklearnserver"));
    assert_eq!(c.protocol_version.as_deref(), Some("v1"));
    assert_eq!(c.template.container.image, "kserve/sklearnserver:v0.15.2");
    assert!(
        c.template
            .container
            .args
            .contains(&"--model_name=m".to_string()),
        "{:?}",
        c.template.container.args
    );
    assert_eq!(c.template.storage_uri.as_deref(), Some("gs://bucket/iris"));

    let gpu = predictor(&isvc_with(
        "",
        "tensorflow:\n  storageUri: gs://b/m\n  resources: {limits: {nvidia.com/gpu: 1}}\n",
    ));
    assert_eq!(gpu.runtime.as_deref(), Some("kserve-tensorflow-serving"));
    assert_eq!(gpu.template.container.image, "tensorflow/serving:2.6.2-gpu");

    let pinned = predictor(&isvc_with(
        "",
        "tensorflow:\n  storageUri: gs://b/m\n  runtimeVersion: 2.14.0\n",
    ));
    assert_eq!(pinned.template.container.image, "tensorflow/serving:2.14.0");

    let triton = predictor(&isvc_with("", "triton:\n  storageUri: gs://b/m\n"));
    assert_eq!(triton.runtime.as_deref(), Some("kserve-tritonserver"));
    assert_eq!(triton.protocol_version.as_deref(), Some("v2"));

    let v2 = predictor(&isvc_with(
        "",
        "model:\n  modelFormat: {name: sklearn}\n  protocolVersion: v2\n  storageUri: gs://b/m\n",
    ));
    assert_eq!(v2.runtime.as_deref(), Some("kserve-mlserver"));
}

#[test]
fn runtime_errors_use_kserve_texts() {
    let c = load(&[(
        "m.yaml",
        &isvc_with(
            "",
            "model:\n  modelFormat: {name: caffe}\n  storageUri: gs://b/m\n",
        ),
    )]);
    assert_eq!(rendered(&c), ["7:5: error: spec.predictor.model: no runtime found to support predictor with model type: {caffe <nil>}"]);
    let c = load(&[(
        "m.yaml",
        &isvc_with(
            "",
            "model:\n  modelFormat: {name: sklearn}\n  runtime: nope\n",
        ),
    )]);
    assert_eq!(rendered(&c), ["7:5: error: spec.predictor.model: No ServingRuntimes or ClusterServingRuntimes with the name: nope"]);
}

#[test]
fn a_runtime_in_the_folder_is_selected_and_templated() {
    let runtime = "apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata: {name: my-runtime}
spec:
  supportedModelFormats: [{name: onnx, autoSelect: true, priority: 5}]
  protocolVersions: [v1]
  containers:
  - name: kserve-container
    image: me/onnx-server:1
    args: ['--model={{.Name}}', '--ns={{.Namespace}}']
";
    let isvc = isvc_with(
        "",
        "model:\n  modelFormat: {name: onnx}\n  storageUri: gs://b/m\n",
    );
    let c = load(&[("rt.yaml", runtime), ("m.yaml", &isvc)]);
    let p = desired_of(&c, "m").components[0].clone();
    assert_eq!(p.runtime.as_deref(), Some("my-runtime"));
    assert_eq!(p.template.container.image, "me/onnx-server:1");
    assert_eq!(p.template.container.args, ["--model=m", "--ns=default"]);
}

#[test]
fn placement_from_affinity_node_selector_and_gke_accelerator() {
    let affinity = "affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: gpu.nvidia.com/class, operator: In, values: [A40, RTX_A6000]}
        - {key: topology.kubernetes.io/region, operator: In, values: [LAS1]}
    preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 10
      preference:
        matchExpressions:
        - {key: gpu.nvidia.com/vram, operator: Gt, values: ['40']}
";
    let p = predictor(&isvc_with("", &format!("{affinity}{CUSTOM}")))
        .template
        .placement;
    assert_eq!(
        p.required[0].match_expressions[0].values,
        ["A40", "RTX_A6000"]
    );
    assert_eq!(p.preferred[0].weight, 10);

    let gpu = format!("{CUSTOM}  resources: {{limits: {{nvidia.com/gpu: 1}}}}\n");
    let p = predictor(&isvc_with(
        "serving.kubeflow.org/gke-accelerator: Tesla_V100",
        &gpu,
    ))
    .template
    .placement;
    assert_eq!(p.node_selector["gpu.nvidia.com/class"], "Tesla_V100");
    // A component that asks for no GPU is not tied to a GPU class (KServe's injector).
    let p = predictor(&isvc_with(
        "serving.kubeflow.org/gke-accelerator: Tesla_V100",
        CUSTOM,
    ))
    .template
    .placement;
    assert!(p.node_selector.is_empty());

    let bad = load(&[(
        "m.yaml",
        &isvc_with(
            "",
            &format!(
                "{}{CUSTOM}",
                affinity.replace(
                    "operator: In, values: [LAS1]",
                    "operator: Near, values: [LAS1]"
                )
            ),
        ),
    )]);
    assert!(
        rendered(&bad)[0].contains("Unsupported value: \"Near\""),
        "{:?}",
        rendered(&bad)
    );
}

#[test]
fn the_revision_key_changes_exactly_when_what_runs_changes() {
    let base = predictor(&isvc_with("", CUSTOM)).revision_key;
    // In place: replica bounds, autoscaling, concurrency, timeout, canary percent.
    for fields in [
        "minReplicas: 0\nmaxReplicas: 9\n",
        "containerConcurrency: 4\ntimeout: 30\n",
        "canaryTrafficPercent: 10\n",
        "scaleTarget: 3\n",
    ] {
        let key = predictor(&isvc_with(
            "autoscaling.knative.dev/window: 90s",
            &format!("{fields}{CUSTOM}"),
        ))
        .revision_key;
        assert_eq!(key, base, "{fields} must not make a new revision");
    }
    // New revision: image, env, resources, args, placement.
    for changed in [
        CUSTOM.replace("img:1", "img:2"),
        format!("{CUSTOM}  env: [{{name: A, value: b}}]\n"),
        format!("{CUSTOM}  resources: {{limits: {{memory: 4Gi}}}}\n"),
        format!("{CUSTOM}  args: [--x]\n"),
        format!("nodeSelector: {{gpu.nvidia.com/class: A40}}\n{CUSTOM}"),
    ] {
        assert_ne!(
            predictor(&isvc_with("", &changed)).revision_key,
            base,
            "{changed}"
        );
    }
}

#[test]
fn transformers_get_kserve_arguments_and_v1alpha2_converts() {
    let text = "apiVersion: serving.kubeflow.org/v1alpha2
kind: InferenceService
metadata: {name: gpt, annotations: {serving.kubeflow.org/gke-accelerator: Tesla_V100}}
spec:
  default:
    predictor:
      parallelism: 1
      minReplicas: 0
      tensorflow: {storageUri: 's3://models/gpt', runtimeVersion: 1.14.0-gpu, resources: {limits: {nvidia.com/gpu: 1}}}
    transformer:
      custom:
        container: {name: user-container, image: 'me/transformer:1'}
";
    let c = load(&[("gpt.yaml", text)]);
    let d = desired_of(&c, "gpt");
    let p = &d.components[0];
    assert_eq!(p.template.container.name, "kserve-container");
    assert_eq!(p.template.container.image, "tensorflow/serving:1.14.0-gpu");
    assert_eq!(
        (p.scaling.min_replicas, p.scaling.container_concurrency),
        (0, 1)
    );
    assert_eq!(
        p.template.placement.node_selector["gpu.nvidia.com/class"],
        "Tesla_V100"
    );
    let t = &d.components[1];
    assert_eq!(t.name, "gpt-transformer");
    assert_eq!(
        t.template.container.args,
        [
            "--model_name",
            "gpt",
            "--predictor_host",
            "gpt-predictor.default",
            "--http_port",
            "8080"
        ]
    );
}
