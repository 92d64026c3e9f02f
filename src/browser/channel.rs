//! What tabs tell each other, over a `BroadcastChannel` named after the outbox: every
//! committed change, so that each tab's listeners and `stats()` stay current without
//! reading IndexedDB. A note is sent only after the change it describes is committed.

use gloo_events::EventListener;
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

/// The channel, open while alive.
#[must_use = "the channel is closed when this is dropped"]
pub struct Channel {
    channel: JsValue,
    _listener: EventListener,
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
            if let Ok(note) = serde_wasm_bindgen::from_value::<Note>(data) {
                on_note(note);
            }
        });
        Some(Channel {
            channel,
            _listener: listener,
        })
    }

    /// Tells the other tabs.
    pub fn post(&self, note: &Note) {
        let value = note
            .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
            .unwrap_or(JsValue::NULL);
        if let Ok(post) = js::get(&self.channel, "postMessage").dyn_into::<js_sys::Function>() {
            let _ = post.call1(&self.channel, &value);
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        if let Ok(close) = js::get(&self.channel, "close").dyn_into::<js_sys::Function>() {
            let _ = close.call0(&self.channel);
        }
    }
}
