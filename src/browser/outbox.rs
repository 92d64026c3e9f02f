//! The JS class `Outbox` and the driver that runs the engine in the browser.
//!
//! The driver's loop is [`Driver::drive`]: poll the engine for actions and start each as
//! a task, re-arm the one timer for the engine's next deadline, and schedule event
//! delivery. Every task ends by driving again. Events reach listeners in a later
//! microtask, after the Rust call that made them has returned and released its borrows,
//! so a listener may call any method of the outbox.

use alloc::boxed::Box;
use alloc::rc::{Rc, Weak};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, Ref, RefCell, RefMut};
use core::future::Future;
use core::pin::Pin;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, spawn_local};

use super::channel::{Channel, Note};
use super::connectivity::{self, Connectivity};
use super::convert::strings;
use super::enqueue_batch::{EnqueueBatch, WriteCallbacks};
use super::js;
use super::leadership::{FreezeWatch, LockRequest};
use super::options;
use super::records::flags_to_js;
use super::store::Store;
use super::tabs::{ForwardedFlush, RemoteFlush};
use super::timer::WakeTimer;
use super::transport::Sender;
use super::views::{event_to_js, live_state, stats_to_js, summary_to_js};
use crate::core::text::{concat, decimal};
use crate::core::{
    Action, Engine, ErrorCode, Event, FlushId, Millis, OutboxError, Outcome, Settlement,
    StoredMessage, Transmit,
};

/// A durable outbox. See the TypeScript declarations for the JS view.
#[wasm_bindgen(skip_typescript)]
pub struct Outbox {
    driver: Rc<Driver>,
}

/// The state shared by the JS object and the tasks it starts.
pub(super) struct Driver {
    /// Borrowed through [`Driver::engine_mut`] and [`Driver::engine_ref`] only.
    engine: RefCell<Engine>,
    pub(super) store: Store,
    sender: Sender,
    timer: RefCell<WakeTimer>,
    pub(super) batch: RefCell<EnqueueBatch>,
    /// The callbacks that run the group-commit writes.
    pub(super) writes: WriteCallbacks,
    /// Random bytes for new keys.
    pub(super) random: RefCell<js::RandomPool>,
    listeners: RefCell<Vec<(u32, Function)>>,
    next_listener: Cell<u32>,
    flush_waiters: RefCell<Vec<(FlushId, Function, Function)>>,
    /// Flushes run here for a forwarded `flush()` after this tab became the sender.
    pub(super) local_flushes: RefCell<Vec<(FlushId, Function)>>,
    delivery_scheduled: Cell<bool>,
    pub(super) closed: Cell<bool>,
    connectivity: RefCell<Option<Connectivity>>,
    /// The outbox's name (its database and its lock are named after it).
    pub(super) name: String,
    /// This tab's id in notes to other tabs.
    pub(super) tab: String,
    pub(super) channel: RefCell<Option<Channel>>,
    pub(super) lock: RefCell<Option<LockRequest>>,
    pub(super) freeze: RefCell<Option<FreezeWatch>>,
    pub(super) frozen: Cell<bool>,
    pub(super) remote_flushes: RefCell<Vec<RemoteFlush>>,
    pub(super) forwarded_flushes: RefCell<Vec<ForwardedFlush>>,
}

pub(super) fn reject(err: OutboxError) -> Promise {
    Promise::reject(&err.into())
}

/// A method's work, boxed: see [`promise`].
type Work = Pin<Box<dyn Future<Output = Result<JsValue, OutboxError>>>>;

/// Runs a future as a JS promise, turning an [`OutboxError`] into a JS `OutboxError`.
fn promise(future: impl Future<Output = Result<JsValue, OutboxError>> + 'static) -> Promise {
    run(Box::pin(future))
}

/// Not generic: one copy of `future_to_promise`'s glue for every method, each method's
/// future polled through its vtable instead of inlined into a copy of its own.
fn run(work: Work) -> Promise {
    future_to_promise(async move { work.await.map_err(JsValue::from) })
}

