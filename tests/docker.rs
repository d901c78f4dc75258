//! The Docker runtime against the real engine on this machine (and, for the event stream's
//! reconnects, against a fake engine on a unix socket). See `support/docker.rs` for the skip
//! policy: on CI these tests never skip.

#[path = "support/docker.rs"]
mod docker_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use docker_support::{http_status_line, wait_for, Scope, TEST_IMAGE, TEST_LABEL};
use gantry::runtime::docker::Docker;
use gantry::runtime::{
    ContainerEvents, ContainerInfo, ContainerRuntime, ContainerState, Mount, RuntimeError,
    RuntimeSignal,
};

const WITHIN: Duration = Duration::from_secs(20);

async fn create_and_start(scope: &Scope, spec: &gantry::runtime::ContainerSpec) -> String {
    let id = scope.docker.create(spec).await.expect("create");
    scope.docker.start(&id).await.expect("start");
    id
}

async fn wait_state(docker: &Docker, id: &str, state: ContainerState) -> ContainerInfo {
    wait_for(&format!("{id} to be {state:?}"), WITHIN, || async {
        let info = docker.inspect(id).await.expect("inspect");
        (info.state == state).then_some(info)
    })
    .await
}

/// Waits until the container has printed `line` (so that, say, its signal traps are set).
async fn wait_line(docker: &Docker, id: &str, line: &str) {
    wait_for(&format!("{id} to print {line:?}"), WITHIN, || async {
        let lines = docker.logs(id, 100).await.expect("logs");
        lines.iter().any(|l| l == line).then_some(())
    })
    .await
}

#[tokio::test]
async fn a_started_container_answers_on_its_loopback_host_port_after_every_start() {
    let Some(scope) = Scope::start("port").await else {
        return;
    };
    let spec = scope.spec(&["httpd", "-f", "-p", "8080", "-h", "/"]);
    let id = create_and_start(&scope, &spec).await;

    let info = wait_state(&scope.docker, &id, ContainerState::Running).await;
    assert_eq!(info.name, spec.name);
    let port = info.host_port.expect("a host port while running");
    let status = wait_for("httpd to answer", WITHIN, || http_status_line(port, "/")).await;
    assert!(status.starts_with("HTTP/1."), "{status}");

    // Published on loopback only.
    let raw = scope
        .docker
        .client()
        .inspect_container(&id, None)
        .await
        .unwrap();
    let bindings = raw.network_settings.unwrap().ports.unwrap()["8080/tcp"]
        .clone()
        .unwrap();
    assert!(
        bindings
            .iter()
            .all(|b| b.host_ip.as_deref() == Some("127.0.0.1")),
        "{bindings:?}"
    );

    // Stopped: no port. Started again: a port (perhaps another one) that answers.
    scope
        .docker
        .stop(&id, Duration::from_secs(5))
        .await
        .unwrap();
    let stopped = scope.docker.inspect(&id).await.unwrap();
    assert_eq!(stopped.state, ContainerState::Exited);
    assert_eq!(stopped.host_port, None);
    scope.docker.start(&id).await.unwrap();
    let again = wait_state(&scope.docker, &id, ContainerState::Running).await;
    let port = again.host_port.expect("a host port after the restart");
    wait_for("httpd to answer after the restart", WITHIN, || {
        http_status_line(port, "/")
    })
    .await;
}

#[tokio::test]
async fn list_returns_every_labelled_container_with_its_labels() {
    let Some(scope) = Scope::start("list").await else {
        return;
    };
    let mut first = scope.spec(&["true"]);
    first
        .labels
        .insert("gantry.dev/revision".into(), "iris-predictor-00001".into());
    let second = scope.spec(&["sleep", "1000"]);
    let first_id = scope.docker.create(&first).await.unwrap();
    let second_id = create_and_start(&scope, &second).await;

    let listed: Vec<ContainerInfo> = scope
        .docker
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.labels.get(TEST_LABEL) == Some(&scope.id))
        .collect();
    assert_eq!(listed.len(), 2, "{listed:#?}");
    let by_id: HashMap<&str, &ContainerInfo> = listed.iter().map(|c| (c.id.as_str(), c)).collect();
    let one = by_id[first_id.as_str()];
    assert_eq!(one.name, first.name);
    assert_eq!(one.state, ContainerState::Created);
    assert_eq!(one.labels["gantry.dev/revision"], "iris-predictor-00001");
    assert_eq!(one.labels["gantry.dev/managed-by"], "true");
    assert_eq!(by_id[second_id.as_str()].state, ContainerState::Running);
}

