//! The body of a streamed answer: frames arrive from a task over a channel and are written
//! as soon as they come, so a client (or a router in between) sees each event on time.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame};
use tokio::sync::mpsc;

pub(crate) struct EventStream {
    events: mpsc::Receiver<Bytes>,
}

impl EventStream {
    /// A body and the sender that feeds it; the body ends when the sender is dropped.
    pub(crate) fn channel() -> (mpsc::Sender<Bytes>, EventStream) {
        let (sender, events) = mpsc::channel(1);
        (sender, EventStream { events })
    }
}

impl Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.events
            .poll_recv(cx)
            .map(|event| event.map(|bytes| Ok(Frame::data(bytes))))
    }
}