/// Reads `keys?`: absent means "all"; otherwise an array of strings.
fn keys_argument(keys: &JsValue) -> Result<Option<Vec<String>>, OutboxError> {
    if keys.is_undefined() || keys.is_null() {
        return Ok(None);
    }
    match strings(keys) {
        Some(keys) => Ok(Some(keys)),
        None => Err(OutboxError::new(
            ErrorCode::InvalidKey,
            "keys must be an array of key strings",
        )),
    }
}

#[wasm_bindgen(js_class = Outbox)]
impl Outbox {
    /// JS `Outbox.open(options)`: [`Outbox::open`] as a promise. Not an `async fn`:
    /// through [`promise`] it shares the other methods' promise glue.
    #[wasm_bindgen(js_name = open)]
    pub fn open_promise(options: JsValue) -> Promise {
        promise(async move { Ok(Self::opened(options).await?.into()) })
    }
}

impl Outbox {
    /// Opens (or creates) the outbox `options.name` and starts sending what it holds.
    pub async fn open(options: JsValue) -> Result<Outbox, JsValue> {
        Ok(Self::opened(options).await?)
    }

    async fn opened(options: JsValue) -> Result<Outbox, OutboxError> {
        super::panic::install_hook();
        let options = options::read(&options)?;
        let store = Store::open(&options.name, options.durability).await?;
        let loaded = store.load().await?;
        let mut engine = Engine::new(options.config, loaded.flags.unwrap_or(options.flags));
        engine.restore(loaded.pending, loaded.dead_keys);
        engine.set_online(connectivity::is_online());
        engine.set_paused(!options.auto_start);
        while engine.poll_event().is_some() {} // nobody is subscribed yet
        let mut random = js::RandomPool::default();
        let driver = Rc::new_cyclic(|me| Driver {
            engine: RefCell::new(engine),
            store,
            sender: options.sender,
            timer: RefCell::default(),
            batch: RefCell::default(),
            writes: WriteCallbacks::new(me),
            listeners: RefCell::default(),
            next_listener: Cell::new(1),
            flush_waiters: RefCell::default(),
            delivery_scheduled: Cell::new(false),
            closed: Cell::new(false),
            connectivity: RefCell::new(None),
            tab: crate::core::key::new_key(js::now(), random.ten_bytes()),
            random: RefCell::new(random),
            name: options.name,
            channel: RefCell::new(None),
            lock: RefCell::new(None),
            freeze: RefCell::new(None),
            frozen: Cell::new(false),
            remote_flushes: RefCell::default(),
            local_flushes: RefCell::default(),
            forwarded_flushes: RefCell::default(),
        });

        let weak = Rc::downgrade(&driver);
        *driver.connectivity.borrow_mut() = Some(Connectivity::listen(move |online| {
            if let Some(driver) = weak.upgrade() {
                driver.engine_mut().set_online(online);
                driver.drive();
            }
        }));
        driver.start_tabs().await;
        driver.drive();
        Ok(Outbox { driver })
    }
}

#[wasm_bindgen(js_class = Outbox)]
impl Outbox {
    /// Stores a message durably; resolves with it once committed.
    pub fn enqueue(&self, payload: JsValue, options: JsValue) -> Promise {
        self.driver.enqueue(payload, &options)
    }

    /// Pending messages, oldest first.
    pub fn pending(&self) -> Promise {
        let driver = self.driver.clone();
        promise(async move {
            driver.check_open()?;
            let list = driver.store.list_pending().await?;
            let engine = driver.engine_ref();
            for record in list.iter() {
                live_state(&record, &engine);
            }
            Ok(list.into())
        })
    }

    /// Dead letters, oldest first.
    #[wasm_bindgen(js_name = deadLetters)]
    pub fn dead_letters(&self) -> Promise {
        let driver = self.driver.clone();
        promise(async move {
            driver.check_open()?;
            driver.store.list_dead().await
        })
    }

