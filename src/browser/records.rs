//! How a message's metadata and the flags look in IndexedDB, read and written by hand,
//! for the paths that pass whole records (attempts, outcomes, redrive, flags; opening
//! and enqueue use columns instead, see `store.rs`). The shape is the one serde used to
//! write (camelCase fields, `null` for none), so older records read back the same.

use js_sys::Object;
use wasm_bindgen::JsValue;

use super::convert::{boolean, nullable_number, nullable_str, number, string, whole};
use super::js::{get, set};
use crate::core::text::concat;
use crate::core::{DeadReason, ErrorCode, Flags, LastError, OutboxError, StoredMessage};

/// `{ status?, message }`: `status` is left out when there was no answer.
pub fn last_error_to_js(e: &LastError) -> JsValue {
    let err = Object::new();
    if let Some(status) = e.status {
        set(&err, "status", &status.into());
    }
    set(&err, "message", &e.message.as_str().into());
    err.into()
}

/// A last error, or `null` for none.
pub fn nullable_last_error(e: Option<&LastError>) -> JsValue {
    e.map_or(JsValue::NULL, last_error_to_js)
}

/// Reads a `{ status?, message }`; `None` unless it is an object.
pub fn last_error_from_js(value: &JsValue) -> Option<LastError> {
    value.is_object().then(|| LastError {
        status: whole(value, "status").map(|s| s as u16),
        message: string(value, "message").unwrap_or_default(),
    })
}

/// The JS name of a dead-letter reason.
pub fn reason_str(reason: DeadReason) -> &'static str {
    match reason {
        DeadReason::Rejected => "rejected",
        DeadReason::MaxAttempts => "max-attempts",
        DeadReason::Expired => "expired",
    }
}

/// The stored form of a pending message.
pub fn message_to_js(m: &StoredMessage) -> Object {
    let o = Object::new();
    set(&o, "key", &m.key.as_str().into());
    set(&o, "seq", &number(m.seq));
    set(&o, "group", &nullable_str(m.group.as_deref()));
    set(&o, "createdAt", &number(m.created_at));
    set(&o, "activeSince", &number(m.active_since));
    set(&o, "attempts", &m.attempts.into());
    set(&o, "nextAttemptAt", &nullable_number(m.next_attempt_at));
    set(&o, "lastError", &nullable_last_error(m.last_error.as_ref()));
    set(&o, "bytes", &m.bytes.into());
    o
}

fn unreadable(name: &str) -> OutboxError {
    OutboxError::new(
        ErrorCode::StorageError,
        concat(&["a stored message has no valid ", name]),
    )
}

fn required(record: &JsValue, name: &str) -> Result<u64, OutboxError> {
    whole(record, name).ok_or_else(|| unreadable(name))
}

/// Reads a stored pending message.
pub fn message_from_js(record: &JsValue) -> Result<StoredMessage, OutboxError> {
    Ok(StoredMessage {
        key: string(record, "key").ok_or_else(|| unreadable("key"))?,
        seq: required(record, "seq")?,
        group: string(record, "group"),
        created_at: required(record, "createdAt")?,
        active_since: required(record, "activeSince")?,
        attempts: required(record, "attempts")? as u32,
        next_attempt_at: whole(record, "nextAttemptAt"),
        last_error: last_error_from_js(&get(record, "lastError")),
        bytes: whole(record, "bytes").unwrap_or(0) as u32,
    })
}

/// `{ retryEnabled, retryIntervalMs }`: the stored flags document, and the flags as
/// the app sees them.
pub fn flags_to_js(flags: &Flags) -> JsValue {
    let o = Object::new();
    set(&o, "retryEnabled", &flags.retry_enabled.into());
    set(&o, "retryIntervalMs", &number(flags.retry_interval_ms));
    o.into()
}

/// Reads a flags document; `None` unless both fields are there.
pub fn flags_from_js(value: &JsValue) -> Option<Flags> {
    Some(Flags {
        retry_enabled: boolean(value, "retryEnabled")?,
        retry_interval_ms: whole(value, "retryIntervalMs")?,
    })
}
