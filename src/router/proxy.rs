//! The HTTP server of the data plane and the forwarding to replicas.
//!
//! A request is routed ([`super::routes`]), counted ([`super::stats`]) from its arrival to
//! the end of its response body, held until its revision has a free slot
//! ([`super::throttler`]), and forwarded over a kept-alive HTTP/1.1 connection to the
//! replica. Bodies stream both ways: a token stream reaches the client token by token. The
//! component's `timeout` bounds the whole request, time held included: 504 before the
//! response started, a cut stream after.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tracing::{debug, warn};

use super::h1::Plain;
use super::throttler::Permit;
use super::ticket::{self, Answer, Counted, Ticket, RETRY_AFTER_SECONDS};
use super::{Revision, Router};

/// Errors a response body may end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body the router sends: its own short answers, or a replica's body
/// streamed through. An enum rather than a boxed body: no allocation per request.
pub(crate) enum RouterBody {
    Own(Option<Bytes>),
    Replica(Box<Tracked>),
}

impl Body for RouterBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RouterBody::Own(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            RouterBody::Replica(body) => Pin::new(body.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RouterBody::Own(bytes) => bytes.is_none(),
            RouterBody::Replica(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RouterBody::Own(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            RouterBody::Replica(body) => body.size_hint(),
        }
    }
}

/// An HTTP/1.1 connection to a replica. It has no task of its own: the request using it
/// drives it (while waiting for the answer, then from the response body), so a request and
/// its forwarding run in one task, without hand-offs between tasks.
pub(crate) struct H1 {
    sender: SendRequest<UpstreamBody>,
    conn: hyper::client::conn::http1::Connection<TokioIo<TcpStream>, UpstreamBody>,
}

impl Reusable for Box<H1> {
    fn ended(&mut self, cx: &mut Context<'_>) -> bool {
        self.drive(cx)
    }
}

impl H1 {
    /// Drives the connection; true once it has ended (closed by the replica, or broken).
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        Pin::new(&mut self.conn).poll(cx).is_ready()
    }
}

/// A connection to a replica that waits in the [`Pool`] between requests.
pub(crate) trait Reusable {
    /// Looks, without waiting, whether the replica has closed it (or it broke). Nobody
    /// reads an idle connection, so its end is only seen here.
    fn ended(&mut self, cx: &mut Context<'_>) -> bool;
}

/// Kept-alive connections to replicas, by address.
#[derive(Default)]
pub struct Pool {
    /// hyper's, for what goes through hyper.
    h1: IdleConnections<Box<H1>>,
    /// The plain HTTP/1.1 path's ([`super::h1`]).
    plain: IdleConnections<Plain>,
    /// Reaper ticks so far: the pool's coarse clock.
    ticks: std::sync::atomic::AtomicU64,
    /// One multiplexed HTTP/2 connection per h2c replica.
    h2: Mutex<HashMap<SocketAddr, H2Sender>>,
}

/// Most idle connections kept per replica (of each kind).
const MAX_IDLE_PER_REPLICA: usize = 256;

/// An idle connection is closed after this long unused (replicas close theirs too).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often idle connections are looked at.
const REAP_EVERY: Duration = Duration::from_secs(1);

/// Reaper ticks after which an unused connection is closed.
const IDLE_TICKS: u64 = IDLE_TIMEOUT.as_secs() / REAP_EVERY.as_secs();

/// Idle connections of one kind, by replica address.
struct IdleConnections<C> {
    by_replica: Mutex<HashMap<SocketAddr, Vec<Idle<C>>>>,
}

impl<C> Default for IdleConnections<C> {
    fn default() -> Self {
        IdleConnections {
            by_replica: Mutex::new(HashMap::new()),
        }
    }
}

/// A pooled connection and since when it is unused (in reaper ticks: no clock read per
/// request). A request takes and gives back a pointer-sized value or little more, and
/// nothing is allocated per request.
struct Idle<C> {
    since: u64,
    connection: C,
}

impl<C: Reusable> IdleConnections<C> {
    fn take(&self, addr: SocketAddr) -> Option<C> {
        self.by_replica
            .lock()
            .unwrap()
            .get_mut(&addr)?
            .pop()
            .map(|i| i.connection)
    }

