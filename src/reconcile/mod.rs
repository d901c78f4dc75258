//! The reconciler: one level-triggered loop. Folder changes, container events, probe results
//! and timers only wake it; each pass compares the whole desired state with the whole observed
//! state ([`plan::plan`], pure) and carries out the actions ([`executor`]). On start it adopts
//! every healthy container that still matches a desired revision, without restarting it.
//! [`scaling`] runs the autoscaler on the router's traffic and gives the reconciler each
//! revision's replica count.

pub mod executor;
pub mod model;
pub mod plan;
pub mod probe;
pub mod scaling;
pub mod traffic;
