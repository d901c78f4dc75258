//! KServe canary rollouts end to end, on a real Docker engine with the example model server:
//! `canaryTrafficPercent` splits the requests between the latest revision and the rolled-out
//! one (measured over thousands of requests, and through the `prev-` / `latest-` tag hosts);
//! the split survives a daemon restart, which adopts the running containers; promotion and
//! rollback happen under load without a single failed request.
//!
//! The two revisions are told apart by the model server's `--version`, which it sends back in
//! the `x-model-version` header.
//!
//! Needs the Docker engine and the `gantry-model-server:latest` image
//! (`examples/model-server/build-image.sh`); `.ci/run` provides both. On CI (`CI=true`) a
//! missing engine or image fails the test; elsewhere the test says why it did not run.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::daemon::{
    containers, docker, engine_and_image_ready, model_server_container, model_server_service,
    ready_replicas, wait_for, wait_until_removed, Daemon,
};
use support::http::{request, Reply};

/// Three Iris flowers, one of each class.
const INSTANCES: &str =
    r#"{"instances": [[5.1, 3.5, 1.4, 0.2], [5.9, 3.0, 4.2, 1.5], [6.7, 3.0, 5.2, 2.3]]}"#;

/// The header in which the model server says which `--version` it runs.
const VERSION_HEADER: &str = "x-model-version";

/// How long one request may take: longer than any wait below, so that a request held while a
/// revision starts again is answered, never cut off by the client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The InferenceService: one replica of the model server answering as `version`, with
/// `predictor` lines (indented under `predictor:`) and `annotations` (under `annotations:`).
fn service(name: &str, version: &str, annotations: &str, predictor: &str) -> String {
    let predictor = format!(
        "    minReplicas: 1\n    maxReplicas: 1\n    terminationGracePeriodSeconds: 5\n{predictor}"
    );
    model_server_service(
        name,
        annotations,
        &predictor,
        &format!(", --version={version}"),
    )
}

const TAG_ROUTING: &str = "    serving.kserve.io/enable-tag-routing: \"true\"\n";

/// A services folder and a state directory for one service, `<prefix>-<pid>`, with the names
/// of its first two revisions. When the test ends, passed or not, its file and containers go
/// (after the daemon, which is declared later and so dropped first).
struct Setup {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    file: PathBuf,
    name: String,
    rev1: String,
    rev2: String,
}

impl Setup {
    fn new(prefix: &str) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("services");
        std::fs::create_dir(&dir).unwrap();
        let name = format!("{prefix}-{}", std::process::id());
        Setup {
            file: dir.join(format!("{name}.yaml")),
            rev1: format!("{name}-predictor-00001"),
            rev2: format!("{name}-predictor-00002"),
            dir,
            name,
            tmp,
        }
    }

    fn daemon(&self) -> Daemon {
        Daemon::start(&self.dir, &self.tmp.path().join("state"))
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        let ids = containers(&format!("gantry.dev/inferenceservice={}", self.name));
        for id in ids.lines() {
            docker(&["rm", "-f", id]);
        }
    }
}

/// The predictor's entry of `status.components`.
fn predictor(v: &Value) -> Value {
    v["status"]["components"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["component"] == "predictor").cloned())
        .unwrap_or(Value::Null)
}

/// One entry of the predictor's `traffic`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    revision: String,
    percent: u64,
    latest_revision: bool,
    tag: Option<String>,
}

fn target(revision: &str, percent: u64, latest_revision: bool, tag: Option<&str>) -> Target {
    Target {
        revision: revision.to_string(),
        percent,
        latest_revision,
        tag: tag.map(str::to_string),
    }
}

