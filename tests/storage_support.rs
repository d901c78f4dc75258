//! The helpers the model download tests stand on work: moto as a real S3 server on loopback
//! (with and without credential checks), and the loopback file server (content types,
//! redirects, 404, conditional and range requests, hit counts, slow and cut downloads).

#[path = "support/files.rs"]
mod files;
#[path = "support/s3.rs"]
mod s3;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use files::{Length, Route};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

// --- moto ------------------------------------------------------------------------------------

#[tokio::test]
async fn moto_serves_a_bucket_through_object_store() {
    let Some(mut moto) = s3::start().await else {
        return;
    };
    assert!(moto.endpoint.starts_with("http://127.0.0.1:"));
    moto.create_bucket("models").await;
    moto.put("models", "llama/config.json", &b"{\"layers\": 2}"[..])
        .await;
    moto.put("models", "llama/weights.bin", vec![7u8; 100_000])
        .await;
    moto.put("models", "other/readme.txt", "hi").await;

    // Any credentials do on a moto that does not check them.
    let store = moto.store("models", "whoever", "whatever");
    let mut listed: Vec<(String, u64)> = store
        .list(Some(&Path::from("llama")))
        .map_ok(|meta| (meta.location.to_string(), meta.size))
        .try_collect()
        .await
        .unwrap();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("llama/config.json".to_string(), 13),
            ("llama/weights.bin".to_string(), 100_000),
        ]
    );
    let got = store
        .get(&Path::from("llama/weights.bin"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got, Bytes::from(vec![7u8; 100_000]));

    // A bucket that does not exist is an error, not an empty listing.
    let missing = moto.store("no-such-bucket", "a", "b");
    let err = missing
        .get(&Path::from("x"))
        .await
        .expect_err("no such bucket");
    assert!(
        matches!(err, object_store::Error::NotFound { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn moto_servers_are_separate() {
    let Some(mut a) = s3::start().await else {
        return;
    };
    let Some(b) = s3::start().await else {
        return;
    };
    assert_ne!(a.endpoint, b.endpoint);
    a.create_bucket("only-in-a").await;
    a.put("only-in-a", "k", "v").await;
    let err = b
        .own_store("only-in-a")
        .head(&Path::from("k"))
        .await
        .expect_err("the bucket is on the other server");
    assert!(
        matches!(err, object_store::Error::NotFound { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn moto_stops_on_drop() {
    let Some(moto) = s3::start().await else {
        return;
    };
    let proc_dir = format!("/proc/{}", moto.pid());
    assert!(std::path::Path::new(&proc_dir).exists());
    drop(moto);
    // Killed and reaped. (Not "nothing listens on its port": another test may have it now.)
    assert!(
        !std::path::Path::new(&proc_dir).exists(),
        "moto_server is still there after drop"
    );
}

#[tokio::test]
async fn moto_with_auth_refuses_wrong_credentials() {
    let Some((mut moto, key_id, secret)) = s3::start_with_auth().await else {
        return;
    };
    assert!(moto.checks_credentials());
    assert!(key_id.starts_with("AKIA"), "{key_id}");
    moto.create_bucket("private").await;
    moto.put("private", "model/weights.bin", "secret weights")
        .await;
    let key = Path::from("model/weights.bin");

    // The IAM user's key works.
    let good = moto.store("private", &key_id, &secret);
    let got = good.get(&key).await.unwrap().bytes().await.unwrap();
    assert_eq!(got, Bytes::from("secret weights"));
    let listed: Vec<_> = good.list(None).try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);

    // A key moto never issued.
    let err = moto
        .store("private", "AKIAIOSFODNN7EXAMPLE", &secret)
        .get(&key)
        .await
        .expect_err("an unknown key id must be refused");
    let text = err.to_string();
    assert!(
        matches!(err, object_store::Error::PermissionDenied { .. })
            && text.contains("InvalidAccessKeyId"),
        "{err:?}"
    );

    // The right key id with the wrong secret.
    let err = moto
        .store("private", &key_id, "not-the-secret")
        .get(&key)
        .await
        .expect_err("a wrong secret must be refused");
    let text = err.to_string();
    assert!(
        matches!(err, object_store::Error::PermissionDenied { .. })
            && text.contains("SignatureDoesNotMatch"),
        "{err:?}"
    );

    // Refused writes too, and nothing was written.
    let err = moto
        .store("private", "AKIAIOSFODNN7EXAMPLE", "nope")
        .put(&Path::from("evil"), "x".into())
        .await
        .expect_err("an unknown key may not write");
    assert!(
        matches!(err, object_store::Error::PermissionDenied { .. }),
        "{err:?}"
    );
    assert!(good.head(&Path::from("evil")).await.is_err());

    // Unsigned requests are refused as well.
    let reply = client()
        .get(format!("{}/private/model/weights.bin", moto.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 403, "{}", reply.text().await.unwrap());
}

// --- files -----------------------------------------------------------------------------------

#[tokio::test]
async fn files_serves_bodies_with_their_headers() {
    let files = files::start(vec![
        Route::ok("/config.json", "application/json", "{\"a\": 1}")
            .etag("\"v1\"")
            .last_modified("Wed, 21 Oct 2015 07:28:00 GMT")
            .header("X-Extra", "yes"),
        Route::body("/broken", 500, "text/plain", "boom"),
    ])
    .await;
    let http = client();

    let reply = http.get(files.url("/config.json")).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    let h = reply.headers().clone();
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["etag"], "\"v1\"");
    assert_eq!(h["last-modified"], "Wed, 21 Oct 2015 07:28:00 GMT");
    assert_eq!(h["content-length"], "8");
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(h["x-extra"], "yes");
    assert_eq!(reply.text().await.unwrap(), "{\"a\": 1}");

    let reply = http.get(files.url("/broken")).send().await.unwrap();
    assert_eq!(reply.status(), 500);
    assert_eq!(reply.text().await.unwrap(), "boom");

    // 404 for what is not there, counted too; the query string is not part of the path.
    let reply = http.get(files.url("/nothing?x=1")).send().await.unwrap();
    assert_eq!(reply.status(), 404);
    assert_eq!(files.hits("/nothing"), 1);
    assert_eq!(files.requests("/nothing")[0].query.as_deref(), Some("x=1"));
    assert_eq!(files.requests("/nothing")[0].status, 404);

    // HEAD: the headers, no body.
    let reply = http.head(files.url("/config.json")).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["content-length"], "8");
    assert_eq!(reply.headers()["etag"], "\"v1\"");
    assert_eq!(reply.bytes().await.unwrap().len(), 0);
    assert_eq!(files.hits("/config.json"), 2);
    assert_eq!(files.bytes_sent("/config.json"), 8);
    let methods: Vec<_> = files
        .requests("/config.json")
        .into_iter()
        .map(|s| s.method)
        .collect();
    assert_eq!(methods, ["GET", "HEAD"]);

    // Other methods are refused.
    let reply = http.post(files.url("/config.json")).send().await.unwrap();
    assert_eq!(reply.status(), 405);
}

#[tokio::test]
async fn files_redirects() {
    let files = files::start(vec![
        Route::ok("/real/model.bin", "application/octet-stream", "weights"),
        Route::redirect("/model.bin", 302, "/real/model.bin"),
        Route::redirect("/loop", 307, "/loop"),
    ])
    .await;

    let reply = no_redirects()
        .get(files.url("/model.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 302);
    assert_eq!(reply.headers()["location"], "/real/model.bin");

    let reply = client().get(files.url("/model.bin")).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.url().path(), "/real/model.bin");
    assert_eq!(reply.text().await.unwrap(), "weights");
    assert_eq!(files.hits("/model.bin"), 2);
    assert_eq!(files.hits("/real/model.bin"), 1);

    // To another server, set after both started.
    let other = files::start(vec![]).await;
    other.set(Route::redirect("/away", 301, &files.url("/real/model.bin")));
    let reply = client().get(other.url("/away")).send().await.unwrap();
    assert_eq!(reply.text().await.unwrap(), "weights");

    assert!(client().get(files.url("/loop")).send().await.is_err());
}

#[tokio::test]
async fn files_counts_hits_and_answers_conditional_requests() {
    let body = vec![1u8; 50_000];
    let files = files::start(vec![Route::ok(
        "/weights.bin",
        "application/octet-stream",
        body.clone(),
    )
    .etag("\"abc\"")
    .last_modified("Wed, 21 Oct 2015 07:28:00 GMT")])
    .await;
    let http = client();
    assert_eq!(files.hits("/weights.bin"), 0);

    let first = http.get(files.url("/weights.bin")).send().await.unwrap();
    assert_eq!(first.bytes().await.unwrap().len(), 50_000);
    assert_eq!(
        (files.hits("/weights.bin"), files.bytes_sent("/weights.bin")),
        (1, 50_000)
    );

    // A client that kept its copy asks again: 304 and not one more byte.
    let again = http
        .get(files.url("/weights.bin"))
        .header("If-None-Match", "\"abc\"")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], "\"abc\"");
    assert!(again.bytes().await.unwrap().is_empty());
    let again = http
        .get(files.url("/weights.bin"))
        .header("If-Modified-Since", "Wed, 21 Oct 2015 07:28:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(
        (files.hits("/weights.bin"), files.bytes_sent("/weights.bin")),
        (3, 50_000)
    );
    assert_eq!(
        files.requests("/weights.bin")[1].header("If-None-Match"),
        Some("\"abc\"")
    );

    // A new version upstream: the old ETag no longer matches.
    files.set(Route::ok("/weights.bin", "application/octet-stream", "v2").etag("\"def\""));
    let changed = http
        .get(files.url("/weights.bin"))
        .header("If-None-Match", "\"abc\"")
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    assert_eq!(changed.text().await.unwrap(), "v2");

    files.reset_counts();
    assert_eq!(
        (files.hits("/weights.bin"), files.bytes_sent("/weights.bin")),
        (0, 0)
    );
    files.remove("/weights.bin");
    let gone = http.get(files.url("/weights.bin")).send().await.unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn files_answers_ranges() {
    let body: Vec<u8> = (0..=99).collect();
    let files = files::start(vec![Route::ok(
        "/data",
        "application/octet-stream",
        body.clone(),
    )
    .etag("\"r1\"")])
    .await;
    let http = client();
    let get = |range: &'static str| http.get(files.url("/data")).header("Range", range).send();

    let reply = get("bytes=10-19").await.unwrap();
    assert_eq!(reply.status(), 206);
    assert_eq!(reply.headers()["content-range"], "bytes 10-19/100");
    assert_eq!(reply.headers()["content-length"], "10");
    assert_eq!(reply.bytes().await.unwrap(), body[10..20]);

    let reply = get("bytes=90-").await.unwrap();
    assert_eq!(reply.status(), 206);
    assert_eq!(reply.bytes().await.unwrap(), body[90..]);

    let reply = get("bytes=-5").await.unwrap();
    assert_eq!(reply.headers()["content-range"], "bytes 95-99/100");
    assert_eq!(reply.bytes().await.unwrap(), body[95..]);

    let reply = get("bytes=95-1000").await.unwrap();
    assert_eq!(reply.headers()["content-range"], "bytes 95-99/100");

    let reply = get("bytes=100-").await.unwrap();
    assert_eq!(reply.status(), 416);
    assert_eq!(reply.headers()["content-range"], "bytes */100");

    // Several ranges are not supported: the whole body.
    let reply = get("bytes=0-1,5-6").await.unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.bytes().await.unwrap().len(), 100);

    // If-Range naming another version: the whole (new) body.
    let reply = http
        .get(files.url("/data"))
        .header("Range", "bytes=10-19")
        .header("If-Range", "\"old\"")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let reply = http
        .get(files.url("/data"))
        .header("Range", "bytes=10-19")
        .header("If-Range", "\"r1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 206);
    assert_eq!(files.bytes_sent("/data"), 10 + 10 + 5 + 5 + 100 + 100 + 10);
}

#[tokio::test]
async fn files_sends_slowly_and_drops_midway() {
    let body = vec![9u8; 10_000];
    let files = files::start(vec![
        Route::ok("/slow", "application/octet-stream", body.clone())
            .slow(1_000, Duration::from_millis(20)),
        Route::ok("/cut", "application/octet-stream", body.clone())
            .slow(1_000, Duration::from_millis(5))
            .drop_after(4_500),
        Route::ok("/cut-fast", "application/octet-stream", body.clone()).drop_after(6_000),
        Route::ok("/chunked", "application/octet-stream", body.clone()).length(Length::Omitted),
        Route::ok("/short", "application/octet-stream", "only this").length(Length::Claimed(1_000)),
    ])
    .await;
    let http = client();

    // Slow: ten chunks, nine pauses.
    let started = Instant::now();
    let reply = http.get(files.url("/slow")).send().await.unwrap();
    let mut stream = reply.bytes_stream();
    let mut pieces = 0;
    let mut got = 0;
    while let Some(piece) = stream.try_next().await.unwrap() {
        pieces += 1;
        got += piece.len();
    }
    assert_eq!(got, 10_000);
    assert!(pieces >= 2, "came in {pieces} pieces");
    assert!(started.elapsed() >= Duration::from_millis(180));

    // Cut midway: the headers promise it all, the connection ends after 4,500 bytes.
    for path in ["/cut", "/cut-fast"] {
        let want = if path == "/cut" { 4_500 } else { 6_000 };
        let reply = http.get(files.url(path)).send().await.unwrap();
        assert_eq!(reply.status(), 200);
        assert_eq!(reply.headers()["content-length"], "10000");
        let mut stream = reply.bytes_stream();
        let mut got = 0;
        let ended = loop {
            match stream.try_next().await {
                Ok(Some(piece)) => got += piece.len(),
                Ok(None) => break "the end",
                Err(e) => {
                    break if e.is_body() || e.is_decode() {
                        "an error"
                    } else {
                        "?"
                    }
                }
            }
        };
        assert_eq!((ended, got), ("an error", want), "{path}");
        assert_eq!(files.bytes_sent(path), want);
    }

    // No Content-Length: chunked, complete.
    let reply = http.get(files.url("/chunked")).send().await.unwrap();
    assert!(reply.headers().get("content-length").is_none());
    assert_eq!(reply.headers()["transfer-encoding"], "chunked");
    assert_eq!(reply.bytes().await.unwrap().len(), 10_000);

    // A Content-Length the body does not have: the client sees a short body and an error.
    let reply = http.get(files.url("/short")).send().await.unwrap();
    assert_eq!(reply.headers()["content-length"], "1000");
    assert!(reply.bytes().await.is_err());
}
