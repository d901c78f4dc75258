//! Model downloads: gantry's download throughput from a local S3 server (moto) and a local
//! HTTP server, against a reference client fetching the same data in the same run: boto3 for
//! S3, curl for HTTP. The issue's goal: at least the reference's throughput.
//!
//! Run: `scripts/bench-storage.sh` (runs `cargo bench --bench storage`). Prints figures;
//! asserts nothing but that every download arrived whole.
//!
//! - S3 is `moto_server` on loopback (found as the tests find it: `GANTRY_MOTO_SERVER`, the
//!   PATH, `/opt/gantry-test-moto/bin/moto_server`), a bucket `bench` holding `big.bin`, one
//!   object of `BENCH_MIB` MiB uploaded with boto3's `upload_file` (default TransferConfig: a
//!   multipart upload of 8 MiB parts, as `aws s3 cp` does), `big-1part.bin`, the same bytes
//!   uploaded with one `put_object` (its ETag is their MD5, which gantry then checks, and so
//!   downloads it as one stream rather than in ranges), and `many/`, the same bytes cut into
//!   `BENCH_FILES` objects, each uploaded with `put_object` (one part).
//! - moto answers a ranged GET by reading the whole object and slicing it: a download in N
//!   ranges costs moto N whole reads. Against moto, fewer and larger requests win, whoever
//!   makes them; real S3 rewards parallel ranges instead.
//! - HTTP is the tests' loopback file server (`tests/support/files.rs`, hyper) on a tokio
//!   runtime of its own (one worker), serving the same bytes as `/big.bin`,
//!   `Content-Type: application/octet-stream`, from memory.
//! - gantry is [`gantry::storage::models::Models`] in this process, on a tokio runtime as the
//!   daemon's (one worker per core), opened on a fresh cache folder for every download, with
//!   `parallel: 8` (the daemon's default `parallel-downloads`), access from
//!   [`gantry::storage::credentials::resolve`] (the endpoint and keys as daemon config). A
//!   download's time runs from `request` until `changes()` says the model is `Ready`: listing,
//!   downloading, verifying (sizes; MD5 for single-part objects), the `fsync` of every file
//!   and the move into the cache.
//! - boto3 runs as `python -c` (the Python next to `moto_server`, or `BENCH_PYTHON`): its
//!   time is measured inside Python, around `download_file` (the big object, default
//!   TransferConfig: 8 MiB ranges on 10 threads) or around listing the prefix and a
//!   `ThreadPoolExecutor` of `BENCH_BOTO3_WORKERS` (default 8, gantry's parallelism) calling
//!   `download_file` per object; the interpreter's start, the imports and making the client
//!   are not counted. It does not `fsync`.
//! - curl is `curl -s -o FILE URL`, timed from spawning it to its exit. It does not `fsync`.
//! - Every download goes into a fresh folder, is checked (file count and bytes) and deleted.
//! - Each row is `BENCH_ROUNDS` rounds (default 3); a round runs every pair in turn, gantry
//!   first in odd rounds and the reference first in even ones, so that whatever else the
//!   machine does falls on both alike. Nothing is pinned: the clients share the cores with
//!   the server they read from.
//!
//! Environment: `BENCH_MIB` (MiB per data set, default 256), `BENCH_FILES` (objects under
//! `many/`, default 64), `BENCH_ROUNDS`, `BENCH_ROWS` (from `s3-big,s3-big-1part,s3-many,http`,
//! default all),
//! `BENCH_VERIFY` (0: gantry checks no checksums, as `storage.verify-checksums: false`),
//! `BENCH_BOTO3_WORKERS`, `BENCH_PYTHON`, `BENCH_CURL` (default `curl`), `GANTRY_MOTO_SERVER`.

#[path = "../tests/support/files.rs"]
mod files;
#[path = "../tests/support/s3.rs"]
mod s3;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gantry::storage::credentials::{self, Access, Sources};
use gantry::storage::models::{ModelState, Models};
use gantry::storage::uri::{self, ModelSource};
use gantry::storage::{ModelSettings, S3Config};

const BUCKET: &str = "bench";
const MIB: u64 = 1024 * 1024;
/// The most one download may take before the benchmark gives up.
const DOWNLOAD_DEADLINE: Duration = Duration::from_secs(600);

/// The reference client's side of one download, given the bucket or server.
const PYTHON: &str = r#"
import os, sys, time
import boto3
from concurrent.futures import ThreadPoolExecutor

mode, endpoint = sys.argv[1], sys.argv[2]
s3 = boto3.client('s3', endpoint_url=endpoint, aws_access_key_id='test',
                  aws_secret_access_key='test', region_name='us-east-1')
