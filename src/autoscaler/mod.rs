//! The autoscaler: Knative's KPA, exactly, as pure state machines. Time is an argument
//! (a [`Duration`](std::time::Duration) since an epoch the caller picks); nothing here reads a
//! clock or does I/O.
//!
//! - [`window`]: one-second bucketed windows (linear and weighted-exponential averages) and
//!   the max window behind `scale-down-delay`.
//! - [`decider`]: metric collection, the `Scale()` decision (rate limits, panic mode,
//!   activation scale, burst capacity) and the decider's bookkeeping.
//! - [`kpa`]: what the decision does to the replicas: bounds, initial scale, the
//!   scale-to-zero state machine, whether the router buffers, the Active condition.
//! - [`simulate`]: `gantry simulate`, the what-if tool over all of the above; [`svg`] draws
//!   its runs.
//!
//! The formulas, constants and test tables come from Knative's source, recorded in
//! `knative-autoscaler.md`; `docs/autoscaling.md` explains them for users.

pub mod decider;
pub mod kpa;
pub mod simulate;
pub mod svg;
pub mod window;

pub use decider::{Collector, Decider, DeciderSpec, DeciderStatus, Metric, Stat};
pub use kpa::{Activity, KpaSpec, Mode, PodAutoscaler};
