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
        // Both listeners are made by one closure, so they share one closure type and its
        // glue in the module.
        let listen = |kind, online| {
            let on_change = on_change.clone();
            Listener::new(&target, kind, move |_| on_change(online))
        };
        Connectivity {
            _online: listen("online", true),
            _offline: listen("offline", false),
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
