//! The data plane end to end, on a real Docker engine with the example model server: routes,
//! `containerConcurrency` as a hard limit, requests held at zero, streaming, a full queue,
//! timeouts, the autoscaler scaling out under a burst and back down to zero, and a replica
//! killed under load.
//!
//! Needs the Docker engine and the `gantry-model-server:latest` image
//! (`examples/model-server/build-image.sh`); `.ci/run` provides both. On CI (`CI=true`) a
//! missing engine or image fails the test; elsewhere the test says why it did not run.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::daemon::{
    containers, docker, engine_and_image_ready, model_server_service as service, ready_replicas,
    wait_for, wait_until_removed, Daemon, MODEL_SERVER,
};
use support::http::{request, request_timed, Reply};

/// Three Iris flowers, one of each class.
const INSTANCES: &str =
    r#"{"instances": [[5.1, 3.5, 1.4, 0.2], [5.9, 3.0, 4.2, 1.5], [6.7, 3.0, 5.2, 2.3]]}"#;

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    daemon: Daemon,
    /// The services put in the folder, whose containers go when the test ends, passed or not.
    services: std::cell::RefCell<Vec<String>>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        // The files go first, so that the daemon does not start them again.
        for name in self.services.borrow().iter() {
            let _ = std::fs::remove_file(self.dir.join(format!("{name}.yaml")));
        }
        for name in self.services.borrow().iter() {
            let ids = containers(&format!("gantry.dev/inferenceservice={name}"));
            for id in ids.lines() {
                docker(&["rm", "-f", id]);
            }
        }
    }
}

/// A daemon on an empty folder, with `config` as its config file.
fn setup(config: &str) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("services");
    std::fs::create_dir(&dir).unwrap();
    let config_file = tmp.path().join("gantry.yaml");
    std::fs::write(&config_file, config).unwrap();
    let daemon = Daemon::start_with(
        &dir,
        &tmp.path().join("state"),
        &["--config", config_file.to_str().unwrap()],
    );
    Setup {
        _tmp: tmp,
        dir,
        daemon,
        services: Default::default(),
    }
}

impl Setup {
    /// Stops the daemon and starts another on the same folder, state and config.
    fn restart(&mut self) {
        self.daemon.terminate();
        let config = self._tmp.path().join("gantry.yaml");
        self.daemon = Daemon::start_with(
            &self.dir,
            &self._tmp.path().join("state"),
            &["--config", config.to_str().unwrap()],
        );
    }
}

/// Drops a service's YAML into the watched folder.
fn put(s: &Setup, name: &str, yaml: String) {
    s.services.borrow_mut().push(name.to_string());
    std::fs::write(s.dir.join(format!("{name}.yaml")), yaml).unwrap();
}

/// Drops a service's YAML into the watched folder and waits (a minute at most) for
/// `replicas` ready replicas; the service's view then.
fn deploy(s: &Setup, name: &str, yaml: String, replicas: usize) -> Value {
    put(s, name, yaml);
    wait_for(
        &s.daemon,
        name,
        &format!("{replicas} ready replica(s)"),
        60,
        |v| ready_count(v) == replicas,
    )
}

/// A prediction from another thread.
fn spawn_predict(d: &Daemon, name: &str) -> std::thread::JoinHandle<Reply> {
    let (listen, name) = (d.listen.clone(), name.to_string());
    std::thread::spawn(move || predict_at(&listen, &name, Duration::from_secs(60)).unwrap())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
}

fn predict(d: &Daemon, name: &str, timeout: Duration) -> std::io::Result<Reply> {
    predict_at(&d.listen, name, timeout)
}

/// A prediction at the service's host, through the data plane at `listen`.
fn predict_at(listen: &str, name: &str, timeout: Duration) -> std::io::Result<Reply> {
    request(
        listen,
        "POST",
        &format!("{name}.default.localhost"),
        &format!("/v1/models/{name}:predict"),
        INSTANCES,
        timeout,
    )
}

fn ready_count(v: &Value) -> usize {
    ready_replicas(v).len()
}

/// Removes the services' files and waits for their containers to go.
fn remove(dir: &Path, names: &[&str]) {
    for name in names {
        let _ = std::fs::remove_file(dir.join(format!("{name}.yaml")));
    }
    wait_until_removed(names);
}

