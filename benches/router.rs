//! Router overhead: requests per second and p50/p99 latency directly to a replica (the
//! example model server), through gantry's data plane and through nginx as a reverse proxy
//! to the same replica, with 1 and 64 kept-alive connections, on the same machine in one run.
//! A proxy's overhead is its row next to the direct one.
//!
//! Run: `scripts/bench-router.sh` (installs nginx when missing, builds the release model
//! server, then runs `cargo bench --bench router`). Prints figures; asserts nothing.
//!
//! - The replica is `gantry-model-server` as a host process (no Docker), on one thread (its
//!   runtime is single-threaded).
//! - gantry is [`gantry::router::proxy::serve`] in this process, on a tokio runtime of its
//!   own, routing `iris.default.localhost` to the replica from a catalog and a runtime status
//!   built here (what the daemon's reconciler would publish once the replica is ready).
//! - nginx is Debian's, started with its own configuration in a temporary folder: kept-alive
//!   upstream connections, no access log.
//! - The load generator is another tokio runtime in this process, separate from gantry's so
//!   that the two never share a worker thread: one task per connection, each a hyper
//!   HTTP/1.1 client connection sending a request and reading the whole answer before the
//!   next one. Every request's latency is recorded.
//! - Fairness: by default (`BENCH_PIN=1`, with 2 CPUs or more) the load generator's threads
//!   run on CPU 0 and the server side (replica and proxy) on the last CPU, and each proxy
//!   gets one thread: gantry's runtime one worker, nginx one worker process. Each target's
//!   server side has exactly one core, the client another, and a proxy's throughput next to
//!   the direct one is the replica's share of a core it shares with the proxy. With
//!   `BENCH_PIN=0` nothing is pinned and rows with two gantry worker threads (as the daemon
//!   runs on 2 cores) and two nginx workers are added; the client, the proxy and the replica
//!   then compete for every core.
//! - Each row's time is split into rounds (`BENCH_ROUNDS`, default 3) that take the targets
//!   in turn, so that whatever else the machine does falls on every target alike.
//!
//! Two requests (`BENCH_WORKLOADS`, default `predict,status`):
//! - `predict`: `POST /v1/models/iris:predict` with one Iris instance, as the issue asks. The
//!   model server sleeps its `--latency` (0 s) before answering, and a zero tokio sleep still
//!   waits for the timer's next millisecond tick: each answer takes about 1 ms, which hides
//!   a proxy's cost at one connection.
//! - `status`: `GET /v1/models/iris` (KServe V1 model status), answered without sleeping: the
//!   cheapest real request, where a proxy's own cost shows.
//!
//! Environment: `BENCH_SECONDS` (measured seconds per row, default 5, split into the rounds,
//! each after a 1 s warm-up), `BENCH_ROUNDS`, `BENCH_PIN`, `BENCH_WORKLOADS`,
//! `BENCH_TARGETS` (from `gantry-1,nginx-1,gantry-2,nginx-2`; the direct row is always
//! measured), `BENCH_CONNECTIONS` (default `1,64`), `BENCH_CLIENT_THREADS` (the load
//! generator's worker threads, default 1), `BENCH_MODEL_SERVER` (the binary, default
//! `target/release/gantry-model-server`), `BENCH_NGINX` (default `nginx` on the PATH or
//! `/usr/sbin/nginx`).

#[path = "../tests/support/inprocess.rs"]
#[allow(dead_code)]
mod inprocess;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

const HOST: &str = "iris.default.localhost";
const REVISION: &str = "iris-predictor-00001";
const CONNECTIONS: [usize; 2] = [1, 64];
const WARM_UP: Duration = Duration::from_secs(1);
const START_DEADLINE: Duration = Duration::from_secs(10);

/// One kind of request the connections send.
#[derive(Clone, Copy)]
struct Workload {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    body: &'static [u8],
}

/// See the module's documentation.
const WORKLOADS: [Workload; 2] = [
    Workload {
        name: "predict",
        method: "POST",
        path: "/v1/models/iris:predict",
        body: br#"{"instances": [[6.8, 2.8, 4.8, 1.4]]}"#,
    },
    Workload {
        name: "status",
        method: "GET",
        path: "/v1/models/iris",
        body: b"",
    },
];