    fn give_back(&self, addr: SocketAddr, connection: C, now: u64) {
        let mut idle = self.by_replica.lock().unwrap();
        let list = idle.entry(addr).or_default();
        if list.len() < MAX_IDLE_PER_REPLICA {
            list.push(Idle {
                since: now,
                connection,
            });
        }
    }

    /// Closes connections the replica has closed and those unused since before `now` less
    /// [`IDLE_TICKS`].
    fn reap(&self, now: u64, cx: &mut Context<'_>) {
        let mut idle = self.by_replica.lock().unwrap();
        for list in idle.values_mut() {
            list.retain_mut(|i| now - i.since < IDLE_TICKS && !i.connection.ended(cx));
        }
        idle.retain(|_, list| !list.is_empty());
    }

    #[cfg(test)]
    fn count(&self, addr: SocketAddr) -> usize {
        self.by_replica
            .lock()
            .unwrap()
            .get(&addr)
            .map_or(0, Vec::len)
    }
}

impl Pool {
    fn now(&self) -> u64 {
        self.ticks.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn take(&self, addr: SocketAddr) -> Option<Box<H1>> {
        self.h1.take(addr)
    }

    fn give_back(&self, addr: SocketAddr, connection: Box<H1>) {
        self.h1.give_back(addr, connection, self.now());
    }

    /// An idle connection to the replica that is still open, as far as the last events
    /// tell (the replica may close one at any time: hyper's pool looks the same way).
    pub(crate) fn take_plain(&self, addr: SocketAddr) -> Option<Plain> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        std::iter::from_fn(|| self.plain.take(addr))
            .find_map(|mut c| (!c.ended(&mut cx)).then_some(c))
    }

    pub(crate) fn give_back_plain(&self, addr: SocketAddr, connection: Plain) {
        self.plain.give_back(addr, connection, self.now());
    }

    /// One reaper tick: closes idle connections the replica has closed and those unused
    /// for [`IDLE_TIMEOUT`].
    fn reap(&self) {
        let now = self
            .ticks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let mut cx = Context::from_waker(std::task::Waker::noop());
        self.h1.reap(now, &mut cx);
        self.plain.reap(now, &mut cx);
    }

    /// The replica's HTTP/2 connection, while it lives.
    fn h2(&self, addr: SocketAddr) -> Option<H2Sender> {
        let mut h2 = self.h2.lock().unwrap();
        match h2.get(&addr) {
            Some(s) if !s.is_closed() => Some(s.clone()),
            Some(_) => {
                h2.remove(&addr);
                None
            }
            None => None,
        }
    }

    fn keep_h2(&self, addr: SocketAddr, sender: H2Sender) {
        self.h2.lock().unwrap().insert(addr, sender);
    }
}

/// Serves the data plane on `listener` until `shutdown` turns true; requests in flight then
/// finish.
pub async fn serve(
    listener: TcpListener,
    router: Arc<Router>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Every connection task holds a sender: `recv` answers `None` once all have ended.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<Infallible>(1);
    let reaper = {
        let pool = router.connections.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(REAP_EVERY);
            loop {
                every.tick().await;
                pool.reap();
            }
        })
    };
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let client = Arc::new(Client::new(client));
        let (open, stop) = (open.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _open = open;
            // HTTP/2 without TLS starts with its preface (`PRI * HTTP/2.0`), which no HTTP/1
            // request does: one look at the first bytes picks the protocol for the whole
            // connection.
            let mut first = [0u8; 3];
            let h2 = matches!(stream.peek(&mut first).await, Ok(3) if &first == b"PRI");
            if h2 {
                serve_hyper(stream, router, client, stop, true).await;
            } else {
                super::h1::serve(stream, router, client, stop).await;
            }
        });
    }
    drop(listener);
    drop(open);
    let _ = tokio::time::timeout(Duration::from_secs(30), all_closed.recv()).await;
    reaper.abort();
}

