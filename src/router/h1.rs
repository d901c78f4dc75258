//! The data plane's own HTTP/1.1 path, for what nearly every inference request is: a
//! kept-alive HTTP/1.1 request with a small body of known length (or none).
//!
//! A client connection is read into one buffer and each request head is parsed there once
//! ([`httparse`]); the head that goes to the replica is written straight from it, and the
//! replica's answer is relayed as it arrives: its head as it came when it carries nothing
//! hop-by-hop (the usual case), its body byte for byte, chunked or not, so a token stream
//! reaches the client token by token. Per request that is one read and one write each way,
//! as in nginx, without the general machinery of an HTTP library on either side.
//!
//! Routing, admission, counting and retries are the ones [`super::proxy`] uses
//! ([`Ticket`]). Anything else (HTTP/1.0, `Transfer-Encoding` or large request bodies,
//! `Expect`, upgrades, absolute-form targets, replicas that speak h2c, heads this parser
//! does not take) hands the connection, with the bytes already read, to hyper
//! ([`super::proxy::serve_hyper`]) for the rest of its life.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tracing::debug;

use super::proxy::{
    is_hop_by_hop, prepare_request, remove_hop_by_hop, serve_hyper, Client, Reusable,
    KEPT_BODY_BYTES,
};
use super::routes::{RouteTable, Routed};
use super::ticket::{self, Answer, Ticket, RETRY_AFTER_SECONDS};
use super::Router;

/// Most header fields in a head this path parses; more go to hyper.
const MAX_HEADERS: usize = 64;

/// Longest request head this path waits for; a longer one goes to hyper.
const MAX_HEAD: usize = 64 * 1024;

/// Read buffers grow by at least this much.
const READ_CHUNK: usize = 8 * 1024;

/// How long the rest of a request's body may take to arrive when the router answers the
/// request itself (a 404, a 503 with no revision): after that the connection is closed.
const UNREAD_BODY_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves an HTTP/1.1 client connection until it closes, or until `stop` turns true and
/// its request in flight has its answer.
pub(crate) async fn serve(
    stream: TcpStream,
    router: Arc<Router>,
    client: Arc<Client>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conn = Conn {
        stream,
        router,
        client,
        buf: BytesMut::with_capacity(READ_CHUNK),
        out: Vec::with_capacity(1024),
        request: Vec::with_capacity(1024),
        fields: Vec::with_capacity(1024),
        route: None,
    };
    // One timer for the connection, set to each request's deadline.
    let expiry = tokio::time::sleep_until(Instant::now());
    tokio::pin!(expiry);
    loop {
        let head = match conn.next_head(&mut stop).await {
            Next::Request(head) => head,
            Next::Closed => return,
            Next::Other => break,
        };
        let stopping = *stop.borrow();
        match conn.exchange(head, expiry.as_mut(), stopping).await {
            Done::KeepAlive if !*stop.borrow() => {}
            Done::KeepAlive | Done::Close => return,
            Done::Other => break,
        }
    }
    let Conn {
        stream,
        router,
        client,
        buf,
        ..
    } = conn;
    debug!(client = %client.ip(), "the connection goes on through hyper");
    let io = Rewind { read: buf, stream };
    serve_hyper(io, router, client, stop, false).await;
}

/// A client connection on this path.
struct Conn {
    stream: TcpStream,
    router: Arc<Router>,
    client: Arc<Client>,
    /// Read from the client and not used yet: the request being parsed, or the next ones.
    buf: BytesMut,
    /// A head being written to the client (and the body that follows it).
    out: Vec<u8>,
    /// The request being sent to replicas: kept for the connection's next ones.
    request: Vec<u8>,
    /// The fields of the request being parsed, as replicas get them.
    fields: Vec<u8>,
    /// The last route found, for the connection's next requests (usually to the same URL).
    route: Option<Route>,
}

/// A route and what it was found for.
struct Route {
    table: Arc<RouteTable>,
    host: Vec<u8>,
    target: Vec<u8>,
    routed: Routed,
}

impl Route {
    fn serves(&self, table: &Arc<RouteTable>, host: &[u8], target: &[u8]) -> bool {
        Arc::ptr_eq(&self.table, table) && self.host == host && self.target == target
    }
}

/// How reading the rest of a request went.
enum Body {
    Read,
    /// The client closed the connection (or it failed).
    Closed,
    /// Not all of it came in time.
    Late,
}

enum Next {
    Request(RequestHead),
    /// Closed by the client, or the daemon stops and the connection is idle.
    Closed,
    /// Not for this path: hyper takes the connection.
    Other,
}

/// A request as it goes to replicas.
struct Outgoing<'a> {
    routed: &'a Routed,
    /// Its head and body as replicas get them.
    bytes: &'a [u8],
    /// Its length in the client's buffer (head and body).
    whole: usize,
    head_request: bool,
    /// The client connection closes after the answer.
    close: bool,
}

/// How an exchange left the connection.
enum Done {
    KeepAlive,
    Close,
    /// The request is still in the buffer, untouched: hyper takes the connection.
    Other,
}