if mode == 'setup':
    bucket, data, files, one_part = sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(data, bucket, 'big.bin')
    print(s3.head_object(Bucket=bucket, Key='big.bin')['ETag'])
    with open(data, 'rb') as f:
        body = f.read()
    if one_part == '1':
        s3.put_object(Bucket=bucket, Key='big-1part.bin', Body=body)
        print(s3.head_object(Bucket=bucket, Key='big-1part.bin')['ETag'])
    each = len(body) // files
    for i in range(files):
        end = len(body) if i == files - 1 else (i + 1) * each
        s3.put_object(Bucket=bucket, Key='many/part-%04d.bin' % i, Body=body[i * each:end])
elif mode == 'object':
    bucket, key, out = sys.argv[3], sys.argv[4], sys.argv[5]
    start = time.perf_counter()
    s3.download_file(bucket, key, out)
    print(time.perf_counter() - start)
elif mode == 'prefix':
    bucket, prefix, out, workers = sys.argv[3], sys.argv[4] + '/', sys.argv[5], int(sys.argv[6])
    start = time.perf_counter()
    names = [o['Key']
             for page in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket, Prefix=prefix)
             for o in page.get('Contents', [])]
    def one(name):
        target = os.path.join(out, name[len(prefix):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        s3.download_file(bucket, name, target)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, names))
    print(time.perf_counter() - start)
"#;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

/// The Python with boto3: `BENCH_PYTHON`, else the one beside `moto_server` (its venv).
fn python(moto_server: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("BENCH_PYTHON") {
        return PathBuf::from(p);
    }
    let beside = moto_server.with_file_name("python");
    if beside.is_file() {
        beside
    } else {
        PathBuf::from("/opt/gantry-test-moto/bin/python")
    }
}

/// Runs the Python script; its stdout.
fn run_python(python: &Path, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg("-c")
        .arg(PYTHON)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{}",
        python.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Files and bytes under `dir`.
fn folder_size(dir: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    for item in std::fs::read_dir(dir).unwrap() {
        let item = item.unwrap();
        let meta = item.metadata().unwrap();
        if meta.is_dir() {
            let (f, b) = folder_size(&item.path());
            files += f;
            bytes += b;
        } else {
            files += 1;
            bytes += meta.len();
        }
    }
    (files, bytes)
}

/// What a download must give: this many files of these many bytes in all.
#[derive(Clone, Copy)]
struct Expect {
    files: u64,
    bytes: u64,
}

fn check(what: &str, dir: &Path, expect: Expect) {
    let (files, bytes) = folder_size(dir);
    assert!(
        files == expect.files && bytes == expect.bytes,
        "{what}: {files} files of {bytes} bytes arrived, expected {} files of {} bytes",
        expect.files,
        expect.bytes
    );
}

/// One download by gantry into a fresh cache: its seconds.
fn gantry_fetch(
    runtime: &tokio::runtime::Runtime,
    work: &Path,
    source: &ModelSource,
    access: &Access,
    expect: Expect,
) -> f64 {
    let scratch = tempfile::tempdir_in(work).unwrap();
    let models = Models::open(ModelSettings {
        cache_dir: scratch.path().join("cache"),
        cache_limit: 0,
        parallel: 8,
        max_unpacked: 1 << 40,
        verify_checksums: std::env::var("BENCH_VERIFY").map_or(true, |v| v != "0"),
    })
    .unwrap();
    let (seconds, dir) = runtime.block_on(async {
        let mut changes = models.changes();
        let start = Instant::now();
        let mut state = models.request(source, access);
        loop {
            match state {
                ModelState::Ready(dir) => return (start.elapsed().as_secs_f64(), dir),
                ModelState::Failed(why) => panic!("gantry could not fetch {source:?}: {why}"),
                ModelState::Fetching(_) => {
                    tokio::time::timeout(DOWNLOAD_DEADLINE, changes.changed())
                        .await
                        .expect("the download took too long")
                        .unwrap();
                    state = models.request(source, access);
                }
            }
        }
    });
    check(&format!("gantry, {}", source.display()), &dir, expect);
    seconds
}

/// One download by boto3 into a fresh folder: its seconds (measured inside Python).
fn boto3_fetch(
    python: &Path,
    work: &Path,
    endpoint: &str,
    key: &str,
    prefix: bool,
    workers: usize,
    expect: Expect,
) -> f64 {
    let scratch = tempfile::tempdir_in(work).unwrap();
    let out = scratch.path().join("model");
    let stdout = if prefix {
        std::fs::create_dir(&out).unwrap();
        run_python(
            python,
            &[
                "prefix",
                endpoint,
                BUCKET,
                key,
                out.to_str().unwrap(),
                &workers.to_string(),
            ],
        )
    } else {
        run_python(
            python,
            &["object", endpoint, BUCKET, key, out.to_str().unwrap()],
        )
    };
    let dir = if prefix {
        out.clone()
    } else {
        scratch.path().to_path_buf()
    };
    check(&format!("boto3, {key}"), &dir, expect);
    stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("boto3 printed {stdout:?}, not seconds"))
}

