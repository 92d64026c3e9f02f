//! What tabs tell each other, over a `BroadcastChannel` named after the outbox: every
//! committed change, so that each tab's listeners and `stats()` stay current without
//! reading IndexedDB. A note is sent only after the change it describes is committed.
//!
//! Notes are posted in bunches: each `postMessage` costs about as much as an IndexedDB
//! write, so the notes of a short window ([`BUNCH_MS`]) go as one array, in order.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_events::EventListener;
use gloo_timers::callback::Timeout;
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::EventTarget;

use super::js;
use crate::core::{Flags, FlushSummary, Settlement, StoredMessage};

/// One message between tabs.
#[derive(Debug, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
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

/// How long a note may wait for others to share its `postMessage`.
const BUNCH_MS: u32 = 8;

/// The channel, open while alive.
#[must_use = "the channel is closed when this is dropped"]
pub struct Channel {
    channel: JsValue,
    _listener: EventListener,
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
        let notes: js_sys::Array = self.notes.borrow_mut().drain(..).collect();
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
        let args = js_sys::Array::of1(&format!("durable-outbox/{name}").into());
        let channel = js_sys::Reflect::construct(&constructor, &args).ok()?;
        let target: EventTarget = channel.clone().unchecked_into();
        let listener = EventListener::new(&target, "message", move |event| {
            let data = js::get(event, "data");
            let Some(notes) = data.dyn_ref::<js_sys::Array>() else {
                return;
            };
            for data in notes.iter() {
                if let Ok(note) = serde_wasm_bindgen::from_value::<Note>(data) {
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
        let value = note
            .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
            .unwrap_or(JsValue::NULL);
        self.outgoing.notes.borrow_mut().push(value);
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
}

impl Channel {
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