/// A request head this path handles, parsed from the front of the buffer.
struct RequestHead {
    method: Method,
    /// Where the request target (origin-form: path and query) is in the buffer.
    target: Range<usize>,
    /// Where the Host field's value is.
    host: Option<Range<usize>>,
    /// The fields, when they are not simply passed on (see [`parse_request`]).
    headers: Option<HeaderMap>,
    head_len: usize,
    body_len: usize,
    /// The client asked to close the connection after the answer.
    close: bool,
}

enum Parsed {
    Partial,
    Request(RequestHead),
    Other,
}

/// The head at the front of `buf`, when it is one for this path. When it carries nothing
/// hop-by-hop, no forwarding fields and a Host (the usual case), its fields are written to
/// `fields` as replicas get them, before the forwarding fields; otherwise they are parsed for
/// [`prepare_request`].
fn parse_request(buf: &[u8], fields: &mut Vec<u8>) -> Parsed {
    let mut slots = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let (Some(1), Some(method), Some(target)) = (req.version, req.method, req.path) else {
        return Parsed::Other;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Other;
    };
    if !target.starts_with('/') || method == Method::CONNECT {
        return Parsed::Other;
    }
    let within = |part: &[u8]| {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        start..start + part.len()
    };
    let mut body_len = None;
    let mut close = false;
    let mut host = None;
    let mut plain = true;
    fields.clear();
    for field in req.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("content-length") {
            let Some(n) = body_len.is_none().then(|| decimal(field.value)).flatten() else {
                return Parsed::Other;
            };
            body_len = Some(n);
        } else if ["transfer-encoding", "expect", "upgrade"]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
        {
            return Parsed::Other;
        } else if name.eq_ignore_ascii_case("connection") {
            close |= tokens(field.value).any(|t| t.eq_ignore_ascii_case(b"close"));
        } else if name.eq_ignore_ascii_case("host") && host.is_none() {
            host = Some(within(field.value));
        }
        plain &= !is_hop_by_hop(name)
            && !name
                .get(..12)
                .is_some_and(|p| p.eq_ignore_ascii_case("x-forwarded-"));
        fields.extend_from_slice(name.as_bytes());
        fields.extend_from_slice(b": ");
        fields.extend_from_slice(field.value);
        fields.extend_from_slice(b"\r\n");
    }
    let body_len = body_len.unwrap_or(0);
    if body_len > KEPT_BODY_BYTES {
        return Parsed::Other;
    }
    let headers = if plain && host.is_some() {
        None
    } else {
        let mut headers = HeaderMap::with_capacity(req.headers.len() + 4);
        for field in req.headers.iter() {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(field.name.as_bytes()),
                HeaderValue::from_bytes(field.value),
            ) else {
                return Parsed::Other;
            };
            headers.append(name, value);
        }
        Some(headers)
    };
    Parsed::Request(RequestHead {
        method,
        target: within(target.as_bytes()),
        host,
        headers,
        head_len,
        body_len: body_len as usize,
        close,
    })
}

/// What replicas get: the request line with the routed path, the client's fields prepared
/// as [`prepare_request`] prepares them, and the body.
fn write_upstream_request(
    out: &mut Vec<u8>,
    head: RequestHead,
    path: &str,
    buf: &[u8],
    fields: &[u8],
    client: &Client,
) {
    out.clear();
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    match head.headers {
        // Nothing to drop, and no forwarding fields yet: `prepare_request` would add them.
        None => {
            out.extend_from_slice(fields);
            out.extend_from_slice(b"x-forwarded-for: ");
            out.extend_from_slice(client.header.as_bytes());
            out.extend_from_slice(b"\r\nx-forwarded-proto: http\r\n");
            if let Some(host) = head.host {
                out.extend_from_slice(b"x-forwarded-host: ");
                out.extend_from_slice(&buf[host]);
                out.extend_from_slice(b"\r\n");
            }
        }
        Some(mut headers) => {
            let host = headers.get(header::HOST).cloned();
            prepare_request(&mut headers, None, Version::HTTP_11, host, client);
            write_headers(&headers, out);
        }
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&buf[head.head_len..head.head_len + head.body_len]);
}

