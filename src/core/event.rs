//! Events the engine queues for the app. The driver hands them to JS listeners only
//! after the Rust call that produced them has returned, so a listener can call back
//! into the outbox without re-entering it mid-borrow.

use alloc::string::String;

use super::config::Flags;
use super::Millis;

/// Why a message was moved to the dead-letter store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// The server answered with a permanent failure (a 4xx other than the transient ones).
    Rejected,
    /// `maxAttempts` counted attempts failed.
    MaxAttempts,
    /// The message outlived `maxAgeMs` before it was delivered.
    Expired,
}

/// The last failure of a message, kept with it and shown in the dead-letter store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// The HTTP status, when the server answered.
    pub status: Option<u16>,
    /// What happened, for people.
    pub message: String,
}

/// A state change, as `subscribe` listeners receive it (`{ type: "delivered", ... }`).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A message was committed to storage.
    Enqueued { key: String, group: Option<String> },
    /// A request for a message is going out.
    Sending { key: String, attempt: u32 },
    /// The server acknowledged a message and it left pending storage.
    Delivered {
        key: String,
        group: Option<String>,
        attempts: u32,
        status: u16,
    },
    /// An attempt failed; `counted` says whether it used up one of `maxAttempts`.
    AttemptFailed {
        key: String,
        attempt: u32,
        status: Option<u16>,
        message: String,
        counted: bool,
    },
    /// A message will be retried at `at` (ms since the epoch).
    RetryScheduled {
        key: String,
        at: Millis,
        delay_ms: u64,
    },
    /// A message was moved to the dead-letter store.
    DeadLettered {
        key: String,
        reason: DeadReason,
        last_error: LastError,
    },
    /// A dead letter was moved back to pending, with the same key.
    Redriven { key: String },
    /// A dead letter was deleted.
    Discarded { key: String },
    /// The browser reports it is online; waiting messages are woken.
    Online,
    /// The browser reports it is offline; sends pause.
    Offline,
    /// The retry flags changed.
    FlagsChanged { flags: Flags },
    /// This tab became (`true`) or stopped being (`false`) the one that sends.
    SenderChanged { sender: bool },
    /// Storage failed while recording an outcome; the message stays as stored.
    StorageFailed {
        key: Option<String>,
        message: String,
    },
}
