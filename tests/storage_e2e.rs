//! Models end to end: a daemon, a real Docker engine and a real S3 server (moto). A service
//! whose `storageUri` is `s3://...` (access through a Secret and ServiceAccount dropped in
//! the folder) serves its model from `/mnt/models`, read-only; its two replicas and its next
//! revision share one download; a `pvc://` volume is mounted read-only at `/mnt/models` and
//! `/mnt/pvc` without a copy.
//!
//! Needs the Docker engine and the test image (`.ci/run` provides both) and moto. On CI
//! (`CI=true`) a missing one fails the test; elsewhere the test says why it did not run.

#[path = "support/docker.rs"]
mod docker_support;
#[path = "support/s3.rs"]
mod s3;
mod support;

use std::time::Duration;

use serde_json::Value;
use support::daemon::{
    condition, containers, docker, ready_replicas, wait_for, wait_until_removed, Daemon,
};
use support::http::request;

/// A busybox web server over `/mnt/models`, with `extra` predictor fields and `model` as its
/// storage URI.
fn service(name: &str, model: &str, extra: &str, args: &str) -> String {
    format!(
        "apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {{name: {name}}}
spec:
  predictor:
    terminationGracePeriodSeconds: 1
{extra}    containers:
    - name: kserve-container
      image: {image}
      command: [/bin/busybox]
      args: [httpd, -f, -p, '8080', -h, /mnt/models{args}]
      env:
      - {{name: STORAGE_URI, value: '{model}'}}
      resources:
        requests: {{cpu: 10m, memory: 16Mi}}
        limits: {{cpu: 100m, memory: 32Mi}}
",
        image = docker_support::TEST_IMAGE
    )
}

