//! Every file of the shared corpus of real InferenceService and ServingRuntime YAML is either
//! accepted or rejected with a precise reason (KServe v0.15 semantics; see
//! `../shared/corpus/isvc/SOURCES.md`). An InferenceService file is loaded beside the corpus's
//! runtime files, as a user's folder would hold them; a runtime file is loaded alone.

mod support;

use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    ["../shared/corpus", "shared/corpus"]
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.is_dir())
        .expect("the shared corpus next to the repository (../shared/corpus)")
}

/// `None`: accepted (no error). `Some((line, text))`: the first error of the file.
const VERDICTS: &[(&str, Option<(usize, &str)>)] = &[
    ("isvc/coreweave__kubernetes-cloud__online-inference__bloom-175b__bloom-175b-inferenceservice.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__bloom-176b-deepspeed__02-inference-service.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__bloom-176b__02-bloom-176b-inferenceservice.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__custom-basnet__basnet-inferenceservice.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__custom-basnet__object-detector-inferenceservice.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__custom-pytorch-aitextgen__aitextgen-inferenceservice.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__custom-sentiment__sentiment-inferenceservice.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__dalle-mini__02-inference-service.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__fastertransformer__ft-inference-service-gptj.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__fastertransformer__ft-inference-service-neox.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__fastertransformer__gptj-ft-inference-service.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__gpt-2__service-pvc__gpt-pvc-huge-model-inferenceservice.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__gpt-2__service-pvc__gpt-pvc-inferenceservice.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__gpt-2__service-s3__gpt-s3-inferenceservice.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__gpt-j-deepspeed__02-inference-service.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__image-classifier__service__classifier-inferenceservice.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__stable-diffusion__03-inference-service.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__tensorizer-isvc__gptj_6b_hf__flask__hf-isvc.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__tensorizer-isvc__gptj_6b_hf__flask__hf-pvc.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__tensorizer-isvc__gptj_6b_hf__kserve__hf-isvc.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__tensorizer-isvc__gptj_6b_tensorizer__flask__tensorizer-isvc.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__tensorizer-isvc__gptj_6b_tensorizer__kserve__tensorizer-isvc.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__tensorizer-isvc__gptj_6b_tensorizer__kserve__tensorizer-pvc.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__tensorizer-isvc__tensorizer_hf_isvc__flask__hf-isvc.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__tensorizer-isvc__tensorizer_hf_isvc__flask__tensorizer-isvc.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__tensorizer-isvc__tensorizer_hf_isvc__kserve__hf-isvc.yaml", None),
    ("isvc/coreweave__kubernetes-cloud__online-inference__tensorizer-isvc__tensorizer_hf_isvc__kserve__tensorizer-isvc.yaml", None),
    ("isvc/kserve__kserve__docs__samples__accelerators__tensorflow-gpu.yaml", None),
    ("isvc/kserve__kserve__docs__samples__autoscaling__autoscale.yaml", None),
    ("isvc/kserve__kserve__docs__samples__autoscaling__autoscale_custom.yaml", None),
    ("isvc/kserve__kserve__docs__samples__autoscaling__autoscale_gpu.yaml", None),
    ("isvc/kserve__kserve__docs__samples__batcher__basic__batcher_v1beta1.yaml", None),
    ("isvc/kserve__kserve__docs__samples__custom__hello-world__custom.yaml", Some((13, "invalid YAML: did not find expected key (in `image: {username}/custom-sample`)"))),
    ("isvc/kserve__kserve__docs__samples__custom__torchserve__torchserve-custom.yaml", Some((8, "invalid YAML: did not find expected key (in `- image: {username}/torchserve:latest`)"))),
    ("isvc/kserve__kserve__docs__samples__explanation__aif__germancredit__bias-v1alpha1.yaml", Some((1, "apiVersion: no matches for kind \"InferenceService\" in version \"serving.kserve.io/v1alpha2\" (served versions: serving.kserve.io/v1beta1, serving.kubeflow.org/v1beta1, serving.kubeflow.org/v1alpha2)"))),
    ("isvc/kserve__kserve__docs__samples__explanation__alibi__imagenet__imagenet.yaml", Some((17, "spec.default.explainer.alibi: the alibi explainer was removed in KServe v0.13; use a custom explainer (custom.container)"))),
    ("isvc/kserve__kserve__docs__samples__explanation__alibi__income__income.yaml", Some((19, "unknown field \"spec.explainer.alibi\""))),
    ("isvc/kserve__kserve__docs__samples__explanation__art__mnist__art.yaml", None),
    ("isvc/kserve__kserve__docs__samples__gcp-iap__sklearn-iap-no-authz.yaml", Some((5, "metadata.namespace: Invalid value: \"<namespace>\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"))),
    ("isvc/kserve__kserve__docs__samples__logger__basic__sklearn-logging.yaml", None),
    ("isvc/kserve__kserve__docs__samples__multimodelserving__triton__multi_model_triton.yaml", None),
    ("isvc/kserve__kserve__docs__samples__pytorch__pytorch_gpu.yaml", None),
    ("isvc/kserve__kserve__docs__samples__rollout-strategy__rollout-strategy-example.yaml", Some((24, "unknown field \"spec.transformer.custom\""))),
    ("isvc/kserve__kserve__docs__samples__rollouts__canary.yaml", None),
    ("isvc/kserve__kserve__docs__samples__rollouts__pinned.yaml", None),
    ("isvc/kserve__kserve__docs__samples__s3__tensorflow_s3.yaml", None),
    ("isvc/kserve__kserve__docs__samples__storage__hf__hf_isvc.yaml", None),
    ("isvc/kserve__kserve__docs__samples__storage__pvc__mnist-pvc.yaml", Some((1, "apiVersion: no matches for kind \"InferenceService\" in version \"serving.kserve.io/v1alpha2\" (served versions: serving.kserve.io/v1beta1, serving.kubeflow.org/v1beta1, serving.kubeflow.org/v1alpha2)"))),
    ("isvc/kserve__kserve__docs__samples__storage__s3__tensorflow_s3.yaml", None),
    ("isvc/kserve__kserve__docs__samples__storage__storageSpec__sklearn_storagespec.yaml", None),
    ("isvc/kserve__kserve__docs__samples__storage__uri__sklearn.yaml", None),
    ("isvc/kserve__kserve__docs__samples__storage__uri__tensorflow.yaml", None),
    ("isvc/kserve__kserve__docs__samples__tensorflow__tensorflow-canary.yaml", None),
    ("isvc/kserve__kserve__docs__samples__transformer__image_transformer__image_transformer.yaml", None),
    ("isvc/kserve__kserve__docs__samples__triton__bert__bert.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__advanced__cluster_local.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__advanced__liveness_probe.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__advanced__pod-overrides.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__advanced__probes.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__advanced__timeout.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__custom__custom_model__custom.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__custom__prebuilt-image__custom.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__custom__torchserve__gpu.yaml", Some((8, "invalid YAML: did not find expected key (in `- image: {username}/torchserve-gpu:latest`)"))),
    ("isvc/kserve__kserve__docs__samples__v1beta1__onnx__onnx.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__rollout__canary.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__rollout__default.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__rollout__pinned.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__rollout__promotion.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__sklearn__multimodel__inferenceservice.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__sklearn__v1__sklearn.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__sklearn__v2__sklearn.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__tensorflow__gpu.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__tensorflow__tensorflow.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__torchserve__autoscaling__autoscaling.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__torchserve__transformer.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__torchserve__v1__bloom__bloom-560m.yaml", Some((14, "unknown field \"spec.nodeName\""))),
    ("isvc/kserve__kserve__docs__samples__v1beta1__torchserve__v1__torchserve.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__torchserve__v2__mnist_gpu.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__transformer__collocation__collocation.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__transformer__torchserve_image_transformer__transformer.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__triton__bert__bert_v1beta1.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__triton__torchscript__torch_transformer.yaml", None),
    ("isvc/kserve__kserve__docs__samples__v1beta1__xgboost__xgboost.yaml", None),
    ("isvc/kserve__kserve__test__benchmark__sklearn_hpa.yaml", None),
    ("isvc/kserve__modelmesh-serving__config__example-isvcs__example-onnx-mnist-isvc.yaml", Some((19, "metadata.annotations.serving.kserve.io/deploymentMode: deploymentMode ModelMesh is not supported: ModelMesh loads many models into shared runtime pods managed by its own controller; gantry runs one container per replica (Serverless). Remove the annotation to serve this model on its own"))),
    ("isvc/kserve__modelmesh-serving__fvt__testdata__isvcs__isvc-https.yaml", Some((6, "metadata.annotations.serving.kserve.io/deploymentMode: deploymentMode ModelMesh is not supported: ModelMesh loads many models into shared runtime pods managed by its own controller; gantry runs one container per replica (Serverless). Remove the annotation to serve this model on its own"))),
    ("isvc/kserve__modelmesh-serving__fvt__testdata__isvcs__isvc-pvc-uri.yaml", Some((6, "metadata.annotations.serving.kserve.io/deploymentMode: deploymentMode ModelMesh is not supported: ModelMesh loads many models into shared runtime pods managed by its own controller; gantry runs one container per replica (Serverless). Remove the annotation to serve this model on its own"))),
    ("isvc/kserve__modelmesh-serving__fvt__testdata__isvcs__new-format-mm.yaml", Some((6, "metadata.annotations.serving.kserve.io/deploymentMode: deploymentMode ModelMesh is not supported: ModelMesh loads many models into shared runtime pods managed by its own controller; gantry runs one container per replica (Serverless). Remove the annotation to serve this model on its own"))),
    ("isvc/kserve__website__docs__modelserving__autoscaling__autoscale-gpu-new.yaml", None),
    ("isvc/kserve__website__docs__modelserving__autoscaling__autoscaling-adv.yaml", None),
    ("isvc/kserve__website__docs__modelserving__autoscaling__scale-down-to-zero-new.yaml", None),
    ("isvc/kserve__website__docs__modelserving__explainer__trustyai__housing.yaml", None),
    ("isvc/kserve__website__docs__modelserving__storage__azure__sklearn-azure-new.yaml", None),
    ("isvc/kserve__website__docs__modelserving__storage__pvc__sklearn-pvc-new.yaml", None),
    ("isvc/kserve__website__docs__modelserving__storage__uri__tensorflow-from-uri-gzip.yaml", None),
    ("isvc/kserve__website__docs__modelserving__v1beta1__amd__single_model.yaml", None),
    ("isvc/kserve__website__docs__modelserving__v1beta1__llm__huggingface__vllm_runtime.yaml", None),
    ("isvc/kserve__website__docs__modelserving__v1beta1__llm__vllm__vllm.yaml", None),
    ("isvc/kserve__website__docs__modelserving__v1beta1__mlflow__v2__mlflow-new.yaml", None),
    ("isvc/kserve__website__docs__modelserving__v1beta1__triton__huggingface__triton_runtime.yaml", None),
    ("servingruntime/kserve__kserve__config__runtimes__kserve-huggingfaceserver.yaml", None),
    ("servingruntime/kserve__kserve__config__runtimes__kserve-mlserver.yaml", None),
    ("servingruntime/kserve__kserve__config__runtimes__kserve-sklearnserver.yaml", None),
    ("servingruntime/kserve__kserve__config__runtimes__kserve-tensorflow-serving.yaml", None),
    ("servingruntime/kserve__kserve__config__runtimes__kserve-torchserve.yaml", None),
    ("servingruntime/kserve__kserve__config__runtimes__kserve-tritonserver.yaml", None),
    ("servingruntime/kserve__kserve__config__runtimes__kserve-vllmserver.yaml", None),
    ("servingruntime/kserve__kserve__docs__samples__fluid__kserve-huggingfaceserver.yaml", Some((5, "spec: same priority assigned for the model format huggingface in the clusterservingruntimes kserve-huggingfaceserver and custom-kserve-huggingfaceserver"))),
    ("servingruntime/kserve__modelmesh-serving__config__runtimes__triton-2.x.yaml", None),
    ("servingruntime/kserve__modelmesh-serving__config__samples__servingruntime_custom.yaml", None),
    ("servingruntime/kserve__modelmesh-serving__fvt__testdata__runtimes__non-mm-runtime.yaml", None),
    ("servingruntime/kserve__website__docs__modelserving__v1beta1__amd__kserve-amdserver.yaml", None),
];