/// A Content-Length value: digits only.
fn decimal(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// The comma-separated tokens of a header value.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

impl Conn {
    /// Reads until the buffer starts with a whole request head.
    async fn next_head(&mut self, stop: &mut watch::Receiver<bool>) -> Next {
        loop {
            if !self.buf.is_empty() {
                match parse_request(&self.buf, &mut self.fields) {
                    Parsed::Request(head) => return Next::Request(head),
                    Parsed::Other => return Next::Other,
                    Parsed::Partial if self.buf.len() >= MAX_HEAD => return Next::Other,
                    Parsed::Partial => {}
                }
            }
            self.buf.reserve(READ_CHUNK);
            let read = if self.buf.is_empty() {
                // Between requests: the daemon's shutdown closes an idle connection.
                tokio::select! {
                    biased;
                    read = self.stream.read_buf(&mut self.buf) => read,
                    _ = stop.wait_for(|s| *s) => return Next::Closed,
                }
            } else {
                self.stream.read_buf(&mut self.buf).await
            };
            if !matches!(read, Ok(n) if n > 0) {
                return Next::Closed;
            }
        }
    }

    /// Answers the request at the front of the buffer.
    async fn exchange(
        &mut self,
        head: RequestHead,
        expiry: Pin<&mut Sleep>,
        stopping: bool,
    ) -> Done {
        let arrived = Instant::now();
        let router = self.router.clone();
        let table = router.table();
        let host: &[u8] = match (&head.host, &head.headers) {
            (Some(host), _) => &self.buf[host.clone()],
            (None, Some(headers)) => headers.get(header::HOST).map_or(b"", |h| h.as_bytes()),
            (None, None) => b"",
        };
        let target = &self.buf[head.target.clone()];
        let route = match self.route.take() {
            Some(route) if route.serves(&table, host, target) => route,
            _ => {
                let host_str = std::str::from_utf8(host).ok().filter(|h| !h.is_empty());
                let target_str = std::str::from_utf8(target).unwrap_or("/");
                match table.resolve(host_str, target_str) {
                    Ok(routed) => Route {
                        table,
                        host: host.to_vec(),
                        target: target.to_vec(),
                        routed,
                    },
                    Err(not_found) => {
                        let answer = Answer::new(
                            StatusCode::NOT_FOUND,
                            "application/json",
                            not_found.body(),
                        );
                        return self.answer_unread(&head, answer, expiry, stopping).await;
                    }
                }
            }
        };
        let done = self
            .routed(&router, head, &route.routed, arrived, expiry, stopping)
            .await;
        self.route = Some(route);
        done
    }

    /// Answers the request at the front of the buffer, routed.
    async fn routed(
        &mut self,
        router: &Router,
        head: RequestHead,
        routed: &Routed,
        arrived: Instant,
        mut expiry: Pin<&mut Sleep>,
        stopping: bool,
    ) -> Done {
        let revision = match ticket::target(router, routed) {
            Ok(revision) => revision,
            Err(answer) => {
                return self
                    .answer_unread(&head, answer, expiry.as_mut(), stopping)
                    .await
            }
        };
        // Replicas that speak h2c are reached through hyper.
        if revision.h2c() {
            return Done::Other;
        }
        let ticket = Ticket::new(router, revision, arrived);
        expiry.as_mut().reset(ticket.deadline());
        let close = head.close || stopping;

        // The body, within the deadline.
        let whole = head.head_len + head.body_len;
        match self.read_request(whole, expiry.as_mut()).await {
            Body::Read => {}
            Body::Closed => return Done::Close,
            Body::Late => {
                return self
                    .answer(Some(&ticket), Answer::request_timeout(), true)
                    .await;
            }
        }

        let head_request = head.method == Method::HEAD;
        let mut upstream_request = std::mem::take(&mut self.request);
        write_upstream_request(
            &mut upstream_request,
            head,
            &routed.path_and_query,
            &self.buf,
            &self.fields,
            &self.client,
        );
        let outgoing = Outgoing {
            routed,
            bytes: &upstream_request,
            whole,
            head_request,
            close,
        };
        let done = self.send(&outgoing, router, ticket, expiry).await;
        self.request = upstream_request;
        done
    }

    /// Sends the request to a replica of its ticket's revision (once it has a slot there)
    /// and relays the answer.
    async fn send(
        &mut self,
        outgoing: &Outgoing<'_>,
        router: &Router,
        mut ticket: Ticket,
        mut expiry: Pin<&mut Sleep>,
    ) -> Done {
        let Outgoing {
            routed,
            bytes: upstream_request,
            head_request,
            close,
            ..
        } = outgoing;
        let (head_request, close) = (*head_request, *close);
        // The client's request, kept until it has a slot on a replica that speaks HTTP/1.1.
        let mut request = Some(self.buf.split_to(outgoing.whole));

        // Retry only what never reached a replica: a refused connection, a kept-alive
        // connection the replica had closed before taking the request, or a new connection
        // that the dead replica's published port (Docker's proxy) accepted and closed
        // without an answer.
        loop {
            let permit = tokio::select! {
                biased;
                permit = ticket.permit(router, routed, expiry.as_mut()) => permit,
                () = client_gone(&self.stream, &mut self.buf) => return Done::Close,
            };
            let permit = match permit {
                Ok(permit) => permit,
                Err(answer) => return self.answer(Some(&ticket), answer, close).await,
            };
            if ticket.revision().h2c() {
                // It followed its component to a revision that speaks h2c: hyper takes the
                // connection, the request first.
                drop((permit, ticket));
                let Some(mut again) = request else {
                    let answer = Answer::error(
                        StatusCode::BAD_GATEWAY,
                        "the revision changed to HTTP/2 while the request was tried again",
                    );
                    return self.answer(None, answer, true).await;
                };
                again.unsplit(std::mem::take(&mut self.buf));
                self.buf = again;
                return Done::Other;
            }
            // The client's buffer is its own again: no copy when it grows.
            request = None;
            let addr = permit.addr();
            let (mut upstream, fresh) = match router.connections.take_plain(addr) {
                Some(upstream) => (upstream, false),
                None => match Plain::connect(addr).await {
                    Ok(upstream) => (upstream, true),
                    Err(e) => {
                        ticket.refused(&permit, &e);
                        continue;
                    }
                },
            };
            let written = tokio::select! {
                biased;
                written = upstream.stream.write_all(upstream_request) => written,
                () = expiry.as_mut() => {
                    return self.answer(Some(&ticket), Answer::request_timeout(), close).await;
                }
            };
            if let Err(e) = written {
                if !fresh {
                    // The replica had closed the kept-alive connection: not taken.
                    continue;
                }
                if ticket.try_again(&permit) {
                    continue;
                }
                let answer = ticket.failed(&permit, &e);
                return self.answer(Some(&ticket), answer, close).await;
            }

            let mut response = match self
                .response_head(&mut upstream, head_request, close, expiry.as_mut())
                .await
            {
                Head::Ready(response) => response,
                Head::ClientGone => return Done::Close,
                Head::TimedOut => {
                    return self
                        .answer(Some(&ticket), Answer::request_timeout(), close)
                        .await;
                }
                Head::Ended(e) => {
                    // Nothing came back on a new connection: the request never reached a
                    // replica.
                    if fresh && upstream.buf.is_empty() && ticket.try_again(&permit) {
                        continue;
                    }
                    let answer = ticket.failed(&permit, &e);
                    return self.answer(Some(&ticket), answer, close).await;
                }
                Head::Invalid(why) => {
                    let answer = ticket.failed(&permit, &why);
                    return self.answer(Some(&ticket), answer, close).await;
                }
            };
            ticket
                .revision()
                .metrics
                .answered(response.status.as_u16(), ticket.arrived().elapsed());
            let counted = ticket.into_counted();
            let whole = self.relay(&mut upstream, &mut response, expiry).await;
            if whole && response.reusable && upstream.buf.is_empty() {
                router.connections.give_back_plain(addr, upstream);
            }
            drop((permit, counted));
            return if whole && !response.close {
                Done::KeepAlive
            } else {
                Done::Close
            };
        }
    }

    /// Reads the replica's answer head; informational answers (1xx) are passed over, as
    /// hyper does.
    async fn response_head(
        &mut self,
        upstream: &mut Plain,
        head_request: bool,
        close: bool,
        mut expiry: Pin<&mut Sleep>,
    ) -> Head {
        loop {
            match parse_response(&upstream.buf, head_request, close, &mut self.out) {
                Response::Head(response) => return Head::Ready(response),
                Response::Informational(n) => {
                    upstream.buf.advance(n);
                    continue;
                }
                Response::Invalid(why) => return Head::Invalid(why),
                Response::Partial => {}
            }
            let read = tokio::select! {
                biased;
                read = upstream.read() => read,
                () = expiry.as_mut() => return Head::TimedOut,
                () = client_gone(&self.stream, &mut self.buf) => return Head::ClientGone,
            };
            match read {
                Ok(0) => {
                    return Head::Ended(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed before message completed",
                    ))
                }
                Ok(_) => {}
                Err(e) => return Head::Ended(e),
            }
        }
    }

    /// Passes the answer to the client as it arrives, head first; true when its body came
    /// whole (false: cut by the deadline, the client or the replica).
    async fn relay(
        &mut self,
        upstream: &mut Plain,
        response: &mut ResponseHead,
        mut expiry: Pin<&mut Sleep>,
    ) -> bool {
        let Ok(n) = response.framing.take(&upstream.buf[response.len..]) else {
            return false;
        };
        let first = response.len + n;
        let sent = if response.rebuilt {
            self.out
                .extend_from_slice(&upstream.buf[response.len..first]);
            write_within(&mut self.stream, &self.out, expiry.as_mut()).await
        } else {
            write_within(&mut self.stream, &upstream.buf[..first], expiry.as_mut()).await
        };
        upstream.buf.advance(first);
        if !sent {
            return false;
        }
        while !response.framing.ended() {
            let read = tokio::select! {
                biased;
                read = upstream.read() => read,
                () = expiry.as_mut() => return false,
                () = client_gone(&self.stream, &mut self.buf) => return false,
            };
            match read {
                Ok(n) if n > 0 => {}
                // A body that lasts until the replica closes has ended.
                Ok(_) => return matches!(response.framing, Framing::UntilClose),
                Err(_) => return false,
            }
            let Ok(n) = response.framing.take(&upstream.buf) else {
                return false;
            };
            if !write_within(&mut self.stream, &upstream.buf[..n], expiry.as_mut()).await {
                return false;
            }
            upstream.buf.advance(n);
        }
        true
    }

    /// Answers a request whose body may not have been read: the connection stays open only
    /// when the whole request is in the buffer (it is then passed over).
    async fn answer_unread(
        &mut self,
        head: &RequestHead,
        answer: Answer,
        mut expiry: Pin<&mut Sleep>,
        stopping: bool,
    ) -> Done {
        // The rest of the body is read first (it is small on this path): closing with it
        // unread would reset the connection, and the client could lose the answer.
        let whole = head.head_len + head.body_len;
        expiry.as_mut().reset(Instant::now() + UNREAD_BODY_LIMIT);
        let read = match self.read_request(whole, expiry).await {
            Body::Read => true,
            Body::Closed => return Done::Close,
            Body::Late => {
                debug!(
                    limit = ?UNREAD_BODY_LIMIT,
                    "the rest of a request body did not come; answering, then closing"
                );
                false
            }
        };
        if read {
            self.buf.advance(whole);
        }
        self.answer(None, answer, head.close || stopping || !read)
            .await
    }

    /// Reads until the buffer holds the whole request (`whole` bytes), unless `expiry`
    /// comes first.
    async fn read_request(&mut self, whole: usize, mut expiry: Pin<&mut Sleep>) -> Body {
        while self.buf.len() < whole {
            self.buf.reserve(whole - self.buf.len());
            tokio::select! {
                biased;
                read = self.stream.read_buf(&mut self.buf) => {
                    if !matches!(read, Ok(n) if n > 0) {
                        return Body::Closed;
                    }
                }
                () = expiry.as_mut() => return Body::Late,
            }
        }
        Body::Read
    }

    /// Writes one of the router's own answers; it counts in the ticket's revision's
    /// metrics when there is one.
    async fn answer(&mut self, ticket: Option<&Ticket>, answer: Answer, close: bool) -> Done {
        if let Some(ticket) = ticket {
            ticket
                .revision()
                .metrics
                .answered(answer.status.as_u16(), ticket.arrived().elapsed());
        }
        self.out.clear();
        status_line(answer.status, &mut self.out);
        self.out.extend_from_slice(b"content-type: ");
        self.out.extend_from_slice(answer.content_type.as_bytes());
        self.out.extend_from_slice(b"\r\ncontent-length: ");
        self.out
            .extend_from_slice(answer.body.len().to_string().as_bytes());
        self.out.extend_from_slice(b"\r\n");
        if answer.retry_after {
            self.out.extend_from_slice(b"retry-after: ");
            self.out.extend_from_slice(RETRY_AFTER_SECONDS.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        if close {
            self.out.extend_from_slice(b"connection: close\r\n");
        }
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(&answer.body);
        match self.stream.write_all(&self.out).await {
            Ok(()) if !close => Done::KeepAlive,
            _ => Done::Close,
        }
    }
}

/// Writes `bytes` to the client unless `expiry` comes first; false when they did not all go.
async fn write_within(stream: &mut TcpStream, bytes: &[u8], expiry: Pin<&mut Sleep>) -> bool {
    tokio::select! {
        biased;
        written = stream.write_all(bytes) => written.is_ok(),
        () = expiry => false,
    }
}

/// What waiting for an answer's head came to.
enum Head {
    Ready(ResponseHead),
    ClientGone,
    TimedOut,
    /// The connection ended (or broke) first.
    Ended(io::Error),
    Invalid(String),
}

/// A replica's answer head, parsed from the front of its connection's buffer.
struct ResponseHead {
    status: StatusCode,
    /// Its length in the buffer.
    len: usize,
    /// Where its body ends.
    framing: Framing,
    /// It was rebuilt into the connection's `out` (fields that are hop-by-hop dropped, this
    /// hop's framing and `connection: close` said); otherwise it goes as it came.
    rebuilt: bool,
    /// The replica keeps the connection open after this answer.
    reusable: bool,
    /// The client connection closes after this answer.
    close: bool,
}

enum Response {
    Partial,
    /// An informational (1xx) answer of this many bytes, which the final answer follows.
    Informational(usize),
    Head(ResponseHead),
    Invalid(String),
}

/// The answer head at the front of `buf`. `close` says the client connection closes after
/// it; a head that cannot go as it came is rebuilt into `out`.
fn parse_response(buf: &[u8], head_request: bool, close: bool, out: &mut Vec<u8>) -> Response {
    if buf.is_empty() {
        return Response::Partial;
    }
    let mut slots = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Response::Partial,
        Ok(httparse::Status::Partial) => return Response::Invalid("answer head too large".into()),
        Err(e) => return Response::Invalid(format!("invalid answer: {e}")),
    };
    let Some(status) = res.code.and_then(|c| StatusCode::from_u16(c).ok()) else {
        return Response::Invalid("invalid status code".into());
    };
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Response::Invalid("switched protocols unasked".into());
    }
    if status.is_informational() {
        return Response::Informational(len);
    }
    let http11 = res.version == Some(1);
    let mut length = None;
    let mut transfer_encoding = None;
    let mut replica_closes = !http11;
    let mut hop_by_hop = false;
    for field in res.headers.iter() {
        if field.name.eq_ignore_ascii_case("content-length") {
            match decimal(field.value) {
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                _ => return Response::Invalid("invalid content-length".into()),
            }
        } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked when it is the last coding.
            transfer_encoding = tokens(field.value)
                .last()
                .map(|t| t.eq_ignore_ascii_case(b"chunked"));
        } else if field.name.eq_ignore_ascii_case("connection") {
            for token in tokens(field.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    replica_closes = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    replica_closes = false;
                }
            }
        }
        hop_by_hop |= is_hop_by_hop(field.name);
    }
    let framing =
        if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Empty
        } else if let Some(chunked) = transfer_encoding {
            if chunked {
                Framing::Chunked(Chunks::default())
            } else {
                Framing::UntilClose
            }
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
    let until_close = matches!(framing, Framing::UntilClose);
    let close = close || until_close;
    let rebuilt = hop_by_hop || close || !http11;
    if rebuilt {
        let mut headers = HeaderMap::with_capacity(res.headers.len());
        for field in res.headers.iter() {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(field.name.as_bytes()),
                HeaderValue::from_bytes(field.value),
            ) else {
                return Response::Invalid(format!("invalid header field {:?}", field.name));
            };
            headers.append(name, value);
        }
        remove_hop_by_hop(&mut headers);
        out.clear();
        status_line(status, out);
        write_headers(&headers, out);
        if matches!(framing, Framing::Chunked(_)) {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
    Response::Head(ResponseHead {
        status,
        len,
        framing,
        rebuilt,
        reusable: !replica_closes && !until_close,
        close,
    })
}

/// Where an answer's body ends (RFC 9112 §6.3).
#[derive(Debug)]
enum Framing {
    /// No body (an answer to HEAD, 204, 304).
    Empty,
    /// This many bytes still to come.
    Length(u64),
    Chunked(Chunks),
    /// Until the replica closes the connection.
    UntilClose,
}

impl Framing {
    /// How many of `bytes` (the next ones of the body) belong to this answer.
    fn take(&mut self, bytes: &[u8]) -> Result<usize, &'static str> {
        match self {
            Framing::Empty => Ok(0),
            Framing::Length(left) => {
                let n = (*left).min(bytes.len() as u64);
                *left -= n;
                Ok(n as usize)
            }
            Framing::Chunked(chunks) => chunks.take(bytes),
            Framing::UntilClose => Ok(bytes.len()),
        }
    }

    fn ended(&self) -> bool {
        match self {
            Framing::Empty => true,
            Framing::Length(left) => *left == 0,
            Framing::Chunked(chunks) => *chunks == Chunks::Ended,
            Framing::UntilClose => false,
        }
    }
}

