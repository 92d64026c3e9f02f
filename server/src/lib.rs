//! `outbox-server`: the reference server for durable-outbox.
//!
//! The browser outbox delivers at least once; this server turns that into exactly one
//! effect by deduplicating on the client's `Idempotency-Key` header (IETF httpapi draft
//! "The Idempotency-Key HTTP Header Field"). The effect (appending to a message log) and
//! the key's stored response are written in one database transaction.
//!
//! # Layout
//! Small one-purpose modules, wired together in [`app`]:
//!
//! - [`config`]: the command line (every flag also from an `OUTBOX_*` environment variable)
//!   and the resolved [`Config`].
//! - [`app`]: shared state and the router (routes, CORS, static files).
//! - [`server`]: binding, startup line, reaper task and graceful shutdown.
//! - [`auth`]: bearer token to tenant.
//! - [`idempotency`]: key validation and the request fingerprint.
//! - [`problem`]: `application/problem+json` errors with stable `type` URIs.
//! - [`handlers`]: one file per resource (messages, the message batch, flags, admin, ops).
//! - [`store`]: the [`Store`] trait the handlers use, and its SQLite implementation.
//! - [`flags`]: the flags document the clients read.
//! - [`chaos`]: fault injection (failures, lost acks, latency).
//! - [`metrics`]: Prometheus text counters and store latency histograms.
//! - [`reaper`]: deletes keys older than the retention period, in batches.

pub mod app;
pub mod auth;
pub mod chaos;
pub mod config;
pub mod flags;
pub mod handlers;
pub mod idempotency;
pub mod metrics;
pub mod problem;
pub mod reaper;
pub mod server;
pub mod store;

pub use app::{router, AppState};
pub use config::{Cli, Config};
pub use server::Server;
pub use store::{sqlite::SqliteStore, Store};
