//! The real binary as Docker runs it: flags and environment, the start-up line, the start-up
//! delay, SIGTERM with a request in flight, and the exit codes of a wrong start.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gantry-model-server"));
    for variable in [
        "MODEL_NAME",
        "PORT",
        "HOST",
        "MODEL_DIR",
        "STARTUP_DELAY",
        "LATENCY",
        "MODEL_VERSION",
        "STREAM",
    ] {
        command.env_remove(variable);
    }
    command
}

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/iris")
}

/// A started server, its address (from the start-up line) and the rest of its stderr.
struct Running {
    child: Child,
    address: String,
    stderr: mpsc::Receiver<String>,
}

impl Running {
    /// Starts the binary and waits for its start-up line.
    fn start(command: &mut Command) -> (Running, Duration) {
        let started = Instant::now();
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (lines_tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a start-up line on stderr");
        let took = started.elapsed();
        assert!(line.starts_with("gantry-model-server "), "{line}");
        let address = line
            .split("on http://")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        (
            Running {
                child,
                address,
                stderr: lines,
            },
            took,
        )
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait(&mut self) -> (i32, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let lines = self.stderr.try_iter().collect();
                return (status.code().expect("exited, not killed"), lines);
            }
            assert!(Instant::now() < deadline, "still running");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns the status line, headers and body.
fn http(address: &str, method: &str, path: &str, body: &str) -> (String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

#[test]
fn kserve_flags_startup_delay_and_a_graceful_sigterm() {
    let (mut server, took) = Running::start(
        binary()
            .args(["--model_name=iris", "--http_port=0", "--host=127.0.0.1"])
            .args([
                "--startup-delay",
                "300ms",
                "--latency",
                "700ms",
                "--version",
                "v3",
            ])
            .env("MODEL_DIR", model_dir()),
    );
    assert!(
        took >= Duration::from_millis(300),
        "listened after {took:?}"
    );

    let (head, body) = http(&server.address, "GET", "/v2/health/ready", "");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("x-model-version: v3"), "{head}");
    assert_eq!(body, r#"{"ready":true}"#);

    let address = server.address.clone();
    let slow = std::thread::spawn(move || {
        http(
            &address,
            "POST",
            "/v1/models/iris:predict",
            r#"{"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]}"#,
        )
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while http(&server.address, "GET", "/stats", "").1
        != r#"{"in_flight":1,"max_in_flight":1,"requests":1}"#
    {
        assert!(Instant::now() < deadline, "the request never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.signal("-TERM");
    let (head, body) = slow.join().unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(body, r#"{"predictions":[0,2,1]}"#);

    let (code, lines) = server.wait();
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(
        lines,
        [
            "gantry-model-server: SIGTERM: no longer accepting; finishing 1 in-flight requests",
            "gantry-model-server: stopped after 1 inference requests",
        ]
    );
}

#[test]
fn environment_variables_configure_it_too() {
    let (mut server, _) = Running::start(
        binary()
            .env("MODEL_NAME", "flowers")
            .env("PORT", "0")
            .env("HOST", "127.0.0.1")
            .env("MODEL_DIR", model_dir().join("model.json"))
            .env("MODEL_VERSION", "from-env"),
    );
    let (head, body) = http(&server.address, "GET", "/v1/models/flowers", "");
    assert!(head.contains("x-model-version: from-env"), "{head}");
    assert_eq!(body, r#"{"name":"flowers","ready":true}"#);
    server.signal("-INT");
    assert_eq!(server.wait().0, 0);
}

#[test]
fn a_wrong_start_exits_with_a_reason() {
    let run = |command: &mut Command| {
        let output = command.output().unwrap();
        (
            output.status.code().unwrap(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (code, _, stderr) = run(&mut binary());
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "gantry-model-server: the model name is required: pass --model-name NAME\n"
    );

    let (code, _, stderr) = run(binary().args(["--model-name=iris", "--latency=soon"]));
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("gantry-model-server: --latency: invalid duration \"soon\""),
        "{stderr}"
    );

    let (code, _, stderr) =
        run(binary().args(["--model-name=iris", "--model-dir=/nonexistent/models"]));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot read the model /nonexistent/models"),
        "{stderr}"
    );

    let (code, stdout, _) = run(binary().arg("--help"));
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with("Usage: gantry-model-server --model-name NAME"),
        "{stdout}"
    );
}

#[test]
fn sigterm_during_the_startup_delay_exits_cleanly() {
    let mut child = binary()
        .args(["--model-name=iris", "--http-port=0", "--startup-delay=30s"])
        .arg(format!("--model-dir={}", model_dir().display()))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let output = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still sleeping");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "gantry-model-server: SIGTERM during the start-up delay; exiting\n"
    );
}
