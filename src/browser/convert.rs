//! Plain JS values to and from Rust ones, by hand. Every shape the package exchanges is
//! small and fixed, and a serde layer cost more code than all of them together.
//!
//! Writing: an `Object` filled with [`super::js::set`] and the value makers below.
//! Reading stored or internal values: [`whole`], [`string`], [`boolean`] give `None` for
//! a field that is missing or of the wrong type. Reading what an app passed in: the
//! `optional_*` readers tell "absent" (`undefined` or `null`) from "wrong", so bad input
//! is refused with a message that names the field.
//!
//! Lists are built and read with plain loops: every `collect()` over an iterator chain is
//! its own copy of the iterator code in the wasm module, a loop costs a few bytes.

use alloc::string::String;
use alloc::vec::Vec;

use js_sys::Array;
use wasm_bindgen::{JsCast, JsValue};

use super::js::get;
use crate::core::text::concat;

/// A JS array of the strings.
pub fn string_array(items: &[String]) -> Array {
    let array = Array::new();
    for item in items {
        array.push(&item.into());
    }
    array
}

/// The strings of a JS array; `None` unless it is an array of strings only.
pub fn strings(value: &JsValue) -> Option<Vec<String>> {
    let array: &Array = value.dyn_ref()?;
    let mut out = Vec::new();
    for item in array.iter() {
        out.push(item.as_string()?);
    }
    Some(out)
}

/// A whole number as a JS number (every value the package hands out is a safe integer).
pub fn number(value: u64) -> JsValue {
    JsValue::from_f64(value as f64)
}

/// A number, or `null` for none.
pub fn nullable_number(value: Option<u64>) -> JsValue {
    value.map_or(JsValue::NULL, number)
}

/// A string, or `null` for none.
pub fn nullable_str(value: Option<&str>) -> JsValue {
    value.map_or(JsValue::NULL, JsValue::from)
}

/// A non-negative number field, as a whole number.
pub fn whole(record: &JsValue, name: &str) -> Option<u64> {
    get(record, name)
        .as_f64()
        .filter(|v| *v >= 0.0)
        .map(|v| v as u64)
}

/// A string field.
pub fn string(record: &JsValue, name: &str) -> Option<String> {
    get(record, name).as_string()
}

/// A boolean field.
pub fn boolean(record: &JsValue, name: &str) -> Option<bool> {
    get(record, name).as_bool()
}

/// A field an app may leave out: `Ok(None)` when it is `undefined` or `null`, and
/// `"<name> must be <what>"` when `read` refuses it.
pub fn optional<T>(
    value: &JsValue,
    name: &str,
    read: fn(JsValue) -> Option<T>,
    what: &str,
) -> Result<Option<T>, String> {
    let field = get(value, name);
    if field.is_undefined() || field.is_null() {
        return Ok(None);
    }
    read(field).map(Some).ok_or_else(|| must_be(name, what))
}

/// `"<name> must be <what>"`, the message for a field of the wrong type. Built by
/// hand: no `fmt::Arguments` at each caller.
pub fn must_be(name: &str, what: &str) -> String {
    concat(&[name, " must be ", what])
}

/// An optional string field.
pub fn optional_string(value: &JsValue, name: &str) -> Result<Option<String>, String> {
    optional(value, name, |v| v.as_string(), "a string")
}
