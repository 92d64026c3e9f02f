//! Reading `Outbox.open`'s options (and `setFlags`' patch), everything checked before
//! anything is opened.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use js_sys::Function;
use wasm_bindgen::{JsCast, JsValue};

use super::convert::{optional, optional_bool, optional_number, optional_string};
use super::error::invalid_options;
use super::js::get;
use super::store::Durability;
use super::transport::{Route, Sender};
use crate::core::config::Options;
use crate::core::{Config, Flags, FlagsPatch, OutboxError};

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

fn function(options: &JsValue, name: &str) -> Result<Option<Function>, OutboxError> {
    optional(options, name, |v| v.dyn_into().ok(), "a function").map_err(invalid_options)
}

/// Reads a flags patch, `{ retryEnabled?, retryIntervalMs? }`.
pub fn flags_patch(value: &JsValue) -> Result<FlagsPatch, String> {
    if !value.is_object() {
        return Err("flags must be an object".into());
    }
    Ok(FlagsPatch {
        retry_enabled: optional_bool(value, "retryEnabled")?,
        retry_interval_ms: optional_number(value, "retryIntervalMs")?,
    })
}

/// The plain values of the options, read but not yet validated.
fn plain(options: &JsValue) -> Result<Options, String> {
    let number = |name| optional_number(options, name);
    let flags = get(options, "flags");
    Ok(Options {
        max_attempts: number("maxAttempts")?,
        max_delay_ms: number("maxDelayMs")?,
        jitter: optional_string(options, "jitter")?,
        max_age_ms: number("maxAgeMs")?,
        concurrency: number("concurrency")?,
        request_timeout_ms: number("requestTimeoutMs")?,
        max_payload_bytes: number("maxPayloadBytes")?,
        batch_max_items: number("batchMaxItems")?,
        batch_max_bytes: number("batchMaxBytes")?,
        flags: if flags.is_undefined() || flags.is_null() {
            None
        } else {
            Some(flags_patch(&flags)?)
        },
    })
}

/// Reads and validates the options object.
pub fn read(options: &JsValue) -> Result<OpenOptions, OutboxError> {
    if !options.is_object() {
        return Err(invalid_options("Outbox.open takes an options object"));
    }
    let name = get(options, "name").as_string().filter(|n| !n.is_empty());
    let name = name.ok_or_else(|| invalid_options("name is required: a non-empty string"))?;
    let plain = plain(options).map_err(invalid_options)?;
    let (config, flags) = Config::from_options(&plain)?;
    let transport = function(options, "transport")?;
    let endpoint = get(options, "endpoint");
    let route = match (transport, endpoint.as_string()) {
        (Some(f), _) => Route::Custom(f),
        (None, Some(endpoint)) if !endpoint.is_empty() => Route::Fetch {
            endpoint,
            headers: static_headers(&get(options, "headers"))?,
            get_headers: function(options, "getHeaders")?,
        },
        _ if !endpoint.is_undefined() && !endpoint.is_null() => {
            return Err(invalid_options("endpoint must be a non-empty URL string"))
        }
        _ => return Err(invalid_options("give an endpoint or a transport")),
    };
    let durability = match get(options, "durability").as_string().as_deref() {
        None | Some("default") => Durability::Default,
        Some("strict") => Durability::Strict,
        Some("relaxed") => Durability::Relaxed,
        Some(other) => {
            return Err(invalid_options(format!(
                "durability must be \"default\", \"strict\" or \"relaxed\", not \"{other}\""
            )))
        }
    };
    let auto_start = match get(options, "autoStart") {
        v if v.is_undefined() => true,
        v => v
            .as_bool()
            .ok_or_else(|| invalid_options("autoStart must be a boolean"))?,
    };
    let batch_endpoint = match get(options, "batchEndpoint") {
        v if v.is_undefined() || v.is_null() => None,
        v => match (v.as_string(), &route) {
            (Some(url), Route::Fetch { .. }) if !url.is_empty() => Some(url),
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
        classify: function(options, "classify")?,
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

fn static_headers(value: &JsValue) -> Result<Vec<(String, String)>, OutboxError> {
    if value.is_undefined() || value.is_null() {
        return Ok(Vec::new());
    }
    if !value.is_object() {
        return Err(invalid_options("headers must be an object of strings"));
    }
    let mut headers = Vec::new();
    for pair in js_sys::Object::entries(value.unchecked_ref()).iter() {
        let pair: js_sys::Array = pair.unchecked_into();
        match (pair.get(0).as_string(), pair.get(1).as_string()) {
            (Some(name), Some(value)) => headers.push((name, value)),
            _ => return Err(invalid_options("headers must be an object of strings")),
        }
    }
    Ok(headers)
}