#[test]
fn requests_route_by_host_prefix_and_model_name() {
    if !engine_and_image_ready() {
        return;
    }
    let s = setup("");
    let name = unique("route");
    let v = deploy(&s, &name, service(&name, "", "    minReplicas: 1\n", ""), 1);
    let port = s.daemon.listen.rsplit(':').next().unwrap();
    assert_eq!(
        v["url"],
        format!("http://{name}.default.localhost:{port}"),
        "the URL users call"
    );

    let by_host = predict(&s.daemon, &name, Duration::from_secs(10)).unwrap();
    assert_eq!(by_host.status, 200, "{by_host:?}");
    assert_eq!(by_host.json()["predictions"], serde_json::json!([0, 1, 2]));

    let by_prefix = request(
        &s.daemon.listen,
        "POST",
        "anything",
        &format!("/serving/default/{name}/v1/models/{name}:predict"),
        INSTANCES,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(
        by_prefix.json()["predictions"],
        serde_json::json!([0, 1, 2])
    );

    let by_model = request(
        &s.daemon.listen,
        "GET",
        "127.0.0.1",
        &format!("/v2/models/{name}/ready"),
        "",
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(by_model.status, 200, "{by_model:?}");
    assert_eq!(by_model.json()["ready"], true);

    let component = request(
        &s.daemon.listen,
        "GET",
        &format!("{name}-predictor.default"),
        &format!("/v1/models/{name}"),
        "",
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(
        component.status, 200,
        "the predictor's own host (KServe's --predictor_host)"
    );

    let unknown = request(
        &s.daemon.listen,
        "GET",
        "nope.default.localhost",
        "/v1/models/nope",
        "",
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(unknown.status, 404);
    let body = unknown.json();
    assert_eq!(body["lookedFor"]["host"], "nope.default.localhost");
    assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");
    remove(&s.dir, &[&name]);
}

#[test]
fn container_concurrency_is_a_hard_limit_per_replica() {
    if !engine_and_image_ready() {
        return;
    }
    let s = setup("");
    let name = unique("cc1");
    let v = deploy(
        &s,
        &name,
        service(
            &name,
            "",
            "    minReplicas: 2\n    maxReplicas: 2\n    containerConcurrency: 1\n",
            ", --latency=200ms",
        ),
        2,
    );
    let replicas = ready_replicas(&v);

    let threads: Vec<_> = (0..8).map(|_| spawn_predict(&s.daemon, &name)).collect();
    let statuses: Vec<u16> = threads
        .into_iter()
        .map(|t| t.join().unwrap().status)
        .collect();
    assert_eq!(statuses, [200; 8], "every request served, none refused");

    let mut total = 0;
    for (_, port, _) in &replicas {
        let stats = request(
            &format!("127.0.0.1:{port}"),
            "GET",
            "x",
            "/stats",
            "",
            Duration::from_secs(5),
        )
        .unwrap()
        .json();
        assert_eq!(
            stats["max_in_flight"], 1,
            "a replica saw two requests at once: {stats}"
        );
        total += stats["requests"].as_u64().unwrap();
    }
    assert_eq!(total, 8, "both replicas together served the 8 requests");
    remove(&s.dir, &[&name]);
}

#[test]
fn a_request_at_zero_is_held_until_a_replica_is_ready() {
    if !engine_and_image_ready() {
        return;
    }
    let s = setup("autoscaling:\n  allow-zero-initial-scale: true\n");
    let name = unique("zero");
    put(
        &s,
        &name,
        service(
            &name,
            "    autoscaling.knative.dev/initial-scale: \"0\"\n",
            "    minReplicas: 0\n    maxReplicas: 1\n",
            ", --startup-delay=1s",
        ),
    );
    // Known, with a revision, and no replica at all.
    let v = wait_for(&s.daemon, &name, "a revision at zero", 30, |v| {
        v["status"]["components"][0]["latestCreatedRevision"].is_string()
    });
    assert_eq!(ready_count(&v), 0);
    assert!(v["status"]["replicas"]
        .as_array()
        .is_none_or(|r| r.is_empty()));

    let started = Instant::now();
    let reply = predict(&s.daemon, &name, Duration::from_secs(60)).unwrap();
    let took = started.elapsed();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["predictions"], serde_json::json!([0, 1, 2]));
    assert!(
        took >= Duration::from_secs(1),
        "the replica's 1s start-up was waited for: {took:?}"
    );
    let v = wait_for(&s.daemon, &name, "the replica that served it", 10, |v| {
        ready_count(v) == 1
    });
    assert_eq!(ready_count(&v), 1);

    // The wait shows in the metrics, and the autoscaler's view in `describe`.
    let metrics = request(
        &s.daemon.api,
        "GET",
        "x",
        "/metrics",
        "",
        Duration::from_secs(5),
    )
    .unwrap()
    .body;
    let revision = v["status"]["components"][0]["latestCreatedRevision"]
        .as_str()
        .unwrap();
    let labels = format!("namespace=\"default\",service=\"{name}\",revision=\"{revision}\"");
    assert!(
        metrics.contains(&format!("gantry_cold_start_seconds_count{{{labels}}} 1\n")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "gantry_requests_total{{{labels},code=\"2xx\"}} 1\n"
        )),
        "{metrics}"
    );
    let describe = std::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["describe", "isvc", &name, "--api", &s.daemon.api])
        .output()
        .unwrap();
    let describe = String::from_utf8_lossy(&describe.stdout);
    assert!(
        describe.contains(&format!("Autoscaler ({revision}):  active, 1 replicas")),
        "{describe}"
    );
    remove(&s.dir, &[&name]);
}

#[test]
fn a_token_stream_arrives_as_it_is_produced() {
    if !engine_and_image_ready() {
        return;
    }
    let s = setup("");
    let name = unique("sse");
    deploy(
        &s,
        &name,
        service(
            &name,
            "",
            "    minReplicas: 1\n",
            ", --stream, --latency=300ms",
        ),
        1,
    );
    let (reply, arrivals) = request_timed(
        &s.daemon.listen,
        "POST",
        &format!("{name}.default.localhost"),
        &format!("/v1/models/{name}:predict"),
        &[("Accept", "text/event-stream")],
        INSTANCES,
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    assert_eq!(reply.body.matches("data:").count(), 3, "{}", reply.body);
    let first = arrivals.first().unwrap().0;
    let last = arrivals.last().unwrap().0;
    assert!(
        last - first >= Duration::from_millis(400),
        "the events came together instead of one by one: {arrivals:?}"
    );
    remove(&s.dir, &[&name]);
}

#[test]
fn a_full_queue_answers_503_and_a_late_request_504() {
    if !engine_and_image_ready() {
        return;
    }
    let s = setup("queue-depth: 1\n");
    let slow = unique("queue");
    let late = unique("late");
    put(
        &s,
        &slow,
        service(
            &slow,
            "",
            "    minReplicas: 1\n    maxReplicas: 1\n    containerConcurrency: 1\n",
            ", --latency=3s",
        ),
    );
    put(
        &s,
        &late,
        service(
            &late,
            "",
            "    minReplicas: 1\n    timeout: 1\n",
            ", --latency=3s",
        ),
    );
    wait_for(&s.daemon, &slow, "a ready replica", 60, |v| {
        ready_count(v) == 1
    });
    wait_for(&s.daemon, &late, "a ready replica", 60, |v| {
        ready_count(v) == 1
    });

    // Three at once on one slot and a queue of one: one in flight, one waiting, and the
    // third finds the queue full.
    let clients: Vec<_> = (0..3).map(|_| spawn_predict(&s.daemon, &slow)).collect();
    let mut replies: Vec<Reply> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    replies.sort_by_key(|r| r.status);
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 503], "{replies:?}");
    let full = &replies[2];
    assert_eq!(full.header("retry-after"), Some("1"));
    assert!(
        full.body.contains("pending request queue full"),
        "{}",
        full.body
    );

    // A request held for a replica that never comes (its image does not exist) gives up at
    // the service's timeout.
    let never = unique("never");
    put(
        &s,
        &never,
        service(&never, "", "    minReplicas: 1\n    timeout: 2\n", "")
            .replace(MODEL_SERVER, "gantry-model-server:no-such-tag"),
    );
    wait_for(&s.daemon, &never, "its revision", 30, |v| {
        v["status"]["components"][0]["latestCreatedRevision"].is_string()
    });
    let started = Instant::now();
    let held = predict(&s.daemon, &never, Duration::from_secs(30)).unwrap();
    assert_eq!(held.status, 504, "{held:?}");
    assert!(
        held.body.contains("activator request timeout"),
        "{}",
        held.body
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "held for the whole timeout"
    );
    let _ = std::fs::remove_file(s.dir.join(format!("{never}.yaml")));

    let timed_out = predict(&s.daemon, &late, Duration::from_secs(30)).unwrap();
    assert_eq!(timed_out.status, 504, "{timed_out:?}");
    assert!(
        timed_out.body.contains("request timeout"),
        "{}",
        timed_out.body
    );
    remove(&s.dir, &[&slow, &late]);
}