impl From<Answer> for Response<RouterBody> {
    fn from(answer: Answer) -> Self {
        let mut response = Response::new(RouterBody::Own(Some(answer.body)));
        *response.status_mut() = answer.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(answer.content_type),
        );
        if answer.retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

/// Serves a client connection with hyper (HTTP/2, or HTTP/1.1 that [`super::h1`] hands
/// over) until it closes; once `stop` turns true it finishes its requests in flight and
/// closes.
pub(crate) async fn serve_hyper<I>(
    io: I,
    router: Arc<Router>,
    client: Arc<Client>,
    mut stop: watch::Receiver<bool>,
    h2: bool,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let router = router.clone();
        let client = client.clone();
        async move {
            let arrived = Instant::now();
            let (response, revision) = handle(&router, req, &client, arrived).await;
            if let Some(revision) = revision {
                revision
                    .metrics
                    .answered(response.status().as_u16(), arrived.elapsed());
            }
            Ok::<_, Infallible>(response)
        }
    });
    let io = TokioIo::new(io);
    let stopping = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let ended = if h2 {
        let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service);
        tokio::pin!(connection);
        until_stopped(connection, stopping, |c| c.graceful_shutdown()).await
    } else {
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .with_upgrades();
        tokio::pin!(connection);
        until_stopped(connection, stopping, |c| c.graceful_shutdown()).await
    };
    if let Err(e) = ended {
        debug!(error = %e, "connection ended");
    }
}

/// Drives `connection` until it ends; once `stopping` comes, `shut_down` tells it to finish
/// its requests in flight and close.
async fn until_stopped<F: Future>(
    mut connection: Pin<&mut F>,
    stopping: impl Future<Output = ()>,
    shut_down: impl FnOnce(Pin<&mut F>),
) -> F::Output {
    tokio::select! {
        ended = connection.as_mut() => ended,
        () = stopping => {
            shut_down(connection.as_mut());
            connection.await
        }
    }
}

/// Answers one request; also says which revision it was for (for the metrics).
async fn handle(
    router: &Router,
    req: Request<Incoming>,
    client: &Client,
    arrived: Instant,
) -> (Response<RouterBody>, Option<Arc<Revision>>) {
    let mut revision = None;
    let response = forward(router, req, client, arrived, &mut revision).await;
    (response, revision)
}

