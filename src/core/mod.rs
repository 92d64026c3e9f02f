//! The platform-free heart of the outbox: a sans-IO state machine.
//!
//! Nothing in here touches a browser, a clock or a random source. Time comes in as
//! `now` (milliseconds since the Unix epoch) and randomness as arguments, so the
//! same code runs under `cargo test` with a virtual clock and in the browser.
//!
//! Layout, one idea per file:
//! - [`config`]: options and feature flags, validated.
//! - [`error`]: the one error type, each variant with a stable code.
//! - [`key`]: idempotency keys: validation and UUIDv7 generation.
//! - [`schedule`]: the retry schedule (exponential backoff, jitter, `Retry-After`).
//! - [`outcome`]: what a send attempt ended in, and the status table that classifies it.
//! - [`http_date`]: HTTP dates, for `Retry-After`.
//! - [`text`]: messages of words and numbers, without `core::fmt`.
//! - [`event`]: the events the engine queues for the app.
//! - [`fifo`]: the queue the engine's events wait in.
//! - [`ordered_set`]: the sorted set under the engine's indexes (smaller than std's B-tree).
//! - [`engine`]: the state machine: per-group ordering, concurrency, the retry cap,
//!   expiry and the dead-letter rules.
//!
//! The driver (in the browser, `crate::browser`; in tests, a simulated network) runs
//! a loop of the same shape as quinn-proto's: call [`Engine::poll_action`] until it
//! returns `None`, carry out each action (persist, send), report results back, and
//! arm one timer for [`Engine::poll_timeout`].

pub mod config;
pub mod engine;
pub mod error;
pub mod event;
mod fifo;
pub(crate) mod http_date;
pub mod key;
mod ordered_set;
pub mod outcome;
pub mod schedule;
pub(crate) mod text;

pub use config::{Config, Flags, FlagsPatch, Jitter};
pub use engine::{
    Action, Admitted, Engine, FlushId, FlushSummary, Settlement, Stats, StoredMessage, Transmit,
};
pub use error::{ErrorCode, OutboxError};
pub use event::{DeadReason, Event, LastError};
pub use outcome::{classify_status, Class, Outcome};

/// Milliseconds since the Unix epoch: the only clock the core knows.
pub type Millis = u64;