#[tokio::test]
async fn resources_and_settings_are_what_docker_inspect_shows() {
    let Some(scope) = Scope::start("resources").await else {
        return;
    };
    let mut spec = scope.spec(&["sleep", "1000"]);
    spec.resources.nano_cpus = Some(250_000_000);
    spec.resources.cpu_shares = Some(256);
    spec.resources.memory = Some(64 << 20);
    spec.resources.memory_reservation = Some(32 << 20);
    spec.shm_size_bytes = 128 << 20;
    spec.env = vec!["PORT=8080".into(), "K_SERVICE=iris-predictor".into()];
    spec.working_dir = Some("/tmp".into());
    spec.user = Some("1234:1234".into());
    spec.read_only_root_fs = true;
    spec.cap_drop = vec!["NET_RAW".into()];
    spec.stop_timeout_seconds = 17;
    let id = create_and_start(&scope, &spec).await;

    let raw = scope
        .docker
        .client()
        .inspect_container(&id, None)
        .await
        .unwrap();
    let hc = raw.host_config.unwrap();
    assert_eq!(hc.nano_cpus, Some(250_000_000));
    assert_eq!(hc.cpu_shares, Some(256));
    assert_eq!(hc.memory, Some(64 << 20));
    assert_eq!(hc.memory_reservation, Some(32 << 20));
    assert_eq!(hc.shm_size, Some(128 << 20));
    assert_eq!(hc.init, Some(true));
    assert_eq!(hc.readonly_rootfs, Some(true));
    assert_eq!(hc.cap_drop, Some(vec!["NET_RAW".to_string()]));
    assert_ne!(hc.privileged, Some(true));
    let config = raw.config.unwrap();
    let env = config.env.unwrap();
    assert!(
        env.contains(&"K_SERVICE=iris-predictor".to_string()),
        "{env:?}"
    );
    assert_eq!(config.working_dir.as_deref(), Some("/tmp"));
    assert_eq!(config.user.as_deref(), Some("1234:1234"));
    assert_eq!(config.stop_timeout, Some(17));
    assert_eq!(config.image.as_deref(), Some(TEST_IMAGE));
}

#[tokio::test]
async fn mounts_are_bound_read_only() {
    let Some(scope) = Scope::start("mounts").await else {
        return;
    };
    let models = tempfile::tempdir().unwrap();
    std::fs::write(models.path().join("model.txt"), "iris\n").unwrap();
    let mut spec = scope.spec(&["sleep", "1000"]);
    spec.mounts = vec![Mount {
        source: models.path().to_string_lossy().into_owned(),
        target: "/mnt/models".into(),
        read_only: true,
    }];
    let id = create_and_start(&scope, &spec).await;
    wait_state(&scope.docker, &id, ContainerState::Running).await;
    let run = |script: &str| {
        let cmd = vec![
            "/bin/busybox".to_string(),
            "sh".into(),
            "-c".into(),
            script.into(),
        ];
        let docker = scope.docker.clone();
        let id = id.clone();
        async move { docker.exec(&id, &cmd, WITHIN).await.unwrap() }
    };
    assert_eq!(run("grep -q iris /mnt/models/model.txt").await, 0);
    assert_ne!(
        run("touch /mnt/models/new").await,
        0,
        "the mount is writable"
    );
}

