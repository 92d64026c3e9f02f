//! What tabs tell each other, over a `BroadcastChannel` named after the outbox: every
//! committed change, so that each tab's listeners and `stats()` stay current without
//! reading IndexedDB. A note is sent only after the change it describes is committed.
//!
//! A note is a plain object `{ kind, ...fields }` (kebab-case kinds, camelCase fields),
//! written and read by hand; new or redriven messages go as columns, one object a batch.
//!
//! Notes are posted in bunches: one `postMessage` per enqueue showed up in profiles as a
//! cost of its own, so the notes of a short window ([`BUNCH_MS`]) go as one array, in
//! order.

use alloc::string::String;
use alloc::vec::Vec;

use alloc::rc::Rc;
use core::cell::RefCell;

use js_sys::{Array, Object};
use wasm_bindgen::{JsCast, JsValue};

use super::convert::{nullable_number, number, string, string_array, whole};
use super::js::{self, get, set, Listener};
use super::records::{
    flags_from_js, flags_to_js, last_error_from_js, last_error_to_js, reason_from_js, reason_str,
};
use super::timer::Timeout;
use super::views::summary_to_js;
use crate::core::text::concat;
use crate::core::{Flags, FlushSummary, Settlement, StoredMessage};

/// One message between tabs.
#[derive(Debug)]
pub enum Note {
    /// New messages were committed by the sending tab.
    Enqueued { messages: Vec<StoredMessage> },
    /// The sender committed an outcome.
    Settled { settlement: Settlement },
    /// Dead letters went back to pending.
    Redriven { messages: Vec<StoredMessage> },
    /// Dead letters were deleted.
    Discarded { keys: Vec<String> },
    /// The flags changed.
    Flags { flags: Flags },
    /// A tab that does not send asks the sender to flush.
    FlushRequest { id: u64, from: String },
    /// The sender's answer to a flush request.
    FlushDone {
        id: u64,
        to: String,
        summary: FlushSummary,
    },
}

/// New or redriven messages as columns: `keys`, `groups` (null for none) and
/// `numbers`, `[seq, createdAt, activeSince, bytes, attempts]` per message. Such messages
/// have never failed, so there is no last error or next attempt to carry. One object
/// for a whole batch, not one per message: a batch of 1,000 enqueues is one note.
fn messages_to_js(messages: &[StoredMessage]) -> JsValue {
    let (keys, groups) = (Array::new(), Array::new());
    let mut numbers = Vec::new();
    for m in messages {
        keys.push(&JsValue::from(&m.key));
        groups.push(&m.group.as_deref().map_or(JsValue::NULL, JsValue::from));
        for n in [
            m.seq,
            m.created_at,
            m.active_since,
            u64::from(m.bytes),
            u64::from(m.attempts),
        ] {
            numbers.push(n as f64);
        }
    }
    let o = Object::new();
    set(&o, "keys", &keys);
    set(&o, "groups", &groups);
    set(&o, "numbers", &js_sys::Float64Array::from(&numbers[..]));
    o.into()
}

fn messages_from_js(value: &JsValue) -> Option<Vec<StoredMessage>> {
    let keys: Array = get(value, "keys").dyn_into().ok()?;
    let groups: Array = get(value, "groups").dyn_into().ok()?;
    let numbers = get(value, "numbers")
        .dyn_into::<js_sys::Float64Array>()
        .ok()?
        .to_vec();
    if numbers.len() != keys.length() as usize * 5 {
        return None;
    }
    let mut messages = Vec::new();
    for (i, n) in numbers.chunks_exact(5).enumerate() {
        messages.push(StoredMessage {
            key: keys.get(i as u32).as_string()?,
            seq: n[0] as u64,
            group: groups.get(i as u32).as_string(),
            created_at: n[1] as u64,
            active_since: n[2] as u64,
            bytes: n[3] as u32,
            attempts: n[4] as u32,
            next_attempt_at: None,
            last_error: None,
        });
    }
    Some(messages)
}

impl Note {
    fn to_js(&self) -> JsValue {
        let o = Object::new();
        let field = |name: &str, value: JsValue| set(&o, name, &value);
        let kind = match self {
            Note::Enqueued { messages } => {
                field("messages", messages_to_js(messages));
                "enqueued"
            }
            Note::Settled { settlement } => {
                field("settlement", settlement_to_js(settlement));
                "settled"
            }
            Note::Redriven { messages } => {
                field("messages", messages_to_js(messages));
                "redriven"
            }
            Note::Discarded { keys } => {
                field("keys", string_array(keys).into());
                "discarded"
            }
            Note::Flags { flags } => {
                field("flags", flags_to_js(flags));
                "flags"
            }
            Note::FlushRequest { id, from } => {
                field("id", number(*id));
                field("from", from.into());
                "flush-request"
            }
            Note::FlushDone { id, to, summary } => {
                field("id", number(*id));
                field("to", to.into());
                field("summary", summary_to_js(summary));
                "flush-done"
            }
        };
        field("kind", kind.into());
        o.into()
    }

