//! The daemon on a real Docker engine with the example model server: a dropped YAML serves
//! real predictions; edits roll out a new revision with no gap; a broken edit leaves the old
//! revision serving; a killed replica restarts with back-off; a daemon restart adopts the
//! running containers; a deleted file removes them.
//!
//! Needs the Docker engine and the `gantry-model-server:latest` image
//! (`examples/model-server/build-image.sh`); `.ci/run` provides both. On CI (`CI=true`) a
//! missing engine or image fails the test; elsewhere the test says why it did not run.

mod support;

use support::daemon::{
    condition, containers, docker, engine_and_image_ready, models_dir, ready_replicas, wait_for,
    wait_until_removed, Daemon, MODEL_SERVER as IMAGE,
};

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `:predict` call to a replica's published port; the model server's answer.
fn predict(port: u16, model: &str) -> Result<Value, String> {
    let body =
        r#"{"instances": [[5.1, 3.5, 1.4, 0.2], [5.9, 3.0, 4.2, 1.5], [6.7, 3.0, 5.2, 2.3]]}"#;
    let out = Command::new("curl")
        .args([
            "-sf",
            "--max-time",
            "5",
            "-H",
            "content-type: application/json",
            "-d",
            body,
        ])
        .arg(format!("http://127.0.0.1:{port}/v1/models/{model}:predict"))
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("curl exited {:?}", out.status.code()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

fn service_yaml(name: &str, models: &Path, image: &str, version: &str, extra: &str) -> String {
    format!(
        "apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
spec:
  predictor:
    minReplicas: 1
    terminationGracePeriodSeconds: 5
    containers:
    - name: kserve-container
      image: {image}
      args: [--model-name={name}, --version={version}]
      env:
      - name: STORAGE_URI
        value: {models}
      readinessProbe:
        httpGet: {{path: /v2/health/ready}}
      resources:
        requests: {{cpu: 100m, memory: 32Mi}}
        limits: {{cpu: 500m, memory: 64Mi}}
{extra}",
        models = models.display()
    )
}

#[test]
fn a_service_runs_rolls_out_recovers_and_is_adopted() {
    if !engine_and_image_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("services");
    let state = tmp.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    let name = format!("iris-e2e-{}", std::process::id());
    let file = dir.join("iris.yaml");
    let models = models_dir();
    let d = Daemon::start(&dir, &state);

    // Dropped into the folder: running, ready, and serving the right Iris classes.
    std::fs::write(&file, service_yaml(&name, &models, IMAGE, "v1", "")).unwrap();
    let v = wait_for(&d, &name, "revision 00001 ready", 60, |v| {
        condition(v, "Ready").0 == "True"
    });
    let first = ready_replicas(&v);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, format!("{name}-predictor-00001"));
    let answer = predict(first[0].1, &name).unwrap();
    assert_eq!(
        answer["predictions"],
        serde_json::json!([0, 1, 2]),
        "{answer}"
    );

    // Its output, as `gantry logs` shows it.
    let logs = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["logs", &name, "--api", &d.api])
        .output()
        .unwrap();
    assert!(
        logs.status.success(),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.contains("gantry-model-server") && logs.contains(&name),
        "{logs}"
    );

    // Limits and requests reach Docker.
    let inspect = docker(&["inspect", "--format", "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.MemoryReservation}} {{.HostConfig.CpuShares}} {{.HostConfig.Init}}", &first[0].2]);
    assert_eq!(
        inspect,
        format!("500000000 {} {} 102 true", 64 << 20, 32 << 20)
    );

    // An edit of what runs: revision 00002 replaces 00001 with no moment where neither serves.
    std::fs::write(&file, service_yaml(&name, &models, IMAGE, "v2", "")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = d.service(&name).unwrap();
        let ready = ready_replicas(&v);
        assert!(
            !ready.is_empty(),
            "a moment with no ready replica during the rollout: {}",
            v["status"]
        );
        if ready.len() == 1
            && ready[0].0.ends_with("-00002")
            && v["status"]["replicas"].as_array().unwrap().len() == 1
        {
            assert!(predict(ready[0].1, &name).is_ok());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rollout did not finish: {}",
            v["status"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // An edit that breaks the image: 00002 keeps serving, and the status says why.
    std::fs::write(
        &file,
        service_yaml(&name, &models, "gantry-model-server:no-such-tag", "v3", ""),
    )
    .unwrap();
    let v = wait_for(&d, &name, "the broken revision reported", 60, |v| {
        condition(v, "Ready").1.contains("-00003 failed")
    });
    let (status, message) = condition(&v, "Ready");
    assert_eq!(status, "False");
    assert!(message.contains("keeps serving"), "{message}");
    let ready = ready_replicas(&v);
    assert_eq!(ready.len(), 1);
    assert!(ready[0].0.ends_with("-00002"));
    assert!(predict(ready[0].1, &name).is_ok());

    // Back to a good spec: revision 00004.
    std::fs::write(&file, service_yaml(&name, &models, IMAGE, "v4", "")).unwrap();
    let v = wait_for(&d, &name, "revision 00004 ready", 60, |v| {
        condition(v, "Ready").0 == "True"
            && ready_replicas(v).iter().all(|r| r.0.ends_with("-00004"))
    });
    let container = ready_replicas(&v)[0].2.clone();

    // `docker kill`: restarted with back-off (10 s), and the status shows it.
    docker(&["kill", &container]);
    let v = wait_for(&d, &name, "the killed replica restarted", 60, |v| {
        v["status"]["replicas"][0]["restarts"] == 1 && ready_replicas(v).len() == 1
    });
    assert_eq!(
        ready_replicas(&v)[0].2,
        container,
        "restarted in place, same container"
    );
    assert!(v["status"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["reason"] == "BackOff"));

    // A daemon restart: the same container keeps running and is adopted.
    d.stop();
    let d = Daemon::start(&dir, &state);
    let v = wait_for(&d, &name, "status rebuilt after restart", 30, |v| {
        ready_replicas(v).len() == 1
    });
    assert_eq!(ready_replicas(&v)[0].2, container, "adopted, not restarted");
    assert!(
        ready_replicas(&v)[0].0.ends_with("-00004"),
        "revision numbers survive restarts"
    );

    // Deleting the file stops and removes its containers.
    std::fs::remove_file(&file).unwrap();
    wait_until_removed(&[&name]);
}

#[test]
fn a_privileged_spec_is_refused_with_the_reason() {
    if !engine_and_image_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("services");
    std::fs::create_dir(&dir).unwrap();
    let name = format!("priv-e2e-{}", std::process::id());
    let yaml = service_yaml(&name, &models_dir(), IMAGE, "v1", "").replace(
        "      readinessProbe:",
        "      securityContext: {privileged: true}\n      readinessProbe:",
    );
    std::fs::write(dir.join("p.yaml"), yaml).unwrap();
    let d = Daemon::start(&dir, &tmp.path().join("state"));
    let v = wait_for(&d, &name, "the refusal", 30, |v| {
        condition(v, "Ready").1.contains("privileged")
    });
    assert!(
        condition(&v, "Ready").1.contains("allow-privileged"),
        "{}",
        condition(&v, "Ready").1
    );
    assert!(containers(&format!("gantry.dev/inferenceservice={name}")).is_empty());
}
