//! A small HTTP/1.1 file server on loopback for the download tests.
//!
//! [`start`] serves a fixed set of [`Route`]s (a path and what it answers: a body, or a
//! redirect) on a free port of 127.0.0.1, and counts what it was asked: [`Files::hits`] per
//! path, [`Files::bytes_sent`] of body per path, [`Files::requests`] with their headers, so a
//! test can assert that a second download sent nothing. Body routes answer GET and HEAD, a
//! single `Range: bytes=...` with 206 (416 when unsatisfiable), and `If-None-Match` /
//! `If-Modified-Since` with 304 when they match the route's ETag / Last-Modified. A route can
//! send its body slowly, in chunks with a pause between them, and drop the connection after
//! some bytes (a download killed midway), or claim a Content-Length its body does not have.
//! Everything stops when the [`Files`] is dropped.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// What a body route says its length is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Length {
    /// `Content-Length` of the body actually sent (the default).
    Exact,
    /// No `Content-Length`: the body goes chunked.
    Omitted,
    /// `Content-Length: N` whatever the body is: more than the body makes a truncated reply
    /// (the connection closes early).
    Claimed(u64),
}

/// How a body is sent: `chunk` bytes at a time with `pause` between chunks, and, with
/// `drop_after`, the connection cut once that many body bytes were sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pace {
    pub chunk: usize,
    pub pause: Duration,
    pub drop_after: Option<usize>,
}

#[derive(Clone, Debug)]
enum Reply {
    Body {
        status: u16,
        content_type: String,
        body: Bytes,
        etag: Option<String>,
        last_modified: Option<String>,
        length: Length,
        pace: Option<Pace>,
        headers: Vec<(String, String)>,
    },
    Redirect {
        status: u16,
        location: String,
    },
}

/// One path and what it answers.
#[derive(Clone, Debug)]
pub struct Route {
    pub path: String,
    reply: Reply,
}

impl Route {
    /// Answers `status` with `body` as `content_type`.
    pub fn body(path: &str, status: u16, content_type: &str, body: impl Into<Bytes>) -> Route {
        Route {
            path: path.to_string(),
            reply: Reply::Body {
                status,
                content_type: content_type.to_string(),
                body: body.into(),
                etag: None,
                last_modified: None,
                length: Length::Exact,
                pace: None,
                headers: vec![],
            },
        }
    }

    /// `200 OK` with `body` as `content_type`.
    pub fn ok(path: &str, content_type: &str, body: impl Into<Bytes>) -> Route {
        Route::body(path, 200, content_type, body)
    }

    /// Answers `status` (301, 302, 303, 307, 308) with `Location: location` (absolute, or a
    /// path on this server).
    pub fn redirect(path: &str, status: u16, location: &str) -> Route {
        Route {
            path: path.to_string(),
            reply: Reply::Redirect {
                status,
                location: location.to_string(),
            },
        }
    }

    fn body_mut(&mut self) -> &mut Reply {
        assert!(
            matches!(self.reply, Reply::Body { .. }),
            "{}: a redirect route has no body options",
            self.path
        );
        &mut self.reply
    }

    /// Sends `ETag: etag` (give it as it goes on the wire, quotes included: `"\"v1\""`).
    pub fn etag(mut self, value: &str) -> Route {
        if let Reply::Body { etag, .. } = self.body_mut() {
            *etag = Some(value.to_string());
        }
        self
    }

    /// Sends `Last-Modified: http_date` (e.g. `Wed, 21 Oct 2015 07:28:00 GMT`).
    pub fn last_modified(mut self, http_date: &str) -> Route {
        if let Reply::Body { last_modified, .. } = self.body_mut() {
            *last_modified = Some(http_date.to_string());
        }
        self
    }

