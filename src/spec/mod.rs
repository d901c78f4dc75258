//! The InferenceService model: parsing, validation and normalisation.
//!
//! Everything here is pure: functions take bytes, paths and settings as values and return
//! values. Nothing reads a clock, the file system or the network.

pub mod annotations;
pub mod autoscaling;
pub mod catalog;
pub mod diagnostic;
pub mod duration;
pub mod normalize;
pub mod objects;
pub mod quantity;
pub mod runtime;
pub mod types;
pub mod v1alpha2;
pub mod validate;
pub mod yaml;
