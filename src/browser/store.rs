//! IndexedDB storage of one outbox: the database `durable-outbox/<name>`. The
//! transactions themselves are in `store.js` (its header describes the object stores);
//! each method here is one call into it, plus the conversions between its plain JS
//! values and the core's types.
//!
//! Every write is computed by the engine and lands in one transaction per step: a
//! message leaves pending storage only in the transaction that records where it went,
//! so a crash at any point leaves it in exactly one store.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use js_sys::{Array, Float64Array, Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::convert::{string_array, strings};
use super::error::storage_error;
use super::js::get;
use super::records::{flags_from_js, flags_to_js, message_from_js, message_to_js, reason_str};
use crate::core::text::concat;
use crate::core::{ErrorCode, Flags, LastError, Millis, OutboxError, Settlement, StoredMessage};

#[wasm_bindgen(module = "/src/browser/store.js")]
extern "C" {
    /// An open `IDBDatabase`.
    pub type Database;

    #[wasm_bindgen(js_name = openDatabase)]
    fn open_database(name: &str) -> Promise;
    #[wasm_bindgen(method)]
    fn close(this: &Database);
    #[wasm_bindgen(js_name = load)]
    fn load_all(db: &Database, durability: &str) -> Promise;
    #[wasm_bindgen(js_name = insertAll)]
    fn insert_all(
        db: &Database,
        durability: &str,
        keys: &str,
        groups: &Array,
        numbers: &[f64],
        bodies: &Array,
        written: &JsValue,
        failed: &JsValue,
    );
    #[wasm_bindgen(js_name = beginAttempts)]
    fn begin_attempts(db: &Database, durability: &str, id: &str, metas: &Array) -> Promise;
    #[wasm_bindgen(js_name = record)]
    fn record_all(db: &Database, durability: &str, id: Option<String>, ops: &Array) -> Promise;
    #[wasm_bindgen(js_name = listPending)]
    fn list_pending(db: &Database) -> Promise;
    #[wasm_bindgen(js_name = listDead)]
    fn list_dead(db: &Database) -> Promise;
    #[wasm_bindgen(js_name = redrive)]
    fn redrive_all(
        db: &Database,
        durability: &str,
        keys: &JsValue,
        now: f64,
        next_seq: &Function,
    ) -> Promise;
    #[wasm_bindgen(js_name = discard)]
    fn discard_all(db: &Database, durability: &str, keys: &Array) -> Promise;
    #[wasm_bindgen(js_name = saveFlags)]
    fn save_flags(db: &Database, durability: &str, flags: &JsValue) -> Promise;
}

/// Whether a write transaction waits for the disk (`"strict"`) or only for the
/// operating system (`"relaxed"`), or leaves it to the browser (`"default"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The browser's own default, as for a plain IndexedDB write (Chromium: like relaxed).
    Default,
    /// Survives power loss; slower.
    Strict,
    /// Survives a tab or browser crash, not an operating-system crash.
    Relaxed,
}

impl Durability {
    /// The `durability` option of `IDBDatabase.transaction`.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Default => "default",
            Durability::Strict => "strict",
            Durability::Relaxed => "relaxed",
        }
    }
}

/// What an outbox finds in storage when it opens.
pub struct Loaded {
    /// Metadata of every pending message.
    pub pending: Vec<StoredMessage>,
    /// Keys of every dead letter.
    pub dead_keys: Vec<String>,
    /// Flags persisted by an earlier session, if any.
    pub flags: Option<Flags>,
}

/// New messages as `store.js` takes them: columns, not one object per message, and as
/// few calls into JS per message as can be, since this is the hottest path (the enqueue
/// results reuse `keys` and `groups`).
#[derive(Default)]
pub struct NewMessages {
    /// The keys, joined with "\n" (keys are visible ASCII): one string for the batch.
    pub keys: String,
    /// Each message's group; no entry (`undefined`) for none, so most messages cost no call.
    pub groups: Array,
    /// `[seq, createdAt, activeSince, bytes, claimed]` per message; `claimed` is 1 when
    /// the app chose the key (then it is claimed), else 0.
    pub numbers: Vec<f64>,
    /// Each message's JSON text.
    pub bodies: Array,
}