    /// One more response header.
    pub fn header(mut self, name: &str, value: &str) -> Route {
        if let Reply::Body { headers, .. } = self.body_mut() {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }

    /// What `Content-Length` says; see [`Length`].
    pub fn length(mut self, value: Length) -> Route {
        if let Reply::Body { length, .. } = self.body_mut() {
            *length = value;
        }
        self
    }

    /// Sends the body `chunk` bytes at a time, pausing `pause` before each chunk after the
    /// first.
    pub fn slow(mut self, chunk: usize, pause: Duration) -> Route {
        if let Reply::Body { pace, .. } = self.body_mut() {
            let drop_after = pace.as_ref().and_then(|p| p.drop_after);
            *pace = Some(Pace {
                chunk: chunk.max(1),
                pause,
                drop_after,
            });
        }
        self
    }

    /// Cuts the connection once `bytes` of the body were sent, headers having promised the
    /// whole body: the client sees a reply that ends early.
    pub fn drop_after(mut self, bytes: usize) -> Route {
        if let Reply::Body { pace, .. } = self.body_mut() {
            let p = pace.get_or_insert(Pace {
                chunk: 16 * 1024,
                pause: Duration::ZERO,
                drop_after: None,
            });
            p.drop_after = Some(bytes);
        }
        self
    }
}

/// One request the server got.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    /// The status it was answered with.
    pub status: u16,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Route>>,
    seen: Mutex<Vec<Seen>>,
    sent: Mutex<HashMap<String, usize>>,
}

/// A running file server; stops on drop.
pub struct Files {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base: String,
    pub port: u16,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

/// Starts serving `routes` on a free loopback port.
pub async fn start(routes: Vec<Route>) -> Files {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port for the file server");
    let port = listener.local_addr().expect("its address").port();
    let state = Arc::new(State::default());
    for route in routes {
        state
            .routes
            .lock()
            .unwrap()
            .insert(route.path.clone(), route);
    }
    let shared = state.clone();
    let server = tokio::spawn(async move {
        // Dropped (so every connection aborted) when the server task is aborted.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = shared.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(respond(&state, req)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
            while connections.try_join_next().is_some() {}
        }
    });
    Files {
        base: format!("http://127.0.0.1:{port}"),
        port,
        state,
        server,
    }
}

impl Files {
    /// The URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// How many requests (any method) came for `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.state
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .count()
    }

    /// The requests that came for `path`, in order.
    pub fn requests(&self, path: &str) -> Vec<Seen> {
        self.state
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }

    /// Every request, in order.
    pub fn all_requests(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// How many body bytes were handed to the connection for `path` (all requests together).
    pub fn bytes_sent(&self, path: &str) -> usize {
        self.state
            .sent
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Adds a route, or replaces the one with its path (e.g. a new version upstream).
    pub fn set(&self, route: Route) {
        self.state
            .routes
            .lock()
            .unwrap()
            .insert(route.path.clone(), route);
    }

    /// Removes the route for `path`: it answers 404 from now on.
    pub fn remove(&self, path: &str) {
        self.state.routes.lock().unwrap().remove(path);
    }

    /// Forgets the requests and bytes counted so far.
    pub fn reset_counts(&self) {
        self.state.seen.lock().unwrap().clear();
        self.state.sent.lock().unwrap().clear();
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|n| match n {}).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn respond(state: &Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let route = state.routes.lock().unwrap().get(&path).cloned();
    let response = match route {
        None => text(StatusCode::NOT_FOUND, "not found\n"),
        Some(route) => answer(state, &route, &req),
    };
    state.seen.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        path,
        query: req.uri().query().map(str::to_string),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        status: response.status().as_u16(),
    });
    response
}

