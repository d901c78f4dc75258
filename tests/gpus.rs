//! GPU placement end to end on a real Docker engine, with four fake GPUs of two classes read
//! from a `--gpus-file` and the test `nvidia-container-runtime-hook` on dockerd's PATH (so the
//! engine accepts device requests without a GPU): each replica gets exactly its GPUs, of the
//! right class; one that asks for more than is free is pending with the scheduler's reason and
//! starts when another service is deleted; a daemon restart hands no GPU out twice.

mod support;

#[path = "support/docker.rs"]
mod docker_support;

use std::collections::BTreeSet;

use std::time::Duration;

use support::daemon::{condition, docker, ready_replicas, wait_for, wait_until_removed, Daemon};
use support::http::request;

use support::FOUR_GPUS as GPUS;

fn service(name: &str, class: &str, gpus: u32) -> String {
    format!(
        "apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {{name: {name}}}
spec:
  predictor:
    terminationGracePeriodSeconds: 2
    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms:
          - matchExpressions:
            - {{key: gpu.nvidia.com/class, operator: In, values: [{class}]}}
    containers:
    - name: kserve-container
      image: {image}
      command: [/bin/busybox]
      args: [httpd, -f, -p, '8080']
      resources:
        requests: {{cpu: 10m, memory: 16Mi}}
        limits: {{cpu: 100m, memory: 32Mi, nvidia.com/gpu: {gpus}}}
",
        image = docker_support::TEST_IMAGE
    )
}

