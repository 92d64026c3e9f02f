//! How a message's metadata looks in IndexedDB, read and written by hand: opening an
//! outbox reads every pending record, and enqueue writes one per message, so these two
//! conversions are on the hot paths (serde-wasm-bindgen took most of the time there).
//! The shape is the serde one (camelCase fields, `null` for none), so records written
//! either way read back the same.

use js_sys::{Object, Reflect};
use wasm_bindgen::JsValue;

use crate::core::{DeadReason, ErrorCode, LastError, Millis, OutboxError, StoredMessage};

/// A dead letter as stored: the message as it was when it died, why, and when.
#[derive(Debug, Clone)]
pub struct DeadRecord {
    /// The message (its `lastError` says what failed).
    pub message: StoredMessage,
    /// Why it was dead-lettered.
    pub reason: DeadReason,
    /// When.
    pub dead_at: Millis,
}

fn set(target: &Object, name: &str, value: JsValue) {
    let _ = Reflect::set(target, &name.into(), &value);
}

fn number(value: u64) -> JsValue {
    JsValue::from_f64(value as f64)
}

fn optional(value: Option<u64>) -> JsValue {
    value.map_or(JsValue::NULL, number)
}

/// The stored form of a pending message.
pub fn message_to_js(m: &StoredMessage) -> Object {
    let o = Object::new();
    set(&o, "key", m.key.as_str().into());
    set(&o, "seq", number(m.seq));
    set(
        &o,
        "group",
        m.group.as_deref().map_or(JsValue::NULL, JsValue::from),
    );
    set(&o, "createdAt", number(m.created_at));
    set(&o, "activeSince", number(m.active_since));
    set(&o, "attempts", m.attempts.into());
    set(&o, "nextAttemptAt", optional(m.next_attempt_at));
    let last_error = m.last_error.as_ref().map_or(JsValue::NULL, |e| {
        let err = Object::new();
        if let Some(status) = e.status {
            set(&err, "status", status.into());
        }
        set(&err, "message", e.message.as_str().into());
        err.into()
    });
    set(&o, "lastError", last_error);
    set(&o, "bytes", m.bytes.into());
    o
}

/// How a dead-letter reason is written, in storage and to JS.
pub fn reason_name(reason: DeadReason) -> &'static str {
    match reason {
        DeadReason::Rejected => "rejected",
        DeadReason::MaxAttempts => "max-attempts",
        DeadReason::Expired => "expired",
    }
}

fn field(record: &JsValue, name: &str) -> JsValue {
    Reflect::get(record, &name.into()).unwrap_or(JsValue::UNDEFINED)
}

fn unreadable(name: &str) -> OutboxError {
    OutboxError::new(
        ErrorCode::StorageError,
        format!("a stored message has no valid {name}"),
    )
}

fn whole(record: &JsValue, name: &str) -> Result<u64, OutboxError> {
    field(record, name)
        .as_f64()
        .filter(|v| *v >= 0.0)
        .map(|v| v as u64)
        .ok_or_else(|| unreadable(name))
}

fn maybe_whole(record: &JsValue, name: &str) -> Option<u64> {
    field(record, name)
        .as_f64()
        .filter(|v| *v >= 0.0)
        .map(|v| v as u64)
}

/// Reads a stored pending message.
pub fn message_from_js(record: &JsValue) -> Result<StoredMessage, OutboxError> {
    let last_error = field(record, "lastError");
    let last_error = if last_error.is_object() {
        Some(LastError {
            status: maybe_whole(&last_error, "status").map(|s| s as u16),
            message: field(&last_error, "message")
                .as_string()
                .unwrap_or_default(),
        })
    } else {
        None
    };
    Ok(StoredMessage {
        key: field(record, "key")
            .as_string()
            .ok_or_else(|| unreadable("key"))?,
        seq: whole(record, "seq")?,
        group: field(record, "group").as_string(),
        created_at: whole(record, "createdAt")?,
        active_since: whole(record, "activeSince")?,
        attempts: whole(record, "attempts")? as u32,
        next_attempt_at: maybe_whole(record, "nextAttemptAt"),
        last_error,
        bytes: maybe_whole(record, "bytes").unwrap_or(0) as u32,
    })
}

/// Reads a stored dead letter.
pub fn dead_from_js(record: &JsValue) -> Result<DeadRecord, OutboxError> {
    let reason = match field(record, "reason").as_string().as_deref() {
        Some("rejected") => DeadReason::Rejected,
        Some("max-attempts") => DeadReason::MaxAttempts,
        Some("expired") => DeadReason::Expired,
        _ => return Err(unreadable("reason")),
    };
    Ok(DeadRecord {
        message: message_from_js(record)?,
        reason,
        dead_at: whole(record, "deadAt")?,
    })
}
