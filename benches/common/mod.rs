//! What the Docker benchmarks share: HTTP checks, free ports, and `docker run` of the example
//! model server to ready, the baseline gantry's figures are compared with.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const IMAGE: &str = "gantry-model-server:latest";

/// A free port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The example Iris model.
pub fn models() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/models/iris")
}

/// True when `GET path` on the port answers 200.
pub fn ok(port: u16, path: &str) -> bool {
    let Ok(mut s) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    s.read(&mut buf)
        .is_ok_and(|n| buf[..n].starts_with(b"HTTP/1.1 200"))
}

pub fn docker_run_ready(models: &Path) -> Duration {
    let t = Instant::now();
    let out = Command::new("docker")
        .args(["run", "-d", "--rm", "-p", "127.0.0.1::8080", "-v"])
        .arg(format!("{}:/mnt/models:ro", models.display()))
        .args([IMAGE, "--model-name=iris"])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let port_out = Command::new("docker")
        .args(["port", &id, "8080/tcp"])
        .output()
        .unwrap();
    let port: u16 = String::from_utf8_lossy(&port_out.stdout)
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.trim().parse().ok())
        .unwrap();
    while !ok(port, "/v2/health/ready") {
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = t.elapsed();
    Command::new("docker")
        .args(["rm", "-f", &id])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    elapsed
}

/// Waits (at most a minute) until no container of these services is left, then stops the
/// daemon with SIGTERM.
pub fn stop_after_removal(daemon: &mut std::process::Child, services: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let left = |name: &String| {
        let filter = format!("label=gantry.dev/inferenceservice={name}");
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
            .unwrap();
        !out.stdout.is_empty()
    };
    while Instant::now() < deadline && services.iter().any(left) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill").arg(daemon.id().to_string()).status();
    let _ = daemon.wait();
}

/// Prints a sorted list's median, min and max.
pub fn report(label: &str, values: &mut [Duration]) -> Duration {
    values.sort();
    let median = values[values.len() / 2];
    println!(
        "{label:<40} median {median:?}  (min {:?}, max {:?})",
        values[0],
        values[values.len() - 1]
    );
    median
}

/// A running `gantry serve` on `dir`, its state under `root`, on free ports, with an
/// optional config file; returned once its API answers.
pub struct Daemon {
    pub child: std::process::Child,
    pub api_port: u16,
    /// The data plane's address.
    pub listen: String,
}

pub fn start_daemon(root: &Path, dir: &Path, config: Option<&Path>) -> Daemon {
    let api_port = free_port();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut command = Command::new(env!("CARGO_BIN_EXE_gantry"));
    command.args([
        "serve",
        "--api",
        &format!("127.0.0.1:{api_port}"),
        "--listen",
        &listen,
    ]);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let child = command
        .arg("--dir")
        .arg(dir)
        .arg("--state-dir")
        .arg(root.join("state"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while !ok(api_port, "/healthz") {
        std::thread::sleep(Duration::from_millis(5));
    }
    Daemon {
        child,
        api_port,
        listen,
    }
}