/// Load from `clients` threads until `stop`; counts answers by status.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(d: &Daemon, name: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                let (listen, name) = (d.listen.clone(), name.to_string());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        match predict_at(&listen, &name, Duration::from_secs(60)) {
                            Ok(r) if r.status == 200 => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(r) => failed
                                .lock()
                                .unwrap()
                                .push(format!("{} {}", r.status, r.body)),
                            Err(e) => failed.lock().unwrap().push(e.to_string()),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            threads,
        }
    }

    /// Stops; the requests served and the failures.
    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        let failed = self.failed.lock().unwrap().clone();
        (self.ok.load(Ordering::SeqCst), failed)
    }
}

/// Short windows so that a test sees a whole cycle in seconds.
const FAST_AUTOSCALER: &str = "autoscaling:
  stable-window: 6s
  scale-down-delay: 0s
  scale-to-zero-grace-period: 1s
  scale-to-zero-pod-retention-period: 0s
  max-scale-down-rate: 2
";

#[test]
fn a_burst_scales_out_in_panic_and_quiet_scales_to_zero() {
    if !engine_and_image_ready() {
        return;
    }
    let mut s = setup(FAST_AUTOSCALER);
    let name = unique("burst");
    // containerConcurrency 1 at 85 %: 4 clients need ceil(4 / 0.85) = 5 replicas; the bound
    // is 3.
    deploy(
        &s,
        &name,
        service(
            &name,
            "",
            "    minReplicas: 0\n    maxReplicas: 3\n    containerConcurrency: 1\n",
            ", --latency=300ms",
        ),
        1,
    );

    let load = Load::start(&s.daemon, &name, 4);
    // The 1s panic window sees 4 in flight on one replica: 5 needed, over twice the ready.
    let panicked = wait_for(&s.daemon, &name, "the decider to panic", 30, |v| {
        v["autoscaling"][0]["panic"] == true
    });
    assert!(
        panicked["autoscaling"][0]["desired"].as_i64().unwrap() > 1,
        "{}",
        panicked["autoscaling"]
    );
    let v = wait_for(&s.daemon, &name, "three ready replicas", 60, |v| {
        ready_count(v) == 3
    });
    let decided = &v["autoscaling"][0];
    assert_eq!(decided["replicas"], 3, "capped at maxReplicas: {decided}");
    // The scale events say what happened.
    let events: Vec<(String, String)> = decided["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        events.iter().any(|(r, _)| r == "PanicStarted"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "Scaled" && m.contains("to 3 replicas")),
        "{events:?}"
    );
    // Keep the load on the three replicas for a while.
    let before = load.ok.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(20);
    while load.ok.load(Ordering::SeqCst) < before + 20 && Instant::now() < deadline {
        std::thread::yield_now();
    }
    let (served, failed) = load.finish();
    assert!(failed.is_empty(), "no request may fail: {failed:?}");
    assert!(served >= before + 20, "{served} requests served");
    let count = |v: &Value| v["status"]["replicas"].as_array().map_or(0, |r| r.len());
    assert!(count(&v) <= 3, "never above maxReplicas");

    // Quiet: down at the rate limit, then to zero.
    let v = wait_for(&s.daemon, &name, "scaled to zero", 90, |v| {
        v["autoscaling"][0]["replicas"] == 0 && count(v) == 0
    });
    assert_eq!(v["autoscaling"][0]["activity"], "inactive");

    // A daemon restart does not wake it (Knative keeps a revision's scale): its autoscaler
    // resumes at zero, and no replica is started.
    s.restart();
    let v = wait_for(
        &s.daemon,
        &name,
        "its autoscaler after the restart",
        30,
        |v| {
            v["autoscaling"][0]["activity"].is_string()
                && v["status"]["components"][0]["ready"] == true
        },
    );
    assert_eq!(v["autoscaling"][0]["replicas"], 0, "{}", v["autoscaling"]);
    assert_eq!(v["autoscaling"][0]["activity"], "inactive");
    assert_eq!(count(&v), 0, "{}", v["status"]["replicas"]);
    assert_eq!(
        containers(&format!("gantry.dev/inferenceservice={name}")),
        ""
    );

    // And back: the next request is held while a replica starts.
    let reply = predict(&s.daemon, &name, Duration::from_secs(60)).unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["predictions"], serde_json::json!([0, 1, 2]));
    remove(&s.dir, &[&name]);
}

