//! The traffic split in the data plane, in process (no Docker): requests are shared between a
//! canary and the rolled-out revision as the component's traffic says, tag hosts reach one
//! revision whatever its share, and a 0 % revision gets nothing but its tag host's requests.
//! The split itself (who gets what, the rollout bookkeeping) is `reconcile::traffic`'s and
//! `plan`'s; the daemon end to end is in `tests/canary.rs`.

mod support;

use std::collections::BTreeMap;

use gantry::reconcile::plan::TrafficTarget;
use support::inprocess::{catalog, isvc, split_status, start, InProcess};

const OLD: &str = "split-predictor-00001";
const NEW: &str = "split-predictor-00002";

/// A replica that answers every request with `name`.
async fn replica(name: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(move || async move { name });
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// The router with OLD and NEW each on a replica of its own, split as `traffic` says.
async fn router(traffic: Vec<TrafficTarget>) -> InProcess {
    let yaml = isvc("split", "");
    let (old, new) = (replica(OLD).await, replica(NEW).await);
    let gantry = start(&yaml, "split", old, 100).await;
    gantry.router.update(
        &catalog(&yaml),
        &split_status("split", &[(OLD, old), (NEW, new)], traffic),
    );
    gantry
}

/// Sends `n` requests with `host`, 16 at a time; how many each answer got, and the statuses
/// other than 200.
async fn send(gantry: &InProcess, host: &str, n: usize) -> BTreeMap<String, usize> {
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/models/split:predict", gantry.addr);
    let mut counts = BTreeMap::new();
    let mut done = 0;
    while done < n {
        let batch = (n - done).min(16);
        let answers = futures_util::future::join_all(
            (0..batch).map(|_| client.post(&url).header("host", host).body("{}").send()),
        )
        .await;
        for answer in answers {
            let answer = answer.expect("an answer");
            let status = answer.status();
            let body = answer.text().await.unwrap();
            let key = if status.is_success() {
                body
            } else {
                format!("{status}: {body}")
            };
            *counts.entry(key).or_insert(0) += 1;
        }
        done += batch;
    }
    counts
}

fn count(counts: &BTreeMap<String, usize>, key: &str) -> usize {
    counts.get(key).copied().unwrap_or(0)
}

#[tokio::test]
async fn requests_are_shared_as_the_split_says_and_tags_reach_one_revision() {
    let gantry = router(vec![
        TrafficTarget::new(NEW, 10, true, Some("latest")),
        TrafficTarget::new(OLD, 90, false, Some("prev")),
    ])
    .await;
    let n = 2000;
    let counts = send(&gantry, "split.default.localhost", n).await;
    assert_eq!(count(&counts, NEW) + count(&counts, OLD), n, "{counts:?}");
    // Binomial(2000, 0.1): mean 200, standard deviation 13.4; 5 deviations either side
    // fail a correct router once in 3.5 million runs.
    let canary = count(&counts, NEW);
    assert!(
        (133..=267).contains(&canary),
        "the canary got {canary} of {n} requests, expected 10 % (133..=267): {counts:?}"
    );
    // Tag hosts: one revision each, whatever its share; every host form of them.
    for (host, only) in [
        ("prev-split-predictor.default.localhost", OLD),
        ("latest-split-predictor.default.localhost:8080", NEW),
        ("prev-split-predictor.default.svc.cluster.local", OLD),
        ("latest-split-predictor.default", NEW),
    ] {
        let counts = send(&gantry, host, 100).await;
        assert_eq!(count(&counts, only), 100, "{host}: {counts:?}");
    }
}

#[tokio::test]
async fn a_zero_percent_revision_gets_only_its_tag_hosts_requests() {
    // A pinned canary (canaryTrafficPercent: 0), tag routing on.
    let gantry = router(vec![
        TrafficTarget::new(NEW, 0, true, Some("latest")),
        TrafficTarget::new(OLD, 100, false, Some("prev")),
    ])
    .await;
    let counts = send(&gantry, "split.default.localhost", 500).await;
    assert_eq!(count(&counts, OLD), 500, "{counts:?}");
    let counts = send(&gantry, "latest-split-predictor.default.localhost", 50).await;
    assert_eq!(count(&counts, NEW), 50, "{counts:?}");
}

#[tokio::test]
async fn a_tag_the_component_does_not_have_is_a_404_that_says_why() {
    // Tag routing off: only `prev` has a host.
    let gantry = router(vec![
        TrafficTarget::new(NEW, 30, true, None),
        TrafficTarget::new(OLD, 70, false, Some("prev")),
    ])
    .await;
    let counts = send(&gantry, "latest-split-predictor.default.localhost", 1).await;
    let (answer, _) = counts.iter().next().unwrap();
    assert!(answer.starts_with("404"), "{answer}");
    assert!(
        answer.contains("has no traffic target tagged \\\"latest\\\"")
            && answer.contains("serving.kserve.io/enable-tag-routing"),
        "{answer}"
    );
    assert!(
        answer.contains("prev-split-predictor.default.localhost"),
        "the 404 lists the tag hosts there are: {answer}"
    );
    // Promoted: no `prev` any more.
    gantry.router.update(
        &catalog(&isvc("split", "")),
        &split_status(
            "split",
            &[(OLD, 1), (NEW, replica(NEW).await)],
            vec![TrafficTarget::new(NEW, 100, true, None)],
        ),
    );
    let counts = send(&gantry, "prev-split-predictor.default.localhost", 1).await;
    let (answer, _) = counts.iter().next().unwrap();
    assert!(
        answer.starts_with("404") && answer.contains("tagged \\\"prev\\\""),
        "{answer}"
    );
    let counts = send(&gantry, "split.default.localhost", 100).await;
    assert_eq!(count(&counts, NEW), 100, "{counts:?}");
}