    /// Reads a note; `None` for anything else (a newer tab's note, say).
    fn from_js(data: &JsValue) -> Option<Note> {
        Some(match string(data, "kind")?.as_str() {
            "enqueued" => Note::Enqueued {
                messages: messages_from_js(&get(data, "messages"))?,
            },
            "settled" => Note::Settled {
                settlement: settlement_from_js(&get(data, "settlement"))?,
            },
            "redriven" => Note::Redriven {
                messages: messages_from_js(&get(data, "messages"))?,
            },
            "discarded" => {
                let array: Array = get(data, "keys").dyn_into().ok()?;
                let mut keys = Vec::new();
                for k in array.iter() {
                    keys.push(k.as_string()?);
                }
                Note::Discarded { keys }
            }
            "flags" => Note::Flags {
                flags: flags_from_js(&get(data, "flags"))?,
            },
            "flush-request" => Note::FlushRequest {
                id: whole(data, "id")?,
                from: string(data, "from")?,
            },
            "flush-done" => {
                let summary = get(data, "summary");
                let count = |name: &str| whole(&summary, name).map(|n| n as u32);
                Note::FlushDone {
                    id: whole(data, "id")?,
                    to: string(data, "to")?,
                    summary: FlushSummary {
                        attempted: count("attempted")?,
                        delivered: count("delivered")?,
                        failed: count("failed")?,
                        dead: count("dead")?,
                    },
                }
            }
            _ => return None,
        })
    }
}

/// `{ outcome, key, attempts, ... }`, the settlement's fields in camelCase.
fn settlement_to_js(settlement: &Settlement) -> JsValue {
    let o = Object::new();
    let field = |name: &str, value: JsValue| set(&o, name, &value);
    let (outcome, attempts) = match settlement {
        Settlement::Delivered {
            attempts, status, ..
        } => {
            field("status", (*status).into());
            ("delivered", attempts)
        }
        Settlement::Retry {
            attempts,
            next_attempt_at,
            last_error,
            ..
        } => {
            field("nextAttemptAt", nullable_number(*next_attempt_at));
            field("lastError", last_error_to_js(last_error));
            ("retry", attempts)
        }
        Settlement::Dead {
            attempts,
            reason,
            last_error,
            dead_at,
            ..
        } => {
            field("reason", reason_str(*reason).into());
            field("lastError", last_error_to_js(last_error));
            field("deadAt", number(*dead_at));
            ("dead", attempts)
        }
    };
    field("outcome", outcome.into());
    field("key", settlement.key().into());
    field("attempts", (*attempts).into());
    o.into()
}

fn settlement_from_js(value: &JsValue) -> Option<Settlement> {
    let key = string(value, "key")?;
    let attempts = whole(value, "attempts")? as u32;
    let last_error = || last_error_from_js(&get(value, "lastError"));
    Some(match string(value, "outcome")?.as_str() {
        "delivered" => Settlement::Delivered {
            key,
            attempts,
            status: whole(value, "status")? as u16,
        },
        "retry" => Settlement::Retry {
            key,
            attempts,
            next_attempt_at: whole(value, "nextAttemptAt"),
            last_error: last_error()?,
        },
        "dead" => Settlement::Dead {
            key,
            reason: reason_from_js(&get(value, "reason"))?,
            attempts,
            last_error: last_error()?,
            dead_at: whole(value, "deadAt")?,
        },
        _ => return None,
    })
}

/// How long a note may wait for others to share its `postMessage`.
const BUNCH_MS: u32 = 8;

/// The channel, open while alive.
#[must_use = "the channel is closed when this is dropped"]
pub struct Channel {
    channel: JsValue,
    _listener: Listener,
    outgoing: Rc<Outgoing>,
}

/// Notes waiting for the next post, and the timer that will post them.
#[derive(Default)]
struct Outgoing {
    notes: RefCell<Vec<JsValue>>,
    timer: RefCell<Option<Timeout>>,
}

impl Outgoing {
    fn post_now(&self, channel: &JsValue) {
        let notes = Array::new();
        for note in self.notes.borrow_mut().drain(..) {
            notes.push(&note);
        }
        if notes.length() == 0 {
            return;
        }
        if let Ok(post) = js::get(channel, "postMessage").dyn_into::<js_sys::Function>() {
            let _ = post.call1(channel, &notes);
        }
    }
}

impl Channel {
    /// Opens `durable-outbox/<name>`; `on_note` hears every note from other tabs.
    /// `None` where `BroadcastChannel` is missing (then a tab sees only its own changes).
    pub fn open(name: &str, on_note: impl Fn(Note) + 'static) -> Option<Channel> {
        let constructor = js::global("BroadcastChannel")
            .dyn_into::<js_sys::Function>()
            .ok()?;
        let args = js_sys::Array::of1(&concat(&["durable-outbox/", name]).into());
        let channel = js_sys::Reflect::construct(&constructor, &args).ok()?;
        let listener = Listener::new(&channel, "message", move |event| {
            let data = js::get(&event, "data");
            let Some(notes) = data.dyn_ref::<Array>() else {
                return;
            };
            for note in notes.iter() {
                if let Some(note) = Note::from_js(&note) {
                    on_note(note);
                }
            }
        });
        Some(Channel {
            channel,
            _listener: listener,
            outgoing: Rc::default(),
        })
    }

    /// Tells the other tabs, within [`BUNCH_MS`].
    pub fn post(&self, note: &Note) {
        self.outgoing.notes.borrow_mut().push(note.to_js());
        if self.outgoing.timer.borrow().is_some() {
            return;
        }
        let (outgoing, channel) = (Rc::downgrade(&self.outgoing), self.channel.clone());
        let timer = Timeout::new(BUNCH_MS, move || {
            if let Some(outgoing) = outgoing.upgrade() {
                outgoing.timer.borrow_mut().take();
                outgoing.post_now(&channel);
            }
        });
        *self.outgoing.timer.borrow_mut() = Some(timer);
    }

    /// Posts the waiting notes now, without waiting for the bunch timer.
    pub fn post_waiting(&self) {
        self.outgoing.timer.borrow_mut().take();
        self.outgoing.post_now(&self.channel);
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.post_waiting(); // the channel is about to close
        if let Ok(close) = js::get(&self.channel, "close").dyn_into::<js_sys::Function>() {
            let _ = close.call0(&self.channel);
        }
    }
}
