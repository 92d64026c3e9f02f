//! The browser's `online` / `offline` events, as RAII listeners.

use super::js::{self, Listener};

/// Listens for connectivity changes while alive.
#[must_use = "the listeners are removed when this is dropped"]
pub struct Connectivity {
    _online: Listener,
    _offline: Listener,
}

impl Connectivity {
    /// Calls `on_change(true)` on `online` and `on_change(false)` on `offline`.
    pub fn listen(on_change: impl Fn(bool) + Clone + 'static) -> Connectivity {
        let target = js_sys::global().into();
        let up = on_change.clone();
        Connectivity {
            _online: Listener::new(&target, "online", move |_| up(true)),
            _offline: Listener::new(&target, "offline", move |_| on_change(false)),
        }
    }
}

/// What `navigator.onLine` says now (true where it is unknown). It can claim "online"
/// without a working network, so the engine keeps probing with backoff either way.
pub fn is_online() -> bool {
    js::get(&js::global("navigator"), "onLine")
        .as_bool()
        .unwrap_or(true)
}