fn traffic(v: &Value) -> Vec<Target> {
    predictor(v)["traffic"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| Target {
                    revision: t["revisionName"].as_str().unwrap_or_default().to_string(),
                    percent: t["percent"].as_u64().unwrap_or(u64::MAX),
                    latest_revision: t["latestRevision"] == true,
                    tag: t["tag"].as_str().map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `latestCreatedRevision`, `latestReadyRevision`, `latestRolledoutRevision` or
/// `previousRolledoutRevision` of the predictor.
fn field(v: &Value, name: &str) -> Option<String> {
    predictor(v)[name].as_str().map(str::to_string)
}

/// The ready replicas as (revision, container id), sorted.
fn replicas(v: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = ready_replicas(v)
        .into_iter()
        .map(|(revision, _, id)| (revision, id))
        .collect();
    out.sort();
    out
}

/// Whether `revision` has any replica in the status (ready or not) or any container, running
/// or stopped.
fn has_replicas(v: &Value, revision: &str) -> bool {
    let listed = v["status"]["replicas"]
        .as_array()
        .is_some_and(|rs| rs.iter().any(|r| r["revision"] == revision));
    listed || !containers(&format!("gantry.dev/revision={revision}")).is_empty()
}

/// What one request got: its status and the version that answered, or the I/O error.
type Outcome = Result<(u16, Option<String>), String>;

/// A `:predict` request at `host`.
fn post(listen: &str, host: &str, name: &str) -> std::io::Result<Reply> {
    request(
        listen,
        "POST",
        host,
        &format!("/v1/models/{name}:predict"),
        INSTANCES,
        REQUEST_TIMEOUT,
    )
}

fn predict(listen: &str, host: &str, name: &str) -> Outcome {
    post(listen, host, name)
        .map(|r| (r.status, r.header(VERSION_HEADER).map(str::to_string)))
        .map_err(|e| e.to_string())
}

/// `n` predictions at `host` from `clients` threads at once.
fn batch(listen: &str, host: &str, name: &str, n: usize, clients: usize) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                while next.fetch_add(1, Ordering::SeqCst) < n {
                    let outcome = predict(listen, host, name);
                    outcomes.lock().unwrap().push(outcome);
                }
            });
        }
    });
    outcomes.into_inner().unwrap()
}

/// How many answers each version gave; fails on any request that did not get a 200 with a
/// version.
fn versions(what: &str, outcomes: &[Outcome]) -> BTreeMap<String, usize> {
    let failed: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| !matches!(o, Ok((200, Some(_)))))
        .collect();
    assert!(
        failed.is_empty(),
        "{what}: {} of {} requests failed, e.g. {:?}",
        failed.len(),
        outcomes.len(),
        &failed[..failed.len().min(5)]
    );
    let mut counts = BTreeMap::new();
    for (_, version) in outcomes.iter().flatten() {
        *counts.entry(version.clone().unwrap()).or_insert(0) += 1;
    }
    counts
}

/// Asserts that every one of `n` requests at `host` was answered by `version`.
fn all_answered_by(listen: &str, host: &str, name: &str, n: usize, version: &str) {
    let counts = versions(host, &batch(listen, host, name, n, 4));
    assert_eq!(
        counts,
        BTreeMap::from([(version.to_string(), n)]),
        "every request at {host} answered by {version}"
    );
}

/// Asserts that a request at `host` finds no route, and that the 404 says why.
fn no_route(listen: &str, host: &str, name: &str, why: &str) {
    let reply = post(listen, host, name).unwrap();
    assert_eq!(reply.status, 404, "{host}: {reply:?}");
    let error = reply.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains(why), "{host}: {}", reply.body);
}

/// Asserts that the share of `n` requests at the service's host answered by v2 is that of a
/// 10 % canary; `bounds` is the range of v2 answers the test accepts.
fn split_is_ten_percent(
    listen: &str,
    name: &str,
    n: usize,
    bounds: std::ops::RangeInclusive<usize>,
) {
    let host = format!("{name}.default.localhost");
    let started = Instant::now();
    let counts = versions(&host, &batch(listen, &host, name, n, 16));
    let v2 = counts.get("v2").copied().unwrap_or(0);
    let v1 = counts.get("v1").copied().unwrap_or(0);
    eprintln!("{n} requests in {:?}: v1 {v1}, v2 {v2}", started.elapsed());
    assert_eq!(v1 + v2, n, "only v1 and v2 answer: {counts:?}");
    assert!(
        bounds.contains(&v2),
        "a 10 % canary got {v2} of {n} requests, outside {bounds:?}: {counts:?}"
    );
}

