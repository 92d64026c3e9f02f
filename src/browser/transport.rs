//! Sending one message: `fetch` to the endpoint (or the app's own `transport`), with a
//! timeout, turned into an [`Outcome`] for the engine.

use gloo_timers::callback::Timeout;
use js_sys::{Function, Promise};
use std::cell::Cell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, Headers, RequestInit, Response};

use super::error::describe;
use super::js;
use crate::core::outcome::parse_retry_after;
use crate::core::{classify_status, Class, Outcome, Transmit};

#[wasm_bindgen]
extern "C" {
    /// The global `fetch`, in a window or a worker alike.
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(url: &str, init: &RequestInit) -> Promise;
}

/// 2^64: whole numbers below it convert to `u64` exactly.
const U64_LIMIT: f64 = 18_446_744_073_709_551_616.0;

/// Where requests go.
pub enum Route {
    /// POST to `endpoint` with `fetch`.
    Fetch {
        /// The URL.
        endpoint: String,
        /// Static headers, sent with every request.
        headers: Vec<(String, String)>,
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
    pub batch_endpoint: Option<String>,
}

/// A timer that aborts a request after the timeout, cleared when dropped.
struct Deadline {
    controller: AbortController,
    timed_out: Rc<Cell<bool>>,
    _timeout: Timeout,
}

impl Deadline {
    fn new(ms: u64) -> Deadline {
        let controller = AbortController::new().expect("AbortController exists where fetch does");
        let timed_out = Rc::new(Cell::new(false));
        let (abort, flag) = (controller.clone(), timed_out.clone());
        let timeout = Timeout::new(ms.min(i32::MAX as u64) as u32, move || {
            flag.set(true);
            abort.abort();
        });
        Deadline {
            controller,
            timed_out,
            _timeout: timeout,
        }
    }