fn models(v: &Value) -> Vec<Value> {
    v["status"]["models"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn get(d: &Daemon, name: &str, path: &str) -> (u16, String) {
    let r = request(
        &d.listen,
        "GET",
        &format!("{name}.default.localhost"),
        path,
        "",
        Duration::from_secs(30),
    )
    .unwrap();
    (r.status, r.body)
}

/// Whether writing into the container's `dir` fails because the mount is read-only.
fn write_fails(container: &str, dir: &str) -> bool {
    let out = std::process::Command::new("docker")
        .args([
            "exec",
            container,
            "/bin/busybox",
            "touch",
            &format!("{dir}/written"),
        ])
        .output()
        .unwrap();
    !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Read-only file system")
}

#[test]
fn an_s3_model_is_downloaded_once_and_mounted_read_only() {
    if !docker_support::test_image_ready() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(mut moto) = runtime.block_on(s3::start()) else {
        return;
    };
    let weights = "w".repeat(300_000);
    runtime.block_on(async {
        moto.create_bucket("models").await;
        moto.put("models", "iris/v1/model.bin", weights.clone())
            .await;
        moto.put(
            "models",
            "iris/v1/config/labels.txt",
            "setosa\nversicolor\nvirginica\n",
        )
        .await;
    });

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("services");
    std::fs::create_dir(&dir).unwrap();
    let name = format!("s3model-{}", std::process::id());
    // Access the KServe way: a Secret with the keys and the endpoint, listed by a
    // ServiceAccount the predictor names.
    let port = moto.endpoint.rsplit(':').next().unwrap().to_string();
    std::fs::write(
        dir.join("access.yaml"),
        format!(
            "apiVersion: v1
kind: Secret
metadata:
  name: s3creds
  annotations:
    serving.kserve.io/s3-endpoint: 127.0.0.1:{port}
    serving.kserve.io/s3-usehttps: '0'
    serving.kserve.io/s3-region: us-east-1
stringData:
  AWS_ACCESS_KEY_ID: test-key
  AWS_SECRET_ACCESS_KEY: test-secret-value
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: models-reader}}
secrets:
- name: s3creds
"
        ),
    )
    .unwrap();
    // Initial scale 0 is allowed, for the service that is only fetched ahead.
    let config = tmp.path().join("gantry.yaml");
    std::fs::write(&config, "autoscaling:\n  allow-zero-initial-scale: true\n").unwrap();
    let d = Daemon::start_with(
        &dir,
        &tmp.path().join("state"),
        &["--config", config.to_str().unwrap()],
    );
    let file = dir.join(format!("{name}.yaml"));
    let extra = "    minReplicas: 2\n    serviceAccountName: models-reader\n";
    std::fs::write(&file, service(&name, "s3://models/iris/v1", extra, "")).unwrap();
    let v = wait_for(&d, &name, "two replicas ready", 90, |v| {
        condition(v, "Ready").0 == "True" && ready_replicas(v).len() == 2
    });

    // The model is served from /mnt/models, files and folders as in the bucket.
    assert_eq!(get(&d, &name, "/model.bin"), (200, weights.clone()));
    assert_eq!(
        get(&d, &name, "/config/labels.txt").1,
        "setosa\nversicolor\nvirginica\n"
    );
    // Two replicas, one download; the secret appears nowhere in the status.
    let m = models(&v);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0]["source"], "s3://models/iris/v1");
    assert_eq!(m[0]["state"], "Loaded");
    let total = (weights.len() + "setosa\nversicolor\nvirginica\n".len()) as u64;
    assert_eq!(m[0]["downloaded"], total);
    assert!(!v.to_string().contains("test-secret-value"));
    // Read-only, as KServe mounts it.
    for (_, _, container) in ready_replicas(&v) {
        assert!(
            write_fails(&container, "/mnt/models"),
            "{container} could write its model"
        );
    }

    let describe = std::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["describe", "isvc", &name, "--api", &d.api])
        .output()
        .unwrap();
    let describe = String::from_utf8_lossy(&describe.stdout);
    assert!(
        describe.contains("Models:\n  s3://models/iris/v1  Loaded  293.0 KiB downloaded\n"),
        "{describe}"
    );

    // Operators see it on /metrics too.
    let metrics = request(
        &d.api,
        "GET",
        "localhost",
        "/metrics",
        "",
        Duration::from_secs(10),
    )
    .unwrap()
    .body;
    assert!(
        metrics.lines().any(|l| l.starts_with("gantry_model_state{")
            && l.contains(&format!("inferenceservice=\"{name}\""))
            && l.contains("state=\"Loaded\"")
            && l.ends_with(" 1")),
        "{metrics}"
    );

    // The secret is nowhere in the daemon's log either.
    let api_port = d.api.rsplit(':').next().unwrap();
    let log = std::fs::read_to_string(tmp.path().join(format!("state.{api_port}.log"))).unwrap();
    assert!(log.contains("model downloaded"), "{log}");
    assert!(!log.contains("test-secret-value"));

    // A service scaled to zero has its model fetched when its YAML appears: the first
    // request does not wait for the download.
    runtime.block_on(moto.put("models", "iris/v2/model.bin", "second model"));
    let idle = format!("{name}-idle");
    let idle_file = dir.join(format!("{idle}.yaml"));
    let zero = "    minReplicas: 0\n    serviceAccountName: models-reader\n";
    let text = service(&idle, "s3://models/iris/v2", zero, "").replace(
        &format!("metadata: {{name: {idle}}}"),
        &format!(
            "metadata:\n  name: {idle}\n  annotations: {{autoscaling.knative.dev/initial-scale: '0'}}"
        ),
    );
    std::fs::write(&idle_file, text).unwrap();
    let v = wait_for(&d, &idle, "model fetched ahead", 60, |v| {
        models(v).first().is_some_and(|m| m["state"] == "Loaded")
    });
    let started = containers(&format!("gantry.dev/inferenceservice={idle}"));
    assert!(
        started.is_empty()
            && v["status"]["replicas"]
                .as_array()
                .is_none_or(|r| r.is_empty()),
        "no replica is needed to fetch a model: {started}"
    );
    assert_eq!(get(&d, &idle, "/model.bin"), (200, "second model".into()));
    std::fs::remove_file(&idle_file).unwrap();

    // A new revision of the same model: nothing downloaded again.
    std::fs::write(&file, service(&name, "s3://models/iris/v1", extra, ", -v")).unwrap();
    let v = wait_for(&d, &name, "revision 00002 ready", 90, |v| {
        condition(v, "Ready").0 == "True"
            && ready_replicas(v).iter().all(|r| r.0.ends_with("-00002"))
            && ready_replicas(v).len() == 2
    });
    assert_eq!(models(&v)[0]["downloaded"], total);
    assert_eq!(get(&d, &name, "/model.bin").1, weights);

    // A model that does not exist: ModelLoadFailed with KServe's text, and revision 00002
    // keeps serving.
    std::fs::write(&file, service(&name, "s3://models/nope", extra, ", -v")).unwrap();
    let v = wait_for(&d, &name, "ModelLoadFailed", 60, |v| {
        v["status"]["components"][0]["reason"] == "ModelLoadFailed"
    });
    let message = v["status"]["components"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("Failed to fetch model. No model found in s3://models/nope.")
            && message.contains("keeps serving"),
        "{message}"
    );
    assert_eq!(get(&d, &name, "/model.bin").1, weights);
    // Its replicas were never started.
    let failed = containers(&format!("gantry.dev/revision={name}-predictor-00003"));
    assert!(failed.is_empty(), "{failed}");

    std::fs::remove_file(&file).unwrap();
    wait_until_removed(&[&name, &idle]);
}