/// The GPUs the container's processes see. Docker adds `NVIDIA_VISIBLE_DEVICES` to the
/// runtime spec's process environment, not to the container's config, so neither
/// `docker inspect` nor a plain `docker exec env` shows it: read PID 1's environment.
fn visible_devices(container: &str) -> String {
    docker(&["exec", container, "/bin/busybox", "cat", "/proc/1/environ"])
        .split('\0')
        .find_map(|l| l.strip_prefix("NVIDIA_VISIBLE_DEVICES="))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn gpu_replicas_get_exactly_their_gpus() {
    if !docker_support::test_image_ready() {
        return;
    }

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("services");
    let state = tmp.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    let gpus_file = tmp.path().join("gpus.yaml");
    std::fs::write(&gpus_file, GPUS).unwrap();
    let id = std::process::id();
    let (pair, one, greedy) = (
        format!("a40-pair-{id}"),
        format!("a6000-one-{id}"),
        format!("a6000-two-{id}"),
    );
    std::fs::write(dir.join("pair.yaml"), service(&pair, "A40", 2)).unwrap();
    std::fs::write(dir.join("one.yaml"), service(&one, "RTX_A6000", 1)).unwrap();
    let args = ["--gpus-file", gpus_file.to_str().unwrap()];
    let d = Daemon::start_with(&dir, &state, &args);

    let v = wait_for(&d, &pair, "the A40 pair ready", 60, |v| {
        condition(v, "Ready").0 == "True"
    });
    assert_eq!(
        visible_devices(&ready_replicas(&v)[0].2),
        "GPU-a40-0,GPU-a40-1"
    );
    let v = wait_for(&d, &one, "the A6000 replica ready", 60, |v| {
        condition(v, "Ready").0 == "True"
    });
    let first_a6000 = visible_devices(&ready_replicas(&v)[0].2);
    assert!(
        first_a6000 == "GPU-a6000-0" || first_a6000 == "GPU-a6000-1",
        "{first_a6000}"
    );

    // Two more A6000s than are free: pending, with the scheduler's reason.
    std::fs::write(dir.join("greedy.yaml"), service(&greedy, "RTX_A6000", 2)).unwrap();
    let v = wait_for(&d, &greedy, "the greedy service pending", 30, |v| {
        v["status"]["conditions"][0]["reason"] == "Unschedulable"
    });
    let (_, message) = condition(&v, "Ready");
    assert!(
        message.contains("2 do not match gpu.nvidia.com/class In [RTX_A6000], 1 is allocated"),
        "{message}"
    );

    // Deleting the service that holds an A6000 lets it start, with both.
    std::fs::remove_file(dir.join("one.yaml")).unwrap();
    let v = wait_for(&d, &greedy, "the greedy service placed", 60, |v| {
        condition(v, "Ready").0 == "True"
    });
    assert_eq!(
        visible_devices(&ready_replicas(&v)[0].2),
        "GPU-a6000-0,GPU-a6000-1"
    );

    // A daemon restart adopts the replicas with their GPUs and hands none out twice.
    d.stop();
    std::fs::write(dir.join("one.yaml"), service(&one, "RTX_A6000", 1)).unwrap();
    let d = Daemon::start_with(&dir, &state, &args);
    let v = wait_for(&d, &one, "the returning service pending", 30, |v| {
        v["status"]["conditions"][0]["reason"] == "Unschedulable"
    });
    assert!(ready_replicas(&v).is_empty());
    let mut seen = BTreeSet::new();
    for name in [&pair, &greedy] {
        let v = wait_for(&d, name, "adopted and ready", 30, |v| {
            ready_replicas(v).len() == 1
        });
        for uuid in visible_devices(&ready_replicas(&v)[0].2).split(',') {
            assert!(seen.insert(uuid.to_string()), "{uuid} assigned twice");
        }
    }
    assert_eq!(seen.len(), 4);

    // Clean up through gantry: deleting the files removes the containers.
    for f in ["pair.yaml", "one.yaml", "greedy.yaml"] {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    wait_until_removed(&[&pair, &one, &greedy]);
}

#[test]
fn a_one_gpu_workstation_swaps_revisions_and_rolls_back_a_failed_one() {
    if !docker_support::test_image_ready() {
        return;
    }

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("services");
    std::fs::create_dir(&dir).unwrap();
    let gpus_file = tmp.path().join("gpus.yaml");
    std::fs::write(
        &gpus_file,
        "gpus:\n- {uuid: GPU-only-one, name: NVIDIA RTX A6000, memory: 48Gi}\n",
    )
    .unwrap();
    let name = format!("swap-{}", std::process::id());
    let file = dir.join("s.yaml");
    let args = ["--gpus-file", gpus_file.to_str().unwrap()];
    let d = Daemon::start_with(&dir, &tmp.path().join("state"), &args);

    std::fs::write(&file, service(&name, "RTX_A6000", 1)).unwrap();
    wait_for(&d, &name, "revision 00001 ready", 60, |v| {
        condition(v, "Ready").0 == "True"
    });

    // A new revision needs the only GPU: the old replica makes room, the new one takes it.
    // Requests that arrive meanwhile are held and answered by a replica, never refused.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let (stop, listen, host) = (
            stop.clone(),
            d.listen.clone(),
            format!("{name}.default.localhost"),
        );
        std::thread::spawn(move || {
            let mut replies = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let r = request(&listen, "GET", &host, "/", "", Duration::from_secs(60)).unwrap();
                replies.push((r.status, r.body));
            }
            replies
        })
    };
    std::fs::write(
        &file,
        service(&name, "RTX_A6000", 1).replace("'8080']", "'8080', -v]"),
    )
    .unwrap();
    let v = wait_for(&d, &name, "revision 00002 ready", 60, |v| {
        condition(v, "Ready").0 == "True"
            && ready_replicas(v).iter().all(|r| r.0.ends_with("-00002"))
    });
    assert_eq!(visible_devices(&ready_replicas(&v)[0].2), "GPU-only-one");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let replies = client.join().unwrap();
    assert!(!replies.is_empty());
    for (status, body) in &replies {
        // busybox httpd answers `/` itself (404); the router's own answers are 5xx.
        assert!(
            *status < 500,
            "a request during the swap was not served: {status} {body}"
        );
    }

    // A revision that never becomes ready (its image does not exist): back to 00002.
    std::fs::write(
        &file,
        service(&name, "RTX_A6000", 1).replace(
            docker_support::TEST_IMAGE,
            "gantry-test-busybox:no-such-tag",
        ),
    )
    .unwrap();
    let events = |v: &serde_json::Value, needle: &str| {
        v["status"]["events"].as_array().map_or(0, |es| {
            es.iter()
                .filter(|e| e["message"].as_str().is_some_and(|m| m.contains(needle)))
                .count()
        })
    };
    let started_00002 = format!("started replica 0 of {name}-predictor-00002");
    let v = wait_for(
        &d,
        &name,
        "00002 started again after 00003 failed",
        60,
        |v| {
            events(v, &format!("{name}-predictor-00003 replica 0")) >= 1
                && events(v, &started_00002) >= 2
                && ready_replicas(v).iter().any(|r| r.0.ends_with("-00002"))
        },
    );
    assert_eq!(visible_devices(&ready_replicas(&v)[0].2), "GPU-only-one");

    std::fs::remove_file(&file).unwrap();
    wait_until_removed(&[&name]);
}