    fn failed(&self, message: String) -> Outcome {
        if self.timed_out.get() {
            Outcome::Timeout
        } else {
            Outcome::NetworkError { message }
        }
    }
}

impl Sender {
    /// Sends `body` (JSON text) for the message and reports how it went.
    pub async fn send(&self, transmit: &Transmit, body: &JsValue) -> Outcome {
        let deadline = Deadline::new(self.timeout_ms);
        let answer = match &self.route {
            Route::Fetch {
                endpoint,
                headers,
                get_headers,
            } => {
                let key = Some(transmit.key.as_str());
                post(
                    endpoint,
                    headers,
                    get_headers.as_ref(),
                    key,
                    body,
                    &deadline.controller,
                )
                .await
            }
            Route::Custom(transport) => {
                custom(transport, transmit, body, &deadline.controller).await
            }
        };
        match answer {
            Ok((status, retry_after, _)) => self.response(status, retry_after.as_deref()),
            Err(message) => deadline.failed(message),
        }
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
        let mut body = String::from("{\"items\":[");
        for (i, (transmit, payload)) in items.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str("{\"key\":\"");
            // Keys are visible ASCII: only `"` and `\` need escaping in JSON.
            for c in transmit.key.chars() {
                if c == '"' || c == '\\' {
                    body.push('\\');
                }
                body.push(c);
            }
            body.push_str("\",\"payload\":");
            body.push_str(&payload.as_string().unwrap_or_default());
            body.push('}');
        }
        body.push_str("]}");
        let deadline = Deadline::new(self.timeout_ms);
        let answer = post(
            url,
            headers,
            get_headers.as_ref(),
            None,
            &body.into(),
            &deadline.controller,
        )
        .await;
        let (status, retry_after, text) = match answer {
            Ok(answer) => answer,
            Err(message) => {
                return items
                    .iter()
                    .map(|_| deadline.failed(message.clone()))
                    .collect()
            }
        };
        if status != 200 {
            return items
                .iter()
                .map(|_| self.response(status, retry_after.as_deref()))
                .collect();
        }
        let results =
            js_sys::JSON::parse(&text.unwrap_or_default()).map(|v| js::get(&v, "results"));
        let results: js_sys::Array = results
            .ok()
            .and_then(|r| r.dyn_into().ok())
            .unwrap_or_default();
        items
            .iter()
            .enumerate()
            .map(|(i, (transmit, _))| {
                let result = results.get(i as u32);
                let status = js::get(&result, "status").as_f64();
                match status {
                    Some(status)
                        if js::get(&result, "key").as_string().as_deref()
                            == Some(&transmit.key) =>
                    {
                        // Whole seconds, as the header's delta-seconds form, printed as
                        // an integer (float printing is too big to ship). Anything else
                        // is ignored, as an unparseable header is.
                        let retry_after = js::get(&result, "retryAfter")
                            .as_f64()
                            .filter(|s| (0.0..U64_LIMIT).contains(s) && s.fract() == 0.0)
                            .map(|s| (s as u64).to_string());
                        self.response(status as u16, retry_after.as_deref())
                    }
                    _ => Outcome::NetworkError {
                        message: "the batch answer has no result for this item".into(),
                    },
                }
            })
            .collect()
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

/// The status, `Retry-After` and (for a batch) body text of an answer, or why there
/// was none.
type Answer = Result<(u16, Option<String>, Option<String>), String>;

/// POSTs JSON with the app's headers, and `Idempotency-Key` when `key` is given.
async fn post(
    url: &str,
    static_headers: &[(String, String)],
    get_headers: Option<&Function>,
    key: Option<&str>,
    body: &JsValue,
    controller: &AbortController,
) -> Answer {
    let headers = Headers::new().map_err(|e| describe(&e))?;
    for (name, value) in static_headers {
        headers.set(name, value).map_err(|e| describe(&e))?;
    }
    if let Some(get_headers) = get_headers {
        let fresh = await_value(get_headers.call0(&JsValue::NULL))
            .await
            .map_err(|e| format!("getHeaders failed: {}", describe(&e)))?;
        if !fresh.is_undefined() && !fresh.is_null() {
            // `new Headers(x)` accepts both a plain object and a Headers.
            let fresh =
                Headers::new_with_headers(fresh.unchecked_ref()).map_err(|e| describe(&e))?;
            for pair in js_sys::try_iter(&fresh)
                .ok()
                .flatten()
                .into_iter()
                .flatten()
                .flatten()
            {
                let pair: js_sys::Array = pair.unchecked_into();
                if let (Some(name), Some(value)) =
                    (pair.get(0).as_string(), pair.get(1).as_string())
                {
                    headers.set(&name, &value).map_err(|e| describe(&e))?;
                }
            }
        }
    }
    // Set last, so an app header cannot replace the key.
    headers
        .set("Content-Type", "application/json")
        .map_err(|e| describe(&e))?;
    if let Some(key) = key {
        headers
            .set("Idempotency-Key", key)
            .map_err(|e| describe(&e))?;
    }
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(body);
    init.set_signal(Some(&controller.signal()));
    let response: Response = JsFuture::from(global_fetch(url, &init))
        .await
        .map_err(|e| describe(&e))?
        .unchecked_into();
    let retry_after = response.headers().get("Retry-After").ok().flatten();
    // Read the body: a batch's results are in it, and a drained body frees the connection.
    let text = match response.text() {
        Ok(text) => JsFuture::from(text).await.ok().and_then(|t| t.as_string()),
        Err(_) => None,
    };
    Ok((response.status(), retry_after, text))
}

async fn custom(
    transport: &Function,
    transmit: &Transmit,
    body: &JsValue,
    controller: &AbortController,
) -> Answer {
    let request = js_sys::Object::new();
    let payload =
        js_sys::JSON::parse(&body.as_string().unwrap_or_default()).unwrap_or(JsValue::NULL);
    js::set(&request, "key", &transmit.key.as_str().into());
    js::set(&request, "payload", &payload);
    js::set(
        &request,
        "group",
        &transmit
            .group
            .as_deref()
            .map_or(JsValue::NULL, JsValue::from),
    );
    js::set(&request, "attempt", &transmit.attempt.into());
    js::set(&request, "signal", &controller.signal());
    let call = transport.call1(&JsValue::NULL, &request);
    // Race the app's promise against the abort signal, so a hung transport times out.
    let aborted = js::reject_on_abort(&controller.signal());
    let call = match call {
        Ok(value) => Promise::resolve(&value),
        Err(e) => Promise::reject(&e),
    };
    let raced = Promise::race(&js_sys::Array::of2(&call, &aborted));
    let result = JsFuture::from(raced)
        .await
        .map_err(|e| format!("transport failed: {}", describe(&e)))?;
    let status = js::get(&result, "status")
        .as_f64()
        .filter(|s| (100.0..=599.0).contains(s) && s.fract() == 0.0);
    let status = status.ok_or("transport returned no valid status")? as u16;
    let headers = js::get(&result, "headers");
    let retry_after = if headers.is_undefined() || headers.is_null() {
        None
    } else {
        Headers::new_with_headers(headers.unchecked_ref())
            .ok()
            .and_then(|h| h.get("Retry-After").ok().flatten())
    };
    Ok((status, retry_after, None))
}

/// Awaits a value if it is a promise (or any thenable), else returns it.
async fn await_value(value: Result<JsValue, JsValue>) -> Result<JsValue, JsValue> {
    JsFuture::from(Promise::resolve(&value?)).await
}