fn answer(state: &Arc<State>, route: &Route, req: &Request<Incoming>) -> Response<Body> {
    let (status, content_type, body, etag, last_modified, length, pace, extra) = match &route.reply
    {
        Reply::Redirect { status, location } => {
            let mut response = Response::new(empty());
            *response.status_mut() = StatusCode::from_u16(*status).expect("a valid status");
            response.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_str(location).expect("a valid Location"),
            );
            return response;
        }
        Reply::Body {
            status,
            content_type,
            body,
            etag,
            last_modified,
            length,
            pace,
            headers,
        } => (
            *status,
            content_type,
            body,
            etag,
            last_modified,
            length,
            pace,
            headers,
        ),
    };
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
    };
    let asked = |name: HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());

    let mut response = Response::new(empty());
    let headers = response.headers_mut();
    if let Some(etag) = etag {
        headers.insert(header::ETAG, HeaderValue::from_str(etag).expect("an ETag"));
    }
    if let Some(date) = last_modified {
        headers.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_str(date).expect("a Last-Modified"),
        );
    }

    // Conditional requests: 304 when the client's copy is current.
    if status == 200 {
        let not_modified = match (asked(header::IF_NONE_MATCH), etag) {
            (Some(wanted), Some(etag)) => wanted
                .split(',')
                .map(str::trim)
                .any(|w| w == "*" || w.trim_start_matches("W/") == etag.trim_start_matches("W/")),
            (Some(_), None) => false,
            (None, _) => asked(header::IF_MODIFIED_SINCE)
                .zip(last_modified.as_deref())
                .is_some_and(|(since, modified)| since == modified),
        };
        if not_modified {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            return response;
        }
    }

    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("a Content-Type"),
    );
    for (name, value) in extra {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_str(value).expect("a header value"),
        );
    }
    let mut status = StatusCode::from_u16(status).expect("a valid status");
    let mut slice = body.clone();
    if status == StatusCode::OK {
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        // If-Range: the range only holds for the version the client names.
        let range_holds = asked(header::IF_RANGE)
            .is_none_or(|v| etag.as_deref() == Some(v) || last_modified.as_deref() == Some(v));
        if let Some(range) = asked(header::RANGE).filter(|_| range_holds) {
            match byte_range(range, body.len()) {
                Some(Ok((first, last))) => {
                    status = StatusCode::PARTIAL_CONTENT;
                    slice = body.slice(first..=last);
                    headers.insert(
                        header::CONTENT_RANGE,
                        HeaderValue::from_str(&format!("bytes {first}-{last}/{}", body.len()))
                            .unwrap(),
                    );
                }
                Some(Err(())) => {
                    *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                    response.headers_mut().insert(
                        header::CONTENT_RANGE,
                        HeaderValue::from_str(&format!("bytes */{}", body.len())).unwrap(),
                    );
                    response
                        .headers_mut()
                        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
                    return response;
                }
                None => {} // not a single byte range: serve it all
            }
        }
    }
    *response.status_mut() = status;
    let claimed = match length {
        Length::Exact => Some(slice.len() as u64),
        Length::Omitted => None,
        Length::Claimed(n) => Some(*n),
    };
    // Where the connection is cut: a planned drop, or the end of a body shorter than claimed.
    let mut cut = pace
        .as_ref()
        .and_then(|p| p.drop_after)
        .filter(|&d| d < slice.len());
    if let Some(n) = claimed.and_then(|n| usize::try_from(n).ok()) {
        if n < slice.len() {
            slice = slice.slice(..n); // what hyper would send of it anyway
        } else if n > slice.len() && cut.is_none() {
            cut = Some(slice.len());
        }
    }
    if let Some(n) = claimed {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    if !head {
        *response.body_mut() = paced(state, &route.path, slice, pace.as_ref(), cut);
    }
    response
}

/// A single `bytes=` range over `len` bytes: `None` when it is not one (serve everything),
/// `Some(Err)` when it cannot be satisfied, else the first and last byte, inclusive.
fn byte_range(value: &str, len: usize) -> Option<Result<(usize, usize), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        // The last N bytes.
        let n: usize = last.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let first: usize = first.parse().ok()?;
        let last = if last.is_empty() {
            len.saturating_sub(1)
        } else {
            let last: usize = last.parse().ok()?;
            if last < first {
                return None;
            }
            last.min(len.saturating_sub(1))
        };
        if first >= len {
            return Some(Err(()));
        }
        (first, last)
    };
    Some(Ok(range))
}

/// The body as a stream (so hyper takes the Content-Length set above as it is), paced as the
/// route says, counting the bytes handed over, and with `cut`, the connection dropped once
/// that many bytes were sent.
fn paced(
    state: &Arc<State>,
    path: &str,
    data: Bytes,
    pace: Option<&Pace>,
    cut: Option<usize>,
) -> Body {
    let (chunk, pause) = match pace {
        Some(p) => (p.chunk.max(1), p.pause),
        None => (data.len().max(1), Duration::ZERO),
    };
    let limit = cut.unwrap_or(data.len()).min(data.len());
    let (state, path) = (state.clone(), path.to_string());
    let stream = futures_util::stream::unfold((0usize, false), move |(at, done)| {
        let (state, path, data) = (state.clone(), path.clone(), data.clone());
        async move {
            if done {
                return None;
            }
            if at >= limit {
                cut?;
                // Give hyper a moment to flush what was sent so far (it does while the body is
                // pending), or the last chunk dies in its buffer with the connection.
                tokio::time::sleep(Duration::from_millis(25)).await;
                let err = std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "the test file server drops this download midway on purpose",
                );
                return Some((Err(err), (at, true)));
            }
            if at > 0 && !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            let end = (at + chunk).min(limit);
            *state.sent.lock().unwrap().entry(path).or_default() += end - at;
            Some((Ok(Frame::data(data.slice(at..end))), (end, false)))
        }
    });
    StreamBody::new(stream).boxed()
}
