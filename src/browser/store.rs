//! IndexedDB storage of one outbox: the database `durable-outbox/<name>` with four
//! object stores:
//!
//! - `pending`: metadata of undelivered messages ([`StoredMessage`]), keyed by `key`,
//!   indexed by `seq` (enqueue order);
//! - `dead`: the dead-letter store ([`DeadRecord`]), keyed and indexed the same way;
//! - `bodies`: each message's JSON text, keyed by `key`. Kept apart so that opening an
//!   outbox reads only small metadata records, never every payload;
//! - `meta`: the persisted flags.
//!
//! Every write is a blind `put` or `delete` computed by the engine, in one transaction
//! per step: a message leaves `pending` only in the transaction that records where it
//! went, so a crash at any point leaves it in exactly one store.

use js_sys::Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    IdbDatabase, IdbObjectStore, IdbObjectStoreParameters, IdbOpenDbRequest, IdbTransaction,
};

use super::error::storage_error;
use super::idb::{committed, request, transaction, Durability};
pub use super::records::DeadRecord;
use super::records::{
    dead_from_js, dead_to_js, flags_from_js, flags_to_js, message_from_js, message_to_js,
};
use crate::core::{ErrorCode, Flags, Millis, OutboxError, Settlement, StoredMessage};

// The hot path of `enqueue`, in JavaScript: one call from wasm per batch, and no
// per-request promise. An `add` that meets an existing key (another tab's message) is
// caught so that the rest of the transaction commits; the half of a message that did go
// in is taken out again.
#[wasm_bindgen(inline_js = r#"
export function insertAll(db, strict, metas, bodies) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(["pending", "bodies"], "readwrite", { durability: strict ? "strict" : "relaxed" });
    const pending = tx.objectStore("pending");
    const store = tx.objectStore("bodies");
    const metaOk = new Array(metas.length).fill(true);
    const ok = new Array(metas.length).fill(true);
    const tolerate = (e) => { e.preventDefault(); e.stopPropagation(); };
    for (let i = 0; i < metas.length; i++) {
      const key = metas[i].key;
      pending.add(metas[i]).onerror = (e) => { tolerate(e); metaOk[i] = false; };
      const body = store.add(bodies[i], key);
      body.onerror = (e) => { tolerate(e); ok[i] = false; if (metaOk[i]) pending.delete(key); };
      body.onsuccess = () => { if (!metaOk[i]) { ok[i] = false; store.delete(key); } };
    }
    tx.oncomplete = () => resolve(ok);
    tx.onabort = () => reject(tx.error || new Error("the transaction was aborted"));
  });
}
"#)]
extern "C" {
    /// Adds messages in one transaction; resolves with, per message, whether it went in.
    #[wasm_bindgen(js_name = insertAll)]
    fn insert_all(db: &IdbDatabase, strict: bool, metas: &Array, bodies: &Array)
        -> js_sys::Promise;
}

const PENDING: &str = "pending";
const DEAD: &str = "dead";
const BODIES: &str = "bodies";
const META: &str = "meta";
const FLAGS_KEY: &str = "flags";
const VERSION: u32 = 1;

/// What an outbox finds in storage when it opens.
pub struct Loaded {
    /// Metadata of every pending message.
    pub pending: Vec<StoredMessage>,
    /// Keys of every dead letter.
    pub dead_keys: Vec<String>,
    /// Flags persisted by an earlier session, if any.
    pub flags: Option<Flags>,
}

/// One outbox's database.
pub struct Store {
    db: IdbDatabase,
    durability: Durability,
}

fn unreadable(what: &str) -> OutboxError {
    OutboxError::new(
        ErrorCode::StorageError,
        format!("a stored {what} is unreadable"),
    )
}

fn store(tx: &IdbTransaction, name: &str) -> Result<IdbObjectStore, JsValue> {
    tx.object_store(name)
}