/// Requests from a few threads in a loop until stopped, every outcome kept.
struct Load {
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(listen: &str, name: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|_| {
                let (stop, outcomes) = (stop.clone(), outcomes.clone());
                let (listen, name) = (listen.to_string(), name.to_string());
                std::thread::spawn(move || {
                    let host = format!("{name}.default.localhost");
                    while !stop.load(Ordering::SeqCst) {
                        let outcome = predict(&listen, &host, &name);
                        outcomes.lock().unwrap().push(outcome);
                    }
                })
            })
            .collect();
        Load {
            stop,
            outcomes,
            threads,
        }
    }

    fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        let outcomes = self.outcomes.lock().unwrap().clone();
        outcomes
    }
}

#[test]
fn a_canary_splits_survives_a_restart_promotes_and_rolls_back() {
    if !engine_and_image_ready() {
        return;
    }
    let s = Setup::new("canary");
    let (name, file, rev1, rev2) = (
        s.name.clone(),
        s.file.clone(),
        s.rev1.clone(),
        s.rev2.clone(),
    );
    let service_host = format!("{name}.default.localhost");
    let prev_host = format!("prev-{name}-predictor.default.localhost");
    let latest_host = format!("latest-{name}-predictor.default.localhost");
    let d = s.daemon();

    // Revision 1, rolled out: all the traffic. The canary below needs it recorded as
    // latestRolledoutRevision first, or (as in KServe) the new revision would take everything.
    std::fs::write(&file, service(&name, "v1", "", "")).unwrap();
    wait_for(&d, &name, "revision 1 ready and rolled out", 60, |v| {
        replicas(v).len() == 1
            && field(v, "latestReadyRevision").as_deref() == Some(&rev1)
            && field(v, "latestRolledoutRevision").as_deref() == Some(&rev1)
    });
    all_answered_by(&d.listen, &service_host, &name, 20, "v1");
    // No canary, no tag routing: neither tag host exists yet.
    no_route(
        &d.listen,
        &prev_host,
        &name,
        r#"no traffic target tagged "prev""#,
    );
    no_route(
        &d.listen,
        &latest_host,
        &name,
        r#"no traffic target tagged "latest""#,
    );

    // 1. A new version with 10 % of the traffic.
    let canary = |percent: &str| format!("    canaryTrafficPercent: {percent}\n");
    std::fs::write(&file, service(&name, "v2", TAG_ROUTING, &canary("10"))).unwrap();
    let v = wait_for(
        &d,
        &name,
        "revision 2 ready with 10 % of the traffic",
        60,
        |v| {
            field(v, "latestReadyRevision").as_deref() == Some(&rev2)
                && traffic(v)
                    == [
                        target(&rev2, 10, true, Some("latest")),
                        target(&rev1, 90, false, Some("prev")),
                    ]
                && replicas(v).len() == 2
        },
    );
    eprintln!(
        "the canary's status:\n{}",
        serde_json::to_string_pretty(&v["status"]).unwrap()
    );
    assert_eq!(field(&v, "latestCreatedRevision").as_deref(), Some(&*rev2));
    assert_eq!(
        field(&v, "latestRolledoutRevision").as_deref(),
        Some(&*rev1)
    );
    let split_replicas = replicas(&v);
    assert_eq!(
        split_replicas.iter().map(|r| &r.0).collect::<Vec<_>>(),
        [&rev1, &rev2],
        "one replica of each revision"
    );
    // Each request goes to v2 with probability 0.1, independently: the count of v2 answers
    // of 2,000 is binomial, mean 200, standard deviation sqrt(2000 * 0.1 * 0.9) = 13.4.
    // ±5 sd (133..=267) fails a correct split about once in 1.7 million runs, and still
    // catches a split off by a third (e.g. 5 % or 15 %) or any pinned or inverted split.
    split_is_ten_percent(&d.listen, &name, 2_000, 133..=267);
    // The tag hosts reach one revision each.
    all_answered_by(&d.listen, &prev_host, &name, 100, "v1");
    all_answered_by(&d.listen, &latest_host, &name, 100, "v2");

    // 2. A daemon restart: the split, the bookkeeping and the containers are kept.
    d.stop();
    let d = s.daemon();
    let v = wait_for(&d, &name, "the split rebuilt after the restart", 30, |v| {
        replicas(v).len() == 2 && !traffic(v).is_empty()
    });
    assert_eq!(
        traffic(&v),
        [
            target(&rev2, 10, true, Some("latest")),
            target(&rev1, 90, false, Some("prev")),
        ],
        "the same split after the restart: {}",
        v["status"]
    );
    assert_eq!(
        field(&v, "latestRolledoutRevision").as_deref(),
        Some(&*rev1)
    );
    assert_eq!(field(&v, "latestReadyRevision").as_deref(), Some(&*rev2));
    assert_eq!(
        replicas(&v),
        split_replicas,
        "the containers are adopted, not recreated"
    );
    // 1,000 requests: mean 100, sd sqrt(1000 * 0.1 * 0.9) = 9.5; ±5 sd is 53..=147.
    split_is_ten_percent(&d.listen, &name, 1_000, 53..=147);
    all_answered_by(&d.listen, &prev_host, &name, 50, "v1");
    all_answered_by(&d.listen, &latest_host, &name, 50, "v2");

    // 3. Promotion and rollback under load: no request may fail.
    let load = Load::start(&d.listen, &name, 4);

    // (a) Promotion: no canaryTrafficPercent, revision 2 takes everything and becomes the
    // rolled-out one; revision 1's replica goes.
    std::fs::write(&file, service(&name, "v2", TAG_ROUTING, "")).unwrap();
    let v = wait_for(
        &d,
        &name,
        "revision 2 promoted, revision 1 stopped",
        90,
        |v| {
            field(v, "latestRolledoutRevision").as_deref() == Some(&rev2)
                && field(v, "previousRolledoutRevision").as_deref() == Some(&rev1)
                && traffic(v)
                    .iter()
                    .filter(|t| t.percent > 0)
                    .map(|t| (t.revision.as_str(), t.percent))
                    .eq([(rev2.as_str(), 100)])
                && !has_replicas(v, &rev1)
        },
    );
    eprintln!(
        "promoted:\n{}",
        serde_json::to_string_pretty(&v["status"]).unwrap()
    );
    // Only canaryTrafficPercent changed: no new revision.
    assert_eq!(field(&v, "latestCreatedRevision").as_deref(), Some(&*rev2));
    all_answered_by(&d.listen, &service_host, &name, 100, "v2");
    // No split, no `prev` target; tag routing keeps the `latest` one.
    no_route(
        &d.listen,
        &prev_host,
        &name,
        r#"no traffic target tagged "prev""#,
    );
    all_answered_by(&d.listen, &latest_host, &name, 20, "v2");

    // (b) Rollback: canaryTrafficPercent 0 pins the traffic to the previous rolled-out
    // revision, which has to start again; requests meanwhile are held, not failed.
    std::fs::write(&file, service(&name, "v2", TAG_ROUTING, &canary("0"))).unwrap();
    let v = wait_for(&d, &name, "rolled back to revision 1", 90, |v| {
        field(v, "latestRolledoutRevision").as_deref() == Some(&rev1)
            && traffic(v)
                == [
                    target(&rev2, 0, true, Some("latest")),
                    target(&rev1, 100, false, Some("prev")),
                ]
            && replicas(v).iter().any(|r| r.0 == rev1)
    });
    eprintln!(
        "rolled back:\n{}",
        serde_json::to_string_pretty(&v["status"]).unwrap()
    );
    assert_eq!(field(&v, "latestCreatedRevision").as_deref(), Some(&*rev2));
    assert_eq!(field(&v, "latestReadyRevision").as_deref(), Some(&*rev2));
    assert_eq!(
        replicas(&v).iter().map(|r| &r.0).collect::<Vec<_>>(),
        [&rev1, &rev2],
        "revision 1 started again; revision 2 (minReplicas 1) kept"
    );
    all_answered_by(&d.listen, &service_host, &name, 100, "v1");
    all_answered_by(&d.listen, &prev_host, &name, 20, "v1");
    all_answered_by(&d.listen, &latest_host, &name, 20, "v2");

    let outcomes = load.finish();
    let counts = versions("the load during promotion and rollback", &outcomes);
    eprintln!("the load during promotion and rollback: {counts:?}");
    assert!(
        counts.contains_key("v2") && counts.contains_key("v1"),
        "the load saw both versions: {counts:?}"
    );

    // Deleting the file removes every container.
    std::fs::remove_file(&file).unwrap();
    wait_until_removed(&[&name]);
}

