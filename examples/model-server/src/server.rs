//! The accept loop, graceful shutdown, and what the server counts.
//!
//! On shutdown the server stops accepting, marks the model not ready (a request that still
//! arrives on an open connection gets KServe's 503), lets every in-flight request finish
//! (streams included), closes idle connections, and returns. It has no shutdown timeout of its
//! own: whoever stops it (Docker, gantry) already has one, `terminationGracePeriodSeconds`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::model::Model;
use crate::protocol;

/// How the model behaves, beyond what it computes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Behaviour {
    /// The name the model answers to in `/v1/models/{name}` and `/v2/models/{name}`.
    pub model_name: String,
    /// Echoed in the `x-model-version` header and `model_version` fields.
    pub version: Option<String>,
    /// Added to every inference request; the gap between streamed events.
    pub latency: Duration,
    /// Whether `:predict` streams Server-Sent Events to clients that accept them.
    pub stream: bool,
}

/// The shared state of a running server.
#[derive(Debug)]
pub struct App {
    pub behaviour: Behaviour,
    pub model: Model,
    ready: AtomicBool,
    pub(crate) stats: Stats,
}

impl App {
    /// A server for `model`, ready to answer.
    pub fn new(behaviour: Behaviour, model: Model) -> Arc<App> {
        Arc::new(App {
            behaviour,
            model,
            ready: AtomicBool::new(true),
            stats: Stats::default(),
        })
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Not ready: inference and readiness endpoints answer 503, liveness still 200.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// The inference statistics that `GET /stats` reports.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Counts an inference request in; it counts out when the guard drops (for a stream:
    /// when the last event is sent or the client goes away).
    pub(crate) fn enter_inference(self: &Arc<App>) -> InFlight {
        let stats = &self.stats;
        stats.requests.fetch_add(1, Ordering::SeqCst);
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight {
            app: Arc::clone(self),
        }
    }
}

/// Counts inference requests (`:predict`, `/infer`), not probes or metadata, so that a
/// router test sees exactly the concurrency it sent.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    requests: AtomicU64,
}

/// What `GET /stats` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub in_flight: u64,
    pub max_in_flight: u64,
    pub requests: u64,
}

impl Stats {
    fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            in_flight: self.in_flight.load(Ordering::SeqCst),
            max_in_flight: self.max_in_flight.load(Ordering::SeqCst),
            requests: self.requests.load(Ordering::SeqCst),
        }
    }

    /// Starts counting afresh: the maximum restarts from what is in flight now.
    pub(crate) fn reset(&self) {
        self.requests.store(0, Ordering::SeqCst);
        self.max_in_flight
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// One inference request in flight.
pub(crate) struct InFlight {
    app: Arc<App>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.app.stats.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Binds `host:port` (port 0 picks a free one).
pub async fn bind(host: &str, port: u16) -> io::Result<TcpListener> {
    let address: SocketAddr = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("--host: expected an IP address like 0.0.0.0 or ::, found {host:?}"),
            ))
        }
    };
    TcpListener::bind(address).await
}

/// The response header that names the HTTP version the request arrived with (`HTTP/1.1`,
/// `HTTP/2.0`).
pub const HTTP_VERSION_HEADER: &str = "x-http-version";

/// Serves HTTP/1.1 and HTTP/2 without TLS (h2c, prior knowledge) on `listener` until `shutdown` completes, then drains: stops accepting,
/// finishes in-flight requests and returns once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a sender; `recv` returns None once all have finished.
    let (open_tx, mut open_rx) = mpsc::channel::<Infallible>(1);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: say so, back off, keep serving.
                    eprintln!("gantry-model-server: accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        let mut stop_rx = stop_rx.clone();
        let open = open_tx.clone();
        tokio::spawn(async move {
            let _open = open;
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let app = Arc::clone(&app);
                // Says which protocol the request came in with: router tests check that gRPC
                // (h2c) reaches the server as HTTP/2.
                let version = format!("{:?}", request.version());
                async move {
                    let mut response = protocol::handle(app, request).await;
                    if let Ok(v) = hyper::header::HeaderValue::from_str(&version) {
                        response.headers_mut().insert(HTTP_VERSION_HEADER, v);
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            // Errors here are the client's (a reset, a malformed request): nothing to do.
            tokio::select! {
                _ = connection.as_mut() => {}
                () = async { let _ = stop_rx.wait_for(|stop| *stop).await; } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    app.set_ready(false);
    let _ = stop_tx.send(true);
    drop(open_tx);
    let _ = open_rx.recv().await;
    Ok(())
}