    /// Moves dead letters (all, or the given keys) back to pending with the same key.
    #[wasm_bindgen(js_name = retryDead)]
    pub fn retry_dead(&self, keys: JsValue) -> Promise {
        let driver = self.driver.clone();
        promise(async move {
            driver.check_open()?;
            let keys = keys_argument(&keys)?;
            let now = js::now();
            let allocator = driver.clone();
            let moved = driver
                .store
                .redrive(keys.as_deref(), now, move || {
                    allocator.engine_mut().allocate_seq(now)
                })
                .await?;
            let count = moved.len();
            driver.tell(Note::Redriven {
                messages: moved.clone(),
            });
            driver.engine_mut().redriven(moved);
            driver.drive();
            Ok(count.into())
        })
    }

    /// Deletes dead letters (all, or the given keys).
    #[wasm_bindgen(js_name = discardDead)]
    pub fn discard_dead(&self, keys: JsValue) -> Promise {
        let driver = self.driver.clone();
        promise(async move {
            driver.check_open()?;
            let keys = {
                let engine = driver.engine_ref();
                match keys_argument(&keys)? {
                    None => engine.dead_keys(),
                    Some(mut keys) => {
                        keys.retain(|k| engine.is_dead(k));
                        keys
                    }
                }
            };
            driver.store.discard(&keys).await?;
            let count = keys.len();
            driver.tell(Note::Discarded { keys: keys.clone() });
            driver.engine_mut().discarded(keys);
            driver.drive();
            Ok(count.into())
        })
    }

    /// Attempts every pending message now; resolves with a summary when done.
    pub fn flush(&self) -> Promise {
        if let Err(err) = self.driver.check_open() {
            return reject(err);
        }
        if let Some(forwarded) = self.driver.forward_flush() {
            return forwarded;
        }
        let id = self.driver.engine_mut().flush();
        let (waiter, resolve, reject) = js::new_promise();
        self.driver
            .flush_waiters
            .borrow_mut()
            .push((id, resolve, reject));
        self.driver.drive();
        waiter
    }

    /// Changes the retry flags at once and persists them.
    #[wasm_bindgen(js_name = setFlags)]
    pub fn set_flags(&self, patch: JsValue) -> Promise {
        let driver = self.driver.clone();
        promise(async move {
            driver.check_open()?;
            let patch = options::flags_patch(&patch)?;
            let flags = driver.engine_mut().set_flags(patch, js::now())?;
            driver.drive();
            driver.store.save_flags(&flags).await?;
            driver.tell(Note::Flags { flags });
            Ok(flags_to_js(&flags))
        })
    }

    /// The current flags.
    pub fn flags(&self) -> JsValue {
        flags_to_js(&self.driver.engine_ref().flags())
    }

    /// Counts for a status display.
    pub fn stats(&self) -> JsValue {
        stats_to_js(&self.driver.engine_ref().stats(js::now()))
    }

    /// Stops automatic sending (flush still sends) until `resume()`.
    pub fn pause(&self) {
        self.driver.engine_mut().set_paused(true);
    }

    /// Resumes automatic sending.
    pub fn resume(&self) {
        self.driver.engine_mut().set_paused(false);
        self.driver.drive();
    }

    /// Calls `listener(event)` on every state change; returns the function that stops it.
    pub fn subscribe(&self, listener: Function) -> Function {
        let id = self.driver.next_listener.get();
        self.driver.next_listener.set(id + 1);
        self.driver.listeners.borrow_mut().push((id, listener));
        let weak: Weak<Driver> = Rc::downgrade(&self.driver);
        Closure::<dyn FnMut()>::new(move || {
            if let Some(driver) = weak.upgrade() {
                driver.listeners.borrow_mut().retain(|(i, _)| *i != id);
            }
        })
        .into_js_value()
        .unchecked_into()
    }