/// Routes, holds and forwards; `seen` is set to the revision the request went to.
async fn forward(
    router: &Router,
    req: Request<Incoming>,
    client: &Client,
    arrived: Instant,
    seen: &mut Option<Arc<Revision>>,
) -> Response<RouterBody> {
    let host: Option<HeaderValue> = match req.headers().get(header::HOST) {
        Some(h) => Some(h.clone()),
        None => req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let routed = match router
        .table()
        .resolve(host.as_ref().and_then(|h| h.to_str().ok()), path)
    {
        Ok(r) => r,
        Err(not_found) => {
            return Answer::new(StatusCode::NOT_FOUND, "application/json", not_found.body()).into()
        }
    };
    // The request line stays as it came unless a prefix was removed (or it came over HTTP/2,
    // in absolute form).
    let same_path = routed.path_and_query == path && req.uri().authority().is_none();
    let mut ticket = match ticket::target(router, &routed) {
        Ok(revision) => Ticket::new(router, revision, arrived),
        Err(answer) => return answer.into(),
    };
    // One timer for the whole request: waiting, the replica's answer, and its body.
    let mut expiry = Box::pin(tokio::time::sleep_until(ticket.deadline()));
    *seen = Some(ticket.revision().clone());
    let mut req = req;
    let client_upgrade = req
        .headers()
        .contains_key(header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    // gRPC needs `te: trailers`, the one TE an HTTP/2 request may carry.
    let te_trailers = parts
        .headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    prepare_request(
        &mut parts.headers,
        parts.uri.scheme_str(),
        parts.version,
        host.clone(),
        client,
    );
    let uri = if same_path {
        parts.uri
    } else {
        Uri::try_from(routed.path_and_query.as_str()).unwrap_or_else(|_| Uri::from_static("/"))
    };
    let mut upstream = Upstream {
        method: parts.method,
        uri,
        headers: parts.headers,
        authority: host,
        te_trailers,
    };
    let mut payload = match Payload::read(
        body,
        &upstream.headers,
        client_upgrade.is_some(),
        ticket.deadline(),
    )
    .await
    {
        Ok(p) => p,
        Err(answer) => return answer.into(),
    };

    // Retry only what never reached a replica: a refused connection, a kept-alive connection
    // the replica had closed before taking the request, or a new connection that the dead
    // replica's published port (Docker's proxy) accepted and closed without an answer.
    loop {
        let permit = ticket.permit(router, &routed, expiry.as_mut()).await;
        *seen = Some(ticket.revision().clone());
        let permit = match permit {
            Ok(permit) => permit,
            Err(answer) => return answer.into(),
        };
        let addr = permit.addr();
        let h2 = ticket.revision().h2c();
        let upgrade = client_upgrade.is_some();
        let pooled = if h2 {
            router.connections.h2(addr).map(Connection::H2)
        } else if upgrade {
            None
        } else {
            router.connections.take(addr).map(Connection::H1)
        };
        let (connection, fresh) = match pooled {
            Some(c) => (c, false),
            None => {
                let made = if h2 {
                    connect_h2(addr).await.map(|s| {
                        router.connections.keep_h2(addr, s.clone());
                        Connection::H2(s)
                    })
                } else if upgrade {
                    connect_upgradeable(addr).await.map(Connection::Upgrade)
                } else {
                    connect(addr).await.map(Connection::H1)
                };
                match made {
                    Ok(c) => (c, true),
                    Err(e) => {
                        ticket.refused(&permit, &e);
                        continue;
                    }
                }
            }
        };
        let Some(body) = payload.take() else {
            return Answer::error(StatusCode::BAD_GATEWAY, "the request body was already sent")
                .into();
        };
        let again = fresh && payload.replayable();
        match send(
            connection,
            upstream.request(body, h2, again),
            expiry.as_mut(),
        )
        .await
        {
            Sent::Response(mut response, connection) => {
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    if let Some(client_upgrade) = client_upgrade {
                        let upstream = hyper::upgrade::on(&mut response);
                        tokio::spawn(tunnel(
                            client_upgrade,
                            upstream,
                            permit,
                            ticket.into_counted(),
                        ));
                        let (parts, _) = response.into_parts();
                        return Response::from_parts(parts, empty());
                    }
                }
                return respond(
                    router,
                    response,
                    connection,
                    addr,
                    permit,
                    ticket.into_counted(),
                    expiry,
                );
            }
            Sent::Unsent(back) => {
                let (parts, body) = back.into_parts();
                upstream.restore(parts.headers);
                payload.put_back(body);
                continue;
            }
            Sent::TimedOut => return Answer::request_timeout().into(),
            Sent::Failed(e) => {
                let unanswered = e.is_incomplete_message()
                    || std::error::Error::source(&e)
                        .and_then(|s| s.downcast_ref::<std::io::Error>())
                        .is_some();
                if fresh && unanswered && payload.replayable() && ticket.try_again(&permit) {
                    continue;
                }
                return ticket.failed(&permit, &e).into();
            }
        }
    }
}

/// A request body as sent to replicas: kept bytes (sent again if need be), or the client's
/// stream, passed through once.
#[derive(Debug)]
pub(crate) enum UpstreamBody {
    Kept(Option<Bytes>),
    Stream(Incoming),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Kept(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            UpstreamBody::Stream(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Kept(bytes) => bytes.as_ref().is_none_or(|b| b.is_empty()),
            UpstreamBody::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Kept(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            UpstreamBody::Stream(body) => body.size_hint(),
        }
    }
}

/// Request bodies of known length up to this size are kept until answered, so a request a
/// dead replica swallowed can go to another one; larger ones stream and are never retried
/// once sent.
pub(crate) const KEPT_BODY_BYTES: u64 = 1024 * 1024;

/// What goes to a replica, besides the body.
struct Upstream {
    method: hyper::Method,
    uri: Uri,
    headers: HeaderMap,
    /// The client's Host, the `:authority` of an HTTP/2 request.
    authority: Option<HeaderValue>,
    te_trailers: bool,
}

impl Upstream {
    /// The request for one attempt. The headers move into it unless `again` (an attempt that
    /// may have to be made again from scratch); a request that comes back unsent gives them
    /// back through [`Upstream::restore`].
    fn request(&mut self, body: UpstreamBody, h2: bool, again: bool) -> Request<UpstreamBody> {
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.headers_mut() = if again {
            self.headers.clone()
        } else {
            std::mem::take(&mut self.headers)
        };
        if h2 {
            // HTTP/2 carries the scheme and authority in the request line.
            let authority = self
                .authority
                .as_ref()
                .and_then(|a| a.to_str().ok())
                .unwrap_or("localhost");
            let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
            *request.uri_mut() = Uri::try_from(format!("http://{authority}{path}"))
                .unwrap_or_else(|_| self.uri.clone());
            *request.version_mut() = Version::HTTP_2;
            request.headers_mut().remove(header::HOST);
            if self.te_trailers {
                request
                    .headers_mut()
                    .insert(header::TE, HeaderValue::from_static("trailers"));
            }
        } else {
            *request.uri_mut() = self.uri.clone();
            *request.version_mut() = Version::HTTP_11;
        }
        request
    }

    /// Takes back the headers of a request that was not sent.
    fn restore(&mut self, headers: HeaderMap) {
        if self.headers.is_empty() {
            self.headers = headers;
        }
    }
}

/// The request body: kept (small, known length), or streamed through once.
enum Payload {
    Kept(Bytes),
    Streamed(Option<UpstreamBody>),
}

impl Payload {
    /// Reads a small body whole (within the request's deadline); streams anything else.
    async fn read(
        body: Incoming,
        headers: &HeaderMap,
        upgrade: bool,
        deadline: Instant,
    ) -> Result<Payload, Answer> {
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let small = length.is_some_and(|n| n <= KEPT_BODY_BYTES)
            || (length.is_none() && body.is_end_stream());
        if upgrade || !small {
            return Ok(Payload::Streamed(Some(UpstreamBody::Stream(body))));
        }
        match tokio::time::timeout_at(deadline, body.collect()).await {
            Ok(Ok(collected)) => Ok(Payload::Kept(collected.to_bytes())),
            Ok(Err(e)) => Err(Answer::error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the request body: {e}"),
            )),
            Err(_) => Err(Answer::request_timeout()),
        }
    }

    /// The body for the next attempt; `None` once a streamed body has gone.
    fn take(&mut self) -> Option<UpstreamBody> {
        match self {
            Payload::Kept(bytes) => Some(UpstreamBody::Kept(Some(bytes.clone()))),
            Payload::Streamed(body) => body.take(),
        }
    }

    /// A body that never left comes back for the next attempt.
    fn put_back(&mut self, body: UpstreamBody) {
        if let Payload::Streamed(slot) = self {
            *slot = Some(body);
        }
    }

    fn replayable(&self) -> bool {
        matches!(self, Payload::Kept(_))
    }
}

fn empty() -> RouterBody {
    RouterBody::Own(None)
}

/// Joins an upgraded client connection (a WebSocket) to the replica's, both ways, until
/// either side closes; the slot and the count are held meanwhile.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    permit: Permit,
    counted: Counted,
) {
    match tokio::try_join!(client, upstream) {
        Ok((client, upstream)) => {
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        Err(e) => debug!(error = %e, "upgrade failed"),
    }
    drop(permit);
    drop(counted);
}

/// A new HTTP/1.1 connection to a replica.
async fn connect(addr: SocketAddr) -> std::io::Result<Box<H1>> {
    let stream = TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    Ok(Box::new(H1 { sender, conn }))
}

/// A new HTTP/1.1 connection for a request that asks to upgrade (a WebSocket): it runs as
/// its own task, which hands the connection over to the tunnel after `101`.
async fn connect_upgradeable(addr: SocketAddr) -> std::io::Result<SendRequest<UpstreamBody>> {
    let H1 { sender, conn } = *connect(addr).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            debug!(error = %e, "replica connection ended");
        }
    });
    Ok(sender)
}