impl NewMessages {
    /// Adds a message.
    pub fn push(&mut self, m: &StoredMessage, claimed: bool, body: &JsValue) {
        let i = self.bodies.push(body) - 1;
        if i > 0 {
            self.keys.push('\n');
        }
        self.keys.push_str(&m.key);
        if let Some(group) = &m.group {
            self.groups.set(i, group.into());
        }
        for n in [m.seq, m.created_at, m.active_since, u64::from(m.bytes)] {
            self.numbers.push(n as f64);
        }
        self.numbers.push(if claimed { 1.0 } else { 0.0 });
    }
}

/// One outbox's database.
pub struct Store {
    db: Database,
    durability: Durability,
}

/// Awaits one of `store.js`'s transactions.
async fn done(promise: Promise, doing: &str) -> Result<JsValue, OutboxError> {
    JsFuture::from(promise)
        .await
        .map_err(|e| storage_error(&e, doing))
}

/// The keys of a "\n"-joined list: one string crossing from JS instead of one per key.
fn lines(joined: &str) -> impl Iterator<Item = &str> {
    joined.split('\n').filter(|k| !k.is_empty())
}

/// Rebuilds pending messages from `load`'s columns (see `store.js`).
fn messages_from_columns(columns: &JsValue) -> Vec<StoredMessage> {
    let numbers = get(columns, "numbers")
        .unchecked_into::<Float64Array>()
        .to_vec();
    let keys = get(columns, "keys").as_string().unwrap_or_default();
    let groups = strings(&get(columns, "groups")).unwrap_or_default();
    let mut messages = Vec::new();
    let mut keys = lines(&keys);
    for n in numbers.chunks_exact(7) {
        let Some(key) = keys.next() else { break };
        messages.push(StoredMessage {
            key: key.to_owned(),
            seq: n[0] as u64,
            group: groups.get(n[6] as usize).filter(|_| n[6] >= 0.0).cloned(),
            created_at: n[1] as u64,
            active_since: n[2] as u64,
            bytes: n[3] as u32,
            attempts: n[4] as u32,
            next_attempt_at: (n[5] >= 0.0).then_some(n[5] as u64),
            last_error: None,
        });
    }
    // [index, status (-1 for none), message] for the few that failed before.
    let errors: Array = get(columns, "errors").unchecked_into();
    let mut i = 0;
    while i + 3 <= errors.length() {
        if let Some(m) = errors
            .get(i)
            .as_f64()
            .and_then(|m| messages.get_mut(m as usize))
        {
            m.last_error = Some(LastError {
                status: errors
                    .get(i + 1)
                    .as_f64()
                    .filter(|s| *s >= 0.0)
                    .map(|s| s as u16),
                message: errors.get(i + 2).as_string().unwrap_or_default(),
            });
        }
        i += 3;
    }
    messages
}

impl Store {
    /// Opens (creating or upgrading) the database of the outbox `name`.
    pub async fn open(name: &str, durability: Durability) -> Result<Store, OutboxError> {
        if super::js::global("indexedDB").is_undefined() {
            return Err(OutboxError::new(
                ErrorCode::Unsupported,
                "IndexedDB is not available here",
            ));
        }
        let db = done(
            open_database(&concat(&["durable-outbox/", name])),
            "opening the database",
        )
        .await?;
        Ok(Store {
            db: db.unchecked_into(),
            durability,
        })
    }

    /// Reads what an opening outbox needs, in one transaction, without a payload.
    pub async fn load(&self) -> Result<Loaded, OutboxError> {
        let columns = done(
            load_all(&self.db, self.durability.as_str()),
            "loading the outbox",
        )
        .await?;
        let flags = get(&columns, "flags");
        let mut dead_keys = Vec::new();
        for key in lines(&get(&columns, "dead").as_string().unwrap_or_default()) {
            dead_keys.push(key.to_owned());
        }
        Ok(Loaded {
            pending: messages_from_columns(&columns),
            dead_keys,
            flags: if flags.is_undefined() {
                None
            } else {
                Some(flags_from_js(&flags).ok_or_else(|| {
                    OutboxError::new(
                        ErrorCode::StorageError,
                        "a stored flags document is unreadable",
                    )
                })?)
            },
        })
    }

    /// Stores new messages, all in one transaction (group commit), then calls `written`
    /// with `undefined` if all went in, else an array with `true` at each message whose
    /// key another tab claimed first (left alone while the rest commit); or `failed`
    /// with the error, never before this returns. Not a future: see `enqueue_batch`.
    pub fn insert(&self, new: &NewMessages, written: &JsValue, failed: &JsValue) {
        insert_all(
            &self.db,
            self.durability.as_str(),
            &new.keys,
            &new.groups,
            &new.numbers,
            &new.bodies,
            written,
            failed,
        )
    }