#[tokio::test]
async fn stop_waits_the_grace_period_for_a_container_that_ignores_sigterm() {
    let Some(scope) = Scope::start("stop-grace").await else {
        return;
    };
    let spec = scope.spec(&[
        "sh",
        "-c",
        "trap '' TERM; echo ready; while :; do sleep 1; done",
    ]);
    let id = create_and_start(&scope, &spec).await;
    wait_line(&scope.docker, &id, "ready").await;

    let grace = Duration::from_secs(2);
    let started = Instant::now();
    scope.docker.stop(&id, grace).await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= grace - Duration::from_millis(100),
        "stopped after {took:?}"
    );
    assert!(
        took < grace + Duration::from_secs(8),
        "stopped after {took:?}"
    );
    let info = scope.docker.inspect(&id).await.unwrap();
    assert_eq!(info.state, ContainerState::Exited);
    assert_eq!(info.exit_code, Some(137), "killed after the grace period");
}

#[tokio::test]
async fn stop_is_quick_for_a_container_that_exits_on_sigterm() {
    let Some(scope) = Scope::start("stop-quick").await else {
        return;
    };
    // busybox would be PID 1 and ignore SIGTERM but for docker-init (`init: true`).
    let spec = scope.spec(&["sleep", "1000"]);
    let id = create_and_start(&scope, &spec).await;
    wait_state(&scope.docker, &id, ContainerState::Running).await;

    let started = Instant::now();
    scope
        .docker
        .stop(&id, Duration::from_secs(10))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "stopped after {took:?}");
    let info = scope.docker.inspect(&id).await.unwrap();
    assert_eq!(info.exit_code, Some(143), "ended by SIGTERM");
    // Stopping a stopped container is fine.
    scope
        .docker
        .stop(&id, Duration::from_secs(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn inspect_reports_exit_codes_times_and_oom_kills() {
    let Some(scope) = Scope::start("exit").await else {
        return;
    };
    let exits = scope.spec(&["sh", "-c", "exit 7"]);
    let id = create_and_start(&scope, &exits).await;
    let info = wait_state(&scope.docker, &id, ContainerState::Exited).await;
    assert_eq!(info.exit_code, Some(7));
    assert!(!info.oom_killed);
    assert!(
        info.started_at.is_some() && info.finished_at.is_some(),
        "{info:?}"
    );

    let created = scope.spec(&["true"]);
    let id = scope.docker.create(&created).await.unwrap();
    let info = scope.docker.inspect(&id).await.unwrap();
    assert_eq!(info.state, ContainerState::Created);
    assert_eq!(
        (info.exit_code, info.started_at, info.host_port),
        (None, None, None)
    );

    // `tail` keeps the last lines of a file with no newline: all of it, until the kill.
    let mut hungry = scope.spec(&["tail", "/dev/zero"]);
    hungry.resources.memory = Some(16 << 20);
    let id = create_and_start(&scope, &hungry).await;
    let info = wait_state(&scope.docker, &id, ContainerState::Exited).await;
    // Killed by the memory limit: SIGKILL. Docker 20.10 on cgroup v1 sets `OOMKilled` from the
    // cgroup's OOM event, which races with the exit when the victim is not PID 1 (here it is
    // docker-init's child): the exit code is what can be relied on here.
    assert_eq!(info.exit_code, Some(137), "{info:?}");
}

#[tokio::test]
async fn gpu_device_requests_reach_the_container_by_uuid() {
    let Some(scope) = Scope::start("gpu").await else {
        return;
    };
    let mut spec = scope.spec(&["env"]);
    spec.gpu_uuids = vec!["GPU-aaaa".into(), "GPU-bbbb".into()];
    let id = scope.docker.create(&spec).await.unwrap();
    if let Err(e) = scope.docker.start(&id).await {
        panic!(
            "{e}\nThe engine needs an nvidia-container-runtime-hook on dockerd's PATH when it \
             starts; `bash .ci/run` puts a test one there and restarts dockerd"
        );
    }
    wait_state(&scope.docker, &id, ContainerState::Exited).await;
    let env = scope.docker.logs(&id, 100).await.unwrap();
    assert!(
        env.contains(&"NVIDIA_VISIBLE_DEVICES=GPU-aaaa,GPU-bbbb".to_string()),
        "{env:?}"
    );
    let capabilities = env
        .iter()
        .find_map(|l| l.strip_prefix("NVIDIA_DRIVER_CAPABILITIES="))
        .unwrap_or_else(|| panic!("no NVIDIA_DRIVER_CAPABILITIES in {env:?}"));
    let mut capabilities: Vec<&str> = capabilities.split(',').collect();
    capabilities.sort_unstable();
    assert_eq!(capabilities, ["compute", "utility"]);

    let raw = scope
        .docker
        .client()
        .inspect_container(&id, None)
        .await
        .unwrap();
    let requests = raw.host_config.unwrap().device_requests.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].driver.as_deref(), Some("nvidia"));
    assert_eq!(requests[0].count.unwrap_or(0), 0, "never by count");
}