    /// Stops sending and closes the database. Requests in flight are not recorded: their
    /// messages stay pending and are resent, with the same key, when the outbox reopens.
    pub fn close(&self) -> Promise {
        let driver = &self.driver;
        if !driver.closed.get() {
            // What was enqueued before close() goes in before the database closes.
            driver.start_write();
            driver.closed.set(true);
            driver.timer.borrow_mut().set(None, 0, || {});
            driver.connectivity.borrow_mut().take();
            driver.freeze.borrow_mut().take();
            driver.lock.borrow_mut().take();
            // A write under way keeps the channel for its note (see `finish_write`).
            if !driver.is_writing() {
                driver.channel.borrow_mut().take();
            }
            driver.store.close();
            let closed: JsValue =
                OutboxError::new(ErrorCode::Closed, "the outbox was closed").into();
            for (_, _, reject) in driver.flush_waiters.borrow_mut().drain(..) {
                let _ = reject.call1(&JsValue::NULL, &closed);
            }
        }
        Promise::resolve(&JsValue::UNDEFINED)
    }
}

impl Driver {
    /// The engine, borrowed mutably. Every borrow goes through here (and
    /// [`Driver::engine_ref`]): `RefCell` records the caller of each borrow for its
    /// panic message, and one caller is one location in the wasm module, not forty.
    pub(super) fn engine_mut(&self) -> RefMut<'_, Engine> {
        self.engine.borrow_mut()
    }

    /// The engine, borrowed shared (see [`Driver::engine_mut`]).
    pub(super) fn engine_ref(&self) -> Ref<'_, Engine> {
        self.engine.borrow()
    }

    pub(super) fn check_open(&self) -> Result<(), OutboxError> {
        if self.closed.get() {
            return Err(OutboxError::new(ErrorCode::Closed, "the outbox was closed"));
        }
        Ok(())
    }

    /// Runs every action the engine has due, re-arms the timer, schedules delivery.
    pub(super) fn drive(self: &Rc<Self>) {
        if self.closed.get() {
            return;
        }
        let now = js::now();
        loop {
            let action = self.engine_mut().poll_action(now);
            match action {
                None => break,
                Some(Action::Send(first)) => {
                    let request = self.fill_batch(first, now);
                    spawn_local(self.clone().send(request));
                }
                Some(Action::Settle(settlement)) => {
                    let driver = self.clone();
                    spawn_local(async move {
                        driver.settle(None, vec![settlement]).await;
                        driver.drive();
                    })
                }
            }
        }
        let deadline = self.engine_ref().poll_timeout();
        let weak = Rc::downgrade(self);
        self.timer.borrow_mut().set(deadline, now, move || {
            if let Some(driver) = weak.upgrade() {
                driver.timer.borrow_mut().fired();
                driver.drive();
            }
        });
        self.schedule_delivery();
    }

    /// Takes more due messages into `first`'s request, in batch mode.
    fn fill_batch(&self, first: Transmit, now: Millis) -> Vec<Transmit> {
        let mut batch = vec![first];
        if self.sender.batch_endpoint.is_none() {
            return batch;
        }
        let mut engine = self.engine_mut();
        let (max_items, max_bytes) = (
            engine.config().batch_max_items,
            engine.config().batch_max_bytes,
        );
        let mut budget = max_bytes.saturating_sub(u64::from(batch[0].bytes));
        while batch.len() < max_items {
            let Some(next) = engine.poll_more(now, batch[0].request, budget) else {
                break;
            };
            budget = budget.saturating_sub(u64::from(next.bytes));
            batch.push(next);
        }
        batch
    }

    /// Sends one request (one message, or a batch), then records every outcome.
    async fn send(self: Rc<Self>, transmits: Vec<Transmit>) {
        let mut metas = Vec::new();
        for t in &transmits {
            if let Some(meta) = self.engine_ref().stored(&t.key) {
                metas.push(StoredMessage {
                    attempts: t.attempt,
                    ..meta
                });
            }
        }
        // The attempt counts are persisted before the request goes out.
        let request = concat(&[&self.tab, ":", &decimal(transmits[0].request)]);
        let bodies = self.store.begin_attempts(&request, &metas).await;
        if let Err(err) = &bodies {
            self.storage_failed(None, err);
        }
        let mut items = Vec::new();
        let mut outcomes = Vec::new();
        for (i, transmit) in transmits.into_iter().enumerate() {
            match &bodies {
                Ok(bodies) => match bodies.get(i) {
                    Some(Some(body)) => items.push((transmit, body.clone())),
                    // Delivered or discarded by another tab; its note tells the listeners.
                    Some(None) => self.engine_mut().vanished(&transmit.key),
                    None => {}
                },
                Err(err) => {
                    let message = err.message.clone();
                    outcomes.push((transmit.key, Outcome::NetworkError { message }));
                }
            }
        }
        match items.len() {
            0 => {}
            1 => outcomes.push((
                items[0].0.key.clone(),
                self.sender.send(&items[0].0, &items[0].1).await,
            )),
            _ => {
                let answers = self.sender.send_batch(&items).await;
                for ((t, _), answer) in items.into_iter().zip(answers) {
                    outcomes.push((t.key, answer));
                }
            }
        }
        if self.closed.get() {
            return; // stays pending in storage; resent with the same key on reopen
        }
        let mut settlements = Vec::new();
        let now = js::now();
        for (key, outcome) in outcomes {
            let rand = js::random_unit();
            let mut engine = self.engine_mut();
            settlements.extend(engine.on_outcome(&key, outcome, now, rand));
        }
        self.settle(Some(request), settlements).await;
        self.drive();
    }

    /// Persists settlements in one transaction, ending the request they came from (if
    /// any), then commits them and tells the other tabs.
    async fn settle(self: &Rc<Self>, request: Option<String>, settlements: Vec<Settlement>) {
        if settlements.is_empty() && request.is_none() {
            return;
        }
        let mut records = Vec::new();
        for settlement in settlements {
            let Some(mut meta) = self.engine_ref().stored(settlement.key()) else {
                continue;
            };
            if let Settlement::Dead {
                attempts,
                last_error,
                ..
            } = &settlement
            {
                meta.attempts = *attempts;
                meta.last_error = Some(last_error.clone());
                meta.next_attempt_at = None;
            }
            records.push((settlement, meta));
        }
        if let Err(err) = self.store.record(request, &records).await {
            self.storage_failed(None, &err);
        }
        if self.closed.get() {
            return;
        }
        for (settlement, _) in records {
            self.engine_mut().commit(settlement.key());
            self.tell(Note::Settled { settlement });
        }
    }

    pub(super) fn storage_failed(&self, key: Option<&str>, err: &OutboxError) {
        let event = Event::StorageFailed {
            key: key.map(String::from),
            message: err.to_text(),
        };
        self.engine_mut().push_event(event);
    }

    fn schedule_delivery(self: &Rc<Self>) {
        if self.delivery_scheduled.replace(true) {
            return;
        }
        let driver = self.clone();
        spawn_local(async move {
            driver.delivery_scheduled.set(false);
            driver.deliver();
        });
    }

    /// Hands queued events to listeners and settles finished flushes. No borrow is held
    /// while JS runs.
    fn deliver(&self) {
        loop {
            let event = self.engine_mut().poll_event();
            let Some(event) = event else { break };
            let mut listeners = Vec::new();
            for (_, listener) in self.listeners.borrow().iter() {
                listeners.push(listener.clone());
            }
            if listeners.is_empty() {
                continue; // nobody to build the JS object for
            }
            let event = event_to_js(&event);
            for listener in listeners {
                // A listener's exception must not stop the others; it goes where
                // developers look.
                if let Err(err) = listener.call1(&JsValue::NULL, &event) {
                    js::console_error(&"durable-outbox: a subscribe listener threw:".into(), &err);
                }
            }
        }
        loop {
            let done = self.engine_mut().poll_flush_done();
            let Some((id, summary)) = done else { break };
            if self.answer_remote_flush(id, summary) {
                continue;
            }
            let waiter = {
                let mut waiters = self.flush_waiters.borrow_mut();
                let mut taken = self.local_flushes.borrow_mut();
                match waiters.iter().position(|(i, _, _)| *i == id) {
                    Some(at) => Some(waiters.swap_remove(at).1),
                    None => taken
                        .iter()
                        .position(|(i, _)| *i == id)
                        .map(|at| taken.swap_remove(at).1),
                }
            };
            if let Some(resolve) = waiter {
                let _ = resolve.call1(&JsValue::NULL, &summary_to_js(&summary));
            }
        }
    }
}
