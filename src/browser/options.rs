//! Reading `Outbox.open`'s options (and `setFlags`' patch), everything checked before
//! anything is opened.
//!
//! The fields are checked in a fixed order: the first bad one is the one an error names.

use alloc::string::String;

use js_sys::{Array, Function};
use wasm_bindgen::{JsCast, JsValue};

use super::convert::must_be;
use super::error::invalid_options;
use super::js::get;
use super::store::Durability;
use super::transport::{Route, Sender};
use crate::core::config::Options;
use crate::core::text::concat;
use crate::core::{Config, Flags, FlagsPatch, OutboxError};

/// The fields of `Outbox.open`'s options, in the order they are checked: read all at
/// once into an array, indexed by the constants below, checked by one loop where the
/// checks are alike.
const NAMES: [&str; 19] = [
    "name",
    "maxAttempts",
    "maxDelayMs",
    "jitter",
    "maxAgeMs",
    "concurrency",
    "requestTimeoutMs",
    "maxPayloadBytes",
    "batchMaxItems",
    "batchMaxBytes",
    "flags",
    "transport",
    "endpoint",
    "headers",
    "getHeaders",
    "durability",
    "autoStart",
    "batchEndpoint",
    "classify",
];
const NAME: usize = 0;
const JITTER: usize = 3;
const FLAGS: usize = 10;
const TRANSPORT: usize = 11;
const ENDPOINT: usize = 12;
const HEADERS: usize = 13;
const GET_HEADERS: usize = 14;
const DURABILITY: usize = 15;
const AUTO_START: usize = 16;
const BATCH_ENDPOINT: usize = 17;
const CLASSIFY: usize = 18;

/// Everything `Outbox.open` was told.
pub struct OpenOptions {
    /// The outbox's name: one IndexedDB database per name.
    pub name: String,
    /// Validated numeric options.
    pub config: Config,
    /// Flags to use when none are persisted.
    pub flags: Flags,
    /// How messages are sent.
    pub sender: Sender,
    /// How write transactions wait for the disk.
    pub durability: Durability,
    /// When false, nothing is sent until `flush()`.
    pub auto_start: bool,
}

/// The types an optional field may have; `WHAT` names them in errors.
#[derive(Clone, Copy)]
enum Kind {
    Number,
    Text,
    Boolean,
    Callable,
}

const WHAT: [&str; 4] = ["a number", "a string", "a boolean", "a function"];

fn absent(value: &JsValue) -> bool {
    value.is_undefined() || value.is_null()
}

/// Refuses a field that is present (not `undefined` or `null`) but of another type.
fn check(value: &JsValue, name: &str, kind: Kind) -> Result<(), OutboxError> {
    let ok = absent(value)
        || match kind {
            Kind::Number => value.as_f64().is_some(),
            Kind::Text => value.as_string().is_some(),
            Kind::Boolean => value.as_bool().is_some(),
            Kind::Callable => value.is_function(),
        };
    if ok {
        return Ok(());
    }
    Err(invalid_options(must_be(name, WHAT[kind as usize])))
}

/// A checked function field.
fn function(value: &JsValue, name: &str) -> Result<Option<Function>, OutboxError> {
    check(value, name, Kind::Callable)?;
    Ok(value.dyn_ref::<Function>().cloned())
}

/// Reads a flags patch, `{ retryEnabled?, retryIntervalMs? }`.
pub fn flags_patch(value: &JsValue) -> Result<FlagsPatch, OutboxError> {
    if !value.is_object() {
        return Err(invalid_options("flags must be an object"));
    }
    let v = [get(value, "retryEnabled"), get(value, "retryIntervalMs")];
    check(&v[0], "retryEnabled", Kind::Boolean)?;
    check(&v[1], "retryIntervalMs", Kind::Number)?;
    Ok(FlagsPatch {
        retry_enabled: v[0].as_bool(),
        retry_interval_ms: v[1].as_f64(),
    })
}