    /// Persists the attempt counts before the request `request` goes out (one record
    /// for the whole request), and reads the bodies to send, in one transaction. `None`
    /// for a message no longer stored (another tab delivered or discarded it).
    pub async fn begin_attempts(
        &self,
        request: &str,
        metas: &[StoredMessage],
    ) -> Result<Vec<Option<JsValue>>, OutboxError> {
        let list = Array::new();
        for meta in metas {
            list.push(&message_to_js(meta));
        }
        let bodies = done(
            begin_attempts(&self.db, self.durability.as_str(), request, &list),
            "recording an attempt",
        )
        .await?;
        let mut out = Vec::new();
        for body in bodies.unchecked_into::<Array>().iter() {
            out.push((!body.is_undefined()).then_some(body));
        }
        Ok(out)
    }

    /// Records outcomes, all in one transaction, and ends the request they came from
    /// (`None` for outcomes decided without one). Each comes with the message's
    /// metadata as it should now be stored.
    pub async fn record(
        &self,
        request: Option<String>,
        outcomes: &[(Settlement, StoredMessage)],
    ) -> Result<(), OutboxError> {
        let ops = Array::new();
        for (settlement, meta) in outcomes {
            let op = js_sys::Object::new();
            let (outcome, reason, dead_at) = match settlement {
                Settlement::Delivered { .. } => ("delivered", None, None),
                Settlement::Retry { .. } => ("retry", None, None),
                Settlement::Dead {
                    reason, dead_at, ..
                } => ("dead", Some(reason_str(*reason)), Some(*dead_at)),
            };
            super::js::set(&op, "outcome", &outcome.into());
            super::js::set(&op, "meta", &message_to_js(meta));
            if let (Some(reason), Some(dead_at)) = (reason, dead_at) {
                super::js::set(&op, "reason", &reason.into());
                super::js::set(&op, "deadAt", &(dead_at as f64).into());
            }
            ops.push(&op);
        }
        done(
            record_all(&self.db, self.durability.as_str(), request, &ops),
            "recording an outcome",
        )
        .await
        .map(drop)
    }

    /// Every pending message as `pending()` lists it, oldest first, with the attempt
    /// state storage holds (see [`super::views::live_state`]).
    pub async fn list_pending(&self) -> Result<Array, OutboxError> {
        Ok(done(list_pending(&self.db), "listing messages")
            .await?
            .unchecked_into())
    }

    /// Every dead letter as `deadLetters()` lists it, oldest first.
    pub async fn list_dead(&self) -> Result<JsValue, OutboxError> {
        done(list_dead(&self.db), "listing messages").await
    }

    /// Moves dead letters (the given keys, or all) back to pending with attempts reset
    /// and the same key, in one transaction. `seq` hands out their new positions.
    pub async fn redrive(
        &self,
        keys: Option<&[String]>,
        now: Millis,
        mut seq: impl FnMut() -> u64 + 'static,
    ) -> Result<Vec<StoredMessage>, OutboxError> {
        let keys = keys.map_or(JsValue::NULL, |keys| string_array(keys).into());
        let next_seq = Closure::<dyn FnMut() -> f64>::new(move || seq() as f64);
        let moved = done(
            redrive_all(
                &self.db,
                self.durability.as_str(),
                &keys,
                now as f64,
                next_seq.as_ref().unchecked_ref(),
            ),
            "moving dead letters back",
        )
        .await?;
        let mut messages = Vec::new();
        for m in moved.unchecked_into::<Array>().iter() {
            messages.push(message_from_js(&m)?);
        }
        Ok(messages)
    }

    /// Deletes dead letters.
    pub async fn discard(&self, keys: &[String]) -> Result<(), OutboxError> {
        let keys = string_array(keys);
        done(
            discard_all(&self.db, self.durability.as_str(), &keys),
            "discarding dead letters",
        )
        .await
        .map(drop)
    }

    /// Persists the flags, so an app that starts offline uses the last ones it saw.
    pub async fn save_flags(&self, flags: &Flags) -> Result<(), OutboxError> {
        done(
            save_flags(&self.db, self.durability.as_str(), &flags_to_js(flags)),
            "saving the flags",
        )
        .await
        .map(drop)
    }

    /// Closes the database connection.
    pub fn close(&self) {
        self.db.close();
    }
}
