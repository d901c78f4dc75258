//! `hf://org/model[:revision]` against a stand-in for the Hugging Face hub on loopback: the
//! hub's model API says which files a revision has (with the SHA-256 of large files), and
//! each is fetched from `/{repo}/resolve/{commit}/{file}`, with `HF_TOKEN` as a bearer token.

#[path = "support/files.rs"]
mod files;
#[path = "support/models.rs"]
mod models;

use std::collections::BTreeMap;

use files::Route;
use gantry::storage::credentials::{resolve, Access, Sources};
use gantry::storage::models::ModelState;
use gantry::storage::S3Config;
use models::{open, settle};
use sha2::{Digest, Sha256};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hub's answer for a revision with a small file and a large (LFS) one.
fn model_info(weights: &[u8], lfs_sha: &str) -> String {
    format!(
        r#"{{"id": "acme/tiny", "sha": "{COMMIT}", "siblings": [
            {{"rfilename": "config.json", "size": 17}},
            {{"rfilename": "weights/model.safetensors", "size": {n}, "lfs": {{"sha256": "{lfs_sha}", "size": {n}}}}}
        ]}}"#,
        n = weights.len()
    )
}

fn access(endpoint: &str, token: Option<&str>) -> Access {
    let mut env = BTreeMap::new();
    if let Some(t) = token {
        env.insert("HF_TOKEN".to_string(), t.to_string());
    }
    resolve(&Sources {
        objects: &BTreeMap::new(),
        namespace: "default",
        service_account: None,
        storage_secret: None,
        s3: &S3Config::default(),
        hf_endpoint: endpoint,
        env: &env,
    })
    .unwrap()
}

#[tokio::test]
async fn a_hub_revision_is_fetched_whole_verified_and_with_the_token() {
    let weights = vec![7u8; 200_000];
    let sha = hex(&Sha256::digest(&weights));
    let api = "/api/models/acme/tiny/revision/main";
    let hub = files::start(vec![
        Route::ok(api, "application/json", model_info(&weights, &sha)),
        Route::ok(
            &format!("/acme/tiny/resolve/{COMMIT}/config.json"),
            "application/json",
            r#"{"hidden": 1024}"#.to_string() + " ",
        ),
        Route::ok(
            &format!("/acme/tiny/resolve/{COMMIT}/weights/model.safetensors"),
            "application/octet-stream",
            weights.clone(),
        ),
    ])
    .await;
    let cache = tempfile::tempdir().unwrap();
    let models = open(cache.path());
    let access = access(&hub.base, Some("hf_secret_token"));
    let ModelState::Ready(dir) = settle(&models, "hf://acme/tiny", &access).await else {
        panic!("not ready: {:?}", models.views());
    };
    assert_eq!(
        std::fs::read(dir.join("weights/model.safetensors")).unwrap(),
        weights
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("config.json")).unwrap(),
        "{\"hidden\": 1024} "
    );
    // The token goes to the hub as a bearer token, and nowhere else.
    let seen = hub.requests(api);
    let auth = seen[0]
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.clone());
    assert_eq!(auth.as_deref(), Some("Bearer hf_secret_token"));
    let view = models.views();
    assert_eq!(view[0].version.as_deref(), Some(COMMIT));
    assert!(!format!("{view:?}{access:?}").contains("hf_secret_token"));
}

#[tokio::test]
async fn a_file_that_does_not_match_its_sha256_is_refused() {
    let weights = vec![7u8; 1000];
    let wrong = hex(&Sha256::digest(b"something else"));
    let hub = files::start(vec![
        Route::ok(
            "/api/models/acme/tiny/revision/v2",
            "application/json",
            model_info(&weights, &wrong),
        ),
        Route::ok(
            &format!("/acme/tiny/resolve/{COMMIT}/config.json"),
            "application/json",
            "{\"hidden\": 1024} ",
        ),
        Route::ok(
            &format!("/acme/tiny/resolve/{COMMIT}/weights/model.safetensors"),
            "application/octet-stream",
            weights,
        ),
    ])
    .await;
    let cache = tempfile::tempdir().unwrap();
    let models = open(cache.path());
    match settle(&models, "hf://acme/tiny:v2", &access(&hub.base, None)).await {
        ModelState::Failed(reason) => assert!(
            reason.contains("weights/model.safetensors does not match its checksum"),
            "{reason}"
        ),
        other => panic!("a corrupt file was accepted: {other:?}"),
    }
    // Nothing of it stays in the cache.
    assert_eq!(
        std::fs::read_dir(cache.path().join("entries"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn an_unknown_repository_says_so() {
    let hub = files::start(vec![]).await;
    let cache = tempfile::tempdir().unwrap();
    let models = open(cache.path());
    match settle(&models, "hf://acme/missing", &access(&hub.base, None)).await {
        ModelState::Failed(reason) => assert_eq!(
            reason,
            "hf://acme/missing: no such repository or revision (HTTP 404)"
        ),
        other => panic!("{other:?}"),
    }
}
