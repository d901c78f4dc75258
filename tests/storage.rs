//! Models fetched for real: `gantry::storage::models::Models` against moto (a real S3 server
//! on loopback) and the loopback file server, as a user sees them: the model folder's files
//! and bytes, KServe's error texts, what the servers were asked, and what the cache holds.
//!
//! moto is needed for the S3 tests (`.ci/run` installs it); with `CI=true` a missing moto
//! fails them, elsewhere they say loudly that they did not run.

#[path = "support/files.rs"]
mod files;
#[path = "support/s3.rs"]
mod s3;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gantry::spec::catalog::{next_catalog, parse_file, Catalog, LoadOptions};
use gantry::storage::cache::{Cache, EntryMeta};
use gantry::storage::credentials::{resolve, Access, Sources};
use gantry::storage::models::{ModelState, ModelView, Models};
use gantry::storage::uri::{parse, ModelSource};
use gantry::storage::{ModelSettings, S3Config};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, WriteMultipart};

use files::Route;

/// The longest any model here may take to become ready or fail.
const SETTLE_WITHIN: Duration = Duration::from_secs(60);
const OCTET: &str = "application/octet-stream";
const NAMESPACE: &str = "default";

// --- helpers ---------------------------------------------------------------------------------

/// A temporary folder holding the cache (`<root>/cache`) and nothing else, so that a write
/// outside the cache shows up as a stray name in the root.
struct Scene {
    root: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        Scene {
            root: tempfile::tempdir().unwrap(),
        }
    }

    fn cache_dir(&self) -> PathBuf {
        self.root.path().join("cache")
    }

    /// A `Models` on this scene's cache: each call is a daemon (re)start.
    fn open(&self) -> Arc<Models> {
        Models::open(ModelSettings {
            cache_dir: self.cache_dir(),
            cache_limit: 0,
            parallel: 4,
            max_unpacked: 1 << 30,
            verify_checksums: true,
        })
        .unwrap()
    }

    /// Names in the cache's `tmp/` (downloads in progress or left over).
    fn temp_items(&self) -> Vec<String> {
        names(&self.cache_dir().join("tmp"))
    }

    /// Names in the cache's `entries/` (folders and their `.json`).
    fn entry_items(&self) -> Vec<String> {
        names(&self.cache_dir().join("entries"))
    }

    /// The whole entries, as the cache lists them (opening it empties `tmp/`: call once
    /// nothing is downloading).
    fn listed(&self) -> Vec<EntryMeta> {
        let mut entries = Cache::open(&self.cache_dir()).unwrap().entries();
        entries.sort_by_key(|e| e.version.clone());
        entries
    }

    /// The cache root holds `entries/` and `tmp/` only, and the scene's root the cache only.
    fn assert_tidy(&self) {
        assert_eq!(names(self.root.path()), ["cache"], "outside the cache");
        assert_eq!(names(&self.cache_dir()), ["entries", "tmp"], "in the cache");
        assert_eq!(self.temp_items(), Vec::<String>::new(), "left in tmp/");
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// Every file under `dir` by its relative path, with its bytes; panics on anything that is
/// neither a file nor a folder.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for item in std::fs::read_dir(&d).unwrap() {
            let path = item.unwrap().path();
            let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
            if kind.is_dir() {
                pending.push(path);
            } else {
                assert!(kind.is_file(), "{} is not a plain file", path.display());
                let relative = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn expect(files: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
    files
        .iter()
        .map(|(p, b)| (p.to_string(), b.to_vec()))
        .collect()
}

/// Asks for `source` until it is ready or failed (waiting on `Models::changes`, with a
/// deadline).
async fn settle(models: &Arc<Models>, source: &ModelSource, access: &Access) -> ModelState {
    let mut changes = models.changes();
    let deadline = tokio::time::Instant::now() + SETTLE_WITHIN;
    loop {
        match models.request(source, access) {
            ModelState::Fetching(_) => {}
            done => return done,
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(changed) => changed.expect("the models service is alive"),
            Err(_) => panic!(
                "{} neither ready nor failed within {SETTLE_WITHIN:?}: {:?}",
                source.display(),
                models.view_of(source, access)
            ),
        }
    }
}

fn ready(state: ModelState) -> PathBuf {
    match state {
        ModelState::Ready(dir) => dir,
        other => panic!("expected Ready, got {other:?}"),
    }
}

fn failed(state: ModelState) -> String {
    match state {
        ModelState::Failed(reason) => reason,
        other => panic!("expected Failed, got {other:?}"),
    }
}

fn view(models: &Models, source: &ModelSource) -> ModelView {
    models
        .views()
        .into_iter()
        .find(|v| v.source == source.display())
        .unwrap_or_else(|| panic!("no view of {}", source.display()))
}

fn uri(text: &str) -> ModelSource {
    parse(text, Path::new("/models")).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// YAML documents as a folder's catalog.
fn catalog(yaml: &str) -> Catalog {
    let opts = LoadOptions::default();
    let parsed = vec![Arc::new(parse_file("/models/access.yaml", yaml, &opts))];
    let catalog = next_catalog(&Catalog::default(), &parsed, &opts);
    assert!(
        catalog.all_diagnostics().is_empty(),
        "{:?}",
        catalog.all_diagnostics()
    );
    catalog
}

/// Access for a component of `catalog`, with an empty environment (the test machine's
/// `AWS_*` must not count).
fn access_in(
    catalog: &Catalog,
    service_account: Option<&str>,
    storage_secret: Option<&str>,
    s3: &S3Config,
) -> Access {
    let env = BTreeMap::new();
    resolve(&Sources {
        objects: &catalog.objects,
        namespace: NAMESPACE,
        service_account,
        storage_secret,
        s3,
        hf_endpoint: "https://huggingface.co",
        env: &env,
    })
    .unwrap()
}

/// Access with no Secrets: the daemon config's `storage.s3` only.
fn access_from_config(s3: &S3Config) -> Access {
    access_in(&Catalog::default(), None, None, s3)
}

fn plain_access() -> Access {
    access_from_config(&S3Config::default())
}

/// `storage.s3` for a moto: its endpoint, the given keys.
fn moto_config(moto: &s3::Moto, key_id: &str, secret: &str) -> S3Config {
    S3Config {
        endpoint: Some(moto.endpoint.clone()),
        region: Some(s3::REGION.into()),
        access_key_id: Some(key_id.into()),
        secret_access_key: Some(secret.into()),
        ..S3Config::default()
    }
}

/// Bytes that differ from file to file and position to position (a misplaced range or a
/// swapped file shows).
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append_data(&mut header, path, *data).unwrap();
    }
    gzip(&builder.into_inner().unwrap())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (path, data) in entries {
        let options = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
        writer.start_file(*path, options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// One tar block written by hand: `tar::Header::set_path` refuses the names a malicious
/// archive holds.
fn raw_tar_entry(name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    let old = header.as_old_mut();
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(data);
    bytes.resize(bytes.len().div_ceil(512) * 512, 0);
    bytes
}

fn raw_tar_gz(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = entries.concat();
    bytes.extend_from_slice(&[0; 1024]);
    gzip(&bytes)
}

/// Text that must never be shown: the model's state, views and access as `Debug` prints them.
fn shown(models: &Models, source: &ModelSource, state: &ModelState, access: &Access) -> String {
    format!(
        "{state:?} {:?} {:?} {access:?} {:?} {source:?}",
        models.view_of(source, access),
        models.views(),
        serde_json::to_string(&models.views()).unwrap()
    )
}

// --- S3 --------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_prefixes_objects_archives_and_missing_models() {
    let Some(mut moto) = s3::start().await else {
        return;
    };
    moto.create_bucket("models").await;

    // A prefix of 30 objects in nested folders, about 2 MiB together.
    let mut wanted = BTreeMap::new();
    for i in 0..30u64 {
        let path = match i % 3 {
            0 => format!("shard-{i:02}.bin"),
            1 => format!("layers/{}/weights-{i:02}.bin", i % 4),
            _ => format!("tokenizer/deep/er/still/file-{i:02}.json"),
        };
        let len = 1_000 + (i as usize * 4_567) % 140_000;
        wanted.insert(path, pattern(i, len));
    }
    let keys: Vec<(String, Vec<u8>)> = wanted
        .iter()
        .map(|(path, bytes)| (format!("llama/v1/{path}"), bytes.clone()))
        .collect();
    let puts = keys
        .iter()
        .map(|(key, bytes)| moto.put("models", key, bytes.clone()));
    futures_util::future::join_all(puts).await;
    // Neighbours that share the prefix's text but are not under it.
    moto.put("models", "llama/v1-old/stale.bin", "stale").await;
    moto.put("models", "llama/v10/other.bin", "other").await;
    // One object, and an archive.
    moto.put("models", "sklearn/iris/model.joblib", pattern(99, 4_096))
        .await;
    moto.put("models", "sklearn/iris/extra.txt", "not asked for")
        .await;
    let archive = tar_gz(&[
        ("model/config.json", b"{\"arch\": \"resnet\"}"),
        ("model/1/weights.bin", &pattern(7, 200_000)),
    ]);
    moto.put("models", "archives/resnet.tar.gz", archive).await;

    let scene = Scene::new();
    let models = scene.open();
    let access = access_from_config(&moto_config(&moto, s3::ANY_KEY_ID, s3::ANY_SECRET));
    let total: usize = wanted.values().map(Vec::len).sum();

    // The prefix: every object, with its bytes and its path relative to the prefix.
    let prefix = uri("s3://models/llama/v1/");
    let started = Instant::now();
    let dir = ready(settle(&models, &prefix, &access).await);
    let took = started.elapsed();
    assert_eq!(contents(&dir), wanted);
    assert!(
        dir.starts_with(scene.cache_dir().join("entries")),
        "{dir:?}"
    );
    let seen = view(&models, &prefix);
    assert_eq!(seen.state, "Loaded");
    assert_eq!(seen.source, "s3://models/llama/v1/");
    assert_eq!(seen.downloaded, total as u64);
    assert!(seen.version.is_some());
    assert_eq!(models.downloaded_bytes(), total as u64);
    eprintln!("30 objects, {total} bytes, from moto in {took:?}");

    // The same prefix written without its trailing slash is a different source, with the
    // same files.
    let no_slash = uri("s3://models/llama/v1");
    let dir = ready(settle(&models, &no_slash, &access).await);
    assert_eq!(contents(&dir), wanted);

    // One object: a folder holding it, under its own name.
    let single = uri("s3://models/sklearn/iris/model.joblib");
    let dir = ready(settle(&models, &single, &access).await);
    assert_eq!(
        contents(&dir),
        expect(&[("model.joblib", &pattern(99, 4_096))])
    );

    // An archive object: unpacked, the archive itself not kept.
    let tgz = uri("s3://models/archives/resnet.tar.gz");
    let dir = ready(settle(&models, &tgz, &access).await);
    assert_eq!(
        contents(&dir),
        expect(&[
            ("model/config.json", b"{\"arch\": \"resnet\"}"),
            ("model/1/weights.bin", &pattern(7, 200_000)),
        ])
    );

    // A prefix with nothing under it: KServe's text, FailedToLoad, no entry.
    let entries_before = scene.entry_items();
    for text in [
        "s3://models/nothing/here/",
        "s3://models/llama/v",
        "s3://no-such-bucket/model",
    ] {
        let missing = uri(text);
        let reason = failed(settle(&models, &missing, &access).await);
        assert_eq!(
            reason,
            format!("Failed to fetch model. No model found in {text}.")
        );
        let seen = view(&models, &missing);
        assert_eq!(seen.state, "FailedToLoad");
        assert_eq!(seen.message.as_deref(), Some(reason.as_str()));
        assert_eq!(seen.downloaded, 0);
    }
    assert_eq!(scene.entry_items(), entries_before);
    scene.assert_tidy();

    // A daemon restart: listed again, nothing downloaded, the same folders.
    let restarted = scene.open();
    for source in [&prefix, &no_slash, &single, &tgz] {
        let dir = ready(settle(&restarted, source, &access).await);
        assert_eq!(models.request(source, &access), ModelState::Ready(dir));
        assert_eq!(view(&restarted, source).downloaded, 0);
    }
    assert_eq!(restarted.downloaded_bytes(), 0);
    // Four entries: the prefix with and without its slash are separate sources.
    assert_eq!(scene.listed().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_object_over_64_mib_arrives_whole() {
    let Some(mut moto) = s3::start().await else {
        return;
    };
    moto.create_bucket("big").await;
    // Uploaded in parts, as large models are: its ETag is then no MD5, and the download goes
    // in parallel ranges. 70 blocks of 1 MiB, each stamped with its number: a misplaced
    // range shows.
    let block = pattern(70, 1 << 20);
    let mut bytes = Vec::with_capacity(70 << 20);
    for i in 0..70u64 {
        let at = bytes.len();
        bytes.extend_from_slice(&block);
        bytes[at..at + 8].copy_from_slice(&i.to_le_bytes());
    }
    let started = Instant::now();
    let store = moto.own_store("big");
    let upload = store
        .put_multipart(&ObjectPath::from("llm/model.safetensors"))
        .await
        .unwrap();
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 16 << 20);
    writer.write(&bytes);
    writer.finish().await.unwrap();
    let uploaded = started.elapsed();
    let etag = store
        .head(&ObjectPath::from("llm/model.safetensors"))
        .await
        .unwrap()
        .e_tag
        .unwrap_or_default();
    assert!(etag.contains('-'), "a multipart ETag, not an MD5: {etag}");

    let scene = Scene::new();
    let models = scene.open();
    let access = access_from_config(&moto_config(&moto, s3::ANY_KEY_ID, s3::ANY_SECRET));
    let source = uri("s3://big/llm/model.safetensors");
    let started = Instant::now();
    let dir = ready(settle(&models, &source, &access).await);
    let took = started.elapsed();
    let got = std::fs::read(dir.join("model.safetensors")).unwrap();
    assert_eq!(names(&dir), ["model.safetensors"]);
    assert!(got == bytes, "70 MiB came back different");
    assert_eq!(view(&models, &source).downloaded, 70 << 20);
    eprintln!("70 MiB: uploaded in {uploaded:?}, fetched in {took:?}");

    // Uploaded in one part: its ETag is its MD5. It still comes in ranges, and the MD5 is
    // checked on the whole file.
    moto.put("big", "one/model.bin", bytes.clone()).await;
    let one = uri("s3://big/one/model.bin");
    let dir = ready(settle(&models, &one, &access).await);
    assert!(std::fs::read(dir.join("model.bin")).unwrap() == bytes);
    scene.assert_tidy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_credentials_wrong_then_from_secrets() {
    let Some((mut moto, key_id, secret)) = s3::start_with_auth().await else {
        return;
    };
    // A whole bucket, listed without a prefix: moto's credential checks refuse listings
    // with a `prefix=` query whatever the key (getmoto/moto#5948), so prefixes are tested
    // on a moto that does not check.
    moto.create_bucket("private").await;
    moto.put("private", "model.bin", pattern(1, 10_000)).await;
    moto.put("private", "conf/settings.json", "{}").await;
    let wanted = expect(&[
        ("model.bin", &pattern(1, 10_000)),
        ("conf/settings.json", b"{}"),
    ]);
    let scene = Scene::new();
    let models = scene.open();
    let bucket = uri("s3://private");
    let object = uri("s3://private/model.bin");

    // A wrong secret, and a key id moto never issued: access denied, for the listing and
    // for one object, and no secret shown anywhere.
    let wrong_secret = "wrong-secret-HUNTER2-do-not-show";
    for (id, wrong) in [
        (key_id.as_str(), wrong_secret),
        ("AKIAIOSFODNN7EXAMPLE", secret.as_str()),
    ] {
        let access = access_from_config(&moto_config(&moto, id, wrong));
        for source in [&bucket, &object] {
            let state = settle(&models, source, &access).await;
            let reason = failed(state.clone());
            assert_eq!(
                reason,
                format!(
                    "{}: access denied: check the storage credentials",
                    source.display()
                )
            );
            assert_eq!(view(&models, source).state, "FailedToLoad");
            let text = shown(&models, source, &state, &access);
            for hidden in [wrong_secret, secret.as_str(), key_id.as_str()] {
                assert!(!text.contains(hidden), "{hidden} shown in {text}");
            }
        }
    }
    assert_eq!(scene.entry_items(), Vec::<String>::new());

    // The right keys in a Secret that the service account lists, with KServe's S3
    // annotations: tried at once (new credentials skip the backoff), and ready.
    let yaml = format!(
        "apiVersion: v1
kind: Secret
metadata:
  name: s3creds
  annotations:
    serving.kserve.io/s3-endpoint: 127.0.0.1:{port}
    serving.kserve.io/s3-usehttps: \"0\"
type: Opaque
stringData:
  AWS_ACCESS_KEY_ID: {key_id}
  AWS_SECRET_ACCESS_KEY: {secret}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: models-reader
secrets:
- name: s3creds
---
apiVersion: v1
kind: Secret
metadata:
  name: other-creds
  annotations:
    serving.kserve.io/s3-endpoint: 127.0.0.1:{port}
    serving.kserve.io/s3-usehttps: \"0\"
data:
  AWS_ACCESS_KEY_ID: {id64}
  AWS_SECRET_ACCESS_KEY: {secret64}
",
        port = moto.port,
        id64 = base64(&key_id),
        secret64 = base64(&secret),
    );
    let catalog = catalog(&yaml);
    // The daemon config names no endpoint and wrong keys: the Secret's win.
    let config = S3Config {
        access_key_id: Some("AKIAIOSFODNN7EXAMPLE".into()),
        secret_access_key: Some(wrong_secret.into()),
        ..S3Config::default()
    };
    let access = access_in(&catalog, Some("models-reader"), None, &config);
    assert_eq!(
        access.s3.endpoint.as_deref(),
        Some(format!("http://127.0.0.1:{}", moto.port).as_str())
    );
    let state = settle(&models, &bucket, &access).await;
    let dir = ready(state.clone());
    assert_eq!(contents(&dir), wanted);
    let seen = view(&models, &bucket);
    assert_eq!((seen.state.as_str(), seen.message), ("Loaded", None));
    let text = shown(&models, &bucket, &state, &access);
    assert!(!text.contains(secret.as_str()), "{text}");
    let dir = ready(settle(&models, &object, &access).await);
    assert_eq!(
        contents(&dir),
        expect(&[("model.bin", &pattern(1, 10_000))])
    );

    // `serving.kserve.io/storageSecretName` (base64 `data` this time), on a daemon that
    // starts over on an empty cache.
    let scene = Scene::new();
    let models = scene.open();
    let access = access_in(&catalog, None, Some("other-creds"), &config);
    let dir = ready(settle(&models, &bucket, &access).await);
    assert_eq!(contents(&dir), wanted);
    // Without it, the default service account (absent here) gives no Secret: the config's
    // wrong keys, refused.
    let config = moto_config(&moto, "AKIAIOSFODNN7EXAMPLE", wrong_secret);
    let default_sa = access_in(&catalog, None, None, &config);
    let reason = failed(settle(&models, &object, &default_sa).await);
    assert!(reason.contains("access denied"), "{reason}");
}

fn base64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

// --- HTTP ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_files_content_types_redirects_and_404() {
    let body = pattern(3, 300_000);
    let files = files::start(vec![
        Route::ok("/models/model.joblib", OCTET, body.clone()).etag("\"j1\""),
        Route::ok(
            "/models/page.bin",
            "text/html; charset=utf-8",
            "<html>login</html>",
        ),
        Route::redirect("/moved/model.pt", 302, "/blobs/sha256-abc"),
        Route::ok("/blobs/sha256-abc", OCTET, body.clone()),
    ])
    .await;
    let scene = Scene::new();
    let models = scene.open();
    let access = plain_access();

    // application/octet-stream: the file, under the URL's last segment.
    let joblib = uri(&files.url("/models/model.joblib"));
    let dir = ready(settle(&models, &joblib, &access).await);
    assert_eq!(contents(&dir), expect(&[("model.joblib", &body)]));
    assert_eq!(view(&models, &joblib).version.as_deref(), Some("\"j1\""));

    // Another Content-Type: KServe's text.
    let page = uri(&files.url("/models/page.bin"));
    let reason = failed(settle(&models, &page, &access).await);
    assert_eq!(
        reason,
        format!(
            "URI: {} did not respond with 'Content-Type': 'application/octet-stream'",
            files.url("/models/page.bin")
        )
    );

    // A redirect is followed; the file keeps the name the URI gives it.
    let moved = uri(&files.url("/moved/model.pt"));
    let dir = ready(settle(&models, &moved, &access).await);
    assert_eq!(contents(&dir), expect(&[("model.pt", &body)]));
    assert_eq!(files.hits("/moved/model.pt"), 1);
    assert_eq!(files.hits("/blobs/sha256-abc"), 1);

    // 404: KServe's text.
    let gone = uri(&files.url("/models/gone.bin"));
    let reason = failed(settle(&models, &gone, &access).await);
    assert_eq!(
        reason,
        format!(
            "URI: {} returned a 404 response code.",
            files.url("/models/gone.bin")
        )
    );
    assert_eq!(view(&models, &gone).state, "FailedToLoad");

    // A query string is shown as `?…`, never as written (it may be a signature).
    let signed = uri(&format!("{}?sig=HUNTER2", files.url("/models/gone.bin")));
    let state = settle(&models, &signed, &access).await;
    let reason = failed(state.clone());
    assert_eq!(
        reason,
        format!(
            "URI: {}?… returned a 404 response code.",
            files.url("/models/gone.bin")
        )
    );
    let text = shown(&models, &signed, &state, &access);
    assert!(!text.contains("HUNTER2"), "{text}");

    assert_eq!(scene.listed().len(), 2);
    scene.assert_tidy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_archives_are_unpacked() {
    let weights = pattern(5, 500_000);
    let inside: &[(&str, &[u8])] = &[
        ("config.json", b"{\"layers\": 2}"),
        ("1/weights.bin", &weights),
        ("tokenizer/vocab.txt", b"a\nb\nc\n"),
    ];
    let files = files::start(vec![
        Route::ok("/a/model.tar.gz", "application/gzip", tar_gz(inside)),
        Route::ok("/a/model.zip", "application/zip", zip(inside)),
        Route::ok("/a/wrong.zip", OCTET, zip(inside)),
        Route::ok("/a/broken.tar.gz", "application/gzip", "not a gzip at all"),
    ])
    .await;
    let scene = Scene::new();
    let models = scene.open();
    let access = plain_access();

    for path in ["/a/model.tar.gz", "/a/model.zip"] {
        let source = uri(&files.url(path));
        let dir = ready(settle(&models, &source, &access).await);
        assert_eq!(contents(&dir), expect(inside), "{path}");
    }

    let wrong = uri(&files.url("/a/wrong.zip"));
    let reason = failed(settle(&models, &wrong, &access).await);
    assert_eq!(
        reason,
        format!(
            "URI: {} did not respond with any of the following 'Content-Type': \
             application/zip, application/x-zip-compressed, application/zip-compressed",
            files.url("/a/wrong.zip")
        )
    );

    let broken = uri(&files.url("/a/broken.tar.gz"));
    let reason = failed(settle(&models, &broken, &access).await);
    assert_eq!(
        reason,
        "Failed to unpack archive file. The file format is not valid."
    );

    assert_eq!(scene.listed().len(), 2);
    scene.assert_tidy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_malicious_archives_are_refused_and_write_nothing_outside() {
    let scene = Scene::new();
    let root = scene.root.path().to_path_buf();
    let parent = root.parent().unwrap().to_path_buf();
    // A name no other test uses, for what must never be written.
    let unique = format!(
        "gantry-evil-{}",
        root.file_name()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches('.')
    );
    let evil = |name: &str| raw_tar_entry(name, tar::EntryType::Regular, "", b"pwned");
    let ok = || raw_tar_entry("ok.txt", tar::EntryType::Regular, "", b"fine");
    // The model is unpacked in <root>/cache/tmp/<id>-<n>/model: five `..` reach the parent.
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "/evil/dotdot.tar.gz",
            raw_tar_gz(&[ok(), evil(&format!("../{unique}"))]),
            format!("archive entry `../{unique}` has a `..` component"),
        ),
        (
            "/evil/deep.tar.gz",
            raw_tar_gz(&[ok(), evil(&format!("a/../../../../../../{unique}"))]),
            format!("archive entry `a/../../../../../../{unique}` has a `..` component"),
        ),
        (
            "/evil/absolute.tar.gz",
            raw_tar_gz(&[ok(), evil(&format!("{}/{unique}", parent.display()))]),
            format!(
                "archive entry `{}/{unique}` is an absolute path",
                parent.display()
            ),
        ),
        (
            "/evil/symlink.tar.gz",
            raw_tar_gz(&[
                ok(),
                raw_tar_entry("etc", tar::EntryType::Symlink, "/etc", b""),
                evil(&format!("etc/{unique}")),
            ]),
            "archive entry `etc` is a symbolic link: links are not allowed in model archives"
                .to_string(),
        ),
        (
            "/evil/hardlink.tar.gz",
            raw_tar_gz(&[
                ok(),
                raw_tar_entry("passwd", tar::EntryType::Link, "/etc/passwd", b""),
            ]),
            "archive entry `passwd` is a hard link: links are not allowed in model archives"
                .to_string(),
        ),
    ];
    let files = files::start(
        cases
            .iter()
            .map(|(path, bytes, _)| Route::ok(path, "application/gzip", bytes.clone()))
            .collect(),
    )
    .await;
    let models = scene.open();
    let access = plain_access();
    for (path, _, why) in &cases {
        let source = uri(&files.url(path));
        let reason = failed(settle(&models, &source, &access).await);
        assert!(reason.contains(why.as_str()), "{path}: {reason}");
        assert_eq!(view(&models, &source).state, "FailedToLoad");
    }

    for place in [&parent, &root, Path::new("/etc"), &scene.cache_dir()] {
        let stray = place.join(&unique);
        let found = stray.exists() || stray.symlink_metadata().is_ok();
        if found && place == Path::new("/etc") {
            let _ = std::fs::remove_file(&stray);
        }
        assert!(!found, "{} was written", stray.display());
    }
    scene.assert_tidy();
    assert_eq!(scene.entry_items(), Vec::<String>::new(), "a cache entry");
}

// --- the cache -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_serves_again_and_after_a_restart_without_downloading() {
    let body = pattern(11, 1 << 20);
    let files = files::start(vec![
        Route::ok("/m/model.bin", OCTET, body.clone()).etag("\"e1\""),
        Route::ok("/m/dated.bin", OCTET, body.clone())
            .last_modified("Wed, 21 Oct 2015 07:28:00 GMT"),
        Route::ok("/m/plain.bin", OCTET, body.clone()),
    ])
    .await;
    let scene = Scene::new();
    let access = plain_access();
    let models = scene.open();
    let mut dirs = Vec::new();
    let paths = ["/m/model.bin", "/m/dated.bin", "/m/plain.bin"];

    for path in paths {
        let source = uri(&files.url(path));
        let dir = ready(settle(&models, &source, &access).await);
        assert_eq!(names(&dir).len(), 1);
        assert_eq!(contents(&dir).into_values().next().unwrap(), body);
        assert_eq!((files.hits(path), files.bytes_sent(path)), (1, body.len()));
        assert_eq!(view(&models, &source).downloaded, body.len() as u64);

        // Asked again: ready at once, nothing asked of the server.
        assert_eq!(
            models.request(&source, &access),
            ModelState::Ready(dir.clone())
        );
        assert_eq!((files.hits(path), files.bytes_sent(path)), (1, body.len()));
        dirs.push(dir);
    }
    assert_eq!(models.downloaded_bytes(), 3 * body.len() as u64);
    drop(models);

    // A daemon restart: the same folders, not one byte sent. The server is asked only
    // whether its copy is still current (ETag, Last-Modified); a URL with neither is not
    // asked at all.
    let restarted = scene.open();
    for (path, dir) in paths.into_iter().zip(&dirs) {
        let source = uri(&files.url(path));
        assert_eq!(ready(settle(&restarted, &source, &access).await), *dir);
        assert_eq!(contents(dir).into_values().next().unwrap(), body);
        assert_eq!(files.bytes_sent(path), body.len(), "{path}: sent again");
        let seen = view(&restarted, &source);
        assert_eq!((seen.state.as_str(), seen.downloaded), ("Loaded", 0));
        let requests = files.requests(path);
        if path == "/m/plain.bin" {
            assert_eq!(requests.len(), 1, "{path}");
        } else {
            assert_eq!(requests.len(), 2, "{path}");
            assert_eq!(requests[1].status, 304, "{path}: {:?}", requests[1]);
        }
    }
    assert_eq!(restarted.downloaded_bytes(), 0);
    assert_eq!(scene.listed().len(), 3);
    scene.assert_tidy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_one_download() {
    let body = pattern(12, 1 << 20);
    let files = files::start(vec![Route::ok("/c/model.bin", OCTET, body.clone())
        .etag("\"c1\"")
        .slow(64 << 10, Duration::from_millis(20))])
    .await;
    let scene = Scene::new();
    let models = scene.open();
    let access = plain_access();
    let source = uri(&files.url("/c/model.bin"));

    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let asks: Vec<_> = (0..8)
        .map(|_| {
            let (models, source, access, barrier) = (
                models.clone(),
                source.clone(),
                access.clone(),
                barrier.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                let first = models.request(&source, &access);
                let last = settle(&models, &source, &access).await;
                (first, last)
            })
        })
        .collect();
    let mut dirs = BTreeSet::new();
    for ask in asks {
        let (first, last) = ask.await.unwrap();
        assert!(
            matches!(first, ModelState::Fetching(_)),
            "asked while it downloads: {first:?}"
        );
        dirs.insert(ready(last));
    }
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let dir = dirs.into_iter().next().unwrap();
    assert_eq!(contents(&dir), expect(&[("model.bin", &body)]));
    assert_eq!(files.hits("/c/model.bin"), 1);
    assert_eq!(files.bytes_sent("/c/model.bin"), body.len());
    assert_eq!(models.downloaded_bytes(), body.len() as u64);
    assert_eq!(scene.listed().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_download_cut_midway_fails_and_leaves_nothing_behind() {
    let body = pattern(13, 2 << 20);
    let path = "/cut/model.bin";
    let files = files::start(vec![Route::ok(path, OCTET, body.clone())
        .etag("\"k1\"")
        .drop_after(1 << 20)])
    .await;
    let scene = Scene::new();
    let access = plain_access();
    let source = uri(&files.url(path));

    let models = scene.open();
    let reason = failed(settle(&models, &source, &access).await);
    assert!(
        reason.starts_with(&format!("{}: ", files.url(path))),
        "{reason}"
    );
    assert!(
        reason.contains("broke off") || reason.contains("incomplete"),
        "{reason}"
    );
    assert_eq!(files.bytes_sent(path), 1 << 20);
    let seen = view(&models, &source);
    assert_eq!((seen.state.as_str(), seen.downloaded), ("FailedToLoad", 0));
    // Within the backoff, asking again neither fetches nor changes the answer.
    assert_eq!(
        models.request(&source, &access),
        ModelState::Failed(reason.clone())
    );
    assert_eq!(files.hits(path), 1);
    // Nothing half-written is kept.
    scene.assert_tidy();
    assert_eq!(scene.entry_items(), Vec::<String>::new());

    // The server is fixed; a restart (instead of the 10 s backoff) fetches it whole.
    files.set(Route::ok(path, OCTET, body.clone()).etag("\"k1\""));
    let restarted = scene.open();
    let dir = ready(settle(&restarted, &source, &access).await);
    assert_eq!(contents(&dir), expect(&[("model.bin", &body)]));
    assert_eq!(view(&restarted, &source).downloaded, body.len() as u64);
    assert_eq!(files.hits(path), 2);
    assert!(
        files.requests(path)[1].header("if-none-match").is_none(),
        "nothing cached to revalidate"
    );
    // One whole entry: its folder and its description, nothing else.
    let id = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(scene.entry_items(), [id.clone(), format!("{id}.json")]);
    scene.assert_tidy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_etag_is_a_new_version_and_the_old_one_stays() {
    let v1 = pattern(21, 200_000);
    let v2 = pattern(22, 300_000);
    let path = "/v/model.bin";
    let files = files::start(vec![Route::ok(path, OCTET, v1.clone()).etag("\"v1\"")]).await;
    let scene = Scene::new();
    let access = plain_access();
    let source = uri(&files.url(path));

    let models = scene.open();
    let old = ready(settle(&models, &source, &access).await);
    assert_eq!(contents(&old), expect(&[("model.bin", &v1)]));
    drop(models);

    files.set(Route::ok(path, OCTET, v2.clone()).etag("\"v2\""));
    let restarted = scene.open();
    let new = ready(settle(&restarted, &source, &access).await);
    assert_ne!(new, old);
    assert_eq!(contents(&new), expect(&[("model.bin", &v2)]));
    let seen = view(&restarted, &source);
    assert_eq!(seen.version.as_deref(), Some("\"v2\""));
    assert_eq!(seen.downloaded, v2.len() as u64);
    assert_eq!(files.bytes_sent(path), v1.len() + v2.len());

    // Both versions are in the cache; the old one untouched.
    assert_eq!(contents(&old), expect(&[("model.bin", &v1)]));
    let listed = scene.listed();
    let versions: Vec<_> = listed.iter().map(|e| e.version.as_str()).collect();
    assert_eq!(versions, ["\"v1\"", "\"v2\""]);
    assert!(listed.iter().all(|e| e.source == files.url(path)));
    assert_eq!(
        listed.iter().map(|e| e.bytes).collect::<Vec<_>>(),
        [v1.len() as u64, v2.len() as u64]
    );
    scene.assert_tidy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn urls_that_differ_only_in_their_query_are_different_models() {
    let path = "/q/model.bin";
    let files = files::start(vec![Route::ok(path, OCTET, "first")]).await;
    let scene = Scene::new();
    let models = scene.open();
    let access = plain_access();

    let first = uri(&format!("{}?version=1", files.url(path)));
    let dir = ready(settle(&models, &first, &access).await);
    assert_eq!(contents(&dir), expect(&[("model.bin", b"first")]));

    files.set(Route::ok(path, OCTET, "second"));
    let second = uri(&format!("{}?version=2", files.url(path)));
    let dir = ready(settle(&models, &second, &access).await);
    assert_eq!(contents(&dir), expect(&[("model.bin", b"second")]));
    assert_eq!(files.hits(path), 2);
    let queries: Vec<_> = files
        .requests(path)
        .into_iter()
        .map(|s| s.query.unwrap_or_default())
        .collect();
    assert_eq!(queries, ["version=1", "version=2"]);
}

#[tokio::test]
async fn eviction_spares_what_services_name_and_an_evicted_model_comes_back() {
    let mib = |n: u8| vec![n; 1 << 20];
    let files = files::start(
        [("a", 1u8), ("b", 2), ("c", 3)]
            .iter()
            .map(|(name, n)| Route::ok(&format!("/{name}.bin"), OCTET, mib(*n)).etag("\"v1\""))
            .collect(),
    )
    .await;
    let scene = Scene::new();
    // Room for two models and a half.
    let models = Models::open(ModelSettings {
        cache_dir: scene.cache_dir(),
        cache_limit: 5 << 19,
        parallel: 4,
        max_unpacked: 1 << 30,
        verify_checksums: true,
    })
    .unwrap();
    let access = plain_access();
    let [a, b, c] = ["a", "b", "c"].map(|n| uri(&files.url(&format!("/{n}.bin"))));
    let a_dir = ready(settle(&models, &a, &access).await);
    let b_dir = ready(settle(&models, &b, &access).await);
    // A service names `a`; `b` is named by nobody any more.
    models.keep(&[(a.clone(), access.clone())]);
    let c_dir = ready(settle(&models, &c, &access).await);
    assert!(a_dir.is_dir(), "a model a service names was evicted");
    assert!(
        !b_dir.exists(),
        "the least recently used model that nobody names stays"
    );
    assert_eq!(std::fs::read(c_dir.join("c.bin")).unwrap(), mib(3));
    let mut sources: Vec<String> = scene.listed().into_iter().map(|e| e.source).collect();
    sources.sort();
    assert_eq!(sources, [files.url("/a.bin"), files.url("/c.bin")]);

    // Asked for again, the evicted model is fetched again rather than pointed at a folder
    // that is gone.
    assert_eq!(files.hits("/b.bin"), 1);
    let again = ready(settle(&models, &b, &access).await);
    assert_eq!(std::fs::read(again.join("b.bin")).unwrap(), mib(2));
    assert_eq!(files.hits("/b.bin"), 2);
    scene.assert_tidy();
}

#[tokio::test]
async fn a_slow_download_shows_its_progress() {
    let body = vec![7u8; 1 << 20];
    let files = files::start(vec![
        Route::ok("/slow.bin", OCTET, body.clone()).slow(64 << 10, Duration::from_millis(25))
    ])
    .await;
    let scene = Scene::new();
    let models = scene.open();
    let access = plain_access();
    let source = uri(&files.url("/slow.bin"));
    // Polled while it runs (a progress view is a snapshot: there is no event to wait for).
    let deadline = Instant::now() + SETTLE_WITHIN;
    let seen = loop {
        assert!(Instant::now() < deadline, "no progress seen");
        if let ModelState::Fetching(p) = models.request(&source, &access) {
            if p.bytes_done > 0 && p.bytes_done < p.bytes_total {
                break p;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(seen.bytes_total, 1 << 20);
    assert_eq!((seen.files_done, seen.files_total), (0, 1));
    assert!(seen.rate > 0 && seen.eta_seconds.is_some(), "{seen:?}");
    assert!(seen.to_string().contains(" of 1.0 MiB ("), "{seen}");
    let view = view(&models, &source);
    assert_eq!(view.state, "Loading");
    let dir = ready(settle(&models, &source, &access).await);
    assert_eq!(std::fs::read(dir.join("slow.bin")).unwrap(), body);
    scene.assert_tidy();
}
