//! gantry's example model server: a real (small) model behind KServe's two REST protocols.
//!
//! It exists so that gantry's quick start, integration tests and benchmarks have something
//! real to run: a statically linked binary packed `FROM scratch`, serving an Iris classifier
//! loaded from `/mnt/models` (where gantry, like KServe, mounts a service's model), with knobs
//! that make the behaviours gantry must handle easy to provoke: a slow start, slow requests,
//! streamed responses, a version string that tells two revisions apart, and a count of the
//! highest concurrency seen.
//!
//! Code map:
//! - [`settings`]: command-line flags and environment variables.
//! - [`duration`]: `250ms`, `2s`, `1m30s`, as flags take them.
//! - [`model`]: the classifier file and the arithmetic of a prediction.
//! - [`server`]: the accept loop, graceful shutdown and the concurrency statistics.
//! - `protocol`: routes and bodies of KServe V1 and V2 (Open Inference Protocol) and their
//!   errors; `event_stream`: the body of a streamed (SSE) answer.

pub mod duration;
mod event_stream;
pub mod model;
mod protocol;
pub mod server;
pub mod settings;

pub use protocol::{MAX_BODY_BYTES, VERSION_HEADER};
