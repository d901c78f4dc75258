//! `gantry get gpus` on a real Docker engine (four fake GPUs from a `--gpus-file`, the test
//! `nvidia-container-runtime-hook` on dockerd's PATH): each GPU names the replica holding it,
//! `host-labels` take part in placement, and `reserved-cpu` is kept back from replicas.

mod support;

#[path = "support/docker.rs"]
mod docker_support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::daemon::{condition, wait_for, wait_until_removed, Daemon};

use support::FOUR_GPUS as GPUS;

/// A busybox httpd service: `gpus` A40s in region LAS1 (none: CPU-only), `cpu` requested.
fn service(name: &str, gpus: u32, cpu: &str) -> String {
    let (affinity, gpu_limit) = if gpus == 0 {
        (String::new(), String::new())
    } else {
        (
            "    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms:
          - matchExpressions:
            - {key: gpu.nvidia.com/class, operator: In, values: [A40]}
            - {key: topology.kubernetes.io/region, operator: In, values: [LAS1]}
"
            .to_string(),
            format!(", nvidia.com/gpu: {gpus}"),
        )
    };
    format!(
        "apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {{name: {name}}}
spec:
  predictor:
    terminationGracePeriodSeconds: 2
{affinity}    containers:
    - name: kserve-container
      image: {image}
      command: [/bin/busybox]
      args: [httpd, -f, -p, '8080']
      resources:
        requests: {{cpu: {cpu}, memory: 16Mi}}
        limits: {{cpu: 200m, memory: 32Mi{gpu_limit}}}
",
        image = docker_support::TEST_IMAGE
    )
}

fn get_gpus(d: &Daemon, output: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["get", "gpus", "--api", &d.api])
        .args(output)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn get_gpus_names_the_replica_holding_each() {
    if !docker_support::test_image_ready() {
        return;
    }

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("services");
    let state = tmp.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    let gpus_file = tmp.path().join("gpus.yaml");
    std::fs::write(&gpus_file, GPUS).unwrap();
    // Keep back all but 50m of the machine's cpu: a 10m replica fits, a 100m one does not.
    let cpus = std::thread::available_parallelism().unwrap().get();
    let config = tmp.path().join("gantry.yaml");
    std::fs::write(
        &config,
        format!(
            "host-labels:\n  topology.kubernetes.io/region: LAS1\nreserved-cpu: {}m\n",
            cpus * 1000 - 50
        ),
    )
    .unwrap();
    let id = std::process::id();
    let (held, big) = (format!("held-{id}"), format!("big-{id}"));
    std::fs::write(dir.join("held.yaml"), service(&held, 1, "10m")).unwrap();
    std::fs::write(dir.join("big.yaml"), service(&big, 0, "100m")).unwrap();
    let d = Daemon::start_with(
        &dir,
        &state,
        &[
            "--gpus-file",
            gpus_file.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    );

    // Region LAS1 comes from host-labels: without it the replica would be pending.
    wait_for(&d, &held, "the A40 replica ready", 60, |v| {
        condition(v, "Ready").0 == "True"
    });
    let v = wait_for(&d, &big, "the 100m replica pending", 30, |v| {
        v["status"]["conditions"][0]["reason"] == "Unschedulable"
    });
    let (_, message) = condition(&v, "Ready");
    assert!(
        message.contains("0/1 nodes are available: 1 Insufficient cpu."),
        "{message}"
    );

    let gpus: Value = serde_json::from_str(&get_gpus(&d, &["-o", "json"])).unwrap();
    let holders: Vec<(&str, &Value)> = gpus
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["uuid"].as_str().unwrap(), &g["heldBy"]))
        .collect();
    assert_eq!(holders.len(), 4);
    assert_eq!(holders[0].0, "GPU-a40-0");
    assert_eq!(holders[0].1["namespace"], "default");
    assert_eq!(holders[0].1["service"], held.as_str());
    assert_eq!(
        holders[0].1["revision"],
        format!("{held}-predictor-00001").as_str()
    );
    assert_eq!(holders[0].1["replica"], 0);
    assert!(holders[1..].iter().all(|(_, h)| h.is_null()), "{gpus:#}");
    let table = get_gpus(&d, &[]);
    assert!(
        table.contains(&format!("default/{held} {held}-predictor-00001 #0")),
        "{table}"
    );

    // Clean up through gantry: deleting the files removes the containers.
    for f in ["held.yaml", "big.yaml"] {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    wait_until_removed(&[&held, &big]);
    // Once gantry has removed them, no GPU is held.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let after = get_gpus(&d, &[]);
        if !after.contains(&held) {
            break;
        }
        assert!(Instant::now() < deadline, "still held:\n{after}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