#[test]
fn killing_a_replica_under_load_loses_only_what_it_held() {
    if !engine_and_image_ready() {
        return;
    }
    let s = setup("");
    let name = unique("kill");
    let v = deploy(
        &s,
        &name,
        service(
            &name,
            "",
            "    minReplicas: 2\n    maxReplicas: 2\n    containerConcurrency: 1\n",
            ", --latency=100ms",
        ),
        2,
    );
    let victim = ready_replicas(&v)[0].2.clone();

    let load = Load::start(&s.daemon, &name, 4);
    let before = Instant::now();
    while load.ok.load(Ordering::SeqCst) < 10 && before.elapsed() < Duration::from_secs(20) {
        std::thread::yield_now();
    }
    docker(&["kill", &victim]);
    let after = load.ok.load(Ordering::SeqCst);
    while load.ok.load(Ordering::SeqCst) < after + 20 && before.elapsed() < Duration::from_secs(40)
    {
        std::thread::yield_now();
    }
    let (served, failed) = load.finish();
    assert!(
        served >= after + 20,
        "the other replica kept serving: {served}"
    );
    // With containerConcurrency 1 the killed replica held at most one request.
    assert!(
        failed.len() <= 1,
        "requests that had not reached it were lost: {failed:?}"
    );
    remove(&s.dir, &[&name]);
}

