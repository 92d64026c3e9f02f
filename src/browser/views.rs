//! What the JS API hands out, built by hand: events, `stats()`, flush summaries and the
//! message listings. The TypeScript declarations in [`super::types`] are the contract:
//! camelCase fields, kebab-case names, `null` for none, and `status` left out of a
//! failure that had no answer.

use js_sys::Object;
use wasm_bindgen::JsValue;

use super::convert::{nullable_number, nullable_str, number};
use super::js::{get, set};
use super::records::{flags_to_js, last_error_to_js, reason_str};
use crate::core::{Engine, Event, FlushSummary, Stats};

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

/// Puts the engine's live state into a message `store.js` listed for `pending()`: in
/// flight or not, the attempts so far and the next attempt (storage has them only as of
/// the last write).
pub fn live_state(record: &JsValue, engine: &Engine) {
    let Some(key) = get(record, "key").as_string() else {
        return;
    };
    if let Some(view) = engine.view(&key) {
        if view.in_flight {
            set(record, "state", &"in-flight".into());
        }
        set(
            record,
            "nextAttemptAt",
            &nullable_number(view.next_attempt_at),
        );
    }
    if let Some(stored) = engine.stored(&key) {
        set(record, "attempts", &stored.attempts.into());
    }
}
