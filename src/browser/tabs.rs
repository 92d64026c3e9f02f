//! Many tabs, one sender: the driver's side of leadership and cross-tab notes.
//!
//! Every tab keeps an engine. The tab holding the sender lock ([`super::leadership`])
//! runs it; the others keep theirs as a mirror that never sends, fed by the notes the
//! tabs post after each commit ([`super::channel`]). A tab that becomes the sender first
//! reloads pending and dead messages from storage (so what the previous sender had in
//! flight is resent, with the same key), then drives. Any tab may enqueue, redrive,
//! discard or change flags itself, since those are storage writes plus a note; a
//! `flush()` in a mirror is forwarded to the sender.

use alloc::string::String;

use alloc::rc::{Rc, Weak};

use js_sys::{Function, Promise};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::{spawn_local, JsFuture};

use super::channel::{Channel, Note};
use super::leadership::{FreezeWatch, LockRequest};
use super::outbox::Driver;
use super::views::summary_to_js;
use crate::core::{Event, FlagsPatch, FlushId, FlushSummary};

/// A flush that another tab asked this sender to run.
pub struct RemoteFlush {
    local: FlushId,
    id: u64,
    to: String,
}

/// A flush this mirror forwarded to the sender, waiting for its answer.
pub struct ForwardedFlush {
    id: u64,
    resolve: Function,
}

impl Driver {
    /// Opens the channel and asks for the sender lock (and watches for freezes). Resolves
    /// once it is known whether this tab sends now. Without Web Locks this tab sends, as
    /// every other tab does.
    pub(super) async fn start_tabs(self: &Rc<Self>) {
        let weak = Rc::downgrade(self);
        *self.channel.borrow_mut() = Channel::open(&self.name, move |note| {
            if let Some(driver) = weak.upgrade() {
                driver.on_note(note);
            }
        });
        let Some(ready) = self.request_lock() else {
            return;
        };
        // The engine was just loaded from storage: a tab that sends at once needs no resync.
        let free = JsFuture::from(ready)
            .await
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        self.engine_mut().set_sender(free);
        let weak = Rc::downgrade(self);
        *self.freeze.borrow_mut() = Some(FreezeWatch::listen(move |frozen| {
            if let Some(driver) = weak.upgrade() {
                driver.on_freeze(frozen);
            }
        }));
    }

    /// Joins the line for the lock; returns the promise of whether it was free at once.
    fn request_lock(self: &Rc<Self>) -> Option<Promise> {
        let weak: Weak<Driver> = Rc::downgrade(self);
        let request = LockRequest::new(&self.name, move |granted| {
            if let Some(driver) = weak.upgrade() {
                if granted {
                    spawn_local(driver.become_sender());
                } else {
                    driver.stop_sending();
                    // Back in line, from a fresh task: this runs inside the old request's callback.
                    spawn_local(async move { driver.rejoin() });
                }
            }
        });
        let (request, ready) = request?;
        self.engine_mut().set_sender(false);
        *self.lock.borrow_mut() = Some(request);
        Some(ready)
    }

    /// Asks for the lock again (after losing it, or after a freeze).
    fn rejoin(self: &Rc<Self>) {
        if self.closed.get() || self.frozen.get() {
            return;
        }
        if let Some(ready) = self.request_lock() {
            let driver = self.clone();
            spawn_local(async move {
                if JsFuture::from(ready).await.ok().and_then(|v| v.as_bool()) == Some(true) {
                    driver.become_sender().await;
                }
            });
        }
    }

    async fn become_sender(self: Rc<Self>) {
        let loaded = self.store.load().await;
        if self.closed.get() || self.frozen.get() {
            return;
        }
        match loaded {
            Ok(loaded) => {
                let mut engine = self.engine_mut();
                engine.resync(loaded.pending, loaded.dead_keys);
                engine.set_sender(true);
                engine.push_event(Event::SenderChanged { sender: true });
            }
            Err(err) => self.storage_failed(None, &err),
        }
        // Flushes this tab forwarded to the old sender may never be answered: run them here.
        let forwarded = core::mem::take(&mut *self.forwarded_flushes.borrow_mut());
        for waiter in forwarded {
            let local = self.engine_mut().flush();
            self.local_flushes
                .borrow_mut()
                .push((local, waiter.resolve));
        }
        self.drive();
    }

