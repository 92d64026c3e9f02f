//! Who sends: one tab per outbox name, chosen with the Web Locks API.
//!
//! Every tab asks for the exclusive lock `durable-outbox/<name>/sender`; the browser
//! grants it to one, and hands it to the next in line the moment the holder releases
//! it, closes or crashes. A tab also lets go when the browser freezes it (Page
//! Lifecycle `freeze`), and asks again on `resume`, so a frozen tab never stalls the
//! others. Where Web Locks are missing, every tab is a sender and the server's
//! idempotency keys make the duplicate requests harmless.

use alloc::vec;
use alloc::vec::Vec;

use alloc::rc::Rc;

use wasm_bindgen::prelude::*;

use super::js::{self, Listener};
use crate::core::text::concat;

#[wasm_bindgen(inline_js = r#"
export function requestLock(name, onChange) {
  const locks = globalThis.navigator && globalThis.navigator.locks;
  if (!locks || typeof locks.request !== "function") return undefined;
  const abort = new AbortController();
  let release = () => {};
  let done = false;
  let held = false;
  let settleReady;
  const ready = new Promise((resolve) => (settleReady = resolve));
  const hold = () => { held = true; return new Promise((resolve) => (release = resolve)); };
  const lost = () => { if (held && !done) { held = false; onChange(false); } };
  // First ask without queueing: the answer says at once whether this tab sends.
  locks.request(name, { ifAvailable: true }, (lock) => {
    if (done) return undefined;
    settleReady(!!lock);
    if (lock) return hold();
    // Taken: join the line; the holder's close, crash or freeze hands it over.
    locks
      .request(name, { signal: abort.signal }, () => {
        if (done) return undefined;
        onChange(true);
        return hold();
      })
      .catch(() => {})
      .finally(lost);
    return undefined;
  }).catch(() => settleReady(false)).finally(() => { if (held) lost(); });
  return { ready, release() { done = true; abort.abort(); release(); } };
}
"#)]
extern "C" {
    /// Asks for the lock. Returns `{ ready, release() }` (or `undefined` without Web
    /// Locks): `ready` resolves to whether the lock was free at once; a later grant
    /// calls `onChange(true)`, and losing a held lock (stolen) `onChange(false)`.
    #[wasm_bindgen(js_name = requestLock)]
    fn request_lock(name: &str, on_change: &js_sys::Function) -> JsValue;
}

/// A place in line for the sender lock, or the lock itself. Released when dropped.
#[must_use = "the lock (or the place in line) is given up when this is dropped"]
pub struct LockRequest {
    handle: JsValue,
    /// Takes a `JsValue`, not a `bool`: the listeners' closure type, so the wasm module
    /// needs no glue for a second one.
    _on_change: Closure<dyn FnMut(JsValue)>,
}

impl LockRequest {
    /// Asks for `name`'s lock. Returns the request and a promise of whether the lock
    /// was free at once (then `on_change` is not called for that grant); a later grant
    /// or a loss is told to `on_change`. `None` where Web Locks are missing.
    pub fn new(
        name: &str,
        mut on_change: impl FnMut(bool) + 'static,
    ) -> Option<(LockRequest, js_sys::Promise)> {
        let on_change = Closure::<dyn FnMut(JsValue)>::new(move |granted: JsValue| {
            on_change(granted.is_truthy())
        });
        let handle = request_lock(
            &concat(&["durable-outbox/", name, "/sender"]),
            on_change.as_ref().unchecked_ref(),
        );
        if handle.is_undefined() {
            return None;
        }
        let ready = js::get(&handle, "ready").unchecked_into();
        Some((
            LockRequest {
                handle,
                _on_change: on_change,
            },
            ready,
        ))
    }
}

impl Drop for LockRequest {
    fn drop(&mut self) {
        if let Ok(release) = js::get(&self.handle, "release").dyn_into::<js_sys::Function>() {
            let _ = release.call0(&self.handle);
        }
    }
}

/// Calls `on_freeze(true)` when the page is frozen and `on_freeze(false)` when it
/// resumes, while alive. Does nothing outside a document (in a worker).
#[must_use = "the listeners are removed when this is dropped"]
pub struct FreezeWatch {
    _listeners: Vec<Listener>,
}

impl FreezeWatch {
    /// Listens on `document` for `freeze` and `resume`.
    pub fn listen(on_freeze: impl Fn(bool) + 'static) -> FreezeWatch {
        let document = js::global("document");
        if document.is_undefined() {
            return FreezeWatch {
                _listeners: Vec::new(),
            };
        }
        let target = document;
        let on_freeze = Rc::new(on_freeze);
        let (a, b) = (on_freeze.clone(), on_freeze);
        FreezeWatch {
            _listeners: vec![
                Listener::new(&target, "freeze", move |_| a(true)),
                Listener::new(&target, "resume", move |_| b(false)),
            ],
        }
    }
}
