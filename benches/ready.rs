//! Time from writing an InferenceService YAML to its replica being ready, next to the time
//! `docker run` of the same image takes to become ready, on the same machine in one run.
//! gantry's overhead is the difference.
//!
//! Run: `cargo bench --bench ready` (needs the Docker engine and `gantry-model-server:latest`,
//! from `examples/model-server/build-image.sh`). Prints figures; asserts nothing.

#[path = "common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{docker_run_ready, models, report, start_daemon, stop_after_removal, Daemon, IMAGE};

const ROUNDS: usize = 7;

fn api_ready(api_port: u16, name: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", api_port)) else {
        return false;
    };
    let req = format!("GET /api/v1/namespaces/default/inferenceservices/{name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains(r#"{"status":"True","type":"Ready"}"#)
}

fn main() {
    let models = models();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("services");
    std::fs::create_dir(&dir).unwrap();
    let Daemon {
        child: mut daemon,
        api_port,
        listen: _,
    } = start_daemon(tmp.path(), &dir, None);

    let mut docker = Vec::new();
    let mut gantry = Vec::new();
    for round in 0..ROUNDS {
        docker.push(docker_run_ready(&models));

        let name = format!("bench-{round}");
        let yaml = format!(
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {{name: {name}}}\nspec:\n  predictor:\n    containers:\n    - name: kserve-container\n      image: {IMAGE}\n      args: [--model-name=iris]\n      env: [{{name: STORAGE_URI, value: '{}'}}]\n      readinessProbe: {{httpGet: {{path: /v2/health/ready}}}}\n      resources: {{requests: {{cpu: 100m, memory: 32Mi}}, limits: {{cpu: 500m, memory: 64Mi}}}}\n",
            models.display()
        );
        let file = dir.join(format!("{name}.yaml"));
        let t = Instant::now();
        std::fs::write(&file, yaml).unwrap();
        while !api_ready(api_port, &name) {
            std::thread::sleep(Duration::from_millis(1));
        }
        gantry.push(t.elapsed());
        std::fs::remove_file(&file).unwrap();
    }
    // The files are gone: wait for the daemon to remove its containers, then stop it.
    let services: Vec<String> = (0..ROUNDS).map(|r| format!("bench-{r}")).collect();
    stop_after_removal(&mut daemon, &services);
    let docker = report("docker run to ready:", &mut docker);
    let gantry = report("gantry YAML write to ready:", &mut gantry);
    println!(
        "gantry overhead (medians):               {:?}",
        gantry.saturating_sub(docker)
    );
}
