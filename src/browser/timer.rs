//! The one wake-up timer of an outbox, re-armed only when the engine's deadline moves
//! (as quinn's drivers do), so a busy queue does not churn through `setTimeout`s.

use gloo_timers::callback::Timeout;

use crate::core::Millis;

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
