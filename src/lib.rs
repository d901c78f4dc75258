//! gantry: KServe + Knative Serving for one GPU machine, without Kubernetes.
//!
//! A single daemon watches a folder of KServe `InferenceService` YAML and keeps the desired
//! state of every service current. See `docs/architecture.md` for the map of the code.
//!
//! Code map:
//! - [`spec`]: InferenceService / ServingRuntime types, the one YAML module, validation,
//!   quantities, durations, annotations and normalisation. Pure: no I/O but reading the
//!   bytes it is handed.
//! - [`config`]: the daemon configuration and its documented defaults.
//! - [`watch`]: the folder watcher (notify + periodic resync).
//! - [`api`]: the management API (axum).
//! - [`cli`]: one file per command.

pub mod api;
pub mod cli;
pub mod config;
pub mod gpu;
pub mod reconcile;
pub mod runtime;
pub mod spec;
pub mod store;
pub mod watch;