/// Where a chunked body is (RFC 9112 §7.1): it is passed on as it is, and read only to
/// find its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunks {
    /// In a chunk size line: the size so far and its digits.
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size, until the line ends (extensions).
    Extension {
        size: u64,
    },
    SizeLf {
        size: u64,
    },
    /// In a chunk's data: this many bytes left.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    Trailer,
    EndLf,
    Ended,
}

impl Default for Chunks {
    fn default() -> Self {
        Chunks::Size { size: 0, digits: 0 }
    }
}

impl Chunks {
    /// Consumes `bytes` up to the end of the body; how many belong to it.
    fn take(&mut self, bytes: &[u8]) -> Result<usize, &'static str> {
        let mut i = 0;
        while i < bytes.len() && *self != Chunks::Ended {
            if let Chunks::Data(left) = *self {
                let n = left.min((bytes.len() - i) as u64);
                i += n as usize;
                *self = if n == left {
                    Chunks::DataCr
                } else {
                    Chunks::Data(left - n)
                };
                continue;
            }
            let b = bytes[i];
            i += 1;
            *self = match (*self, b) {
                (Chunks::Size { size, digits }, _) if b.is_ascii_hexdigit() => {
                    if digits >= 15 {
                        return Err("chunk size too large");
                    }
                    let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                    Chunks::Size {
                        size: size * 16 + digit,
                        digits: digits + 1,
                    }
                }
                (Chunks::Size { size, digits }, b';' | b' ' | b'\t') if digits > 0 => {
                    Chunks::Extension { size }
                }
                (Chunks::Size { size, digits }, b'\r') if digits > 0 => Chunks::SizeLf { size },
                (Chunks::Extension { size }, b'\r') => Chunks::SizeLf { size },
                (Chunks::Extension { size }, _) => Chunks::Extension { size },
                (Chunks::SizeLf { size: 0 }, b'\n') => Chunks::TrailerStart,
                (Chunks::SizeLf { size }, b'\n') => Chunks::Data(size),
                (Chunks::DataCr, b'\r') => Chunks::DataLf,
                (Chunks::DataLf, b'\n') => Chunks::default(),
                (Chunks::TrailerStart, b'\r') => Chunks::EndLf,
                (Chunks::TrailerStart | Chunks::Trailer, b'\n') => Chunks::TrailerStart,
                (Chunks::TrailerStart | Chunks::Trailer, _) => Chunks::Trailer,
                (Chunks::EndLf, b'\n') => Chunks::Ended,
                _ => return Err("invalid chunked body"),
            };
        }
        Ok(i)
    }
}