#[test]
fn a_pvc_volume_is_mounted_read_only_without_a_copy() {
    if !docker_support::test_image_ready() {
        return;
    }

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("services");
    std::fs::create_dir(&dir).unwrap();
    let volume = tmp.path().join("volume");
    std::fs::create_dir_all(volume.join("bloom")).unwrap();
    std::fs::write(volume.join("bloom/weights.txt"), "bloom weights").unwrap();
    let config = tmp.path().join("gantry.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  volumes:\n    model-store: {}\n",
            volume.display()
        ),
    )
    .unwrap();
    let name = format!("pvcmodel-{}", std::process::id());
    let d = Daemon::start_with(
        &dir,
        &tmp.path().join("state"),
        &["--config", config.to_str().unwrap()],
    );
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, service(&name, "pvc://model-store/bloom", "", "")).unwrap();
    let v = wait_for(&d, &name, "ready", 60, |v| {
        condition(v, "Ready").0 == "True"
    });
    assert_eq!(
        get(&d, &name, "/weights.txt"),
        (200, "bloom weights".into())
    );

    let container = ready_replicas(&v)[0].2.clone();
    // The claim's root at /mnt/pvc too (KFServing's layout), both read-only; the host folder
    // is the mount, not a copy: a file added on the host shows at once.
    let ls = docker(&["exec", &container, "/bin/busybox", "ls", "/mnt/pvc/bloom"]);
    assert_eq!(ls.trim(), "weights.txt");
    assert!(write_fails(&container, "/mnt/models"));
    assert!(write_fails(&container, "/mnt/pvc"));
    std::fs::write(volume.join("bloom/added.txt"), "added").unwrap();
    assert_eq!(get(&d, &name, "/added.txt").1, "added");
    assert!(models(&v).is_empty(), "nothing is downloaded for a pvc");

    // A local path: mounted as it is, read-only too.
    let local = format!("{name}-local");
    let local_file = dir.join(format!("{local}.yaml"));
    let path = volume.join("bloom");
    std::fs::write(&local_file, service(&local, path.to_str().unwrap(), "", "")).unwrap();
    let v = wait_for(&d, &local, "ready", 60, |v| {
        condition(v, "Ready").0 == "True"
    });
    assert_eq!(
        get(&d, &local, "/weights.txt"),
        (200, "bloom weights".into())
    );
    assert!(write_fails(&ready_replicas(&v)[0].2, "/mnt/models"));

    std::fs::remove_file(&local_file).unwrap();
    std::fs::remove_file(&file).unwrap();
    wait_until_removed(&[&name, &local]);
}
