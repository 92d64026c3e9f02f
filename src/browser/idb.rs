//! IndexedDB requests and transactions as futures.
//!
//! Each wraps the DOM callbacks in a `Promise`, so awaiting them runs in the microtask
//! checkpoint right after the success event, while the transaction is still active:
//! a request issued after an `await` joins the same transaction.

use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbRequest, IdbTransaction};

#[wasm_bindgen]
extern "C" {
    /// An `IDBDatabase`, seen only for `transaction(stores, mode, { durability })`:
    /// web-sys marks that form unstable, so it is bound here.
    type DatabaseWithOptions;

    #[wasm_bindgen(method, catch, js_name = transaction)]
    fn transaction_with_options(
        this: &DatabaseWithOptions,
        stores: &Array,
        mode: &str,
        options: &JsValue,
    ) -> Result<IdbTransaction, JsValue>;
}

/// Whether a write transaction waits for the disk (`"strict"`) or only for the
/// operating system (`"relaxed"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Survives power loss; slower.
    Strict,
    /// Survives a tab or browser crash, not an operating-system crash.
    Relaxed,
}

/// Opens a transaction over `stores`.
pub fn transaction(
    db: &IdbDatabase,
    stores: &[&str],
    write: Option<Durability>,
) -> Result<IdbTransaction, JsValue> {
    let names: Array = stores.iter().map(|s| JsValue::from_str(s)).collect();
    let options = js_sys::Object::new();
    let mode = match write {
        None => "readonly",
        Some(d) => {
            let d = if d == Durability::Strict {
                "strict"
            } else {
                "relaxed"
            };
            js_sys::Reflect::set(&options, &"durability".into(), &d.into())?;
            "readwrite"
        }
    };
    db.unchecked_ref::<DatabaseWithOptions>()
        .transaction_with_options(&names, mode, &options)
}

/// The result of a request. A failed request aborts its transaction.
pub async fn request(req: &IdbRequest) -> Result<JsValue, JsValue> {
    let target = req.clone();
    let outcome = settle(move |event| match event.type_().as_str() {
        "success" => Ok(target.result().unwrap_or(JsValue::UNDEFINED)),
        _ => Err(target
            .error()
            .ok()
            .flatten()
            .map(JsValue::from)
            .unwrap_or(JsValue::NULL)),
    });
    req.set_onsuccess(Some(outcome.handler()));
    req.set_onerror(Some(outcome.handler()));
    let result = outcome.wait().await;
    req.set_onsuccess(None);
    req.set_onerror(None);
    result
}

/// Resolves when the transaction commits; fails if it aborts or errors.
pub async fn committed(tx: &IdbTransaction) -> Result<(), JsValue> {
    let target = tx.clone();
    let outcome = settle(move |event| match event.type_().as_str() {
        "complete" => Ok(JsValue::UNDEFINED),
        _ => Err(target
            .error()
            .map(JsValue::from)
            .unwrap_or_else(|| js_sys::Error::new("the transaction was aborted").into())),
    });
    tx.set_oncomplete(Some(outcome.handler()));
    tx.set_onerror(Some(outcome.handler()));
    tx.set_onabort(Some(outcome.handler()));
    let result = outcome.wait().await;
    // Unhook before the closure is dropped: an `abort` event follows an `error` one.
    tx.set_oncomplete(None);
    tx.set_onerror(None);
    tx.set_onabort(None);
    result.map(|_| ())
}

/// One DOM event handler that settles a promise by the event's type, freed after use
/// (unlike `Closure::once_into_js`, which leaks when the event never comes).
struct Settle {
    promise: Promise,
    handler: Closure<dyn FnMut(web_sys::Event)>,
}

fn settle(decide: impl Fn(&web_sys::Event) -> Result<JsValue, JsValue> + 'static) -> Settle {
    let mut slots = None;
    let promise = Promise::new(&mut |resolve, reject| slots = Some((resolve, reject)));
    let (resolve, reject) = slots.expect("the Promise executor runs at once");
    let handler = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
        let _ = match decide(&event) {
            Ok(value) => resolve.call1(&JsValue::NULL, &value),
            Err(err) => reject.call1(&JsValue::NULL, &err),
        };
    });
    Settle { promise, handler }
}

impl Settle {
    fn handler(&self) -> &js_sys::Function {
        self.handler.as_ref().unchecked_ref()
    }

    async fn wait(&self) -> Result<JsValue, JsValue> {
        JsFuture::from(self.promise.clone()).await
    }
}