#[tokio::test]
async fn a_subscription_is_live_when_subscribe_returns() {
    let Some(scope) = Scope::start("events").await else {
        return;
    };
    let mut events = scope.docker.subscribe().await.unwrap();
    // No await between subscribing and acting: an event stream that was only opened lazily
    // would miss these.
    let spec = scope.spec(&["sleep", "1000"]);
    let id = create_and_start(&scope, &spec).await;
    scope
        .docker
        .client()
        .kill_container(&id, None::<bollard::query_parameters::KillContainerOptions>)
        .await
        .unwrap();

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !(seen.contains(&"start".to_string()) && seen.contains(&"die".to_string())) {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(RuntimeSignal::Event(e))) if e.id == id => {
                assert_eq!(e.labels.get(TEST_LABEL), Some(&scope.id), "{e:?}");
                seen.push(e.action);
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("the event stream ended; seen {seen:?}"),
            Err(_) => panic!("no start and die events within {WITHIN:?}; seen {seen:?}"),
        }
    }
    assert!(seen.contains(&"create".to_string()), "{seen:?}");
}

#[tokio::test]
async fn logs_return_the_printed_lines() {
    let Some(scope) = Scope::start("logs").await else {
        return;
    };
    let spec = scope.spec(&[
        "sh",
        "-c",
        "echo one; echo two >&2; echo three; printf last",
    ]);
    let id = create_and_start(&scope, &spec).await;
    wait_state(&scope.docker, &id, ContainerState::Exited).await;

    let mut lines = scope.docker.logs(&id, 100).await.unwrap();
    // stdout and stderr are copied separately by the engine: their interleaving may vary.
    lines.sort();
    assert_eq!(lines, ["last", "one", "three", "two"]);

    let only_out = scope.spec(&["sh", "-c", "echo a; echo b; echo c"]);
    let id = create_and_start(&scope, &only_out).await;
    wait_state(&scope.docker, &id, ContainerState::Exited).await;
    assert_eq!(scope.docker.logs(&id, 2).await.unwrap(), ["b", "c"]);
}

#[tokio::test]
async fn follow_logs_streams_new_lines() {
    let Some(scope) = Scope::start("follow").await else {
        return;
    };
    let spec = scope.spec(&["sh", "-c", "echo first; sleep 1; echo second; sleep 1000"]);
    let id = create_and_start(&scope, &spec).await;
    let mut lines = scope.docker.follow_logs(&id, 10).await.unwrap();
    for expected in ["first", "second"] {
        let line = tokio::time::timeout(WITHIN, lines.recv())
            .await
            .unwrap_or_else(|_| panic!("no {expected:?} within {WITHIN:?}"));
        assert_eq!(line.as_deref(), Some(expected));
    }
    // The stream ends with the container.
    scope.docker.remove(&id).await.unwrap();
    let end = tokio::time::timeout(WITHIN, lines.recv()).await.unwrap();
    assert_eq!(end, None);
}

