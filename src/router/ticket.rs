//! A request's way to a replica, whichever HTTP path carries it ([`super::proxy`] with hyper,
//! [`super::h1`] for plain HTTP/1.1): its revision, its count in the revision's statistics,
//! its wait for a free slot, what is tried again when a replica fails it, and the short
//! answers the router makes itself.

use std::fmt::Display;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use hyper::StatusCode;
use tokio::time::{Instant, Sleep};
use tracing::{debug, warn};

use super::routes::Routed;
use super::throttler::{Permit, Rejected};
use super::{Revision, Router};

/// How many times a request goes again after new connections closed unanswered.
const MAX_UNANSWERED: u32 = 3;

/// How long a client of a full queue is told to wait before trying again.
pub(crate) const RETRY_AFTER_SECONDS: &str = "1";

/// A short answer the router makes itself (Knative's texts for its errors).
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Bytes,
    /// Whether the client is told to try again in [`RETRY_AFTER_SECONDS`].
    pub retry_after: bool,
}

impl Answer {
    pub fn new(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
        Answer {
            status,
            content_type,
            body: body.into(),
            retry_after: false,
        }
    }

    /// An error in plain text, one line.
    pub fn error(status: StatusCode, message: &str) -> Answer {
        Answer::new(status, "text/plain; charset=utf-8", format!("{message}\n"))
    }

    /// The request's deadline passed before the answer's head, outside the wait for a slot
    /// (there it is the activator's timeout).
    pub fn request_timeout() -> Answer {
        Answer::error(StatusCode::GATEWAY_TIMEOUT, "request timeout")
    }

    fn retry_after(mut self) -> Answer {
        self.retry_after = true;
        self
    }
}

/// Counts a request in its revision's statistics until dropped (the response body ended,
/// or the request failed, or the client went away).
pub(crate) struct Counted {
    revision: Arc<Revision>,
    epoch: std::time::Instant,
}

impl Counted {
    /// Counts a request that arrived at `at`.
    fn new(router: &Router, revision: Arc<Revision>, at: Instant) -> Counted {
        revision.request_in(at.into_std().saturating_duration_since(router.epoch));
        Counted {
            revision,
            epoch: router.epoch,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.revision.request_out(self.epoch.elapsed());
    }
}

/// A routed request on its way to a replica of its component's revision. It is counted
/// from its arrival until the ticket (or the [`Counted`] taken from it) is dropped.
pub(crate) struct Ticket {
    revision: Arc<Revision>,
    counted: Counted,
    arrived: Instant,
    /// The component's `timeout` from the arrival: waiting, the answer and its body.
    deadline: Instant,
    /// Whether the request found no replica ready when it first had to wait (a cold
    /// start); decided once, observed once.
    held_at_zero: Option<bool>,
    unanswered_tries: u32,
    unanswered_by: Option<String>,
}

/// The revision `routed`'s component sends requests to; 503 (with `Retry-After`) while it
/// has none yet.
pub(crate) fn target(router: &Router, routed: &Routed) -> Result<Arc<Revision>, Answer> {
    router.target(routed, fastrand::u32(0..100)).ok_or_else(|| {
        Answer::error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "{}/{} has no {} revision yet",
                routed.namespace,
                routed.service,
                routed.component.as_str()
            ),
        )
        .retry_after()
    })
}

impl Ticket {
    /// A ticket to `revision` (the [`target`] of the request's route) for a request that
    /// arrived at `arrived`.
    pub fn new(router: &Router, revision: Arc<Revision>, arrived: Instant) -> Ticket {
        Ticket {
            deadline: arrived + revision.timeout(),
            counted: Counted::new(router, revision.clone(), arrived),
            revision,
            arrived,
            held_at_zero: None,
            unanswered_tries: 0,
            unanswered_by: None,
        }
    }

