//! Small JS helpers. The JSON encoding is JavaScript because `JSON.stringify` with a
//! replacer is both the fastest and the exact definition of "what JSON can represent".

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::core::Millis;

#[wasm_bindgen(inline_js = r#"
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
  const bytes = text.length * 3 <= maxBytes ? text.length : new TextEncoder().encode(text).length;
  if (bytes > maxBytes) {
    return { error: "payload-too-large", message: `the payload is ${bytes} bytes of JSON; maxPayloadBytes is ${maxBytes}` };
  }
  return { text };
}
export function now() { return Date.now(); }
export function rejectOnAbort(signal) {
  return new Promise((_, reject) => signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true }));
}
"#)]
extern "C" {
    /// `{ text }` on success, `{ error, message }` otherwise.
    #[wasm_bindgen(js_name = encodePayload)]
    pub fn encode_payload(value: &JsValue, max_bytes: f64) -> JsValue;

    #[wasm_bindgen(js_name = now)]
    fn date_now() -> f64;

    /// A promise that rejects when the signal aborts (and never settles otherwise).
    #[wasm_bindgen(js_name = rejectOnAbort)]
    pub fn reject_on_abort(signal: &web_sys::AbortSignal) -> js_sys::Promise;
}

/// The wall clock, in milliseconds since the epoch: the only clock the core sees.
pub fn now() -> Millis {
    date_now() as Millis
}

/// A property of the global object (`window` or a worker's `self`).
pub fn global(name: &str) -> JsValue {
    Reflect::get(&js_sys::global(), &name.into()).unwrap_or(JsValue::UNDEFINED)
}

/// Ten bytes from `crypto.getRandomValues`, for a UUIDv7's random part.
pub fn random_bytes() -> [u8; 10] {
    let mut out = [0u8; 10];
    let array = Uint8Array::new_with_length(10);
    let crypto = global("crypto");
    if let Ok(f) = Reflect::get(&crypto, &"getRandomValues".into()) {
        if let Ok(f) = f.dyn_into::<js_sys::Function>() {
            let _ = f.call1(&crypto, &array);
        }
    }
    array.copy_to(&mut out);
    out
}

/// A uniform sample in `[0, 1)` for jitter (not security-sensitive).
pub fn random_unit() -> f64 {
    js_sys::Math::random()
}

/// Reads a property.
pub fn get(target: &JsValue, name: &str) -> JsValue {
    Reflect::get(target, &name.into()).unwrap_or(JsValue::UNDEFINED)
}

/// Sets a property on an object we made ourselves (cannot fail).
pub fn set(target: &JsValue, name: &str, value: &JsValue) {
    let _ = Reflect::set(target, &name.into(), value);
}
