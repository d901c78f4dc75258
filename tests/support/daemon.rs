//! A `gantry serve` child process for end-to-end tests, and what they ask of its API.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The example model server's image (`examples/model-server/build-image.sh`).
pub const MODEL_SERVER: &str = "gantry-model-server:latest";

/// Whether the engine and the model server's image are there. On CI (`CI=true`) their
/// absence fails the test; elsewhere the test says why it did not run.
pub fn engine_and_image_ready() -> bool {
    let ok = Command::new("docker")
        .args(["image", "inspect", MODEL_SERVER])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let why = format!(
            "the Docker engine or the image {MODEL_SERVER} is not available (run examples/model-server/build-image.sh)"
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{why}");
        }
        eprintln!("SKIPPED: {why}");
    }
    ok
}

/// The example Iris model.
pub fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/models/iris")
}

pub struct Daemon {
    child: Child,
    pub api: String,
    /// The data plane's address (`--listen`).
    pub listen: String,
}

/// A free port on loopback.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Daemon {
    pub fn start(dir: &Path, state: &Path) -> Daemon {
        Daemon::start_with(dir, state, &[])
    }

    /// With extra `serve` arguments (`--gpus-file F`, ...).
    pub fn start_with(dir: &Path, state: &Path, extra: &[&str]) -> Daemon {
        let port = free_port();
        let api = format!("127.0.0.1:{port}");
        let listen = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(state.with_extension(format!("{port}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(["serve", "--api", &api, "--listen", &listen])
            .args(extra)
            .arg("--dir")
            .arg(dir)
            .arg("--state-dir")
            .arg(state)
            .env_remove("GANTRY_CONFIG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon { child, api, listen }
    }

    pub fn stop(mut self) {
        self.terminate();
    }

    /// SIGTERM, and waits for the daemon to exit: it leaves its containers running for the
    /// next start to adopt.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    pub fn service(&self, name: &str) -> Option<Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(["get", "isvc", name, "--api", &self.api, "-o", "json"])
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An InferenceService running the example model server with `args` (each after a comma,
/// as `, --version=v2`), predictor fields `extra` (indented under `predictor:`) and
/// `annotations` (indented under `annotations:`).
pub fn model_server_service(name: &str, annotations: &str, extra: &str, args: &str) -> String {
    let annotations = if annotations.is_empty() {
        String::new()
    } else {
        format!("  annotations:\n{annotations}")
    };
    format!(
        "apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
{annotations}spec:
  predictor:
{extra}    containers:
    - name: kserve-container
{}",
        model_server_container(name, args, 6)
    )
}

/// The fields of a container running the example model server (all but `name`), each line
/// indented by `indent` spaces: image, `args` as in [`model_server_service`], the model,
/// a quick readiness probe and small resources.
pub fn model_server_container(name: &str, args: &str, indent: usize) -> String {
    format!(
        "image: {MODEL_SERVER}
args: [--model-name={name}{args}]
env:
- name: STORAGE_URI
  value: {models}
readinessProbe:
  httpGet: {{path: /v2/health/ready}}
  periodSeconds: 1
resources:
  requests: {{cpu: 50m, memory: 32Mi}}
  limits: {{cpu: 500m, memory: 64Mi}}
",
        models = models_dir().display()
    )
    .lines()
    .map(|line| format!("{:indent$}{line}\n", ""))
    .collect()
}

/// Waits for `condition` on the service's API view, with a deadline.
pub fn wait_for(
    d: &Daemon,
    name: &str,
    what: &str,
    secs: u64,
    condition: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Some(v) = d.service(name) {
            if condition(&v) {
                return v;
            }
            last = v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "timed out after {secs}s waiting for {what}; last view:\n{}",
        serde_json::to_string_pretty(&last["status"]).unwrap()
    );
}

pub fn ready_replicas(v: &Value) -> Vec<(String, u16, String)> {
    v["status"]["replicas"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter(|r| r["ready"] == true)
                .map(|r| {
                    (
                        r["revision"].as_str().unwrap_or_default().to_string(),
                        r["hostPort"].as_u64().unwrap_or_default() as u16,
                        r["containerId"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn condition(v: &Value, kind: &str) -> (String, String) {
    let c = v["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind).cloned())
        .unwrap_or(Value::Null);
    (
        c["status"].as_str().unwrap_or_default().to_string(),
        c["message"].as_str().unwrap_or_default().to_string(),
    )
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The ids of the containers (running or not) with this `key=value` label, one per line.
pub fn containers(label: &str) -> String {
    docker(&["ps", "-aq", "--filter", &format!("label={label}")])
}

/// Waits until no container of these services is left (gantry removes them when their files
/// are deleted), failing after 30 s.
pub fn wait_until_removed(services: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let left = |n: &&&str| !containers(&format!("gantry.dev/inferenceservice={n}")).is_empty();
    while let Some(n) = services.iter().find(left) {
        assert!(
            Instant::now() < deadline,
            "the containers of {n} are still there"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
