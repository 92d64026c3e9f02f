//! What tabs tell each other, over a `BroadcastChannel` named after the outbox: every
//! committed change, so that each tab's listeners and `stats()` stay current without
//! reading IndexedDB. A note is sent only after the change it describes is committed.
//!
//! A note is an array: a number for its kind, then its fields in a fixed order (both
//! ends are this library); new or redriven messages go as columns, one note a batch.
//!
//! Notes are posted in bunches: one `postMessage` per enqueue showed up in profiles as a
//! cost of its own, so the notes of a short window ([`BUNCH_MS`]) go as one array, in
//! order.

use alloc::string::String;
use alloc::vec::Vec;

use alloc::rc::Rc;
use core::cell::RefCell;

use js_sys::Array;
use wasm_bindgen::{JsCast, JsValue};

use super::convert::{nullable_number, number, string_array, strings};
use super::js::{self, Listener};
use super::timer::Timeout;
use crate::core::text::concat;
use crate::core::{DeadReason, Flags, FlushSummary, LastError, Settlement, StoredMessage};

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

/// A note's kind, its first element.
mod kind {
    pub const ENQUEUED: u32 = 1;
    pub const SETTLED: u32 = 2;
    pub const REDRIVEN: u32 = 3;
    pub const DISCARDED: u32 = 4;
    pub const FLAGS: u32 = 5;
    pub const FLUSH_REQUEST: u32 = 6;
    pub const FLUSH_DONE: u32 = 7;
}

/// The `i`th element as a whole number.
fn whole_at(note: &Array, i: u32) -> Option<u64> {
    note.get(i).as_f64().filter(|v| *v >= 0.0).map(|v| v as u64)
}

fn text_at(note: &Array, i: u32) -> Option<String> {
    note.get(i).as_string()
}

/// New or redriven messages as three columns appended to `note`: the keys joined with
/// "\n" (keys are visible ASCII), `groups` (no entry for none) and `numbers`, `[seq,
/// createdAt, activeSince, bytes, attempts]` per message. Such messages have never
/// failed, so there is no last error or next attempt to carry. A batch of 1,000 enqueues
/// is one note.
fn push_messages(note: &Array, messages: &[StoredMessage]) {
    let (mut keys, groups) = (String::new(), Array::new());
    let mut numbers = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            keys.push('\n');
        }
        keys.push_str(&m.key);
        if let Some(group) = &m.group {
            groups.set(i as u32, group.into());
        }
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
    note.push(&keys.into());
    note.push(&groups);
    note.push(&js_sys::Float64Array::from(&numbers[..]));
}

