//! The `gantry` binary as a user runs it: `validate` offline, and `serve` with `get` and
//! `describe` reading its management API.

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn gantry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(args)
        .env_remove("GANTRY_API")
        .env_remove("GANTRY_CONFIG")
        .output()
        .expect("gantry runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn validate_prints_positions_and_exits_1_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = support::isvc_with("", support::CUSTOM);
    let bad = support::isvc_with("", &format!("minReplicas: -1\n{}", support::CUSTOM));
    std::fs::write(dir.path().join("good.yaml"), &good).unwrap();
    let ok = gantry(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(stdout(&ok), "");

    let bad_path = dir.path().join("bad.yaml");
    std::fs::write(&bad_path, bad.replace("name: m", "name: n")).unwrap();
    let out = gantry(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!(
            "{}:7:5: error: spec.predictor.minReplicas: 'MinReplicas' cannot be less than 0\n",
            bad_path.display()
        )
    );

    let json = gantry(&["validate", "-o", "json", bad_path.to_str().unwrap()]);
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["errors"], 1);
    assert_eq!(report["diagnostics"][0]["position"]["line"], 7);
    assert_eq!(
        report["diagnostics"][0]["field"],
        "spec.predictor.minReplicas"
    );
}

#[test]
fn config_defaults_is_a_valid_config() {
    let out = gantry(&["config", "defaults"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("stable-window: 180s"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, &text).unwrap();
    let services = dir.path().join("services");
    std::fs::create_dir(&services).unwrap();
    let check = gantry(&[
        "validate",
        "--config",
        file.to_str().unwrap(),
        services.to_str().unwrap(),
    ]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::yield_now();
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn serve_get_and_describe() {
    let dir = tempfile::tempdir().unwrap();
    let services = dir.path().join("services");
    std::fs::create_dir(&services).unwrap();
    std::fs::write(
        services.join("iris.yaml"),
        std::fs::read_to_string("examples/services/iris.yaml").unwrap(),
    )
    .unwrap();
    std::fs::write(
        services.join("broken.yaml"),
        support::isvc_with("", &format!("minReplicas: -1\n{}", support::CUSTOM))
            .replace("name: m", "name: broken"),
    )
    .unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let _daemon = Serve(
        Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args([
                "serve",
                "--no-containers",
                "--dir",
                services.to_str().unwrap(),
                "--api",
                &api,
            ])
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .env_remove("GANTRY_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the API to list both services", || {
        let o = gantry(&["get", "isvc", "--api", &api, "-o", "json"]);
        o.status.success()
            && serde_json::from_slice::<serde_json::Value>(&o.stdout)
                .is_ok_and(|v| v.as_array().is_some_and(|a| a.len() == 2))
    });

    let table = stdout(&gantry(&["get", "isvc", "--api", &api]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAMESPACE   NAME"), "{table}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("broken") && l.contains("Invalid (1 error)")),
        "{table}"
    );
    assert!(
        lines.iter().any(|l| l.contains("iris")
            && l.contains("http://iris.default.localhost")
            && l.contains("Valid")),
        "{table}"
    );

    let described = stdout(&gantry(&["describe", "isvc", "iris", "--api", &api]));
    for expected in [
        "Name:         iris",
        "Image:            gantry-model-server:latest",
        "Resources:        cpu 100m/500m",
        "Replicas:         min 1, max 2",
        "Concurrency:      8 per replica, timeout 60s",
        "Autoscaling:      concurrency target 3.4 (of 4), stable window 3m0s, panic window 23s",
    ] {
        assert!(
            described.contains(expected),
            "missing {expected:?} in:\n{described}"
        );
    }

    let yaml = stdout(&gantry(&[
        "get", "isvc", "iris", "--api", &api, "-o", "yaml",
    ]));
    assert!(yaml.contains("revisionKey:"), "{yaml}");

    let missing = gantry(&["describe", "isvc", "nope", "--api", &api]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("\"nope\" not found"));

    let health = gantry(&["get", "isvc", "--api", "127.0.0.1:1"]);
    assert!(String::from_utf8_lossy(&health.stderr).contains("cannot reach the gantry daemon"));
}

/// Four fake GPUs of two classes, as `--gpus-file` reads them.
const FOUR_GPUS: &str = "gpus:
- {uuid: GPU-a40-0, name: NVIDIA A40, memory: 48Gi, pciBusId: '0000:17:00.0'}
- {uuid: GPU-a40-1, name: NVIDIA A40, memory: 48Gi, pciBusId: '0000:31:00.0'}
- {uuid: GPU-a6000-0, name: NVIDIA RTX A6000, memory: 48Gi, pciBusId: '0000:b1:00.0'}
- {uuid: GPU-a6000-1, name: NVIDIA RTX A6000, memory: 48Gi, pciBusId: '0000:ca:00.0'}
";

/// The GPU inventory is read without containers too: `get gpus` lists it, with classes (one
/// renamed by the config's `gpu-classes`) and labels (the config's `host-labels` included),
/// and nothing holding them.
#[test]
fn get_gpus_lists_the_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let services = dir.path().join("services");
    std::fs::create_dir(&services).unwrap();
    let gpus = dir.path().join("gpus.yaml");
    std::fs::write(&gpus, FOUR_GPUS).unwrap();
    let config = dir.path().join("gantry.yaml");
    std::fs::write(
        &config,
        "gpu-classes:\n  NVIDIA RTX A6000: A6000_lab\n\
         host-labels:\n  topology.kubernetes.io/region: LAS1\n\
         reserved-cpu: 500m\nreserved-memory: 1Gi\n",
    )
    .unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let _daemon = Serve(
        Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(["serve", "--no-containers", "--api", &api])
            .arg("--dir")
            .arg(&services)
            .arg("--gpus-file")
            .arg(&gpus)
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut listed = serde_json::Value::Null;
    wait_until("the API to list the GPUs", || {
        let o = gantry(&["get", "gpus", "--api", &api, "-o", "json"]);
        o.status.success() && {
            listed = serde_json::from_slice(&o.stdout).unwrap_or_default();
            true
        }
    });
    let items = listed.as_array().expect("a list of GPUs");
    let classes: Vec<(&str, &str)> = items
        .iter()
        .map(|g| (g["uuid"].as_str().unwrap(), g["class"].as_str().unwrap()))
        .collect();
    assert_eq!(
        classes,
        [
            ("GPU-a40-0", "A40"),
            ("GPU-a40-1", "A40"),
            ("GPU-a6000-0", "A6000_lab"),
            ("GPU-a6000-1", "A6000_lab"),
        ]
    );
    for g in items {
        let labels = &g["labels"];
        assert_eq!(labels["gpu.nvidia.com/class"], g["class"], "{g}");
        assert_eq!(labels["gpu.nvidia.com/vram"], "48", "{g}");
        assert_eq!(labels["gpu.nvidia.com/count"], "4", "{g}");
        assert_eq!(labels["topology.kubernetes.io/region"], "LAS1", "{g}");
        assert!(labels["kubernetes.io/hostname"].is_string(), "{g}");
        assert_eq!(g["memoryBytes"], 48i64 << 30, "{g}");
        assert!(g.get("heldBy").is_none(), "{g}");
    }
    assert_eq!(
        items[2]["labels"]["gpu.nvidia.com/model"],
        "NVIDIA-RTX-A6000"
    );

    let table = stdout(&gantry(&["get", "gpus", "--api", &api]));
    assert_eq!(
        table.lines().next(),
        Some("UUID          CLASS       MEMORY   UTIL   HELD BY"),
        "{table}"
    );
    assert!(
        table.contains("GPU-a6000-1   A6000_lab   48Gi     -      -"),
        "{table}"
    );

    let one = gantry(&["get", "gpu", "GPU-a40-1", "--api", &api, "-o", "yaml"]);
    assert!(stdout(&one).contains("uuid: GPU-a40-1"), "{}", stdout(&one));
    let missing = gantry(&["get", "gpus", "GPU-nope", "--api", &api]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("gpus \"GPU-nope\" not found"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
