//! `gs://bucket/prefix` against a stand-in for Google Cloud Storage's XML API on loopback
//! (no GCS server runs here: the PyPI emulator speaks only the JSON API): a bucket listing and
//! objects, reached through `STORAGE_EMULATOR_HOST` as Google's own clients reach an emulator.
//! What it proves is gantry's side: the address, unsigned requests, prefix and single-object
//! rules, MD5 checks, and KServe's text for a missing model.

#[path = "support/files.rs"]
mod files;
#[path = "support/models.rs"]
mod models;

use std::collections::BTreeMap;

use files::Route;
use gantry::storage::credentials::{resolve, Access, Sources};
use gantry::storage::models::ModelState;
use gantry::storage::S3Config;
use md5::{Digest, Md5};
use models::{open, settle};

const MODIFIED: &str = "Sat, 28 Nov 2026 12:00:00 GMT";

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The XML API's answer to `GET /<bucket>?list-type=2&prefix=...`.
fn listing(objects: &[(&str, &[u8])]) -> String {
    let contents: String = objects
        .iter()
        .map(|(key, body)| {
            format!(
                "<Contents><Key>{key}</Key><LastModified>2026-11-28T12:00:00.000Z</LastModified>\
                 <ETag>\"{}\"</ETag><Size>{}</Size></Contents>",
                md5_hex(body),
                body.len()
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult \
         xmlns=\"http://doc.s3.amazonaws.com/2006-03-01\"><Name>models</Name>\
         <IsTruncated>false</IsTruncated>{contents}</ListBucketResult>"
    )
}

/// An object at the path its key takes in a request (object_store escapes `/` and `.` in it,
/// as GCS accepts).
fn object(key: &str, body: &'static [u8]) -> Route {
    let escaped = key.replace('.', "%2E").replace('/', "%2F");
    Route::ok(
        &format!("/models/{escaped}"),
        "application/octet-stream",
        body,
    )
    .etag(&format!("\"{}\"", md5_hex(body)))
    .last_modified(MODIFIED)
}

fn access(host: &str) -> Access {
    let env = BTreeMap::from([("STORAGE_EMULATOR_HOST".to_string(), host.to_string())]);
    resolve(&Sources {
        objects: &BTreeMap::new(),
        namespace: "default",
        service_account: None,
        storage_secret: None,
        s3: &S3Config::default(),
        hf_endpoint: "",
        env: &env,
    })
    .unwrap()
}

#[tokio::test]
async fn a_gcs_prefix_a_single_object_and_a_missing_one() {
    const MODEL: &[u8] = b"joblib bytes";
    const LABELS: &[u8] = b"setosa";
    let gcs = files::start(vec![
        Route::ok(
            "/models",
            "application/xml",
            listing(&[
                ("iris/model.joblib", MODEL),
                ("iris/meta/labels.txt", LABELS),
            ]),
        ),
        object("iris/model.joblib", MODEL),
        object("iris/meta/labels.txt", LABELS),
    ])
    .await;
    let cache = tempfile::tempdir().unwrap();
    let models = open(cache.path());
    let access = access(&gcs.base);

    let ModelState::Ready(dir) = settle(&models, "gs://models/iris", &access).await else {
        panic!("{:?} {:?}", models.views(), gcs.all_requests());
    };
    assert_eq!(std::fs::read(dir.join("model.joblib")).unwrap(), MODEL);
    assert_eq!(std::fs::read(dir.join("meta/labels.txt")).unwrap(), LABELS);
    // Unsigned: an emulator takes no credentials.
    let listed = gcs.requests("/models");
    assert!(listed
        .iter()
        .all(|r| !r.headers.iter().any(|(k, _)| k == "authorization")));
    assert!(listed[0]
        .query
        .as_deref()
        .is_some_and(|q| q.contains("list-type=2") && q.contains("prefix=iris%2F")));

    let ModelState::Ready(one) = settle(&models, "gs://models/iris/model.joblib", &access).await
    else {
        panic!("{:?}", models.views());
    };
    assert_eq!(std::fs::read(one.join("model.joblib")).unwrap(), MODEL);

    // A listing that names nothing under the prefix.
    gcs.set(Route::ok("/models", "application/xml", listing(&[])));
    match settle(&models, "gs://models/nothing-here", &access).await {
        ModelState::Failed(reason) => assert_eq!(
            reason,
            "Failed to fetch model. No model found in gs://models/nothing-here."
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_gcs_object_that_does_not_match_its_md5_is_refused() {
    let gcs = files::start(vec![
        Route::ok(
            "/models",
            "application/xml",
            listing(&[("bad/model.bin", b"the bytes the listing promised")]),
        ),
        object("bad/model.bin", b"other bytes, same length......"),
    ])
    .await;
    let cache = tempfile::tempdir().unwrap();
    let models = open(cache.path());
    match settle(&models, "gs://models/bad", &access(&gcs.base)).await {
        ModelState::Failed(reason) => {
            assert!(
                reason.contains("model.bin does not match its checksum"),
                "{reason}"
            )
        }
        other => panic!("a corrupt object was accepted: {other:?}"),
    }
}
