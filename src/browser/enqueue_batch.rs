//! Group commit: `enqueue` calls made while a write is under way wait and go together in
//! the next transaction, so N concurrent calls cost a handful of commits instead of N.
//! Each promise still resolves only after its own message is committed.

use alloc::string::String;
use alloc::vec::Vec;

use alloc::rc::Rc;

use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;

use super::channel::Note;
use super::convert::optional_string;
use super::js;
use super::outbox::{reject, Driver};
use super::store::NewMessages;
use crate::core::text::concat;
use crate::core::{Admitted, ErrorCode, OutboxError};

/// Messages waiting for the next write, and whether a write is under way.
#[derive(Default)]
pub struct EnqueueBatch {
    queue: Vec<Waiting>,
    writing: bool,
}

struct Waiting {
    admitted: Admitted,
    /// The app chose the key (so it is claimed in storage).
    claimed: bool,
    body: JsValue,
    payload: JsValue,
    resolve: Function,
    reject: Function,
}

/// Reads `{ key?, group? }`.
fn key_and_group(options: &JsValue) -> Result<(Option<String>, Option<String>), OutboxError> {
    if options.is_undefined() || options.is_null() {
        return Ok((None, None));
    }
    let field = |name: &str, code: ErrorCode| {
        optional_string(options, name).map_err(|message| OutboxError::new(code, message))
    };
    Ok((
        field("key", ErrorCode::InvalidKey)?,
        field("group", ErrorCode::InvalidGroup)?,
    ))
}

impl Driver {
    /// Checks and encodes a message, reserves its key and queues it for the next write.
    pub(super) fn enqueue(self: Rc<Self>, payload: JsValue, options: &JsValue) -> Promise {
        let admitted = self.check_open().and_then(|()| {
            let (key, group) = key_and_group(options)?;
            let claimed = key.is_some();
            let max = self.engine_ref().config().max_payload_bytes;
            let encoded = js::encode_payload(&payload, max as f64);
            let body = js::get(&encoded, "text");
            if body.is_undefined() {
                let code = match js::get(&encoded, "error").as_string().as_deref() {
                    Some("payload-too-large") => ErrorCode::PayloadTooLarge,
                    _ => ErrorCode::InvalidPayload,
                };
                return Err(OutboxError::new(
                    code,
                    js::get(&encoded, "message").as_string().unwrap_or_default(),
                ));
            }
            let admitted = self.engine_mut().admit(
                key,
                group,
                js::now(),
                self.random.borrow_mut().ten_bytes(),
            )?;
            Ok((admitted, claimed, body))
        });
        let (admitted, claimed, body) = match admitted {
            Ok(ok) => ok,
            Err(err) => return reject(err),
        };
        let (waiter, resolve, reject) = js::new_promise();
        self.batch.borrow_mut().queue.push(Waiting {
            admitted,
            claimed,
            body,
            payload,
            resolve,
            reject,
        });
        let start = !core::mem::replace(&mut self.batch.borrow_mut().writing, true);
        if start {
            // Starts in a microtask: every `enqueue` of the current task joins this batch.
            spawn_local(self.write_batches());
        }
        waiter
    }

    async fn write_batches(self: Rc<Self>) {
        loop {
            let batch = core::mem::take(&mut self.batch.borrow_mut().queue);
            if batch.is_empty() {
                self.batch.borrow_mut().writing = false;
                return;
            }
            let mut new = NewMessages::default();
            let mut metas = Vec::with_capacity(batch.len());
            for w in &batch {
                let m = w.admitted.stored();
                new.push(&m, w.claimed, &w.body);
                metas.push(m);
            }
            let written = self.store.insert(&new).await;
            let mut announced = Vec::new();
            let (resolves, payloads) = (Array::new(), Array::new());
            for (i, (w, m)) in batch.into_iter().zip(metas).enumerate() {
                let outcome = match &written {
                    Ok(stored) if stored[i] => Ok(()),
                    Ok(_) => Err(OutboxError::new(
                        ErrorCode::DuplicateKey,
                        concat(&[&w.admitted.key, " was stored by another tab first"]),
                    )),
                    Err(err) => Err(err.clone()),
                };
                match outcome {
                    Ok(()) => {
                        announced.push(m);
                        self.engine_mut().commit_admitted(w.admitted);
                        resolves.push(&w.resolve);
                    }
                    Err(err) => {
                        self.engine_mut().abort_admitted(&w.admitted.key);
                        let _ = w.reject.call1(&JsValue::NULL, &err.into());
                        resolves.push(&JsValue::UNDEFINED);
                    }
                }
                payloads.push(&w.payload);
            }
            js::resolve_enqueued(&resolves, &new.keys, &new.groups, &new.numbers, &payloads);
            if !announced.is_empty() {
                self.tell(&Note::Enqueued {
                    messages: announced,
                });
            }
            self.drive();
        }
    }
}
