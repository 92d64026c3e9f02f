//! Small JS helpers. The JSON encoding is JavaScript because `JSON.stringify` with a
//! replacer is both the fastest and the exact definition of "what JSON can represent".

use alloc::vec::Vec;

use js_sys::Reflect;
use wasm_bindgen::prelude::*;

use crate::core::Millis;

#[wasm_bindgen(inline_js = r#"
export function waitForCommit(waiters, payload) {
  return new Promise((resolve, reject) => waiters.push(resolve, reject, payload));
}
export function resolveEnqueued(waiters, joinedKeys, groups, numbers, errors) {
  const keys = joinedKeys.split("\n");
  for (let i = 0; i < keys.length; i++) {
    if (errors[i] !== undefined) waiters[i * 3 + 1](errors[i]);
    else waiters[i * 3]({ key: keys[i], group: groups[i] ?? null, createdAt: numbers[i * 5 + 1], attempts: 0, state: "pending", payload: waiters[i * 3 + 2] });
  }
}
export function encodePayload(value, maxBytes) {
  let text;
  try {
    text = JSON.stringify(value, function (k, v) {
      const t = typeof v;
      if (t === "function" || t === "symbol" || (t === "undefined" && Array.isArray(this))) {
        throw new TypeError(`a ${t} at ${k === "" ? "the top level" : JSON.stringify(k)} cannot be sent as JSON`);
      }
      return v;
    });
  } catch (e) {
    return { error: "invalid-payload", message: `the payload is not JSON: ${e && e.message}` };
  }
  if (text === undefined) {
    return { error: "invalid-payload", message: "the payload is undefined; JSON cannot represent it" };
  }
  // UTF-8 bytes: the string's length unless it has a non-ASCII character (one native scan).
  const bytes = /[^\0-\x7f]/.test(text) ? new TextEncoder().encode(text).length : text.length;
  if (bytes > maxBytes) {
    return { error: "payload-too-large", message: `the payload is ${bytes} bytes of JSON; maxPayloadBytes is ${maxBytes}` };
  }
  return [text, bytes];
}
export function now() { return Date.now(); }
export function deferred() {
  let resolve, reject;
  const promise = new Promise((yes, no) => { resolve = yes; reject = no; });
  return [promise, resolve, reject];
}
"#)]
extern "C" {
    /// A promise for one `enqueue`: its `resolve`, `reject` and payload go to the end of
    /// `waiters` (three entries per message, in queue order), so wasm holds none of them.
    #[wasm_bindgen(js_name = waitForCommit)]
    pub fn wait_for_commit(waiters: &js_sys::Array, payload: &JsValue) -> js_sys::Promise;

    /// Answers each `enqueue` of a written batch: rejects those with an entry in
    /// `errors`, resolves the others with their message (as `pending()` shows it), built
    /// here rather than field by field from wasm. The columns are `NewMessages`'.
    #[wasm_bindgen(js_name = resolveEnqueued)]
    pub fn resolve_enqueued(
        waiters: &js_sys::Array,
        keys: &str,
        groups: &js_sys::Array,
        numbers: &[f64],
        errors: &js_sys::Array,
    );

    /// `[JSON text, its size in UTF-8 bytes]` on success, `{ error, message }` otherwise.
    #[wasm_bindgen(js_name = encodePayload)]
    pub fn encode_payload(value: &JsValue, max_bytes: f64) -> JsValue;

    #[wasm_bindgen(js_name = now)]
    fn date_now() -> f64;

    /// `[promise, resolve, reject]`.
    fn deferred() -> js_sys::Array;
}

/// The wall clock, in milliseconds since the epoch: the only clock the core sees.
pub fn now() -> Millis {
    date_now() as Millis
}

/// A property of the global object (`window` or a worker's `self`).
pub fn global(name: &str) -> JsValue {
    Reflect::get(&js_sys::global(), &name.into()).unwrap_or(JsValue::UNDEFINED)
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(catch, js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(buffer: &mut [u8]) -> Result<(), JsValue>;
}

/// Random bytes drawn in bulk: one `getRandomValues` call per 64 keys, not per key.
/// Owned by the driver (a `no_std` build has no thread-locals).
#[derive(Default)]
pub struct RandomPool {
    bytes: Vec<u8>,
    used: usize,
}

impl RandomPool {
    /// Ten bytes from `crypto.getRandomValues`, for a UUIDv7's random part.
    pub fn ten_bytes(&mut self) -> [u8; 10] {
        if self.used + 10 > self.bytes.len() {
            self.bytes.resize(640, 0);
            // Every engine with WebAssembly has `crypto`; were it missing, a colliding key
            // would be refused as a duplicate, never overwrite a message.
            let _ = get_random_values(&mut self.bytes);
            self.used = 0;
        }
        let mut out = [0u8; 10];
        out.copy_from_slice(&self.bytes[self.used..self.used + 10]);
        self.used += 10;
        out
    }
}

/// `console.error(first, second)`, if there is a console.
pub fn console_error(first: &JsValue, second: &JsValue) {
    let console = global("console");
    if let Ok(error) = get(&console, "error").dyn_into::<js_sys::Function>() {
        let _ = error.call2(&console, first, second);
    }
}

/// A uniform sample in `[0, 1)` for jitter (not security-sensitive).
pub fn random_unit() -> f64 {
    js_sys::Math::random()
}

/// A new promise with its `resolve` and `reject` functions, made in JS (for `flush()`):
/// a Rust executor closure would cost a closure's glue each time.
pub fn new_promise() -> (js_sys::Promise, js_sys::Function, js_sys::Function) {
    let ends = deferred();
    (
        ends.get(0).unchecked_into(),
        ends.get(1).unchecked_into(),
        ends.get(2).unchecked_into(),
    )
}

/// Reads a property.
pub fn get(target: &JsValue, name: &str) -> JsValue {
    Reflect::get(target, &name.into()).unwrap_or(JsValue::UNDEFINED)
}

/// Sets a property on an object we made ourselves (cannot fail).
pub fn set(target: &JsValue, name: &str, value: &JsValue) {
    let _ = Reflect::set(target, &name.into(), value);
}

#[wasm_bindgen]
extern "C" {
    type EventTarget;

    #[wasm_bindgen(method, js_name = addEventListener)]
    fn add_event_listener(this: &EventTarget, kind: &str, listener: &JsValue);
    #[wasm_bindgen(method, js_name = removeEventListener)]
    fn remove_event_listener(this: &EventTarget, kind: &str, listener: &JsValue);
}

/// An event listener, removed when dropped. Not gloo-events: one closure type for every
/// listener here, and no listener options, is less code in the package.
#[must_use = "the listener is removed when this is dropped"]
pub struct Listener {
    target: EventTarget,
    kind: &'static str,
    callback: Closure<dyn FnMut(JsValue)>,
}

impl Listener {
    /// Calls `on_event(event)` for every `kind` event on `target`.
    pub fn new(
        target: &JsValue,
        kind: &'static str,
        on_event: impl FnMut(JsValue) + 'static,
    ) -> Listener {
        let callback = Closure::<dyn FnMut(JsValue)>::new(on_event);
        let target: EventTarget = target.clone().unchecked_into();
        target.add_event_listener(kind, callback.as_ref());
        Listener {
            target,
            kind,
            callback,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.target
            .remove_event_listener(self.kind, self.callback.as_ref());
    }
}
