//! The outbox against the real IndexedDB, in headless Chromium (wasm-bindgen-test).
//! Run by `npm test` through scripts/test-browser.sh.
#![cfg(target_arch = "wasm32")]

use durable_outbox::Outbox;
use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn get(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &k.into()).unwrap()
}

fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

/// A unique database name per test run, so runs never see each other's data.
fn unique(name: &str) -> String {
    format!("{name}-{}", js_sys::Math::random())
}

/// A transport that answers every request with `status`, counting calls.
fn answering(status: u16) -> (Function, std::rc::Rc<std::cell::Cell<u32>>) {
    let calls = std::rc::Rc::new(std::cell::Cell::new(0));
    let seen = calls.clone();
    let f = Closure::<dyn FnMut(JsValue) -> Promise>::new(move |_req: JsValue| {
        seen.set(seen.get() + 1);
        Promise::resolve(&obj(&[("status", status.into())]))
    });
    (f.into_js_value().unchecked_into(), calls)
}

fn options(name: &str, transport: &Function, auto_start: bool) -> JsValue {
    obj(&[
        ("name", name.into()),
        ("transport", transport.into()),
        ("autoStart", auto_start.into()),
        ("jitter", "none".into()),
    ])
}

async fn open(options: JsValue) -> Result<Outbox, JsValue> {
    Outbox::open(options).await
}

async fn wait(p: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(p).await
}

fn keys_of(list: &JsValue) -> Vec<String> {
    list.unchecked_ref::<Array>()
        .iter()
        .map(|m| get(&m, "key").as_string().unwrap())
        .collect()
}

fn code_of(err: &JsValue) -> String {
    assert_eq!(
        get(err, "name").as_string().as_deref(),
        Some("OutboxError"),
        "{err:?}"
    );
    get(err, "code").as_string().unwrap()
}