/// Scaling down drains: the replica that goes takes no new requests, finishes the ones it has,
/// and only then stops.
#[test]
fn a_replica_scaled_away_finishes_its_requests_first() {
    if !engine_and_image_ready() {
        return;
    }
    let s = setup("");
    let name = unique("drain");
    let spec = |replicas: u32| {
        service(
            &name,
            "",
            &format!(
                "    minReplicas: {replicas}\n    maxReplicas: {replicas}\n    containerConcurrency: 1\n    terminationGracePeriodSeconds: 30\n"
            ),
            ", --latency=4s",
        )
    };
    deploy(&s, &name, spec(2), 2);
    let slow: Vec<_> = (0..2).map(|_| spawn_predict(&s.daemon, &name)).collect();
    // Both requests are in flight, one per replica; then the service shrinks to one.
    let deadline = Instant::now() + Duration::from_secs(10);
    let in_flight = |v: &Value| -> u64 {
        ready_replicas(v)
            .iter()
            .map(|(_, port, _)| {
                request(
                    &format!("127.0.0.1:{port}"),
                    "GET",
                    "x",
                    "/stats",
                    "",
                    Duration::from_secs(5),
                )
                .map(|r| r.json()["in_flight"].as_u64().unwrap_or(0))
                .unwrap_or(0)
            })
            .sum()
    };
    while Instant::now() < deadline {
        if s.daemon.service(&name).is_some_and(|v| in_flight(&v) == 2) {
            break;
        }
    }
    put(&s, &name, spec(1));
    for t in slow {
        let reply = t.join().unwrap();
        assert_eq!(
            reply.status, 200,
            "a request on the replica scaled away was lost: {reply:?}"
        );
    }
    wait_for(&s.daemon, &name, "one replica left", 60, |v| {
        v["status"]["replicas"]
            .as_array()
            .is_some_and(|r| r.len() == 1)
    });
    remove(&s.dir, &[&name]);
}

/// `curl` through the router; the status and the `x-http-version` the model server saw.
fn curl_version(listen: &str, host: &str, path: &str, h2: bool) -> (String, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-D", "-", "--max-time", "20", "-H"])
        .arg(format!("Host: {host}"));
    if h2 {
        cmd.arg("--http2-prior-knowledge");
    }
    let out = cmd.arg(format!("http://{listen}{path}")).output().unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_string();
    let status = head.lines().next().unwrap_or_default().trim().to_string();
    let version = head
        .lines()
        .find_map(|l| l.strip_prefix("x-http-version: "))
        .unwrap_or_default()
        .trim()
        .to_string();
    (status, version)
}