type H2Sender = hyper::client::conn::http2::SendRequest<UpstreamBody>;

/// A new HTTP/2 (h2c, prior knowledge) connection to a replica.
async fn connect_h2(addr: SocketAddr) -> std::io::Result<H2Sender> {
    let stream = TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!(error = %e, "replica connection ended");
        }
    });
    Ok(sender)
}

/// A connection to a replica, for one request.
enum Connection {
    H1(Box<H1>),
    H2(H2Sender),
    /// An upgrade's connection, running as its own task.
    Upgrade(SendRequest<UpstreamBody>),
}

/// `future`, unless `expiry` comes first.
async fn until<T>(expiry: Pin<&mut Sleep>, future: impl Future<Output = T>) -> Result<T, ()> {
    tokio::select! {
        biased;
        out = future => Ok(out),
        () = expiry => Err(()),
    }
}

enum Sent {
    /// The answer, and the HTTP/1.1 connection that carries its body (then back to the pool).
    Response(Response<Incoming>, Option<Box<H1>>),
    /// The request never left: it can go to another connection.
    Unsent(Request<UpstreamBody>),
    TimedOut,
    Failed(hyper::Error),
}

async fn send(
    connection: Connection,
    request: Request<UpstreamBody>,
    expiry: Pin<&mut Sleep>,
) -> Sent {
    match connection {
        Connection::H1(mut h1) => {
            // Ready unless the replica closed the kept-alive connection meanwhile.
            let ready = std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = h1.sender.poll_ready(cx) {
                    return Poll::Ready(r.is_ok());
                }
                if h1.drive(cx) {
                    return Poll::Ready(false);
                }
                Poll::Pending
            })
            .await;
            if !ready {
                return Sent::Unsent(request);
            }
            let mut sending = std::pin::pin!(h1.sender.try_send_request(request));
            let mut expiry = expiry;
            let mut ended = false;
            let answer = std::future::poll_fn(|cx| {
                if !ended {
                    ended = h1.drive(cx);
                }
                if let Poll::Ready(r) = sending.as_mut().poll(cx) {
                    return Poll::Ready(Some(r));
                }
                if expiry.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                Poll::Pending
            })
            .await;
            match answer {
                None => Sent::TimedOut,
                Some(Ok(response)) => Sent::Response(response, (!ended).then_some(h1)),
                Some(Err(mut e)) => match e.take_message() {
                    Some(request) => Sent::Unsent(request),
                    None => Sent::Failed(e.into_error()),
                },
            }
        }
        Connection::Upgrade(mut sender) => {
            if sender.ready().await.is_err() {
                return Sent::Unsent(request);
            }
            match until(expiry, sender.try_send_request(request)).await {
                Err(_) => Sent::TimedOut,
                Ok(Ok(response)) => Sent::Response(response, None),
                Ok(Err(mut e)) => match e.take_message() {
                    Some(request) => Sent::Unsent(request),
                    None => Sent::Failed(e.into_error()),
                },
            }
        }
        Connection::H2(mut sender) => {
            if sender.ready().await.is_err() {
                return Sent::Unsent(request);
            }
            let sending = sender.try_send_request(request);
            match until(expiry, sending).await {
                Err(_) => Sent::TimedOut,
                Ok(Ok(response)) => Sent::Response(response, None),
                Ok(Err(mut e)) => match e.take_message() {
                    Some(request) => Sent::Unsent(request),
                    None => Sent::Failed(e.into_error()),
                },
            }
        }
    }
}

