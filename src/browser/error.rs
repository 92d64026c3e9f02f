//! Errors crossing the JS boundary: an [`OutboxError`] becomes a JS `Error` with
//! `name === "OutboxError"` and a stable `code`; a storage exception becomes an
//! [`OutboxError`] with the code that says what kind of failure it was.

use alloc::string::String;

use js_sys::Reflect;
use wasm_bindgen::JsValue;

use crate::core::text::concat;
use crate::core::{ErrorCode, OutboxError};

impl From<OutboxError> for JsValue {
    fn from(err: OutboxError) -> JsValue {
        let js = js_sys::Error::new(&err.message);
        js.set_name("OutboxError");
        let _ = Reflect::set(&js, &"code".into(), &err.code.as_str().into());
        js.into()
    }
}

/// Reads a storage exception (a `DOMException`, usually): quota errors get their own
/// code so an app can tell the user to free space.
pub fn storage_error(value: &JsValue, doing: &str) -> OutboxError {
    let name = Reflect::get(value, &"name".into())
        .ok()
        .and_then(|n| n.as_string())
        .unwrap_or_default();
    let message = Reflect::get(value, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| value.as_string())
        .unwrap_or_else(|| "unknown error".into());
    let code = match name.as_str() {
        "QuotaExceededError" => ErrorCode::QuotaExceeded,
        _ => ErrorCode::StorageError,
    };
    OutboxError::new(
        code,
        concat(&["IndexedDB failed while ", doing, ": ", &name, " ", &message]),
    )
}

/// Shorthand for an `invalid-options` error.
pub fn invalid_options(message: impl Into<String>) -> OutboxError {
    OutboxError::new(ErrorCode::InvalidOptions, message)
}