/// A child process stopped (SIGTERM, then SIGKILL) when dropped.
struct Process {
    name: &'static str,
    child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

/// Where processes and threads run: with pinning, the load generator on one CPU and the
/// server side (replica and proxy) on another, so that every target's server side has the
/// same single core and the client never takes CPU from it.
#[derive(Clone, Copy)]
struct Cpus {
    client: usize,
    server: usize,
}

/// `program`, started on `cpu` when given (with `taskset`, which execs it: the child's
/// pid is the program's).
fn command(program: &Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu.to_string()]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Pins the calling thread to `cpu` (for runtime threads, from `on_thread_start`).
fn pin_this_thread(cpu: usize) {
    let tid = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .expect("cannot read /proc/thread-self");
    let pinned = Command::new("taskset")
        .args(["-p", "-c", &cpu.to_string(), &tid])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(pinned, "cannot pin thread {tid} to CPU {cpu} with taskset");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot find a free port")
        .port()
}

/// True when `GET path` on the port answers 200.
fn ok(port: u16, path: &str) -> bool {
    let Ok(mut s) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    s.read(&mut buf)
        .is_ok_and(|n| buf[..n].starts_with(b"HTTP/1.1 200"))
}

/// Polls `GET /v2/health/ready` through `port` until it answers 200; false at the deadline
/// or when `child` exits first.
fn wait_ready(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + START_DEADLINE;
    while Instant::now() < deadline {
        if ok(port, "/v2/health/ready") {
            return true;
        }
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!("exited before it was ready: {status}");
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn model_server(root: &Path, cpu: Option<usize>) -> (Process, u16) {
    let binary = std::env::var_os("BENCH_MODEL_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/gantry-model-server"));
    assert!(
        binary.exists(),
        "{} is missing: run scripts/bench-router.sh, or `cargo build --release -p \
         gantry-model-server` first",
        binary.display()
    );
    let port = free_port();
    let child = command(&binary, cpu)
        .args(["--model-name", "iris", "--host", "127.0.0.1", "--http-port"])
        .arg(port.to_string())
        .arg("--model-dir")
        .arg(root.join("examples/models/iris"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let mut process = Process {
        name: "gantry-model-server",
        child,
    };
    assert!(
        wait_ready(port, &mut process.child),
        "the model server on port {port} never became ready"
    );
    (process, port)
}

/// gantry's data plane on its own runtime of `threads` workers, routing to the replica.
struct Gantry {
    runtime: tokio::runtime::Runtime,
    shutdown: tokio::sync::watch::Sender<bool>,
    port: u16,
    _poked: tokio::sync::mpsc::UnboundedReceiver<String>,
}

fn gantry(threads: usize, replica_port: u16, cpu: Option<usize>) -> Gantry {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("gantry-router")
        .on_thread_start(move || {
            if let Some(cpu) = cpu {
                pin_this_thread(cpu);
            }
        })
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (router, poked) = gantry::router::Router::new("localhost", port, 10_000);
    // The example's service, with no concurrency limit so the throttler never holds a
    // request.
    router.update(
        &inprocess::catalog(&inprocess::isvc("iris", "")),
        &inprocess::status("iris", replica_port),
    );
    assert!(
        router.revision(REVISION).is_some(),
        "the router does not route to {REVISION}"
    );
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    runtime.spawn(gantry::router::proxy::serve(listener, router, shutdown_rx));
    let deadline = Instant::now() + START_DEADLINE;
    while !ok(port, "/v2/health/ready") {
        assert!(
            Instant::now() < deadline,
            "gantry on port {port} never routed to the replica"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    Gantry {
        runtime,
        shutdown,
        port,
        _poked: poked,
    }
}

fn nginx_binary() -> Option<PathBuf> {
    if let Some(b) = std::env::var_os("BENCH_NGINX") {
        return Some(PathBuf::from(b));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("nginx"));
    on_path
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|p| p.is_file())
}

/// nginx with `workers` worker processes as a reverse proxy to the replica, kept alive.
fn nginx(
    binary: &Path,
    workers: usize,
    replica_port: u16,
    cpu: Option<usize>,
) -> (Process, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    let config = format!(
        "worker_processes {workers};
daemon off;
error_log {d}/error.log;
pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    upstream replica {{ server 127.0.0.1:{replica_port}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://replica;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
    }}
}}
"
    );
    let file = dir.path().join("nginx.conf");
    std::fs::write(&file, config).unwrap();
    let child = command(binary, cpu)
        .arg("-c")
        .arg(&file)
        .arg("-p")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let mut process = Process {
        name: "nginx",
        child,
    };
    if !wait_ready(port, &mut process.child) {
        let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
        panic!("nginx on port {port} never answered; its error log:\n{log}");
    }
    (process, port, dir)
}

/// What one connection saw.
#[derive(Default)]
struct Seen {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
    last_finish: Option<Instant>,
}

impl Seen {
    fn error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn one_request(sender: &mut Sender, w: Workload) -> Result<(), String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection: {e}"))?;
    let mut request = Request::builder()
        .method(Method::from_bytes(w.method.as_bytes()).unwrap())
        .uri(w.path)
        .header(hyper::header::HOST, HOST);
    if !w.body.is_empty() {
        request = request.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let request = request.body(Full::new(Bytes::from_static(w.body))).unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    if status != StatusCode::OK {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(())
}

/// One kept-alive connection sending requests back to back until `end`; latencies count
/// for requests sent after `measure_from`. A failed connection is replaced.
async fn connection(addr: SocketAddr, w: Workload, measure_from: Instant, end: Instant) -> Seen {
    let mut seen = Seen::default();
    let mut sender = None;
    loop {
        let sent = Instant::now();
        if sent >= end {
            return seen;
        }
        let s = match sender.as_mut() {
            Some(s) => s,
            None => match connect(addr).await {
                Ok(s) => sender.insert(s),
                Err(e) => {
                    seen.error(e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let result = one_request(s, w).await;
        let done = Instant::now();
        if sent >= measure_from {
            match result {
                Ok(()) => {
                    seen.latencies.push(done - sent);
                    seen.last_finish = Some(done);
                }
                Err(e) => seen.error(e),
            }
        } else if let Err(e) = result {
            seen.error(format!("(warm-up) {e}"));
        }
        if sender.as_ref().is_some_and(|s| s.is_closed()) {
            sender = None;
        }
    }
}

/// One row's requests, over all its rounds.
#[derive(Default)]
struct Measured {
    latencies: Vec<Duration>,
    seconds: f64,
    errors: u64,
    /// Requests per second of each round.
    round_rps: Vec<f64>,
}

impl Measured {
    fn rps(&self) -> f64 {
        self.latencies.len() as f64 / self.seconds.max(f64::EPSILON)
    }

    /// The nearest-rank percentile (call after sorting `latencies`).
    fn percentile(&self, p: f64) -> Duration {
        let sorted = &self.latencies;
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }
}

/// Runs `connections` connections to `port` for a warm-up and then `seconds`, adding what
/// they measured to `into`.
fn measure(
    client: &tokio::runtime::Runtime,
    port: u16,
    w: Workload,
    connections: usize,
    seconds: f64,
    into: &mut Measured,
) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    let measure_from = start + WARM_UP;
    let end = measure_from + Duration::from_secs_f64(seconds);
    let seen: Vec<Seen> = client.block_on(async {
        let tasks: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(connection(addr, w, measure_from, end)))
            .collect();
        let mut seen = Vec::new();
        for t in tasks {
            seen.push(t.await.unwrap());
        }
        seen
    });
    let mut requests = 0;
    let mut last = measure_from;
    for s in seen {
        requests += s.latencies.len();
        into.latencies.extend(s.latencies);
        into.errors += s.errors;
        if let Some(e) = s.first_error {
            eprintln!("  error on a connection to port {port}: {e}");
        }
        if let Some(f) = s.last_finish {
            last = last.max(f);
        }
    }
    // The last requests end a little after `end`: the round lasts until the last answer.
    let elapsed = (last - measure_from).as_secs_f64();
    into.seconds += elapsed;
    into.round_rps
        .push(requests as f64 / elapsed.max(f64::EPSILON));
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seconds: f64 = env_or("BENCH_SECONDS", 5.0);
    let rounds: usize = env_or("BENCH_ROUNDS", 3).max(1);
    let client_threads: usize = env_or("BENCH_CLIENT_THREADS", 1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = (env_or("BENCH_PIN", 1) == 1 && cores >= 2).then_some(Cpus {
        client: 0,
        server: cores - 1,
    });
    println!(
        "router overhead: {cores} cores, {seconds} s per row in {rounds} rounds (each after a \
         {} s warm-up), load generator on {client_threads} thread(s), {}",
        WARM_UP.as_secs(),
        match pin {
            Some(p) => format!(
                "load generator pinned to CPU {}, replica and proxy to CPU {}",
                p.client, p.server
            ),
            None => "nothing pinned".into(),
        }
    );

    let (_replica, replica_port) = model_server(root, pin.map(|p| p.server));
    // (id, what the table calls it, threads or workers of the proxy)
    let proxies = [
        ("gantry-1", "gantry, 1 thread", 1),
        ("nginx-1", "nginx, 1 worker", 1),
        ("gantry-2", "gantry, 2 threads", 2),
        ("nginx-2", "nginx, 2 workers", 2),
    ];
    let default_targets = if pin.is_some() {
        "gantry-1,nginx-1"
    } else {
        "gantry-1,nginx-1,gantry-2,nginx-2"
    };
    let wanted = std::env::var("BENCH_TARGETS").unwrap_or_else(|_| default_targets.into());
    let wanted: Vec<&str> = wanted.split(',').map(str::trim).collect();
    for id in &wanted {
        assert!(
            proxies.iter().any(|p| p.0 == *id),
            "BENCH_TARGETS: no target {id:?} (gantry-1, nginx-1, gantry-2, nginx-2)"
        );
    }
    let nginx_binary = nginx_binary();
    if nginx_binary.is_none() && wanted.iter().any(|t| t.starts_with("nginx")) {
        eprintln!();
        eprintln!("!!! nginx is not installed: its rows are SKIPPED.");
        eprintln!("!!! Run scripts/bench-router.sh (it installs Debian's nginx).");
        eprintln!();
    }
    let mut targets: Vec<(String, u16)> = vec![("direct".into(), replica_port)];
    let mut gantries = Vec::new();
    let mut nginxes = Vec::new();
    for (id, name, threads) in proxies {
        if !wanted.contains(&id) {
            continue;
        }
        let cpu = pin.map(|p| p.server);
        let port = if id.starts_with("gantry") {
            let g = gantry(threads, replica_port, cpu);
            let port = g.port;
            gantries.push(g);
            port
        } else if let Some(binary) = &nginx_binary {
            let (process, port, dir) = nginx(binary, threads, replica_port, cpu);
            nginxes.push((process, dir));
            port
        } else {
            continue;
        };
        targets.push((name.into(), port));
    }
    let connection_counts: Vec<usize> = match std::env::var("BENCH_CONNECTIONS") {
        Ok(list) => list
            .split(',')
            .map(|n| n.trim().parse().expect("BENCH_CONNECTIONS: numbers"))
            .collect(),
        Err(_) => CONNECTIONS.to_vec(),
    };

    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads)
        .thread_name("load-generator")
        .on_thread_start(move || {
            if let Some(p) = pin {
                pin_this_thread(p.client);
            }
        })
        .enable_all()
        .build()
        .unwrap();
    let chosen = std::env::var("BENCH_WORKLOADS").unwrap_or_else(|_| "predict,status".into());
    let workloads: Vec<Workload> = chosen
        .split(',')
        .map(|name| {
            *WORKLOADS
                .iter()
                .find(|w| w.name == name.trim())
                .unwrap_or_else(|| panic!("BENCH_WORKLOADS: no workload {name:?}"))
        })
        .collect();
    // Each row's time is split into rounds, and a round runs every target in turn, so that
    // whatever else the machine does meanwhile falls on every target alike.
    let per_round = seconds / rounds as f64;
    let mut rows = Vec::new();
    for w in &workloads {
        for &connections in &connection_counts {
            let mut measured: Vec<Measured> = targets.iter().map(|_| Measured::default()).collect();
            for round in 1..=rounds {
                for ((name, port), m) in targets.iter().zip(&mut measured) {
                    measure(&client, *port, *w, connections, per_round, m);
                    eprintln!(
                        "  {} {}, {name}, {connections} connection(s), round {round}: {:.0} \
                         req/s",
                        w.method,
                        w.path,
                        m.round_rps.last().unwrap()
                    );
                }
            }
            for ((name, _), mut m) in targets.iter().zip(measured) {
                m.latencies.sort_unstable();
                eprintln!(
                    "  {} {}, {name}, {connections} connection(s): p50 {}, p90 {}, p99 {}, \
                     p99.9 {}, max {}",
                    w.method,
                    w.path,
                    micros(m.percentile(50.0)),
                    micros(m.percentile(90.0)),
                    micros(m.percentile(99.0)),
                    micros(m.percentile(99.9)),
                    micros(m.percentile(100.0)),
                );
                rows.push((w.name, name.clone(), connections, m));
            }
        }
    }

    for w in &workloads {
        println!();
        println!("{} {}", w.method, w.path);
        println!();
        println!(
            "| Target | Connections | Requests/s (rounds) | p50 | p99 | Errors | Added p50 vs \
             direct | Throughput vs direct |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for (_, name, connections, m) in rows.iter().filter(|r| r.0 == w.name) {
            let direct = rows
                .iter()
                .find(|(wn, n, c, _)| *wn == w.name && n == "direct" && c == connections)
                .map(|(_, _, _, d)| d)
                .unwrap();
            let (added, ratio) = if name == "direct" {
                ("".to_string(), "".to_string())
            } else {
                let added =
                    m.percentile(50.0).as_secs_f64() - direct.percentile(50.0).as_secs_f64();
                (
                    format!("{:+.1} µs", added * 1e6),
                    format!("{:.2}×", m.rps() / direct.rps()),
                )
            };
            let rounds: Vec<String> = m.round_rps.iter().map(|r| format!("{r:.0}")).collect();
            println!(
                "| {name} | {connections} | {:.0} ({}) | {} | {} | {} | {added} | {ratio} |",
                m.rps(),
                rounds.join(", "),
                micros(m.percentile(50.0)),
                micros(m.percentile(99.0)),
                m.errors
            );
        }
    }

    drop(client);
    drop(nginxes);
    for g in gantries {
        let _ = g.shutdown.send(true);
        g.runtime.shutdown_timeout(Duration::from_secs(1));
    }
}