/// One download by curl into a fresh folder: its seconds, spawn to exit.
fn curl_fetch(curl: &str, work: &Path, url: &str, expect: Expect) -> f64 {
    let scratch = tempfile::tempdir_in(work).unwrap();
    let out = scratch.path().join("big.bin");
    let start = Instant::now();
    let status = Command::new(curl)
        .args(["-s", "-o"])
        .arg(&out)
        .arg(url)
        .stdin(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {curl}: {e}"));
    let seconds = start.elapsed().as_secs_f64();
    assert!(status.success(), "curl {url}: {status}");
    check(&format!("curl, {url}"), scratch.path(), expect);
    seconds
}

/// One source as both clients fetch it.
struct Pair {
    id: &'static str,
    what: String,
    gantry_source: ModelSource,
    reference: Reference,
    expect: Expect,
    bytes: u64,
}

enum Reference {
    Boto3Object(&'static str),
    Boto3Prefix(&'static str),
    Curl(String),
}

impl Reference {
    fn name(&self, workers: usize) -> String {
        match self {
            Reference::Boto3Object(_) => "boto3 `download_file` (default TransferConfig)".into(),
            Reference::Boto3Prefix(_) if workers == 1 => {
                "boto3, `download_file` per object in a loop".into()
            }
            Reference::Boto3Prefix(_) => {
                format!("boto3, `download_file` per object, ThreadPoolExecutor({workers})")
            }
            Reference::Curl(_) => "curl `-s -o FILE URL`".into(),
        }
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn main() {
    let mib: u64 = env_or("BENCH_MIB", 256);
    let file_count: u64 = env_or("BENCH_FILES", 64);
    let rounds: usize = env_or("BENCH_ROUNDS", 3).max(1);
    let workers: usize = env_or("BENCH_BOTO3_WORKERS", 8).max(1);
    let curl = std::env::var("BENCH_CURL").unwrap_or_else(|_| "curl".into());
    let wanted =
        std::env::var("BENCH_ROWS").unwrap_or_else(|_| "s3-big,s3-big-1part,s3-many,http".into());
    let wanted: Vec<&str> = wanted.split(',').map(str::trim).collect();
    for id in &wanted {
        assert!(
            ["s3-big", "s3-big-1part", "s3-many", "http"].contains(id),
            "BENCH_ROWS: no row {id:?} (s3-big, s3-big-1part, s3-many, http)"
        );
    }
    let total = mib * MIB;
    assert!(
        file_count >= 1 && total >= file_count,
        "BENCH_FILES must be between 1 and the data's bytes"
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "model downloads: {cores} cores, {mib} MiB per data set ({file_count} objects under \
         many/), {rounds} rounds, gantry with 8 parallel downloads"
    );

    let moto_server = s3::moto_server_path().unwrap_or_else(|why| {
        panic!("{why}: the S3 rows need moto (see tests/support/s3.rs for how to install it)")
    });
    let python = python(&moto_server);
    let work = tempfile::Builder::new()
        .prefix("gantry-bench-storage")
        .tempdir()
        .unwrap();

    // The data: random bytes (nothing compresses them), written once for the upload.
    let t = Instant::now();
    let mut data = vec![0u8; total as usize];
    fastrand::Rng::with_seed(1).fill(&mut data);
    let data = bytes::Bytes::from(data);
    let data_file = work.path().join("big.bin");
    std::fs::write(&data_file, &data).unwrap();

    // The servers, each on a runtime of its own: gantry's never shares a worker with them.
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-servers")
        .enable_all()
        .build()
        .unwrap();
    let moto = servers
        .block_on(s3::start())
        .expect("moto_server was found but did not start");
    let etags = run_python(
        &python,
        &[
            "setup",
            &moto.endpoint,
            BUCKET,
            data_file.to_str().unwrap(),
            &file_count.to_string(),
            if wanted.contains(&"s3-big-1part") {
                "1"
            } else {
                "0"
            },
        ],
    );
    std::fs::remove_file(&data_file).unwrap();
    let file_server = servers.block_on(files::start(vec![files::Route::ok(
        "/big.bin",
        "application/octet-stream",
        data.clone(),
    )]));
    drop(data);
    println!(
        "moto {} at {} (ETags: {}), files at {}, set up in {:.1} s",
        moto_server.display(),
        moto.endpoint,
        etags.split_whitespace().collect::<Vec<_>>().join(", "),
        file_server.base,
        t.elapsed().as_secs_f64()
    );

    let s3_config = S3Config {
        endpoint: Some(moto.endpoint.clone()),
        region: Some(s3::REGION.into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        ..S3Config::default()
    };
    let access = credentials::resolve(&Sources {
        objects: &BTreeMap::new(),
        namespace: "default",
        service_account: None,
        storage_secret: None,
        s3: &s3_config,
        hf_endpoint: "https://huggingface.co",
        env: &BTreeMap::new(),
    })
    .unwrap();
    let parse = |text: &str| uri::parse(text, Path::new("/")).unwrap();
    let one = Expect {
        files: 1,
        bytes: total,
    };
    let http_url = file_server.url("/big.bin");
    let all = vec![
        Pair {
            id: "s3-big",
            what: format!("S3, one object of {mib} MiB (multipart upload)"),
            gantry_source: parse(&format!("s3://{BUCKET}/big.bin")),
            reference: Reference::Boto3Object("big.bin"),
            expect: one,
            bytes: total,
        },
        Pair {
            id: "s3-big-1part",
            what: format!("S3, one object of {mib} MiB (one-part upload)"),
            gantry_source: parse(&format!("s3://{BUCKET}/big-1part.bin")),
            reference: Reference::Boto3Object("big-1part.bin"),
            expect: one,
            bytes: total,
        },
        Pair {
            id: "s3-many",
            what: format!(
                "S3, a prefix of {file_count} objects of {} MiB",
                total as f64 / file_count as f64 / MIB as f64
            ),
            gantry_source: parse(&format!("s3://{BUCKET}/many")),
            reference: Reference::Boto3Prefix("many"),
            expect: Expect {
                files: file_count,
                bytes: total,
            },
            bytes: total,
        },
        Pair {
            id: "http",
            what: format!("HTTP, one file of {mib} MiB"),
            gantry_source: parse(&http_url),
            reference: Reference::Curl(http_url.clone()),
            expect: one,
            bytes: total,
        },
    ];
    let pairs: Vec<Pair> = all.into_iter().filter(|p| wanted.contains(&p.id)).collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("gantry")
        .enable_all()
        .build()
        .unwrap();
    // MiB/s of each round: (gantry, reference) per pair.
    let mut measured: Vec<(Vec<f64>, Vec<f64>)> = pairs.iter().map(|_| (vec![], vec![])).collect();
    let started = Instant::now();
    for round in 1..=rounds {
        for (pair, (g, r)) in pairs.iter().zip(&mut measured) {
            let rate = |seconds: f64| pair.bytes as f64 / MIB as f64 / seconds;
            let gantry_side = |g: &mut Vec<f64>| {
                let s = gantry_fetch(
                    &runtime,
                    work.path(),
                    &pair.gantry_source,
                    &access,
                    pair.expect,
                );
                g.push(rate(s));
                eprintln!(
                    "  {}, gantry, round {round}: {:.2} s, {:.1} MiB/s",
                    pair.what,
                    s,
                    rate(s)
                );
            };
            let reference_side = |r: &mut Vec<f64>| {
                let s = match &pair.reference {
                    Reference::Boto3Object(key) => boto3_fetch(
                        &python,
                        work.path(),
                        &moto.endpoint,
                        key,
                        false,
                        workers,
                        pair.expect,
                    ),
                    Reference::Boto3Prefix(prefix) => boto3_fetch(
                        &python,
                        work.path(),
                        &moto.endpoint,
                        prefix,
                        true,
                        workers,
                        pair.expect,
                    ),
                    Reference::Curl(url) => curl_fetch(&curl, work.path(), url, pair.expect),
                };
                r.push(rate(s));
                eprintln!(
                    "  {}, {}, round {round}: {:.2} s, {:.1} MiB/s",
                    pair.what,
                    pair.reference.name(workers),
                    s,
                    rate(s)
                );
            };
            if round % 2 == 1 {
                gantry_side(g);
                reference_side(r);
            } else {
                reference_side(r);
                gantry_side(g);
            }
        }
    }
    eprintln!("  measured in {:.1} s", started.elapsed().as_secs_f64());

    let rounds_text = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!();
    println!("| Source | Client | MiB/s (rounds) | gantry / reference |");
    println!("|---|---|---|---|");
    for (pair, (g, r)) in pairs.iter().zip(&measured) {
        println!(
            "| {} | gantry (`Models`, 8 parallel) | {:.1} ({}) | {:.2}× |",
            pair.what,
            mean(g),
            rounds_text(g),
            mean(g) / mean(r)
        );
        println!(
            "| {} | {} | {:.1} ({}) | |",
            pair.what,
            pair.reference.name(workers),
            mean(r),
            rounds_text(r)
        );
    }

    drop(runtime);
    drop(file_server);
    drop(moto);
    servers.shutdown_timeout(Duration::from_secs(1));
}
