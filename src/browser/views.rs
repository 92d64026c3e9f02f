//! What the JS API hands out, built by hand: events, `stats()`, flush summaries and the
//! message listings. The TypeScript declarations in [`super::types`] are the contract:
//! camelCase fields, kebab-case names, `null` for none, and `status` left out of a
//! failure that had no answer.

use js_sys::Object;
use wasm_bindgen::JsValue;

use super::convert::{nullable_number, nullable_str, number};
use super::js::set;
use super::records::{flags_to_js, last_error_to_js, nullable_last_error, reason_str, DeadRecord};
use crate::core::{Engine, Event, FlushSummary, Millis, Stats, StoredMessage};

fn event_type(event: &Event) -> &'static str {
    match event {
        Event::Enqueued { .. } => "enqueued",
        Event::Sending { .. } => "sending",
        Event::Delivered { .. } => "delivered",
        Event::AttemptFailed { .. } => "attempt-failed",
        Event::RetryScheduled { .. } => "retry-scheduled",
        Event::DeadLettered { .. } => "dead-lettered",
        Event::Redriven { .. } => "redriven",
        Event::Discarded { .. } => "discarded",
        Event::Online => "online",
        Event::Offline => "offline",
        Event::FlagsChanged { .. } => "flags-changed",
        Event::SenderChanged { .. } => "sender-changed",
        Event::StorageFailed { .. } => "storage-failed",
    }
}

/// An event as `subscribe` listeners receive it: `{ type, ...fields }`.
pub fn event_to_js(event: &Event) -> JsValue {
    let o = Object::new();
    set(&o, "type", &event_type(event).into());
    let field = |name: &str, value: JsValue| set(&o, name, &value);
    match event {
        Event::Enqueued { key, group } => {
            field("key", key.into());
            field("group", nullable_str(group.as_deref()));
        }
        Event::Sending { key, attempt } => {
            field("key", key.into());
            field("attempt", (*attempt).into());
        }
        Event::Delivered {
            key,
            group,
            attempts,
            status,
        } => {
            field("key", key.into());
            field("group", nullable_str(group.as_deref()));
            field("attempts", (*attempts).into());
            field("status", (*status).into());
        }
        Event::AttemptFailed {
            key,
            attempt,
            status,
            message,
            counted,
        } => {
            field("key", key.into());
            field("attempt", (*attempt).into());
            if let Some(status) = status {
                field("status", (*status).into());
            }
            field("message", message.into());
            field("counted", (*counted).into());
        }
        Event::RetryScheduled { key, at, delay_ms } => {
            field("key", key.into());
            field("at", number(*at));
            field("delayMs", number(*delay_ms));
        }
        Event::DeadLettered {
            key,
            reason,
            last_error,
        } => {
            field("key", key.into());
            field("reason", reason_str(*reason).into());
            field("lastError", last_error_to_js(last_error));
        }
        Event::Redriven { key } | Event::Discarded { key } => field("key", key.into()),
        Event::Online | Event::Offline => {}
        Event::FlagsChanged { flags } => field("flags", flags_to_js(flags)),
        Event::SenderChanged { sender } => field("sender", (*sender).into()),
        Event::StorageFailed { key, message } => {
            field("key", nullable_str(key.as_deref()));
            field("message", message.into());
        }
    }
    o.into()
}

/// What `stats()` returns.
pub fn stats_to_js(s: &Stats) -> JsValue {
    let o = Object::new();
    set(&o, "pending", &number(s.pending as u64));
    set(&o, "inFlight", &number(s.in_flight as u64));
    set(&o, "dead", &number(s.dead as u64));
    set(
        &o,
        "oldestPendingAgeMs",
        &nullable_number(s.oldest_pending_age_ms),
    );
    set(&o, "attempts", &number(s.attempts));
    set(&o, "delivered", &number(s.delivered));
    set(&o, "online", &s.online.into());
    set(&o, "sender", &s.sender.into());
    o.into()
}

/// What `flush()` resolves with.
pub fn summary_to_js(s: &FlushSummary) -> JsValue {
    let o = Object::new();
    set(&o, "attempted", &s.attempted.into());
    set(&o, "delivered", &s.delivered.into());
    set(&o, "failed", &s.failed.into());
    set(&o, "dead", &s.dead.into());
    o.into()
}

/// The fields every message view starts with.
fn message_view(
    key: &str,
    group: Option<&str>,
    created_at: Millis,
    attempts: u32,
    state: &str,
) -> Object {
    let o = Object::new();
    set(&o, "key", &key.into());
    set(&o, "group", &nullable_str(group));
    set(&o, "createdAt", &number(created_at));
    set(&o, "attempts", &attempts.into());
    set(&o, "state", &state.into());
    o
}

/// Adds the payload, parsed from its stored JSON text.
fn with_payload(record: Object, body: &JsValue) -> JsValue {
    let payload =
        js_sys::JSON::parse(&body.as_string().unwrap_or_default()).unwrap_or(JsValue::NULL);
    set(&record, "payload", &payload);
    record.into()
}

/// A pending message as `pending()` lists it, with the engine's live state.
pub fn pending_record(m: &StoredMessage, body: &JsValue, engine: &Engine) -> JsValue {
    let view = engine.view(&m.key);
    let attempts = engine.stored(&m.key).map_or(m.attempts, |s| s.attempts);
    let state = if view.is_some_and(|v| v.in_flight) {
        "in-flight"
    } else {
        "pending"
    };
    let o = message_view(&m.key, m.group.as_deref(), m.created_at, attempts, state);
    let next = view.map_or(m.next_attempt_at, |v| v.next_attempt_at);
    set(&o, "nextAttemptAt", &nullable_number(next));
    set(&o, "lastError", &nullable_last_error(m.last_error.as_ref()));
    with_payload(o, body)
}

/// A dead letter as `deadLetters()` lists it.
pub fn dead_record(d: &DeadRecord, body: &JsValue) -> JsValue {
    let m = &d.message;
    let o = message_view(&m.key, m.group.as_deref(), m.created_at, m.attempts, "dead");
    set(&o, "reason", &reason_str(d.reason).into());
    set(&o, "lastError", &nullable_last_error(m.last_error.as_ref()));
    set(&o, "deadAt", &number(d.dead_at));
    with_payload(o, body)
}
