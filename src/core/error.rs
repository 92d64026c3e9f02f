//! The one error type of the outbox. Every error carries a stable [`ErrorCode`] that
//! apps can match on; the message is for people and may change.

use alloc::string::String;

use super::text::concat;

use core::fmt;

/// A stable, machine-readable error code. The JS side sees it as `error.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// An option passed to `Outbox.open` is missing or out of range.
    InvalidOptions,
    /// The payload cannot be represented as JSON.
    InvalidPayload,
    /// The payload's JSON is larger than `maxPayloadBytes`.
    PayloadTooLarge,
    /// The idempotency key is empty, too long or has characters outside visible ASCII.
    InvalidKey,
    /// The group is empty or too long.
    InvalidGroup,
    /// A message with this key is already pending or dead.
    DuplicateKey,
    /// The browser refused to store more data.
    QuotaExceeded,
    /// IndexedDB failed in some other way (closed under us, aborted, blocked).
    StorageError,
    /// The outbox was closed.
    Closed,
    /// The environment lacks something the outbox needs (IndexedDB, fetch).
    Unsupported,
}

impl ErrorCode {
    /// The code's stable string, as listed in the TypeScript types.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidOptions => "invalid-options",
            ErrorCode::InvalidPayload => "invalid-payload",
            ErrorCode::PayloadTooLarge => "payload-too-large",
            ErrorCode::InvalidKey => "invalid-key",
            ErrorCode::InvalidGroup => "invalid-group",
            ErrorCode::DuplicateKey => "duplicate-key",
            ErrorCode::QuotaExceeded => "quota-exceeded",
            ErrorCode::StorageError => "storage-error",
            ErrorCode::Closed => "closed",
            ErrorCode::Unsupported => "unsupported",
        }
    }
}

/// An error with a stable code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxError {
    /// What kind of error this is; stable across releases.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

impl OutboxError {
    /// Builds an error from a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        OutboxError {
            code,
            message: message.into(),
        }
    }

    /// `<code>: <message>`, as `Display` shows it (without `core::fmt`, for the wasm).
    pub fn to_text(&self) -> String {
        concat(&[self.code.as_str(), ": ", &self.message])
    }
}

impl fmt::Display for OutboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl core::error::Error for OutboxError {}
