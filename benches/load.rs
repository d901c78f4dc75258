//! Folder load benchmark: start-up over 1,000 InferenceService files, and the time from
//! writing one edited file to its new spec being published by the watcher.
//!
//! Run: `cargo bench --bench load` (prints figures; asserts nothing).

use std::time::{Duration, Instant};

use gantry::spec::catalog::{LoadOptions, ServiceKey};
use gantry::watch::{load_once, run, FolderState, WatchSettings};
use tokio::sync::watch;

const FILES: usize = 1000;

fn isvc(i: usize, image: &str) -> String {
    format!(
        "apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: model-{i}
  annotations:
    autoscaling.knative.dev/target: \"4\"
spec:
  predictor:
    minReplicas: {min}
    maxReplicas: 4
    containerConcurrency: 8
    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms:
          - matchExpressions:
            - {{key: gpu.nvidia.com/class, operator: In, values: [A40, RTX_A6000]}}
    containers:
    - name: kserve-container
      image: {image}
      args: [--model_name=model-{i}]
      env:
      - {{name: STORAGE_URI, value: 'pvc://models/model-{i}'}}
      readinessProbe:
        httpGet: {{path: /v1/models/model-{i}}}
      resources:
        requests: {{cpu: 500m, memory: 4Gi}}
        limits: {{cpu: 2, memory: 8Gi, nvidia.com/gpu: 1}}
",
        min = i % 2
    )
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..FILES {
        std::fs::write(
            dir.path().join(format!("model-{i:04}.yaml")),
            isvc(i, "img:1"),
        )
        .unwrap();
    }
    let opts = LoadOptions::default();

    let mut startup = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let catalog = load_once(dir.path(), 1 << 20, &opts).unwrap();
        startup.push(t.elapsed());
        assert_eq!(catalog.services.len(), FILES);
        assert!(catalog.all_diagnostics().is_empty());
    }
    startup.sort();
    println!(
        "start-up load of {FILES} files: median {:?}, min {:?}, max {:?}",
        startup[2], startup[0], startup[4]
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let settings = WatchSettings {
            dir: dir.path().to_path_buf(),
            max_file_bytes: 1 << 20,
            debounce: Duration::from_millis(50),
            resync_interval: Duration::from_secs(30),
            load: opts.clone(),
        };
        let (publish, mut state) = watch::channel(FolderState::default());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(settings, publish, stopped));
        state.wait_for(|s| s.catalog.services.len() == FILES).await.unwrap();

        let key = ServiceKey { namespace: "default".into(), name: "model-500".into() };
        let mut latencies = Vec::new();
        for round in 0..10 {
            let image = format!("img:edit-{round}");
            let t = Instant::now();
            std::fs::write(dir.path().join("model-0500.yaml"), isvc(500, &image)).unwrap();
            state
                .wait_for(|s| {
                    s.catalog.services.get(&key).and_then(|e| e.desired.as_ref()).is_some_and(|d| d.components[0].template.container.image == image)
                })
                .await
                .unwrap();
            latencies.push(t.elapsed());
        }
        latencies.sort();
        println!(
            "edit of one file to re-validated spec (debounce 50ms): median {:?}, min {:?}, max {:?}",
            latencies[5], latencies[0], latencies[9]
        );
        stop.send(true).unwrap();
        task.await.unwrap();
    });
}