#[test]
fn every_corpus_file_has_its_verdict() {
    let root = corpus();
    let runtimes: Vec<(String, String)> = std::fs::read_dir(root.join("servingruntime"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    let mut listed = 0;
    let mut failures = Vec::new();
    for (file, expected) in VERDICTS {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let name = path.display().to_string();
        let mut files = vec![(name.as_str(), text.as_str())];
        if file.starts_with("isvc/") {
            files.extend(runtimes.iter().map(|(p, t)| (p.as_str(), t.as_str())));
        }
        let catalog = support::load(&files);
        let first_error = catalog
            .all_diagnostics()
            .into_iter()
            .find(|d| d.is_error() && d.file == name)
            .map(|d| (d.position.map_or(0, |p| p.line), d.text()));
        let got = first_error.as_ref().map(|(l, t)| (*l, t.as_str()));
        if got != *expected {
            failures.push(format!(
                "{file}\n  expected {expected:?}\n  got      {got:?}"
            ));
        }
        if expected.is_none() && file.starts_with("isvc/") {
            let valid = catalog
                .services
                .values()
                .filter(|s| s.file == name)
                .all(|s| s.desired.is_some());
            assert!(valid, "{file}: accepted but not normalised");
        }
        listed += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The table covers the whole corpus.
    let count = |dir: &str| {
        std::fs::read_dir(root.join(dir))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "yaml")
            })
            .count()
    };
    assert_eq!(listed, count("isvc") + count("servingruntime"));
}