    pub fn revision(&self) -> &Arc<Revision> {
        &self.revision
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn arrived(&self) -> Instant {
        self.arrived
    }

    /// The count, which ends when it is dropped.
    pub fn into_counted(self) -> Counted {
        self.counted
    }

    /// A slot on a replica: at once when one is free; otherwise the request waits (a
    /// request at zero pokes the autoscaler first), and while it waits the component's
    /// target may change (a GPU swap hands over to the new revision): the request follows.
    /// 503 with `Retry-After` when the queue is full, 504 at `expiry`. Cancel-safe: a
    /// request dropped while it waits frees its place in the queue.
    pub async fn permit(
        &mut self,
        router: &Router,
        routed: &Routed,
        mut expiry: Pin<&mut Sleep>,
    ) -> Result<Permit, Answer> {
        loop {
            let at_once = self.revision.throttler.acquire().now_or_never();
            let acquired = if let Some(acquired) = at_once {
                Some(Ok(acquired))
            } else {
                // Nothing ready: the autoscaler hears of it now, not at its next tick.
                let at_zero = self.revision.throttler.replicas() == 0;
                if at_zero {
                    router.poke(&self.revision.name);
                }
                self.held_at_zero.get_or_insert(at_zero);
                let mut changes = router.changes();
                let acquire = self.revision.throttler.acquire();
                tokio::pin!(acquire);
                loop {
                    tokio::select! {
                        acquired = &mut acquire => break Some(Ok(acquired)),
                        () = expiry.as_mut() => break Some(Err(())),
                        changed = changes.changed(), if changes.has_changed().is_ok() => {
                            if changed.is_ok()
                                && !router.routes_to(routed, &self.revision.name)
                                && router.target(routed, fastrand::u32(0..100)).is_some()
                            {
                                break None;
                            }
                        }
                    }
                }
            };
            let Some(acquired) = acquired else {
                if let Some(next) = router.target(routed, fastrand::u32(0..100)) {
                    debug!(from = %self.revision.name, to = %next.name, "a waiting request follows its component's new revision");
                    self.counted = Counted::new(router, next.clone(), Instant::now());
                    self.revision = next;
                }
                continue;
            };
            return match acquired {
                Ok(Ok(permit)) => {
                    if self.held_at_zero.replace(false) == Some(true) {
                        self.revision
                            .metrics
                            .cold_start
                            .observe(self.arrived.elapsed());
                    }
                    Ok(permit)
                }
                Ok(Err(Rejected::QueueFull)) => {
                    warn!(revision = %self.revision.name, "queue full: answering 503");
                    Err(Answer::error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "pending request queue full",
                    )
                    .retry_after())
                }
                Err(()) => Err(Answer::error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "activator request timeout",
                )),
            };
        }
    }

    /// The replica refused a new connection: it leaves the routing until its next status
    /// says it is ready, and the request goes elsewhere.
    pub fn refused(&self, permit: &Permit, error: &dyn Display) {
        debug!(replica = %permit.replica(), error = %error, "replica refused the connection; retrying elsewhere");
        self.revision.exclude(permit.replica());
    }

    /// A new connection closed or reset before any answer (what Docker's port proxy does for
    /// a dead container, and what a replica that drops a connection at once looks like):
    /// true when the request, which never reached a replica, goes again. A few times at
    /// most; a replica that does it twice to the same request leaves the routing until its
    /// next status says it is ready.
    pub fn try_again(&mut self, permit: &Permit) -> bool {
        if self.unanswered_tries >= MAX_UNANSWERED {
            return false;
        }
        self.unanswered_tries += 1;
        if self.unanswered_by.as_deref() == Some(permit.replica()) {
            self.revision.exclude(permit.replica());
        }
        self.unanswered_by = Some(permit.replica().to_string());
        debug!(replica = %permit.replica(), "a new connection closed unanswered; trying again");
        true
    }

    /// The replica broke while working on the request: probably gone. It leaves the
    /// routing; the client gets 502.
    pub fn failed(&self, permit: &Permit, error: &dyn Display) -> Answer {
        self.revision.exclude(permit.replica());
        warn!(revision = %self.revision.name, replica = %permit.replica(), error = %error, "replica failed the request");
        Answer::error(StatusCode::BAD_GATEWAY, &format!("replica failed: {error}"))
    }
}
