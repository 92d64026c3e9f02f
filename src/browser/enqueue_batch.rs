//! Group commit: `enqueue` calls made while a write is under way wait and go together in
//! the next transaction, so N concurrent calls cost a handful of commits instead of N.
//! Each promise still resolves only after its own message is committed.
//!
//! This is the hottest path of the library (an app may enqueue on every keystroke), so it
//! runs on plain callbacks rather than a Rust future: one microtask step
//! ([`Driver::run_writes`]) starts the write, and the transaction's events call back
//! ([`Driver::finish_write`]), both through JS functions made once per outbox
//! ([`WriteCallbacks`]). A future would cost a task, a waker and two closures per write.
//!
//! The order of work after a commit is chosen for an app that awaits each `enqueue`: the
//! promises are answered first (after the note to other tabs is queued, so that it is
//! never behind anything the app does next), and the engine's next step waits for the
//! same microtask step, queued after the answers. By then the app's next `enqueue` has
//! queued its message, so its transaction starts before that bookkeeping runs, which
//! then overlaps the wait for IndexedDB instead of adding to it.

use alloc::string::String;
use alloc::vec::Vec;

use alloc::rc::{Rc, Weak};

use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;

use super::channel::Note;
use super::convert::optional_string;
use super::error::storage_error;
use super::js;
use super::outbox::{reject, Driver};
use super::store::NewMessages;
use crate::core::text::concat;
use crate::core::{Admitted, ErrorCode, OutboxError};

/// Messages waiting for the next write, and the batch being written.
#[derive(Default)]
pub struct EnqueueBatch {
    queue: Vec<Waiting>,
    /// `resolve`, `reject` and payload of each queued message, in queue order.
    waiters: Array,
    /// The batch in the transaction under way.
    writing: Option<Write>,
    /// A write ended and the engine has not been driven since.
    drive: bool,
    /// [`Driver::run_writes`] is queued: this keeps the driver alive until it runs (a
    /// cycle it breaks), as [`Write`] does during a write.
    scheduled: Option<Rc<Driver>>,
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = queueMicrotask)]
    fn queue_microtask(callback: &JsValue);
}

/// The JS functions that run an outbox's writes, made once (see the module docs).
pub struct WriteCallbacks {
    run: Closure<dyn FnMut()>,
    written: Closure<dyn FnMut(JsValue)>,
    failed: Closure<dyn FnMut(JsValue)>,
}

impl WriteCallbacks {
    /// Callbacks for `driver`'s writes (weak: they do nothing once it is gone).
    pub fn new(driver: &Weak<Driver>) -> WriteCallbacks {
        let (d1, d2, d3) = (driver.clone(), driver.clone(), driver.clone());
        WriteCallbacks {
            run: Closure::new(move || {
                if let Some(driver) = d1.upgrade() {
                    driver.run_writes();
                }
            }),
            written: Closure::new(move |refused: JsValue| {
                if let Some(driver) = d2.upgrade() {
                    driver.finish_write(Ok(refused));
                }
            }),
            failed: Closure::new(move |err: JsValue| {
                if let Some(driver) = d3.upgrade() {
                    driver.finish_write(Err(storage_error(&err, "storing new messages")));
                }
            }),
        }
    }
}

/// A batch being written: its messages, their columns, and the driver itself, kept alive
/// until the write ends (a cycle that [`Driver::finish_write`] breaks) so that every
/// waiting `enqueue` is answered even if the app dropped the outbox meanwhile.
struct Write {
    batch: Vec<Waiting>,
    waiters: Array,
    new: NewMessages,
    _driver: Rc<Driver>,
}

/// A queued message. Its promise's `resolve` and `reject`, and its payload, wait in JS
/// (`EnqueueBatch::waiters`), at the same position.
struct Waiting {
    admitted: Admitted,
    /// The app chose the key (so it is claimed in storage).
    claimed: bool,
    body: JsValue,
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
    pub(super) fn enqueue(self: &Rc<Self>, payload: JsValue, options: &JsValue) -> Promise {
        let admitted = self.check_open().and_then(|()| {
            let (key, group) = key_and_group(options)?;
            let claimed = key.is_some();
            let max = self.engine_ref().config().max_payload_bytes;
            let encoded = js::encode_payload(&payload, max as f64);
            // A refusal is an object; the JSON text comes with its size in an array.
            if !Array::is_array(&encoded) {
                let code = match js::get(&encoded, "error").as_string().as_deref() {
                    Some("payload-too-large") => ErrorCode::PayloadTooLarge,
                    _ => ErrorCode::InvalidPayload,
                };
                return Err(OutboxError::new(
                    code,
                    js::get(&encoded, "message").as_string().unwrap_or_default(),
                ));
            }
            let encoded: Array = encoded.unchecked_into();
            let mut admitted = self.engine_mut().admit(
                key,
                group,
                js::now(),
                self.random.borrow_mut().ten_bytes(),
            )?;
            // Batches are filled up to `batchMaxBytes` by this.
            admitted.bytes = encoded.get(1).as_f64().unwrap_or(0.0) as u32;
            Ok((admitted, claimed, encoded.get(0)))
        });
        let (admitted, claimed, body) = match admitted {
            Ok(ok) => ok,
            Err(err) => return reject(err),
        };
        let mut batch = self.batch.borrow_mut();
        let waiter = js::wait_for_commit(&batch.waiters, &payload);
        batch.queue.push(Waiting {
            admitted,
            claimed,
            body,
        });
        // A microtask step, not at once: every `enqueue` of the current task joins.
        self.schedule(&mut batch);
        waiter
    }

