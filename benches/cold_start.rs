//! Cold start: the time from a request to a service at zero replicas to the first byte of its
//! answer, next to the time `docker run` of the same image takes to become ready, measured in
//! the same run. gantry's overhead is the difference: noticing the request, deciding, placing
//! and creating the container, detecting readiness, and forwarding the held request.
//!
//! Run: `cargo bench --bench cold_start` (needs the Docker engine and
//! `gantry-model-server:latest`, from `examples/model-server/build-image.sh`). Prints figures;
//! asserts nothing.

#[path = "common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{docker_run_ready, models, report, start_daemon, stop_after_removal, Daemon, IMAGE};

const ROUNDS: usize = 5;
const NAME: &str = "cold";

/// Short windows, so that the service is back at zero a few seconds after each request.
const CONFIG: &str = "autoscaling:
  allow-zero-initial-scale: true
  stable-window: 6s
  scale-down-delay: 0s
  scale-to-zero-grace-period: 1s
  scale-to-zero-pod-retention-period: 0s
";

/// The service as the API shows it.
fn service(api_port: u16) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect(("127.0.0.1", api_port)).ok()?;
    let req = format!(
        "GET /api/v1/namespaces/default/inferenceservices/{NAME} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()
}

/// A revision exists and no replica (of any state) does.
fn at_zero(api_port: u16) -> bool {
    service(api_port).is_some_and(|v| {
        v["status"]["components"][0]["latestCreatedRevision"].is_string()
            && v["status"]["replicas"]
                .as_array()
                .is_none_or(|r| r.is_empty())
    })
}

/// Sends a prediction; the time to the first byte of the answer, and its status line.
fn first_byte(listen: &str) -> (Duration, String) {
    let body = r#"{"instances": [[6.8, 2.8, 4.8, 1.4]]}"#;
    let mut s = TcpStream::connect(listen).unwrap();
    let req = format!(
        "POST /v1/models/iris:predict HTTP/1.1\r\nHost: {NAME}.default.localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let t = Instant::now();
    s.write_all(req.as_bytes()).unwrap();
    let mut first = [0u8; 1];
    s.read_exact(&mut first).unwrap();
    let took = t.elapsed();
    let mut rest = String::new();
    let _ = s.read_to_string(&mut rest);
    let status = format!(
        "{}{}",
        first[0] as char,
        rest.lines().next().unwrap_or_default()
    );
    (took, status)
}

fn main() {
    let models = models();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("services");
    std::fs::create_dir(&dir).unwrap();
    let config = tmp.path().join("gantry.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let Daemon {
        child: mut daemon,
        api_port,
        listen,
    } = start_daemon(tmp.path(), &dir, Some(&config));
    let yaml = format!(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: {NAME}\n  annotations: {{autoscaling.knative.dev/initial-scale: '0'}}\nspec:\n  predictor:\n    minReplicas: 0\n    maxReplicas: 1\n    containers:\n    - name: kserve-container\n      image: {IMAGE}\n      args: [--model-name=iris]\n      env: [{{name: STORAGE_URI, value: '{}'}}]\n      readinessProbe: {{httpGet: {{path: /v2/health/ready}}}}\n      resources: {{requests: {{cpu: 100m, memory: 32Mi}}, limits: {{cpu: 500m, memory: 64Mi}}}}\n",
        models.display()
    );
    let file = dir.join(format!("{NAME}.yaml"));
    std::fs::write(&file, yaml).unwrap();

    let mut docker = Vec::new();
    let mut gantry = Vec::new();
    for _ in 0..ROUNDS {
        docker.push(docker_run_ready(&models));
        let deadline = Instant::now() + Duration::from_secs(120);
        while !at_zero(api_port) {
            assert!(
                Instant::now() < deadline,
                "the service did not go back to zero"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let (took, status) = first_byte(&listen);
        assert!(status.contains(" 200 "), "cold request answered {status}");
        gantry.push(took);
    }

    std::fs::remove_file(&file).unwrap();
    stop_after_removal(&mut daemon, &[NAME.to_string()]);
    let docker = report("docker run to ready:", &mut docker);
    let gantry = report("request at zero to first byte:", &mut gantry);
    println!(
        "gantry's cold-start overhead (medians):  {:?}",
        gantry.saturating_sub(docker)
    );
}
