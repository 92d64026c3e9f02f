//! HTTP handlers, one module per resource.

pub mod admin;
pub mod batch;
pub mod flags;
pub mod messages;
pub mod ops;