/// HTTP/2 without TLS from clients, and to replicas whose port is named `h2c` (gRPC's way).
#[test]
fn h2c_from_clients_and_to_h2c_replicas() {
    if !engine_and_image_ready() {
        return;
    }
    let s = setup("");
    let plain = unique("h1");
    let grpc = unique("h2");
    put(&s, &plain, service(&plain, "", "    minReplicas: 1\n", ""));
    put(
        &s,
        &grpc,
        service(&grpc, "", "    minReplicas: 1\n", "").replace(
            "      env:\n",
            "      ports: [{name: h2c, containerPort: 8080}]\n      env:\n",
        ),
    );
    wait_for(&s.daemon, &plain, "a ready replica", 60, |v| {
        ready_count(v) == 1
    });
    wait_for(&s.daemon, &grpc, "a ready replica", 60, |v| {
        ready_count(v) == 1
    });
    let host = |n: &str| format!("{n}.default.localhost");

    let (status, seen) = curl_version(
        &s.daemon.listen,
        &host(&plain),
        &format!("/v1/models/{plain}"),
        true,
    );
    assert_eq!(
        (status.as_str(), seen.as_str()),
        ("HTTP/2 200", "HTTP/1.1"),
        "h2c in, HTTP/1.1 to the replica"
    );
    let (status, seen) = curl_version(
        &s.daemon.listen,
        &host(&grpc),
        &format!("/v1/models/{grpc}"),
        true,
    );
    assert_eq!(
        (status.as_str(), seen.as_str()),
        ("HTTP/2 200", "HTTP/2.0"),
        "h2c through to an h2c replica"
    );
    let (status, seen) = curl_version(
        &s.daemon.listen,
        &host(&grpc),
        &format!("/v1/models/{grpc}"),
        false,
    );
    assert_eq!(
        (status.as_str(), seen.as_str()),
        ("HTTP/1.1 200 OK", "HTTP/2.0"),
        "HTTP/1.1 in, h2c to the replica"
    );
    remove(&s.dir, &[&plain, &grpc]);
}

#[path = "support/docker.rs"]
mod docker_support;

/// A transformer that calls its predictor the way KServe's do: at `--predictor_host`
/// (`<name>-predictor.<namespace>`), which resolves inside its container to the host, where
/// gantry's router answers and forwards to the predictor. The transformer is a busybox CGI.
#[test]
fn a_transformer_reaches_its_predictor_through_the_router() {
    if !engine_and_image_ready() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(engine) = runtime.block_on(docker_support::engine()) else {
        return;
    };
    runtime.block_on(docker_support::ensure_test_image(&engine));
    let s = setup("");
    let name = unique("xform");
    // KServe appends `--model_name N --predictor_host H --http_port 8080`: $1 and $3 below.
    let script = [
        "/bin/busybox mkdir -p /www/cgi-bin",
        "/bin/busybox printf '%s\\n' '#!/bin/busybox sh' 'echo Content-Type: application/json' 'echo' \"/bin/busybox wget -q -O - --header 'Content-Type: application/json' --post-data '{\\\"instances\\\": [[6.8, 2.8, 4.8, 1.4]]}' http://$3/v1/models/$1:predict\" > /www/cgi-bin/t",
        "/bin/busybox chmod +x /www/cgi-bin/t",
        "exec /bin/busybox httpd -f -p 8080 -h /www",
    ]
    .join("\n");
    let transformer = format!(
        "  transformer:\n    containers:\n    - name: kserve-container\n      image: {}\n      command: [/bin/busybox, sh, -c, {}]\n      resources: {{requests: {{cpu: 10m, memory: 16Mi}}, limits: {{cpu: 100m, memory: 32Mi}}}}\n",
        docker_support::TEST_IMAGE,
        serde_json::to_string(&script).unwrap()
    );
    let yaml = service(&name, "", "    minReplicas: 1\n", "") + &transformer;
    put(&s, &name, yaml);
    wait_for(
        &s.daemon,
        &name,
        "predictor and transformer ready",
        60,
        |v| ready_count(v) == 2,
    );
    let reply = request(
        &s.daemon.listen,
        "GET",
        &format!("{name}.default.localhost"),
        "/cgi-bin/t",
        "",
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.json()["predictions"],
        serde_json::json!([1]),
        "the transformer's call reached the predictor through the router"
    );
    remove(&s.dir, &[&name]);
}