#[tokio::test]
async fn exec_returns_the_exit_code_and_honours_its_timeout() {
    let Some(scope) = Scope::start("exec").await else {
        return;
    };
    let spec = scope.spec(&["sleep", "1000"]);
    let id = create_and_start(&scope, &spec).await;
    wait_state(&scope.docker, &id, ContainerState::Running).await;
    let sh = |script: &str| {
        vec![
            "/bin/busybox".to_string(),
            "sh".into(),
            "-c".into(),
            script.to_string(),
        ]
    };
    assert_eq!(
        scope.docker.exec(&id, &sh("true"), WITHIN).await.unwrap(),
        0
    );
    assert_eq!(
        scope
            .docker
            .exec(&id, &sh("echo noise; exit 3"), WITHIN)
            .await
            .unwrap(),
        3
    );
    let missing = vec!["/no/such/binary".to_string()];
    assert_ne!(
        scope.docker.exec(&id, &missing, WITHIN).await.unwrap_or(-1),
        0
    );

    let started = Instant::now();
    let slow = scope
        .docker
        .exec(&id, &sh("sleep 30"), Duration::from_millis(500))
        .await;
    assert!(
        matches!(slow, Err(RuntimeError::Engine(ref m)) if m.contains("did not finish")),
        "{slow:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_missing_image_is_image_not_found_quickly() {
    let Some(scope) = Scope::start("image").await else {
        return;
    };
    let progress: Arc<Mutex<Vec<String>>> = Arc::default();
    let report = {
        let progress = progress.clone();
        move |p: gantry::runtime::PullProgress| progress.lock().unwrap().push(p.status)
    };

    // Present: nothing to pull.
    scope
        .docker
        .ensure_image(TEST_IMAGE, false, &report)
        .await
        .unwrap();
    assert!(progress.lock().unwrap().is_empty());

    let image = format!("gantry-test-absent-{}:1", scope.id);
    let started = Instant::now();
    let err = scope
        .docker
        .ensure_image(&image, false, &report)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::ImageNotFound { image: i, .. } if *i == image),
        "{err:?}"
    );
    assert!(started.elapsed() < WITHIN, "took {:?}", started.elapsed());
    assert!(err.to_string().contains(&image), "{err}");

    let mut spec = scope.spec(&["true"]);
    spec.image = image.clone();
    let err = scope.docker.create(&spec).await.unwrap_err();
    assert!(matches!(err, RuntimeError::ImageNotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn a_taken_name_is_a_conflict() {
    let Some(scope) = Scope::start("conflict").await else {
        return;
    };
    let spec = scope.spec(&["true"]);
    scope.docker.create(&spec).await.unwrap();
    let err = scope.docker.create(&spec).await.unwrap_err();
    assert!(matches!(err, RuntimeError::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains(&spec.name), "{err}");
}

#[tokio::test]
async fn an_unknown_container_is_not_found() {
    let Some(scope) = Scope::start("missing").await else {
        return;
    };
    let d = &scope.docker;
    let id = format!("gantry-test-none-{}", scope.id);
    let not_found =
        |r: Result<(), RuntimeError>| matches!(r, Err(RuntimeError::NotFound(ref i)) if *i == id);
    assert!(not_found(d.inspect(&id).await.map(drop)));
    assert!(not_found(d.start(&id).await));
    assert!(not_found(d.stop(&id, Duration::from_secs(1)).await));
    assert!(not_found(d.remove(&id).await));
    assert!(not_found(d.logs(&id, 10).await.map(drop)));
    assert!(not_found(
        d.exec(&id, &["true".into()], WITHIN).await.map(drop)
    ));
    assert!(not_found(d.follow_logs(&id, 10).await.map(drop)));
}

#[tokio::test]
async fn connect_says_where_it_looked_and_how_to_start_an_engine() {
    let err = Docker::connect(Some("unix:///nonexistent/gantry/docker.sock"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RuntimeError::Unavailable(_)), "{err:?}");
    assert!(
        text.contains("unix:///nonexistent/gantry/docker.sock"),
        "{text}"
    );
    assert!(text.contains("systemctl start docker"), "{text}");
    assert!(text.contains("dockerd"), "{text}");

    // A socket file with nobody behind it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let host = format!("unix://{}", path.display());
    let err = Docker::connect(Some(&host)).await.unwrap_err();
    assert!(matches!(err, RuntimeError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains(&host), "{err}");

    // A TCP address where nothing listens (port 1 on loopback).
    let err = Docker::connect(Some("tcp://127.0.0.1:1"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RuntimeError::Unavailable(_)), "{err:?}");
    assert!(text.contains("tcp://127.0.0.1:1"), "{text}");
    assert!(text.contains("the local socket"), "{text}");
}

/// A fake engine on a unix socket: enough of `/version`, `/_ping`, `/info` and `/events` for
/// [`Docker::connect`] and [`Docker::subscribe`]. The first events request gets one event and
/// then the stream ends; later ones stay open. It records every request line.
struct FakeEngine {
    host: String,
    requests: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

const FAKE_SYSTEM_TIME: &str = "2026-11-28T14:05:51.157457205Z";

impl FakeEngine {
    fn start() -> FakeEngine {
        use std::io::{BufRead, BufReader, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = requests.clone();
        std::thread::spawn(move || {
            let mut open_streams = Vec::new();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                let events_before = seen
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|r: &&String| r.starts_with("/events"))
                    .count();
                seen.lock().unwrap().push(path.clone());
                let json = |body: &str| {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \
                         {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let route = path.split('?').next().unwrap_or("");
                let response = match route.trim_start_matches("/v1.41") {
                    "/version" => json(r#"{"ApiVersion":"1.41","Version":"20.10.24"}"#),
                    "/_ping" => "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \
                                 2\r\nConnection: close\r\n\r\nOK"
                        .to_string(),
                    "/info" => json(&format!(r#"{{"SystemTime":"{FAKE_SYSTEM_TIME}"}}"#)),
                    "/events" => {
                        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                                    Transfer-Encoding: chunked\r\n\r\n";
                        let event = r#"{"Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"gantry.dev/managed-by":"true"}},"time":1,"timeNano":1}"#;
                        let chunk = format!("{event}\n");
                        let chunk = format!("{:x}\r\n{chunk}\r\n", chunk.len());
                        let _ = conn.write_all(head.as_bytes());
                        if events_before == 0 {
                            let _ = conn.write_all(chunk.as_bytes());
                            let _ = conn.write_all(b"0\r\n\r\n");
                        } else {
                            let _ = conn.flush();
                            open_streams.push(conn);
                        }
                        continue;
                    }
                    _ => {
                        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\
                          Content-Length: 22\r\nConnection: close\r\n\r\n{\"message\":\"no route\"}"
                            .to_string()
                    }
                };
                let _ = conn.write_all(response.as_bytes());
            }
        });
        FakeEngine {
            host: format!("unix://{}", path.display()),
            requests,
            _dir: dir,
        }
    }
}

#[tokio::test]
async fn a_lost_event_stream_is_reopened_and_reported_as_resync() {
    let fake = FakeEngine::start();
    let docker = Docker::connect(Some(&fake.host)).await.unwrap();
    assert_eq!(docker.api_version(), "1.41");
    let mut signals = docker.subscribe().await.unwrap();

    let first = tokio::time::timeout(WITHIN, signals.recv()).await.unwrap();
    match first {
        Some(RuntimeSignal::Event(e)) => {
            assert_eq!((e.id.as_str(), e.action.as_str()), ("c1", "start"));
            assert_eq!(e.labels["gantry.dev/managed-by"], "true");
        }
        other => panic!("expected the event, got {other:?}"),
    }
    let second = tokio::time::timeout(WITHIN, signals.recv()).await.unwrap();
    assert_eq!(second, Some(RuntimeSignal::Resync));

    // Every events request asked for what happened since the engine's clock, filtered to
    // gantry's containers.
    let requests = wait_for("the second events request", WITHIN, || async {
        let requests = fake.requests.lock().unwrap().clone();
        let events = requests.iter().filter(|r| r.starts_with("/events")).count();
        (events == 2).then_some(requests)
    })
    .await;
    let events: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("/events"))
        .collect();
    for request in events {
        assert!(request.contains("since=1795874751.157457205"), "{request}");
        assert!(request.contains("managed-by"), "{request}");
    }
}