/// `HTTP/1.1 <code> <reason>\r\n`.
fn status_line(status: StatusCode, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `name: value\r\n` for each field.
fn write_headers(headers: &HeaderMap, out: &mut Vec<u8>) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Ends when the client has gone (closed or reset its connection). What it sends meanwhile
/// (its next requests, pipelined) is kept in `buf`; once that holds a whole head's worth,
/// it stops looking.
async fn client_gone(stream: &TcpStream, buf: &mut BytesMut) {
    loop {
        if buf.len() >= MAX_HEAD {
            return std::future::pending().await;
        }
        if stream.readable().await.is_err() {
            return;
        }
        buf.reserve(READ_CHUNK);
        match stream.try_read_buf(buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// A kept-alive HTTP/1.1 connection to a replica and what was read from it.
pub(crate) struct Plain {
    stream: TcpStream,
    buf: BytesMut,
}

impl Plain {
    async fn connect(addr: SocketAddr) -> io::Result<Plain> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        Ok(Plain {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
        })
    }

    async fn read(&mut self) -> io::Result<usize> {
        self.buf.reserve(READ_CHUNK);
        self.stream.read_buf(&mut self.buf).await
    }
}

impl Reusable for Plain {
    /// Closed by the replica (or sending what nobody asked for): either way not usable.
    fn ended(&mut self, cx: &mut Context<'_>) -> bool {
        match self.stream.poll_read_ready(cx) {
            Poll::Pending => false,
            Poll::Ready(Err(_)) => true,
            Poll::Ready(Ok(())) => {
                let mut byte = [0u8; 1];
                !matches!(self.stream.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }
}

/// The client connection for hyper: first what this path had read, then the socket.
struct Rewind {
    read: BytesMut,
    stream: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read[..n]);
            self.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> (Parsed, Vec<u8>) {
        let mut fields = Vec::new();
        let parsed = parse_request(text.as_bytes(), &mut fields);
        (parsed, fields)
    }

    fn head(text: &str) -> (RequestHead, Vec<u8>) {
        match request(text) {
            (Parsed::Request(head), fields) => (head, fields),
            (Parsed::Partial, _) => panic!("partial: {text:?}"),
            (Parsed::Other, _) => panic!("not for this path: {text:?}"),
        }
    }

    #[test]
    fn plain_requests_are_taken_and_the_rest_goes_to_hyper() {
        let (h, _) =
            head("POST /v1/models/m:predict HTTP/1.1\r\nHost: m\r\nContent-Length: 2\r\n\r\n{}");
        assert_eq!((h.body_len, h.close), (2, false));
        assert!(
            h.headers.is_none(),
            "nothing to change: passed on as it came"
        );
        let (h, _) = head("GET / HTTP/1.1\r\nHost: m\r\nConnection: keep-alive, close\r\n\r\n");
        assert!(h.close);
        assert!(h.headers.is_some(), "Connection is hop-by-hop: prepared");
        let (h, _) = head("GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n");
        assert!(h.headers.is_some(), "forwarding fields to extend: prepared");
        let (h, _) = head("GET / HTTP/1.1\r\naccept: */*\r\n\r\n");
        assert!(h.headers.is_some(), "no Host: prepared (HTTP/2-style)");

        assert!(matches!(
            request("GET / HTTP/1.1\r\nHost: m\r\n").0,
            Parsed::Partial
        ));
        for other in [
            "GET / HTTP/1.0\r\nHost: m\r\n\r\n",
            "GET http://m/ HTTP/1.1\r\nHost: m\r\n\r\n",
            "CONNECT m:80 HTTP/1.1\r\nHost: m\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: m\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: m\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: m\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: m\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: m\r\nContent-Length: 1048577\r\n\r\n",
            "GET / HTTP/1.1\r\nHo st: m\r\n\r\n",
        ] {
            assert!(matches!(request(other).0, Parsed::Other), "{other:?}");
        }
    }

    /// The fields of a request head, lower-cased, in order.
    fn fields_of(bytes: &[u8]) -> (String, Vec<(String, String)>) {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let (head, _) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let line = lines.next().unwrap().to_string();
        let mut fields: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap();
                (n.to_ascii_lowercase(), v.to_string())
            })
            .collect();
        fields.sort();
        (line, fields)
    }

    /// The head written as it came (with the forwarding fields added) says what
    /// `prepare_request` would have made of the same fields.
    #[test]
    fn a_plain_head_gets_what_prepare_request_would_give_it() {
        let text = "POST /serving/default/m/v1/models/m:predict?x=1 HTTP/1.1\r\nHost: m.default.localhost:8080\r\nContent-Type: application/json\r\nX-User: a\r\nContent-Length: 2\r\n\r\n{}";
        let client = Client::new("127.0.0.9:5555".parse().unwrap());
        let (plain, fields) = head(text);
        assert!(plain.headers.is_none());
        let mut written = Vec::new();
        write_upstream_request(
            &mut written,
            plain,
            "/v1/models/m:predict?x=1",
            text.as_bytes(),
            &fields,
            &client,
        );

        let (mut prepared, fields) = head(text);
        let mut headers = HeaderMap::new();
        for line in text.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
            let (n, v) = line.split_once(": ").unwrap();
            headers.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        prepared.headers = Some(headers);
        let mut expected = Vec::new();
        write_upstream_request(
            &mut expected,
            prepared,
            "/v1/models/m:predict?x=1",
            text.as_bytes(),
            &fields,
            &client,
        );

        assert_eq!(fields_of(&written), fields_of(&expected));
        assert!(written.ends_with(b"\r\n\r\n{}"));
        let (line, fields) = fields_of(&written);
        assert_eq!(line, "POST /v1/models/m:predict?x=1 HTTP/1.1");
        for (name, value) in [
            ("x-forwarded-for", "127.0.0.9"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "m.default.localhost:8080"),
            ("host", "m.default.localhost:8080"),
        ] {
            assert!(
                fields.contains(&(name.into(), value.into())),
                "{name} in {fields:?}"
            );
        }
    }

    fn response(text: &str, head_request: bool, close: bool) -> (ResponseHead, String) {
        let mut out = Vec::new();
        match parse_response(text.as_bytes(), head_request, close, &mut out) {
            Response::Head(head) => (head, String::from_utf8(out).unwrap()),
            Response::Partial => panic!("partial"),
            Response::Informational(_) => panic!("informational"),
            Response::Invalid(why) => panic!("invalid: {why}"),
        }
    }

    #[test]
    fn answer_heads_go_as_they_came_unless_this_hop_has_to_change_them() {
        let (h, _) = response(
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            false,
            false,
        );
        assert!(!h.rebuilt && h.reusable && !h.close);
        assert!(matches!(h.framing, Framing::Length(2)));

        let (h, out) = response(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, x-secret\r\nx-secret: 1\r\nKeep-Alive: timeout=5\r\nx-model: m\r\n\r\n",
            false,
            false,
        );
        assert!(h.rebuilt && h.reusable);
        assert!(matches!(h.framing, Framing::Chunked(_)));
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nx-model: m\r\ntransfer-encoding: chunked\r\n\r\n"
        );

        // No length: the body lasts until the replica closes, and so does the client's
        // connection.
        let (h, out) = response(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n",
            false,
            false,
        );
        assert!(h.rebuilt && h.close && !h.reusable);
        assert!(matches!(h.framing, Framing::UntilClose));
        assert!(out.ends_with("connection: close\r\n\r\n"), "{out}");

        // HEAD, 204 and 304 have no body, whatever they say.
        for (text, head_request) in [
            ("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true),
            ("HTTP/1.1 204 No Content\r\n\r\n", false),
            (
                "HTTP/1.1 304 Not Modified\r\ncontent-length: 42\r\n\r\n",
                false,
            ),
        ] {
            let (h, _) = response(text, head_request, false);
            assert!(h.framing.ended(), "{text:?}");
        }

        // HTTP/1.0 replicas close unless they say keep-alive; the client gets HTTP/1.1.
        let (h, out) = response("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", false, false);
        assert!(h.rebuilt && !h.reusable);
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));

        let mut out = Vec::new();
        assert!(matches!(
            parse_response(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n",
                false,
                false,
                &mut out
            ),
            Response::Informational(25)
        ));
        assert!(matches!(
            parse_response(
                b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
                false,
                false,
                &mut out
            ),
            Response::Invalid(_)
        ));
    }

    #[test]
    fn a_chunked_body_ends_where_it_ends_however_it_is_cut() {
        let body =
            b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\n\r\n";
        let mut next = b"HTTP/1.1 200 OK".to_vec();
        let mut all = body.to_vec();
        all.append(&mut next);
        for cut in 0..=body.len() {
            let mut chunks = Chunks::default();
            let first = chunks.take(&all[..cut]).unwrap();
            assert_eq!(first, cut, "everything before the end belongs to the body");
            let second = chunks.take(&all[cut..]).unwrap();
            assert_eq!(first + second, body.len(), "cut at {cut}");
            assert_eq!(chunks, Chunks::Ended);
        }
        for bad in [
            &b"x\r\n"[..],
            b"5\r\nhelloX",
            b"\r\n",
            b"fffffffffffffffff\r\n",
        ] {
            assert!(Chunks::default().take(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_length_takes_only_its_bytes() {
        let mut framing = Framing::Length(5);
        assert_eq!(framing.take(b"abc").unwrap(), 3);
        assert!(!framing.ended());
        assert_eq!(framing.take(b"deNEXT").unwrap(), 2);
        assert!(framing.ended());
    }
}