/// The columns [`push_messages`] wrote, from element 1 on.
fn messages_from(note: &Array) -> Option<Vec<StoredMessage>> {
    let keys = note.get(1).as_string()?;
    let groups: Array = note.get(2).dyn_into().ok()?;
    let numbers = note
        .get(3)
        .dyn_into::<js_sys::Float64Array>()
        .ok()?
        .to_vec();
    let mut messages = Vec::new();
    if numbers.is_empty() || numbers.len() % 5 != 0 {
        return numbers.is_empty().then_some(messages);
    }
    let mut keys = keys.split('\n');
    for (i, n) in numbers.chunks_exact(5).enumerate() {
        messages.push(StoredMessage {
            key: keys.next()?.into(),
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
    // As many keys as messages, no more.
    keys.next().is_none().then_some(messages)
}

/// A last error as two elements: its status (or null) and its message.
fn push_last_error(note: &Array, e: &LastError) {
    note.push(&e.status.map_or(JsValue::NULL, JsValue::from));
    note.push(&e.message.as_str().into());
}

fn last_error_at(note: &Array, i: u32) -> Option<LastError> {
    Some(LastError {
        status: whole_at(note, i).map(|s| s as u16),
        message: text_at(note, i + 1)?,
    })
}

impl Note {
    /// The note as an array: its kind, then its fields in a fixed order. Both ends are
    /// this library, so positions instead of property names: less to build, send and read.
    fn to_js(&self) -> JsValue {
        let note = Array::new();
        let push = |value: JsValue| {
            note.push(&value);
        };
        match self {
            Note::Enqueued { messages } => {
                push(kind::ENQUEUED.into());
                push_messages(&note, messages);
            }
            Note::Redriven { messages } => {
                push(kind::REDRIVEN.into());
                push_messages(&note, messages);
            }
            Note::Settled { settlement } => {
                push(kind::SETTLED.into());
                push(settlement.key().into());
                match settlement {
                    Settlement::Delivered {
                        attempts, status, ..
                    } => {
                        push((*attempts).into());
                        push(0.into());
                        push((*status).into());
                    }
                    Settlement::Retry {
                        attempts,
                        next_attempt_at,
                        last_error,
                        ..
                    } => {
                        push((*attempts).into());
                        push(1.into());
                        push(nullable_number(*next_attempt_at));
                        push_last_error(&note, last_error);
                    }
                    Settlement::Dead {
                        attempts,
                        reason,
                        last_error,
                        dead_at,
                        ..
                    } => {
                        push((*attempts).into());
                        push(2.into());
                        push(number(*dead_at));
                        push_last_error(&note, last_error);
                        push((*reason as u32).into());
                    }
                }
            }
            Note::Discarded { keys } => {
                push(kind::DISCARDED.into());
                push(string_array(keys).into());
            }
            Note::Flags { flags } => {
                push(kind::FLAGS.into());
                push(flags.retry_enabled.into());
                push(number(flags.retry_interval_ms));
            }
            Note::FlushRequest { id, from } => {
                push(kind::FLUSH_REQUEST.into());
                push(number(*id));
                push(from.into());
            }
            Note::FlushDone { id, to, summary } => {
                push(kind::FLUSH_DONE.into());
                push(number(*id));
                push(to.into());
                for n in [
                    summary.attempted,
                    summary.delivered,
                    summary.failed,
                    summary.dead,
                ] {
                    push(n.into());
                }
            }
        }
        note.into()
    }

    /// Reads a note; `None` for anything else (a note of another version, say).
    fn from_js(value: &JsValue) -> Option<Note> {
        let note: &Array = value.dyn_ref()?;
        let count = |i: u32| whole_at(note, i).map(|n| n as u32);
        Some(match count(0)? {
            kind::ENQUEUED => Note::Enqueued {
                messages: messages_from(note)?,
            },
            kind::REDRIVEN => Note::Redriven {
                messages: messages_from(note)?,
            },
            kind::SETTLED => {
                let key = text_at(note, 1)?;
                let attempts = count(2)?;
                Note::Settled {
                    settlement: match count(3)? {
                        0 => Settlement::Delivered {
                            key,
                            attempts,
                            status: count(4)? as u16,
                        },
                        1 => Settlement::Retry {
                            key,
                            attempts,
                            next_attempt_at: whole_at(note, 4),
                            last_error: last_error_at(note, 5)?,
                        },
                        2 => Settlement::Dead {
                            key,
                            attempts,
                            dead_at: whole_at(note, 4)?,
                            last_error: last_error_at(note, 5)?,
                            reason: match count(7)? {
                                0 => DeadReason::Rejected,
                                1 => DeadReason::MaxAttempts,
                                2 => DeadReason::Expired,
                                _ => return None,
                            },
                        },
                        _ => return None,
                    },
                }
            }
            kind::DISCARDED => Note::Discarded {
                keys: strings(&note.get(1))?,
            },
            kind::FLAGS => Note::Flags {
                flags: Flags {
                    retry_enabled: note.get(1).as_bool()?,
                    retry_interval_ms: whole_at(note, 2)?,
                },
            },
            kind::FLUSH_REQUEST => Note::FlushRequest {
                id: whole_at(note, 1)?,
                from: text_at(note, 2)?,
            },
            kind::FLUSH_DONE => Note::FlushDone {
                id: whole_at(note, 1)?,
                to: text_at(note, 2)?,
                summary: FlushSummary {
                    attempted: count(3)?,
                    delivered: count(4)?,
                    failed: count(5)?,
                    dead: count(6)?,
                },
            },
            _ => return None,
        })
    }
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

/// Notes waiting for the next post, and the timer that will post them. They wait as
/// Rust values and become JS arrays only when posted.
#[derive(Default)]
struct Outgoing {
    notes: RefCell<Vec<Note>>,
    timer: RefCell<Option<Timeout>>,
}

impl Outgoing {
    /// Queues `note`. New messages right after new messages join that note: a run of
    /// sequential enqueues is one note, not one each.
    fn add(&self, note: Note) {
        let mut notes = self.notes.borrow_mut();
        let note = match (notes.last_mut(), note) {
            (Some(Note::Enqueued { messages }), Note::Enqueued { messages: more }) => {
                messages.extend(more);
                return;
            }
            (_, note) => note,
        };
        notes.push(note);
    }

    fn post_now(&self, channel: &JsValue) {
        let notes = Array::new();
        for note in self.notes.borrow_mut().drain(..) {
            notes.push(&note.to_js());
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
    pub fn post(&self, note: Note) {
        self.outgoing.add(note);
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
