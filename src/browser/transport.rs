//! Sending: `fetch` to the endpoint (or the app's own `transport`), with a timeout,
//! turned into an [`Outcome`] for the engine. The requests themselves are made in
//! `transport.js`; this side picks the route and classifies the answers.

use alloc::string::String;
use alloc::vec::Vec;

use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::js;
use crate::core::outcome::parse_retry_after;
use crate::core::{classify_status, Class, Outcome, Transmit};

#[wasm_bindgen(module = "/src/browser/transport.js")]
extern "C" {
    #[wasm_bindgen(js_name = postOne)]
    fn post_one(
        url: &JsValue,
        headers: &Array,
        get_headers: Option<Function>,
        key: &str,
        body: &JsValue,
        timeout_ms: f64,
    ) -> Promise;
    #[wasm_bindgen(js_name = postBatch)]
    fn post_batch(
        url: &JsValue,
        headers: &Array,
        get_headers: Option<Function>,
        keys: &Array,
        bodies: &Array,
        timeout_ms: f64,
    ) -> Promise;
    #[wasm_bindgen(js_name = callTransport)]
    fn call_transport(
        transport: &Function,
        key: &str,
        body: &JsValue,
        group: Option<String>,
        attempt: u32,
        timeout_ms: f64,
    ) -> Promise;
}

/// Where requests go.
pub enum Route {
    /// POST to `endpoint` with `fetch`.
    Fetch {
        /// The URL (a non-empty string), kept as the app's JS string: it is only ever
        /// handed back to `fetch`.
        endpoint: JsValue,
        /// Static headers, sent with every request: `[name, value]` pairs of strings, as
        /// `new Headers(...)` takes them (`Object.entries` of the option, checked).
        headers: Array,
        /// Called before each send for fresh headers (an auth token, say).
        get_headers: Option<Function>,
    },
    /// The app's `transport({key, payload, group, attempt, signal})`.
    Custom(Function),
}

/// Sends messages and classifies what comes back.
pub struct Sender {
    /// Where requests go.
    pub route: Route,
    /// The app's `classify(status)`, if it overrides the status table.
    pub classify: Option<Function>,
    /// Abort after this long.
    pub timeout_ms: u64,
    /// Where batches go (`POST {"items": [{key, payload}]}`), when batch mode is on.
    pub batch_endpoint: Option<JsValue>,
}

/// Awaits one of `transport.js`'s calls (which never reject).
async fn answer(promise: Promise) -> JsValue {
    JsFuture::from(promise).await.unwrap_or_else(|e| e)
}

impl Sender {
    /// Sends `body` (JSON text) for the message and reports how it went.
    pub async fn send(&self, transmit: &Transmit, body: &JsValue) -> Outcome {
        let timeout = self.timeout_ms as f64;
        let promise = match &self.route {
            Route::Fetch {
                endpoint,
                headers,
                get_headers,
            } => post_one(
                endpoint,
                headers,
                get_headers.clone(),
                &transmit.key,
                body,
                timeout,
            ),
            Route::Custom(transport) => call_transport(
                transport,
                &transmit.key,
                body,
                transmit.group.clone(),
                transmit.attempt,
                timeout,
            ),
        };
        self.outcome(&answer(promise).await)
    }

    /// Sends several messages in one request to the batch endpoint; one outcome per
    /// item, in order. A whole-batch answer (a 503, say) is every item's answer.
    pub async fn send_batch(&self, items: &[(Transmit, JsValue)]) -> Vec<Outcome> {
        let (
            Some(url),
            Route::Fetch {
                headers,
                get_headers,
                ..
            },
        ) = (&self.batch_endpoint, &self.route)
        else {
            unreachable!("batch mode is only accepted with an endpoint");
        };
        let (keys, bodies) = (Array::new(), Array::new());
        for (t, body) in items {
            keys.push(&JsValue::from(&t.key));
            bodies.push(body);
        }
        let reply = answer(post_batch(
            url,
            headers,
            get_headers.clone(),
            &keys,
            &bodies,
            self.timeout_ms as f64,
        ))
        .await;
        let mut outcomes = Vec::new();
        match js::get(&reply, "results").dyn_into::<Array>() {
            Ok(results) => {
                for r in results.iter() {
                    outcomes.push(self.outcome(&r));
                }
            }
            Err(_) => outcomes.resize(items.len(), self.outcome(&reply)),
        }
        outcomes
    }

    /// Reads `{status, retryAfter}` or `{error, timedOut}`.
    fn outcome(&self, answer: &JsValue) -> Outcome {
        match js::get(answer, "status").as_f64() {
            Some(status) => self.response(
                status as u16,
                js::get(answer, "retryAfter").as_string().as_deref(),
            ),
            None if js::get(answer, "timedOut").is_truthy() => Outcome::Timeout,
            None => Outcome::NetworkError {
                message: js::get(answer, "error")
                    .as_string()
                    .unwrap_or_else(|| "the request failed".into()),
            },
        }
    }

    fn response(&self, status: u16, retry_after: Option<&str>) -> Outcome {
        let now = js::now();
        Outcome::Response {
            status,
            class: self.class_of(status),
            retry_after: retry_after.and_then(|v| parse_retry_after(v, now)),
        }
    }

    fn class_of(&self, status: u16) -> Class {
        let verdict = self
            .classify
            .as_ref()
            .and_then(|f| f.call1(&JsValue::NULL, &status.into()).ok());
        match verdict.and_then(|v| v.as_string()).as_deref() {
            Some("delivered") => Class::Delivered,
            Some("transient") => Class::Transient,
            Some("permanent") => Class::Permanent,
            _ => classify_status(status),
        }
    }
}