    fn stop_sending(self: &Rc<Self>) {
        let mut engine = self.engine_mut();
        if engine.is_sender() {
            engine.set_sender(false);
            engine.push_event(Event::SenderChanged { sender: false });
        }
        drop(engine);
        self.drive();
    }

    /// A frozen page lets the others send; a resumed one gets back in line.
    fn on_freeze(self: &Rc<Self>, frozen: bool) {
        self.frozen.set(frozen);
        if frozen {
            self.lock.borrow_mut().take(); // releases the lock, or the place in line
            self.stop_sending();
            // A frozen page runs no timers: what the other tabs have not heard goes now.
            if let Some(channel) = self.channel.borrow().as_ref() {
                channel.post_waiting();
            }
        } else {
            self.rejoin();
        }
    }

    /// Tells the other tabs about a committed change.
    pub(super) fn tell(&self, note: Note) {
        if let Some(channel) = self.channel.borrow().as_ref() {
            channel.post(note);
        }
    }

    fn on_note(self: &Rc<Self>, note: Note) {
        if self.closed.get() {
            return;
        }
        let sender = self.engine_ref().is_sender();
        match note {
            Note::Enqueued { messages } => self.engine_mut().adopt(messages),
            Note::Settled { settlement } => self.engine_mut().apply_remote(settlement),
            Note::Redriven { messages } => self.engine_mut().redriven(messages),
            Note::Discarded { keys } => self.engine_mut().discarded(keys),
            Note::Flags { flags } => {
                let patch = FlagsPatch {
                    retry_enabled: Some(flags.retry_enabled),
                    retry_interval_ms: Some(flags.retry_interval_ms as f64),
                };
                let _ = self.engine_mut().set_flags(patch, super::js::now());
            }
            Note::FlushRequest { id, from } if sender => {
                let local = self.engine_mut().flush();
                self.remote_flushes.borrow_mut().push(RemoteFlush {
                    local,
                    id,
                    to: from,
                });
            }
            Note::FlushRequest { .. } => {}
            Note::FlushDone { id, to, summary } if to == self.tab => {
                let waiter = {
                    let mut waiting = self.forwarded_flushes.borrow_mut();
                    waiting
                        .iter()
                        .position(|f| f.id == id)
                        .map(|at| waiting.swap_remove(at))
                };
                if let Some(waiter) = waiter {
                    let _ = waiter
                        .resolve
                        .call1(&JsValue::NULL, &summary_to_js(&summary));
                }
            }
            Note::FlushDone { .. } => {}
        }
        self.drive();
    }

    /// `flush()` in a tab that does not send: the sender runs it and answers.
    pub(super) fn forward_flush(&self) -> Option<Promise> {
        if self.engine_ref().is_sender() || self.channel.borrow().is_none() {
            return None;
        }
        let id = (super::js::random_unit() * 9_007_199_254_740_991.0) as u64;
        let (waiter, resolve, _) = super::js::new_promise();
        self.forwarded_flushes
            .borrow_mut()
            .push(ForwardedFlush { id, resolve });
        self.tell(Note::FlushRequest {
            id,
            from: self.tab.clone(),
        });
        Some(waiter)
    }

    /// A finished local flush that another tab asked for: answer it. Returns `false` if
    /// the flush was this tab's own.
    pub(super) fn answer_remote_flush(&self, local: FlushId, summary: FlushSummary) -> bool {
        let remote = {
            let mut remote = self.remote_flushes.borrow_mut();
            remote
                .iter()
                .position(|f| f.local == local)
                .map(|at| remote.swap_remove(at))
        };
        match remote {
            Some(RemoteFlush { id, to, .. }) => {
                self.tell(Note::FlushDone { id, to, summary });
                true
            }
            None => false,
        }
    }
}