/// Reads and validates the options object.
pub fn read(options: &JsValue) -> Result<OpenOptions, OutboxError> {
    if !options.is_object() {
        return Err(invalid_options("Outbox.open takes an options object"));
    }
    let v: [JsValue; 19] = core::array::from_fn(|i| get(options, NAMES[i]));
    let name = v[NAME].as_string().filter(|n| !n.is_empty());
    let name = name.ok_or_else(|| invalid_options("name is required: a non-empty string"))?;
    // The numbers and jitter, in one loop.
    for i in 1..FLAGS {
        let kind = if i == JITTER {
            Kind::Text
        } else {
            Kind::Number
        };
        check(&v[i], NAMES[i], kind)?;
    }
    let flags = &v[FLAGS];
    let plain = Options {
        max_attempts: v[1].as_f64(),
        max_delay_ms: v[2].as_f64(),
        jitter: v[JITTER].as_string(),
        max_age_ms: v[4].as_f64(),
        concurrency: v[5].as_f64(),
        request_timeout_ms: v[6].as_f64(),
        max_payload_bytes: v[7].as_f64(),
        batch_max_items: v[8].as_f64(),
        batch_max_bytes: v[9].as_f64(),
        flags: if absent(flags) {
            None
        } else {
            Some(flags_patch(flags)?)
        },
    };
    let (config, flags) = Config::from_options(&plain)?;
    let transport = function(&v[TRANSPORT], "transport")?;
    let endpoint = &v[ENDPOINT];
    let route = match (transport, endpoint.as_string()) {
        (Some(f), _) => Route::Custom(f),
        (None, Some(url)) if !url.is_empty() => Route::Fetch {
            endpoint: endpoint.clone(),
            headers: static_headers(&v[HEADERS])?,
            get_headers: function(&v[GET_HEADERS], "getHeaders")?,
        },
        _ if !absent(endpoint) => {
            return Err(invalid_options("endpoint must be a non-empty URL string"))
        }
        _ => return Err(invalid_options("give an endpoint or a transport")),
    };
    let durability = match v[DURABILITY].as_string().as_deref() {
        None | Some("default") => Durability::Default,
        Some("strict") => Durability::Strict,
        Some("relaxed") => Durability::Relaxed,
        Some(other) => {
            return Err(invalid_options(concat(&[
                "durability must be \"default\", \"strict\" or \"relaxed\", not \"",
                other,
                "\"",
            ])))
        }
    };
    let auto_start = match &v[AUTO_START] {
        v if v.is_undefined() => true,
        v => v
            .as_bool()
            .ok_or_else(|| invalid_options("autoStart must be a boolean"))?,
    };
    let batch_endpoint = match &v[BATCH_ENDPOINT] {
        v if absent(v) => None,
        v => match (v.as_string(), &route) {
            (Some(url), Route::Fetch { .. }) if !url.is_empty() => Some(v.clone()),
            (Some(_), Route::Custom(_)) => {
                return Err(invalid_options(
                    "batchEndpoint needs endpoint (fetch), not a transport",
                ))
            }
            _ => {
                return Err(invalid_options(
                    "batchEndpoint must be a non-empty URL string",
                ))
            }
        },
    };
    let sender = Sender {
        batch_endpoint,
        route,
        classify: function(&v[CLASSIFY], "classify")?,
        timeout_ms: config.request_timeout_ms,
    };
    Ok(OpenOptions {
        name,
        config,
        flags,
        sender,
        durability,
        auto_start,
    })
}

/// The `headers` option as `[name, value]` pairs, every value checked to be a string.
fn static_headers(value: &JsValue) -> Result<Array, OutboxError> {
    if absent(value) {
        return Ok(Array::new());
    }
    if !value.is_object() {
        return Err(invalid_options("headers must be an object of strings"));
    }
    // Object.entries names only string keys.
    let pairs = js_sys::Object::entries(value.unchecked_ref());
    for pair in pairs.iter() {
        if pair.unchecked_into::<Array>().get(1).as_string().is_none() {
            return Err(invalid_options("headers must be an object of strings"));
        }
    }
    Ok(pairs)
}
