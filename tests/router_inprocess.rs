//! The data plane in process, against servers the test runs itself (no Docker): upgrades
//! (WebSocket) pass through both ways, and a client that gives up frees its place in the queue.

mod support;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use support::inprocess::{isvc, start};

/// Reads from `stream` until the end of an HTTP head (`\r\n\r\n`); the head.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.unwrap();
        assert!(
            n > 0,
            "closed before the head ended: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn an_upgraded_connection_carries_bytes_both_ways() {
    // The replica: accepts a WebSocket-style upgrade, then echoes what it gets, upper-cased.
    let replica = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = replica.local_addr().unwrap().port();
    let upstream = tokio::spawn(async move {
        let (mut s, _) = replica.accept().await.unwrap();
        let head = read_head(&mut s).await.to_ascii_lowercase();
        assert!(head.contains("upgrade: websocket"), "{head}");
        assert!(head.contains("connection: upgrade"), "{head}");
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(&buf.to_ascii_uppercase()).await.unwrap();
    });
    let gantry = start(&isvc("echo", ""), "echo", port, 10).await;

    let mut client = TcpStream::connect(gantry.addr).await.unwrap();
    client
        .write_all(b"GET /ws HTTP/1.1\r\nHost: echo.default.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut client).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    client.write_all(b"hello").await.unwrap();
    let mut echoed = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"HELLO");
    upstream.await.unwrap();
}

#[tokio::test]
async fn a_client_that_gives_up_frees_its_place_in_the_queue() {
    // A replica that takes one request and never answers: containerConcurrency 1 keeps the
    // next requests queued in the router.
    let replica = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = replica.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (s, _) = replica.accept().await.unwrap();
            held.push(s);
        }
    });
    let gantry = start(
        &isvc("stuck", "    containerConcurrency: 1\n"),
        "stuck",
        port,
        1,
    )
    .await;
    let send = || async {
        let mut c = TcpStream::connect(gantry.addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: stuck.default.localhost\r\n\r\n")
            .await
            .unwrap();
        c
    };
    let revision = gantry.router.revision("stuck-predictor-00001").unwrap();
    let wait_until = |what: &'static str, cond: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let ok = loop {
            if cond() {
                break true;
            }
            if std::time::Instant::now() > deadline {
                break false;
            }
            std::thread::yield_now();
        };
        assert!(ok, "timed out waiting for {what}");
    };
    let _in_flight = send().await;
    let queued = send().await;
    let r = revision.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("one request queued", &|| r.throttler.queued() == 1)
    })
    .await
    .unwrap();

    // The queue (depth 1) is full: a third request is refused.
    let mut third = send().await;
    let head = read_head(&mut third).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");

    // The queued client hangs up: its place is free, and the next request queues.
    drop(queued);
    let r = revision.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("the place freed", &|| r.throttler.queued() == 0)
    })
    .await
    .unwrap();
    let _fourth = send().await;
    let r = revision.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("the next one queued", &|| r.throttler.queued() == 1)
    })
    .await
    .unwrap();
    let _ = gantry.shutdown.send(true);
}

/// A replica whose port closes the first new connections unanswered (as Docker's port proxy
/// does while a container restarts): the request goes again, the replica is taken out of
/// rotation for a moment when it does it twice, and comes back without any status update.
#[tokio::test]
async fn a_replica_that_drops_new_connections_is_tried_again() {
    let replica = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = replica.local_addr().unwrap().port();
    tokio::spawn(async move {
        for n in 0.. {
            let (mut s, _) = replica.accept().await.unwrap();
            if n < 2 {
                drop(s); // closed unanswered
                continue;
            }
            tokio::spawn(async move {
                let _ = read_head(&mut s).await;
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await
                    .unwrap();
                let mut rest = [0u8; 1];
                let _ = s.read(&mut rest).await;
            });
        }
    });
    let gantry = start(&isvc("flaky", ""), "flaky", port, 10).await;
    let mut client = TcpStream::connect(gantry.addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: flaky.default.localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), client.read_to_string(&mut answer))
        .await
        .expect("answered within the exclusion and a retry")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");
    let _ = gantry.shutdown.send(true);
}
