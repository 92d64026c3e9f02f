//! HTTP handlers, one module per resource.

pub mod admin;
pub mod flags;
pub mod messages;
pub mod ops;