fn respond(
    router: &Router,
    response: Response<Incoming>,
    connection: Option<Box<H1>>,
    addr: SocketAddr,
    permit: Permit,
    counted: Counted,
    expiry: Pin<Box<Sleep>>,
) -> Response<RouterBody> {
    let (mut parts, body) = response.into_parts();
    if parts.status != StatusCode::SWITCHING_PROTOCOLS {
        remove_hop_by_hop(&mut parts.headers);
    }
    let body = Tracked {
        inner: body,
        finish: Some(Finish {
            permit,
            counted,
            connection,
            addr,
            pool: router.connections.clone(),
        }),
        deadline: expiry,
    };
    Response::from_parts(parts, RouterBody::Replica(Box::new(body)))
}

/// What ends with the response body: the slot, the count, and the connection (back to the
/// pool when the body was read to its end).
struct Finish {
    permit: Permit,
    counted: Counted,
    /// The connection the body arrives on, driven from `poll_frame`.
    connection: Option<Box<H1>>,
    addr: SocketAddr,
    pool: Arc<Pool>,
}

/// A replica's response body, streamed frame by frame, cut at the request's deadline.
pub(crate) struct Tracked {
    inner: Incoming,
    finish: Option<Finish>,
    deadline: Pin<Box<Sleep>>,
}

