//! Timers: [`Timeout`], a `setTimeout` cancelled on drop, and [`WakeTimer`], the one
//! wake-up timer of an outbox, re-armed only when the engine's deadline moves (as
//! quinn's drivers do), so a busy queue does not churn through `setTimeout`s.

use js_sys::Function;
use wasm_bindgen::prelude::*;

use crate::core::Millis;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Function, millis: i32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

/// A `setTimeout`, cancelled when dropped: gloo-timers' `Timeout`, written out because
/// gloo-timers links std, which the published build leaves out.
#[must_use = "the timeout is cancelled when dropped"]
pub struct Timeout {
    id: JsValue,
    _callback: Closure<dyn FnMut()>,
}

impl Timeout {
    /// Calls `callback` once, after `millis` milliseconds.
    pub fn new(millis: u32, callback: impl FnOnce() + 'static) -> Timeout {
        let callback = Closure::once(callback);
        let id = set_timeout(callback.as_ref().unchecked_ref(), millis as i32);
        Timeout {
            id,
            _callback: callback,
        }
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        clear_timeout(&self.id);
    }
}

/// A timer that fires at a deadline; cancelled when dropped or re-armed.
#[derive(Default)]
pub struct WakeTimer {
    armed: Option<(Millis, Timeout)>,
}

impl WakeTimer {
    /// Makes sure the timer fires at `deadline` (or never, for `None`). Does nothing if
    /// it is already armed for that deadline.
    pub fn set(&mut self, deadline: Option<Millis>, now: Millis, on_fire: impl FnOnce() + 'static) {
        if self.armed.as_ref().map(|(at, _)| *at) == deadline {
            return;
        }
        // Dropping the old `Timeout` cancels it.
        self.armed = deadline.map(|at| {
            let wait = at.saturating_sub(now).min(i32::MAX as u64) as u32;
            (at, Timeout::new(wait, on_fire))
        });
    }

    /// Forgets the deadline after the timer fired, so the next `set` re-arms.
    pub fn fired(&mut self) {
        // Dropping a fired `Timeout` is harmless (clearTimeout of a spent id) and frees its
        // closure; wasm-bindgen defers the free while the closure is still running.
        self.armed = None;
    }
}
