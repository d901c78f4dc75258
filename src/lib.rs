//! gantry: KServe + Knative Serving for one GPU machine, without Kubernetes.
//!
//! A single daemon watches a folder of KServe `InferenceService` YAML, keeps the desired
//! state of every service current, and runs each one as supervised Docker containers.
//! See `docs/architecture.md` for the map of the code.
//!
//! Code map:
//! - [`spec`]: InferenceService / ServingRuntime types, the one YAML module, validation,
//!   quantities, durations, annotations and normalisation. Pure.
//! - [`config`]: the daemon configuration and its documented defaults.
//! - [`watch`]: the folder watcher (notify + periodic resync) and the catalog it publishes.
//! - [`runtime`]: the container runtime trait, its Docker implementation, and the pure
//!   conversion from a component to a container.
//! - [`router`]: the data plane: routes, per-revision queueing, statistics, forwarding.
//! - [`reconcile`]: revisions, the pure rollout plan, probes, the models replicas wait for,
//!   and the loop that carries it out.
//! - [`storage`]: models: storage URIs, access from Secrets, the config and the environment,
//!   downloads into one shared cache, archives unpacked with guards.
//! - [`store`]: the embedded store (revision history).
//! - [`gpu`], [`scheduler`]: the GPU inventory and placement (in progress).
//! - [`autoscaler`]: Knative's KPA as pure state machines, and `gantry simulate`.
//! - [`api`]: the management API; [`cli`]: one file per command.

pub mod api;
pub mod autoscaler;
pub mod cli;
pub mod config;
pub mod gpu;
pub mod reconcile;
pub mod router;
pub mod runtime;
pub mod scheduler;
pub mod spec;
pub mod storage;
pub mod store;
pub mod watch;