impl Tracked {
    fn end(&mut self, reuse: bool) {
        if let Some(mut finish) = self.finish.take() {
            if reuse {
                if let Some(connection) = finish.connection.take() {
                    finish.pool.give_back(finish.addr, connection);
                }
            }
            drop(finish.permit);
            drop(finish.counted);
        }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.finish.is_some() && self.deadline.as_mut().poll(cx).is_ready() {
            self.end(false);
            return Poll::Ready(Some(Err("request timeout".into())));
        }
        // The connection reads the body off the socket into `inner`.
        if let Some(finish) = self.finish.as_mut() {
            if finish.connection.as_mut().is_some_and(|c| c.drive(cx)) {
                finish.connection = None;
            }
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                self.end(true);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                self.end(false);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let done = self.inner.is_end_stream();
        self.end(done);
    }
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), and
/// `Transfer-Encoding`, which each hop sets itself.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "transfer-encoding",
];

/// Whether a field (named in any case) is one of [`HOP_BY_HOP`].
pub(crate) fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Drops hop-by-hop headers, including those the Connection header names. Most messages
/// carry none: one pass over the headers finds that out.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(|k| is_hop_by_hop(k.as_str())) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The client of a connection, with its address as a header value made once per
/// connection.
pub(crate) struct Client {
    addr: SocketAddr,
    pub(crate) header: HeaderValue,
}