impl Store {
    /// Opens (creating or upgrading) the database of the outbox `name`.
    pub async fn open(name: &str, durability: Durability) -> Result<Store, OutboxError> {
        let factory = super::js::global("indexedDB");
        let factory: web_sys::IdbFactory = factory.dyn_into().map_err(|_| {
            OutboxError::new(ErrorCode::Unsupported, "IndexedDB is not available here")
        })?;
        let db_name = format!("durable-outbox/{name}");
        let req: IdbOpenDbRequest = factory
            .open_with_u32(&db_name, VERSION)
            .map_err(|e| storage_error(&e, "opening the database"))?;
        let upgrade_target = req.clone();
        let on_upgrade = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || {
            if let Ok(db) = upgrade_target.result() {
                create_schema(&db.unchecked_into());
            }
        });
        req.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
        let result = request(&req).await;
        req.set_onupgradeneeded(None);
        let db: IdbDatabase = result
            .map_err(|e| storage_error(&e, "opening the database"))?
            .unchecked_into();
        Ok(Store { db, durability })
    }

    /// Reads what an opening outbox needs: metadata only, in one transaction.
    pub async fn load(&self) -> Result<Loaded, OutboxError> {
        let fail = |e: JsValue| storage_error(&e, "loading the outbox");
        let tx = transaction(&self.db, &[PENDING, DEAD, META], None).map_err(fail)?;
        let pending = store(&tx, PENDING)
            .and_then(|s| s.get_all())
            .map_err(fail)?;
        let dead = store(&tx, DEAD)
            .and_then(|s| s.get_all_keys())
            .map_err(fail)?;
        let flags = store(&tx, META)
            .and_then(|s| s.get(&FLAGS_KEY.into()))
            .map_err(fail)?;
        let pending: Array = request(&pending).await.map_err(fail)?.unchecked_into();
        let pending = pending
            .iter()
            .map(|r| message_from_js(&r))
            .collect::<Result<Vec<_>, _>>()?;
        let dead: Array = request(&dead).await.map_err(fail)?.unchecked_into();
        let dead_keys = dead
            .iter()
            .map(|k| k.as_string())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| unreadable("dead-letter key"))?;
        let flags = request(&flags).await.map_err(fail)?;
        let flags = if flags.is_undefined() {
            None
        } else {
            Some(flags_from_js(&flags).ok_or_else(|| unreadable("flags document"))?)
        };
        Ok(Loaded {
            pending,
            dead_keys,
            flags,
        })
    }

    /// Stores new messages, all in one transaction (group commit). A key that another
    /// tab stored first is left alone (`false` in the result) while the rest commit.
    pub async fn insert(
        &self,
        batch: &[(StoredMessage, JsValue)],
    ) -> Result<Vec<bool>, OutboxError> {
        let fail = |e: JsValue| storage_error(&e, "storing new messages");
        let metas: Array = batch.iter().map(|(meta, _)| message_to_js(meta)).collect();
        let bodies: Array = batch.iter().map(|(_, body)| body.clone()).collect();
        let strict = self.durability == Durability::Strict;
        let stored = JsFuture::from(insert_all(&self.db, strict, &metas, &bodies))
            .await
            .map_err(fail)?;
        Ok(stored
            .unchecked_into::<Array>()
            .iter()
            .map(|ok| ok.is_truthy())
            .collect())
    }

    /// Persists the attempt counts before a request goes out, and reads the bodies to
    /// send, in one transaction. `None` for a message no longer stored (another tab
    /// delivered or discarded it): nothing is written for that one.
    pub async fn begin_attempts(
        &self,
        metas: &[StoredMessage],
    ) -> Result<Vec<Option<JsValue>>, OutboxError> {
        let fail = |e: JsValue| storage_error(&e, "recording an attempt");
        let tx = self.write(&[PENDING, BODIES]).map_err(fail)?;
        let pending = store(&tx, PENDING).map_err(fail)?;
        let bodies = store(&tx, BODIES).map_err(fail)?;
        let mut reads = Vec::with_capacity(metas.len());
        for meta in metas {
            let key: JsValue = meta.key.as_str().into();
            reads.push((
                pending.get(&key).map_err(fail)?,
                bodies.get(&key).map_err(fail)?,
            ));
        }
        let mut found = Vec::with_capacity(metas.len());
        for (meta, (stored, body)) in metas.iter().zip(reads) {
            let (stored, body) = (
                request(&stored).await.map_err(fail)?,
                request(&body).await.map_err(fail)?,
            );
            if !stored.is_undefined() && !body.is_undefined() {
                pending.put(&message_to_js(meta)).map_err(fail)?;
                found.push(Some(body));
            } else {
                if !stored.is_undefined() {
                    pending.delete(&meta.key.as_str().into()).map_err(fail)?; // a body-less record can never be sent
                }
                found.push(None);
            }
        }
        committed(&tx).await.map_err(fail)?;
        Ok(found)
    }

    /// Records outcomes, all in one transaction. Each comes with the message's metadata
    /// as it should now be stored.
    pub async fn record(
        &self,
        outcomes: &[(Settlement, StoredMessage)],
    ) -> Result<(), OutboxError> {
        let fail = |e: JsValue| storage_error(&e, "recording an outcome");
        let tx = self.write(&[PENDING, DEAD, BODIES]).map_err(fail)?;
        let pending = store(&tx, PENDING).map_err(fail)?;
        let mut retries = Vec::new();
        for (settlement, meta) in outcomes {
            let key: JsValue = settlement.key().into();
            match settlement {
                Settlement::Delivered { .. } => {
                    pending.delete(&key).map_err(fail)?;
                    store(&tx, BODIES)
                        .and_then(|s| s.delete(&key))
                        .map_err(fail)?;
                }
                // Written below, and only if still there: another tab may have delivered it.
                Settlement::Retry { .. } => retries.push((pending.get(&key).map_err(fail)?, meta)),
                Settlement::Dead {
                    reason, dead_at, ..
                } => {
                    pending.delete(&key).map_err(fail)?;
                    let record = DeadRecord {
                        message: meta.clone(),
                        reason: *reason,
                        dead_at: *dead_at,
                    };
                    store(&tx, DEAD)
                        .and_then(|s| s.put(&dead_to_js(&record)))
                        .map_err(fail)?;
                }
            }
        }
        for (stored, meta) in retries {
            if !request(&stored).await.map_err(fail)?.is_undefined() {
                pending.put(&message_to_js(meta)).map_err(fail)?;
            }
        }
        committed(&tx).await.map_err(fail)
    }

    /// Every pending message with its body, oldest first.
    pub async fn list_pending(&self) -> Result<Vec<(StoredMessage, JsValue)>, OutboxError> {
        self.list(PENDING, message_from_js).await
    }

    /// Every dead letter with its body, oldest first.
    pub async fn list_dead(&self) -> Result<Vec<(DeadRecord, JsValue)>, OutboxError> {
        self.list(DEAD, dead_from_js).await
    }

    async fn list<T>(
        &self,
        name: &str,
        read: fn(&JsValue) -> Result<T, OutboxError>,
    ) -> Result<Vec<(T, JsValue)>, OutboxError> {
        let fail = |e: JsValue| storage_error(&e, "listing messages");
        let tx = transaction(&self.db, &[name, BODIES], None).map_err(fail)?;
        let records = store(&tx, name)
            .and_then(|s| s.index("seq"))
            .and_then(|i| i.get_all())
            .map_err(fail)?;
        let records: Array = request(&records).await.map_err(fail)?.unchecked_into();
        let bodies = store(&tx, BODIES).map_err(fail)?;
        let mut gets = Vec::with_capacity(records.length() as usize);
        for record in records.iter() {
            let key = super::js::get(&record, "key");
            gets.push((record, bodies.get(&key).map_err(fail)?));
        }
        let mut out = Vec::with_capacity(gets.len());
        for (record, get) in gets {
            let body = request(&get).await.map_err(fail)?;
            out.push((read(&record)?, body));
        }
        Ok(out)
    }

    /// Moves dead letters (the given keys, or all) back to pending with attempts reset
    /// and the same key, in one transaction. `seq` hands out their new positions.
    pub async fn redrive(
        &self,
        keys: Option<&[String]>,
        now: Millis,
        mut seq: impl FnMut() -> u64,
    ) -> Result<Vec<StoredMessage>, OutboxError> {
        let fail = |e: JsValue| storage_error(&e, "moving dead letters back");
        let tx = self.write(&[PENDING, DEAD]).map_err(fail)?;
        let dead = store(&tx, DEAD).map_err(fail)?;
        let pending = store(&tx, PENDING).map_err(fail)?;
        let records: Vec<JsValue> = match keys {
            None => {
                let all = dead.index("seq").and_then(|i| i.get_all()).map_err(fail)?;
                request(&all)
                    .await
                    .map_err(fail)?
                    .unchecked_into::<Array>()
                    .iter()
                    .collect()
            }
            Some(keys) => {
                let gets: Vec<_> = keys
                    .iter()
                    .map(|k| dead.get(&k.as_str().into()))
                    .collect::<Result<_, _>>()
                    .map_err(fail)?;
                let mut found = Vec::new();
                for get in gets {
                    let record = request(&get).await.map_err(fail)?;
                    if !record.is_undefined() {
                        found.push(record);
                    }
                }
                found
            }
        };
        let mut moved = Vec::with_capacity(records.len());
        for record in records {
            let record = dead_from_js(&record)?;
            let message = StoredMessage {
                seq: seq(),
                active_since: now,
                attempts: 0,
                next_attempt_at: None,
                last_error: None,
                ..record.message
            };
            pending.put(&message_to_js(&message)).map_err(fail)?;
            dead.delete(&message.key.as_str().into()).map_err(fail)?;
            moved.push(message);
        }
        committed(&tx).await.map_err(fail)?;
        Ok(moved)
    }

    /// Deletes dead letters and their bodies.
    pub async fn discard(&self, keys: &[String]) -> Result<(), OutboxError> {
        let fail = |e: JsValue| storage_error(&e, "discarding dead letters");
        let tx = self.write(&[DEAD, BODIES]).map_err(fail)?;
        let dead = store(&tx, DEAD).map_err(fail)?;
        let bodies = store(&tx, BODIES).map_err(fail)?;
        for key in keys {
            let key: JsValue = key.as_str().into();
            dead.delete(&key).map_err(fail)?;
            bodies.delete(&key).map_err(fail)?;
        }
        committed(&tx).await.map_err(fail)
    }

    /// Persists the flags, so an app that starts offline uses the last ones it saw.
    pub async fn save_flags(&self, flags: &Flags) -> Result<(), OutboxError> {
        let fail = |e: JsValue| storage_error(&e, "saving the flags");
        let tx = self.write(&[META]).map_err(fail)?;
        store(&tx, META)
            .and_then(|s| s.put_with_key(&flags_to_js(flags), &FLAGS_KEY.into()))
            .map_err(fail)?;
        committed(&tx).await.map_err(fail)
    }

    /// Closes the database connection.
    pub fn close(&self) {
        self.db.close();
    }

    fn write(&self, stores: &[&str]) -> Result<IdbTransaction, JsValue> {
        transaction(&self.db, stores, Some(self.durability))
    }
}

fn create_schema(db: &IdbDatabase) {
    let keyed = IdbObjectStoreParameters::new();
    keyed.set_key_path(&"key".into());
    for name in [PENDING, DEAD] {
        if let Ok(s) = db.create_object_store_with_optional_parameters(name, &keyed) {
            let _ = s.create_index_with_str("seq", "seq");
        }
    }
    for name in [BODIES, META] {
        let _ = db.create_object_store(name);
    }
}