#[wasm_bindgen_test]
async fn messages_survive_close_and_reopen_in_order_with_their_keys() {
    let name = unique("persist");
    let (transport, calls) = answering(503);
    let outbox = open(options(&name, &transport, false)).await.unwrap();
    let mut keys = Vec::new();
    for i in 0..3 {
        let payload = obj(&[("n", i.into()), ("text", "héllo".into())]);
        let group = obj(&[("group", "note-1".into())]);
        let m = wait(outbox.enqueue(payload, group)).await.unwrap();
        assert_eq!(get(&m, "state").as_string().as_deref(), Some("pending"));
        keys.push(get(&m, "key").as_string().unwrap());
    }
    wait(outbox.close()).await.unwrap();

    let reopened = open(options(&name, &transport, false)).await.unwrap();
    let pending = wait(reopened.pending()).await.unwrap();
    assert_eq!(keys_of(&pending), keys, "same keys, enqueue order");
    let first = pending.unchecked_ref::<Array>().get(0);
    assert_eq!(
        get(&get(&first, "payload"), "text").as_string().as_deref(),
        Some("héllo")
    );
    assert_eq!(get(&first, "group").as_string().as_deref(), Some("note-1"));
    assert_eq!(get(&reopened.stats(), "pending").as_f64(), Some(3.0));
    assert_eq!(calls.get(), 0, "autoStart: false sends nothing");
    wait(reopened.close()).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_rejected_message_moves_to_the_dead_letter_store_and_back_with_the_same_key() {
    let name = unique("dead");
    let (reject, _) = answering(400);
    let outbox = open(options(&name, &reject, false)).await.unwrap();
    let key = get(
        &wait(outbox.enqueue(obj(&[("a", 1.into())]), JsValue::UNDEFINED))
            .await
            .unwrap(),
        "key",
    );
    let summary = wait(outbox.flush()).await.unwrap();
    assert_eq!(get(&summary, "dead").as_f64(), Some(1.0));
    assert_eq!(
        keys_of(&wait(outbox.pending()).await.unwrap()),
        Vec::<String>::new()
    );
    wait(outbox.close()).await.unwrap();

    // Reopened: the move was committed, to the dead-letter store only.
    let (accept, calls) = answering(201);
    let outbox = open(options(&name, &accept, false)).await.unwrap();
    let dead = wait(outbox.dead_letters()).await.unwrap();
    assert_eq!(keys_of(&dead), vec![key.as_string().unwrap()]);
    let letter = dead.unchecked_ref::<Array>().get(0);
    assert_eq!(
        get(&letter, "reason").as_string().as_deref(),
        Some("rejected")
    );
    assert_eq!(
        get(&get(&letter, "lastError"), "status").as_f64(),
        Some(400.0)
    );
    assert_eq!(get(&letter, "attempts").as_f64(), Some(1.0));
    assert_eq!(get(&outbox.stats(), "dead").as_f64(), Some(1.0));
    assert_eq!(
        keys_of(&wait(outbox.pending()).await.unwrap()),
        Vec::<String>::new()
    );

    // A dead key cannot be enqueued again; redrive keeps it and resets attempts.
    let dup = wait(outbox.enqueue(1.into(), obj(&[("key", key.clone())])))
        .await
        .unwrap_err();
    assert_eq!(code_of(&dup), "duplicate-key");
    assert_eq!(
        wait(outbox.retry_dead(JsValue::UNDEFINED))
            .await
            .unwrap()
            .as_f64(),
        Some(1.0)
    );
    let pending = wait(outbox.pending()).await.unwrap();
    assert_eq!(keys_of(&pending), vec![key.as_string().unwrap()]);
    assert_eq!(
        get(&pending.unchecked_ref::<Array>().get(0), "attempts").as_f64(),
        Some(0.0)
    );
    let summary = wait(outbox.flush()).await.unwrap();
    assert_eq!(get(&summary, "delivered").as_f64(), Some(1.0));
    assert_eq!(calls.get(), 1);
    assert_eq!(
        keys_of(&wait(outbox.dead_letters()).await.unwrap()),
        Vec::<String>::new()
    );
    wait(outbox.close()).await.unwrap();
}

#[wasm_bindgen_test]
async fn bad_input_is_refused_with_a_code_and_writes_nothing() {
    let name = unique("bad");
    let (transport, _) = answering(201);
    let outbox = open(options(&name, &transport, false)).await.unwrap();
    wait(outbox.enqueue("kept".into(), obj(&[("key", "taken".into())])))
        .await
        .unwrap();

    let cyclic = Object::new();
    Reflect::set(&cyclic, &"self".into(), &cyclic).unwrap();
    let function: JsValue = Function::new_no_args("return 1").into();
    let bigint: JsValue = js_sys::BigInt::from(5u32).into();
    let nested_fn = obj(&[("f", function.clone())]);
    let cases: Vec<(JsValue, JsValue, &str)> = vec![
        (function, JsValue::UNDEFINED, "invalid-payload"),
        (cyclic.into(), JsValue::UNDEFINED, "invalid-payload"),
        (bigint, JsValue::UNDEFINED, "invalid-payload"),
        (JsValue::UNDEFINED, JsValue::UNDEFINED, "invalid-payload"),
        (nested_fn, JsValue::UNDEFINED, "invalid-payload"),
        (
            "x".repeat(1 << 20).into(),
            JsValue::UNDEFINED,
            "payload-too-large",
        ),
        (1.into(), obj(&[("key", "".into())]), "invalid-key"),
        (
            1.into(),
            obj(&[("key", "k".repeat(256).into())]),
            "invalid-key",
        ),
        (1.into(), obj(&[("key", "has space".into())]), "invalid-key"),
        (1.into(), obj(&[("key", "clé".into())]), "invalid-key"),
        (1.into(), obj(&[("key", 42.into())]), "invalid-key"),
        (1.into(), obj(&[("key", "taken".into())]), "duplicate-key"),
        (1.into(), obj(&[("group", "".into())]), "invalid-group"),
    ];
    for (payload, opts, code) in cases {
        let err = wait(outbox.enqueue(payload, opts)).await.unwrap_err();
        assert_eq!(code_of(&err), code);
    }
    assert_eq!(
        keys_of(&wait(outbox.pending()).await.unwrap()),
        vec!["taken".to_string()]
    );

    let err = wait(outbox.set_flags(obj(&[("retryIntervalMs", (-1).into())])))
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), "invalid-options");
    assert_eq!(
        get(&outbox.flags(), "retryIntervalMs").as_f64(),
        Some(1000.0),
        "unchanged"
    );
    wait(outbox.close()).await.unwrap();
    let err = wait(outbox.enqueue(1.into(), JsValue::UNDEFINED))
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), "closed");
}

