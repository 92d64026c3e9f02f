//! The browser side: thin adapters that give the core ([`crate::core`]) its I/O.
//!
//! - [`outbox`]: the JS class `Outbox` and the driver loop that runs the engine.
//! - [`store`]: IndexedDB storage: one database per outbox; its transactions are in
//!   `store.js`, one call per batch.
//! - [`records`]: the stored form of a message's metadata and of the flags.
//! - [`views`]: what the JS API hands out (events, stats, listings).
//! - [`convert`]: the small helpers that write and read plain JS objects.
//! - [`enqueue_batch`]: group commit: concurrent `enqueue` calls share transactions.
//! - [`transport`]: fetch (or the app's `transport`) with a timeout, to an [`Outcome`](crate::core::Outcome).
//! - [`timer`]: the one re-armable wake-up timer.
//! - [`connectivity`]: `online` / `offline` events.
//! - [`tabs`], [`leadership`], [`channel`]: many tabs, one sender (Web Locks) and
//!   cross-tab notes (BroadcastChannel).
//! - [`js`]: small JS helpers (strict JSON encoding, globals, randomness).
//! - [`error`]: [`OutboxError`](crate::core::OutboxError) to and from JS values.
//! - [`panic`]: a panic is a bug: where it happened goes to the console.
//! - [`options`]: reading `Outbox.open`'s options.
//! - [`types`]: the hand-written TypeScript declarations.

mod channel;
mod connectivity;
mod convert;
mod enqueue_batch;
mod error;
mod js;
mod leadership;
mod options;
mod outbox;
mod panic;
mod records;
mod store;
mod tabs;
mod timer;
mod transport;
mod types;
mod views;

pub use outbox::Outbox;
#[cfg(not(feature = "std"))]
pub use panic::report_panic;