/// A KFServing v1alpha2 endpoint (`default:` or `canary:`) running the model server as
/// `version`.
fn v1alpha2_endpoint(name: &str, version: &str) -> String {
    format!(
        "    predictor:
      minReplicas: 1
      maxReplicas: 1
      custom:
        container:
          name: kfserving-container
{}",
        model_server_container(name, &format!(", --version={version}"), 10)
    )
}

/// A v1alpha2 file: `default` answering v1 and, when `canary` is `Some(p)`, a `canary`
/// endpoint answering v2 with `canaryTrafficPercent: p`; without one, `default` answers as
/// `default_version`.
fn v1alpha2_service(name: &str, default_version: &str, canary: Option<u32>) -> String {
    let mut text = format!(
        "apiVersion: serving.kubeflow.org/v1alpha2
kind: InferenceService
metadata:
  name: {name}
spec:
  default:
{}",
        v1alpha2_endpoint(name, default_version)
    );
    if let Some(percent) = canary {
        text.push_str(&format!(
            "  canaryTrafficPercent: {percent}\n  canary:\n{}",
            v1alpha2_endpoint(name, "v2")
        ));
    }
    text
}

#[test]
fn a_v1alpha2_default_and_canary_share_the_traffic_and_promote() {
    if !engine_and_image_ready() {
        return;
    }
    let s = Setup::new("alpha");
    let (name, file, rev1, rev2) = (
        s.name.clone(),
        s.file.clone(),
        s.rev1.clone(),
        s.rev2.clone(),
    );
    let d = s.daemon();

    // Both endpoints at once: the default one is the rolled-out revision from the start.
    std::fs::write(&file, v1alpha2_service(&name, "v1", Some(20))).unwrap();
    let v = wait_for(&d, &name, "default and canary ready, 80/20", 60, |v| {
        traffic(v)
            == [
                target(&rev2, 20, true, None),
                target(&rev1, 80, false, Some("prev")),
            ]
            && replicas(v).len() == 2
    });
    assert_eq!(
        field(&v, "latestRolledoutRevision").as_deref(),
        Some(&*rev1)
    );
    // Binomial(1000, 0.2): mean 200, sd 12.6; ±5 sd is 137..=263.
    let host = format!("{name}.default.localhost");
    let counts = versions(&host, &batch(&d.listen, &host, &name, 1_000, 16));
    eprintln!("v1alpha2 80/20 over 1,000 requests: {counts:?}");
    let v2 = counts.get("v2").copied().unwrap_or(0);
    assert!(
        (137..=263).contains(&v2),
        "a 20 % canary got {v2} of 1,000: {counts:?}"
    );
    all_answered_by(
        &d.listen,
        &format!("prev-{name}-predictor.default.localhost"),
        &name,
        20,
        "v1",
    );

    // KFServing's promotion: the canary copied into `default`, `canary` removed. Its
    // revision takes everything; no new revision; the old default's replica goes.
    std::fs::write(&file, v1alpha2_service(&name, "v2", None)).unwrap();
    let v = wait_for(&d, &name, "the canary promoted", 60, |v| {
        traffic(v) == [target(&rev2, 100, true, None)] && !has_replicas(v, &rev1)
    });
    assert_eq!(field(&v, "latestCreatedRevision").as_deref(), Some(&*rev2));
    assert_eq!(
        field(&v, "latestRolledoutRevision").as_deref(),
        Some(&*rev2)
    );
    all_answered_by(&d.listen, &host, &name, 50, "v2");
}