impl Client {
    pub(crate) fn new(addr: SocketAddr) -> Client {
        let header = HeaderValue::from_str(&addr.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Client { addr, header }
    }

    pub(crate) fn ip(&self) -> std::net::IpAddr {
        self.addr.ip()
    }
}

/// Prepares a request for a replica: hop-by-hop headers go (an upgrade's stay), the
/// `X-Forwarded-*` headers say who asked and how, and an HTTP/2 request gets a Host.
pub(crate) fn prepare_request(
    headers: &mut HeaderMap,
    scheme: Option<&str>,
    version: Version,
    host: Option<HeaderValue>,
    client: &Client,
) {
    let upgrade = headers.get(header::UPGRADE).cloned();
    remove_hop_by_hop(headers);
    if let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
    match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(earlier) => {
            let appended = format!("{earlier}, {}", client.ip());
            if let Ok(v) = HeaderValue::from_str(&appended) {
                headers.insert("x-forwarded-for", v);
            }
        }
        None => {
            headers.insert("x-forwarded-for", client.header.clone());
        }
    }
    if !headers.contains_key("x-forwarded-proto") {
        let proto = match scheme {
            Some("https") => HeaderValue::from_static("https"),
            _ => HeaderValue::from_static("http"),
        };
        headers.insert("x-forwarded-proto", proto);
    }
    if let Some(host) = host {
        if !headers.contains_key("x-forwarded-host") {
            headers.insert("x-forwarded-host", host.clone());
        }
        if version == Version::HTTP_2 || !headers.contains_key(header::HOST) {
            headers.insert(header::HOST, host);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_forwarding_headers_come() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let client = Client::new("127.0.0.9:5555".parse().unwrap());
        prepare_request(
            &mut headers,
            None,
            Version::HTTP_11,
            Some(HeaderValue::from_static("iris.default.localhost:8080")),
            &client,
        );
        assert!(headers.get(header::CONNECTION).is_none());
        assert!(headers.get("keep-alive").is_none());
        assert!(headers.get("x-secret").is_none(), "named by Connection");
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "iris.default.localhost:8080");
        assert_eq!(headers["content-type"], "application/json");
    }

    /// A replica that closed a kept-alive connection: the pool lets it go at the next look,
    /// as it does with one unused for too long.
    #[tokio::test]
    async fn idle_connections_closed_by_the_replica_or_too_old_are_dropped() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let replica = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = replica.local_addr().unwrap();
        let (close_tx, close_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut s, _) = replica.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            let _ = close_rx.await;
            drop(s);
        });
        let pool = Pool::default();
        let mut h1 = connect(addr).await.unwrap();
        let request = Request::get("/").body(empty_upstream()).unwrap();
        let sending = h1.sender.try_send_request(request);
        let mut sending = std::pin::pin!(sending);
        let response = std::future::poll_fn(|cx| {
            h1.drive(cx);
            sending.as_mut().poll(cx)
        })
        .await
        .unwrap();
        let mut body = response.into_body();
        std::future::poll_fn(|cx| {
            h1.drive(cx);
            match Pin::new(&mut body).poll_frame(cx) {
                Poll::Ready(None) => Poll::Ready(()),
                Poll::Ready(Some(_)) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        pool.give_back(addr, h1);
        pool.reap();
        assert_eq!(pool.h1.count(addr), 1, "still open: kept");

        close_tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while pool.h1.count(addr) > 0 {
            assert!(
                Instant::now() < deadline,
                "the closed connection stayed in the pool"
            );
            tokio::task::yield_now().await;
            pool.reap();
        }

        // Too old: dropped although the replica keeps it open.
        let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other_addr = other.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = other.accept().await.unwrap();
            std::future::pending::<()>().await;
            drop(s);
        });
        let h1 = connect(other_addr).await.unwrap();
        pool.give_back(other_addr, h1);
        for _ in 1..IDLE_TICKS {
            pool.reap();
        }
        assert_eq!(pool.h1.count(other_addr), 1, "not yet too old");
        pool.reap();
        assert_eq!(pool.h1.count(other_addr), 0);
    }

    fn empty_upstream() -> UpstreamBody {
        UpstreamBody::Kept(None)
    }

    #[test]
    fn upgrades_keep_their_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        prepare_request(
            &mut headers,
            None,
            Version::HTTP_11,
            None,
            &Client::new("127.0.0.1:1".parse().unwrap()),
        );
        assert_eq!(headers[header::UPGRADE], "websocket");
        assert_eq!(headers[header::CONNECTION], "upgrade");
    }
}