#[wasm_bindgen_test]
async fn bad_options_are_refused_before_anything_is_opened() {
    let (transport, _) = answering(201);
    let cases = [
        obj(&[("transport", transport.clone().into())]),
        obj(&[("name", "".into()), ("transport", transport.clone().into())]),
        obj(&[("name", "o".into())]),
        obj(&[
            ("name", "o".into()),
            ("transport", transport.clone().into()),
            ("maxAttempts", (-1).into()),
        ]),
        obj(&[
            ("name", "o".into()),
            ("transport", transport.clone().into()),
            ("concurrency", f64::NAN.into()),
        ]),
        obj(&[
            ("name", "o".into()),
            ("transport", transport.clone().into()),
            ("jitter", "bogus".into()),
        ]),
        obj(&[("name", "o".into()), ("endpoint", 5.into())]),
        obj(&[("name", "o".into()), ("transport", "not a function".into())]),
        JsValue::UNDEFINED,
    ];
    for options in cases {
        let err = open(options.clone())
            .await
            .err()
            .unwrap_or_else(|| panic!("accepted {options:?}"));
        assert_eq!(code_of(&err), "invalid-options", "{options:?}");
    }
}

#[wasm_bindgen_test]
async fn flags_persist_and_win_over_the_options_on_the_next_open() {
    let name = unique("flags");
    let (transport, _) = answering(201);
    let outbox = open(options(&name, &transport, false)).await.unwrap();
    let patch = obj(&[
        ("retryEnabled", false.into()),
        ("retryIntervalMs", 250.into()),
    ]);
    wait(outbox.set_flags(patch)).await.unwrap();
    wait(outbox.close()).await.unwrap();

    let with_flags = options(&name, &transport, false);
    Reflect::set(
        &with_flags,
        &"flags".into(),
        &obj(&[("retryIntervalMs", 9000.into())]),
    )
    .unwrap();
    let reopened = open(with_flags).await.unwrap();
    let flags = reopened.flags();
    assert_eq!(get(&flags, "retryEnabled").as_bool(), Some(false));
    assert_eq!(get(&flags, "retryIntervalMs").as_f64(), Some(250.0));
    wait(reopened.close()).await.unwrap();
}

#[wasm_bindgen_test]
async fn concurrent_enqueues_all_commit_and_each_resolves_with_its_own_key() {
    let name = unique("group-commit");
    let (transport, _) = answering(201);
    let outbox = open(options(&name, &transport, false)).await.unwrap();
    let promises: Array = (0..200)
        .map(|i| outbox.enqueue(obj(&[("i", i.into())]), JsValue::UNDEFINED))
        .collect();
    let results = wait(Promise::all(&promises)).await.unwrap();
    let keys = keys_of(&results);
    let stored = keys_of(&wait(outbox.pending()).await.unwrap());
    assert_eq!(stored, keys, "all 200 stored, in call order");
    let unique: std::collections::HashSet<_> = keys.iter().collect();
    assert_eq!(unique.len(), 200);
    wait(outbox.close()).await.unwrap();
}

#[wasm_bindgen_test]
async fn the_same_key_enqueued_by_two_outboxes_at_once_is_stored_once() {
    // Two outboxes on one database stand for two tabs: neither knows the other's key yet.
    let name = unique("two-tabs");
    let (transport, _) = answering(201);
    let a = open(options(&name, &transport, false)).await.unwrap();
    let b = open(options(&name, &transport, false)).await.unwrap();
    let same = obj(&[("key", "shared-key".into())]);
    let both = Array::of2(
        &a.enqueue(obj(&[("from", "a".into())]), same.clone()),
        &b.enqueue(obj(&[("from", "b".into())]), same),
    );
    let settled = wait(Promise::all_settled(&both)).await.unwrap();
    let settled: Array = settled.unchecked_into();
    let statuses: Vec<String> = settled
        .iter()
        .map(|r| get(&r, "status").as_string().unwrap())
        .collect();
    let winners = statuses.iter().filter(|s| *s == "fulfilled").count();
    assert_eq!(winners, 1, "{statuses:?}");
    let loser = settled
        .iter()
        .find(|r| get(r, "status").as_string().as_deref() == Some("rejected"))
        .unwrap();
    assert_eq!(code_of(&get(&loser, "reason")), "duplicate-key");
    let pending = wait(a.pending()).await.unwrap();
    assert_eq!(keys_of(&pending), vec!["shared-key".to_string()]);
    let from = get(
        &get(&pending.unchecked_ref::<Array>().get(0), "payload"),
        "from",
    );
    let winner = if statuses[0] == "fulfilled" { "a" } else { "b" };
    assert_eq!(
        from.as_string().as_deref(),
        Some(winner),
        "the stored payload is the winner's"
    );
    wait(a.close()).await.unwrap();
    wait(b.close()).await.unwrap();
}