    /// Queues [`Driver::run_writes`] unless it is queued already.
    fn schedule(self: &Rc<Self>, state: &mut EnqueueBatch) {
        if state.scheduled.is_none() {
            state.scheduled = Some(self.clone());
            queue_microtask(self.writes.run.as_ref());
        }
    }

    /// The microtask step: writes what has queued up, unless a write is under way (its
    /// end schedules the next step), then drives the engine if a write ended.
    fn run_writes(self: &Rc<Self>) {
        let (_driver, drive) = {
            let mut state = self.batch.borrow_mut();
            (state.scheduled.take(), core::mem::take(&mut state.drive))
        };
        self.start_write();
        if drive {
            self.drive();
        }
    }

    /// Whether a write is under way.
    pub(super) fn is_writing(&self) -> bool {
        self.batch.borrow().writing.is_some()
    }

    /// Writes what has queued up, unless a write is under way. `close()` calls it first,
    /// so that what was enqueued before it is stored (a closing database lets a started
    /// transaction finish); what still waits then is refused with `closed`.
    pub(super) fn start_write(self: &Rc<Self>) {
        let mut state = self.batch.borrow_mut();
        if state.writing.is_some() || state.queue.is_empty() {
            return;
        }
        let batch = core::mem::take(&mut state.queue);
        let waiters = core::mem::take(&mut state.waiters);
        let mut new = NewMessages::default();
        for w in &batch {
            new.push(&w.admitted.stored(), w.claimed, &w.body);
        }
        let closed = self.closed.get();
        if !closed {
            self.store.insert(
                &new,
                self.writes.written.as_ref(),
                self.writes.failed.as_ref(),
            );
        }
        state.writing = Some(Write {
            batch,
            waiters,
            new,
            _driver: self.clone(),
        });
        drop(state);
        if closed {
            self.finish_write(Err(OutboxError::new(
                ErrorCode::Closed,
                "the outbox was closed before this message was stored",
            )));
        }
    }

    /// The write [`Driver::start_write`] began has ended: `Ok(refused)` when it committed
    /// (`refused`: see [`Store::insert`](super::store::Store::insert)).
    fn finish_write(self: &Rc<Self>, written: Result<JsValue, OutboxError>) {
        let Some(Write {
            batch,
            waiters,
            new,
            ..
        }) = self.batch.borrow_mut().writing.take()
        else {
            return;
        };
        let mut announced = Vec::new();
        let errors = Array::new();
        for (i, w) in batch.into_iter().enumerate() {
            let refused = match &written {
                Ok(refused)
                    if refused.is_undefined()
                        || !refused.unchecked_ref::<Array>().get(i as u32).is_truthy() =>
                {
                    None
                }
                Ok(_) => Some(OutboxError::new(
                    ErrorCode::DuplicateKey,
                    concat(&[&w.admitted.key, " was stored by another tab first"]),
                )),
                Err(err) => Some(err.clone()),
            };
            match refused {
                None => {
                    announced.push(w.admitted.stored());
                    self.engine_mut().commit_admitted(w.admitted);
                }
                Some(err) => {
                    self.engine_mut().abort_admitted(&w.admitted.key);
                    errors.set(i as u32, err.into());
                }
            }
        }
        if !announced.is_empty() {
            self.tell(Note::Enqueued {
                messages: announced,
            });
        }
        if self.closed.get() {
            // close() left the channel to this write's note; dropping it posts the note.
            self.channel.borrow_mut().take();
        }
        js::resolve_enqueued(&waiters, &new.keys, &new.groups, &new.numbers, &errors);
        // After the answers, so that the step runs after the code awaiting them.
        let mut state = self.batch.borrow_mut();
        state.drive = true;
        self.schedule(&mut state);
    }
}
