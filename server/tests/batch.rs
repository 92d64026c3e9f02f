//! `POST /v1/messages/batch`: each item deduplicated as if sent alone, over real HTTP.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::SystemTime;

use common::*;
use outbox_server::flags::Flags;
use outbox_server::store::{
    Claim, ClaimRequest, Completed, Completion, KeyRecord, MessageRecord, StoreError, StoreFuture,
};
use outbox_server::{SqliteStore, Store};
use reqwest::Response;
use serde_json::{json, Value};

/// POST /v1/messages/batch with a raw body.
async fn send(h: &Harness, token: Option<&str>, body: String) -> Response {
    let mut req = h
        .client
        .post(format!("{}/v1/messages/batch", h.url))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request sent")
}

/// The body `{"items": [...]}` for `(key, payload)` pairs.
fn items(pairs: &[(&str, Value)]) -> String {
    let items: Vec<Value> = pairs
        .iter()
        .map(|(k, p)| json!({"key": k, "payload": p}))
        .collect();
    json!({ "items": items }).to_string()
}

/// Sends a batch that must answer 200; returns its `results`.
async fn batch(h: &Harness, pairs: &[(&str, Value)]) -> Vec<Value> {
    let res = send(h, Some(DEMO), items(pairs)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), Some("application/json"));
    let body: Value = res.json().await.unwrap();
    let results = body["results"].as_array().expect("results").clone();
    assert_eq!(results.len(), pairs.len());
    for (r, (k, _)) in results.iter().zip(pairs) {
        assert_eq!(r["key"], *k, "results are in request order");
    }
    results
}

fn metric(m: &str, line: &str) -> bool {
    m.lines().any(|l| l == line)
}

fn log_keys(log: &Value) -> Vec<String> {
    log["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn new_items_are_applied_once_and_a_resend_replays_them_all() {
    let h = start(&[]).await;
    let pairs = [
        ("n1", json!({"text": "one"})),
        ("n2", json!([1, 2, 3])),
        ("n3", json!(null)),
    ];
    let first = batch(&h, &pairs).await;
    for (i, r) in first.iter().enumerate() {
        assert_eq!(r["status"], 201);
        assert_eq!(r["replayed"], false);
        assert!(r.get("retryAfter").is_none());
        // The body a single POST would have answered, and seqs follow the batch order.
        assert_eq!(r["body"]["key"], pairs[i].0);
        assert_eq!(r["body"]["seq"], i as u64 + 1);
        assert!(r["body"]["receivedAt"].is_string());
    }
    let log = h.log(DEMO).await;
    assert_eq!(log["total"], 3);
    assert_eq!(log_keys(&log), ["n1", "n2", "n3"]);
    assert_eq!(log["messages"][0]["payload"], json!({"text": "one"}));
    assert_eq!(log["messages"][2]["payload"], json!(null));

    let again = batch(&h, &pairs).await;
    for (a, b) in again.iter().zip(&first) {
        assert_eq!(a["status"], 201);
        assert_eq!(a["replayed"], true);
        assert_eq!(a["body"], b["body"], "the stored answer, verbatim");
    }
    let log = h.log(DEMO).await;
    assert_eq!(
        (log["total"].as_u64(), log["replays"].as_u64()),
        (Some(3), Some(3))
    );

    let m = h.metrics().await;
    for line in [
        "outbox_batch_requests_total{outcome=\"ok\"} 2",
        "outbox_requests_total{outcome=\"applied\"} 3",
        "outbox_requests_total{outcome=\"replayed\"} 3",
        "outbox_effects_applied_total 3",
    ] {
        assert!(metric(&m, line), "{line} in\n{m}");
    }
}

#[tokio::test]
async fn a_mixed_batch_answers_each_item_on_its_own() {
    let h = start(&[]).await;
    assert_eq!(h.post("old", r#"{"v":1}"#).await.status(), 201);
    assert_eq!(h.post("used", r#"{"v":1}"#).await.status(), 201);
    let results = batch(
        &h,
        &[
            ("new", json!({"v": 1})),
            ("old", json!({"v": 1})),
            ("used", json!({"v": 2})),
            ("a b", json!({"v": 1})),
        ],
    )
    .await;
    let statuses: Vec<_> = results
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 201, 422, 400]);
    let replayed: Vec<_> = results
        .iter()
        .map(|r| r["replayed"].as_bool().unwrap())
        .collect();
    assert_eq!(replayed, [false, true, false, false]);
    assert_eq!(results[0]["body"]["seq"], 3);
    assert_eq!(results[1]["body"]["seq"], 1);
    assert_eq!(results[2]["body"]["type"], format!("{PROBLEM}key-mismatch"));
    assert_eq!(results[2]["body"]["status"], 422);
    assert_eq!(
        results[3]["body"]["type"],
        format!("{PROBLEM}invalid-idempotency-key")
    );
    assert!(results.iter().all(|r| r.get("retryAfter").is_none()));

    let log = h.log(DEMO).await;
    assert_eq!(
        log_keys(&log),
        ["old", "used", "new"],
        "only the new item applied"
    );
    assert_eq!(log["messages"][1]["payload"], json!({"v": 1}));
    assert_eq!(
        (log["replays"].as_u64(), log["mismatches"].as_u64()),
        (Some(1), Some(1))
    );
    let m = h.metrics().await;
    for line in [
        "outbox_requests_total{outcome=\"applied\"} 3",
        "outbox_requests_total{outcome=\"replayed\"} 1",
        "outbox_requests_total{outcome=\"mismatch\"} 1",
        "outbox_requests_total{outcome=\"rejected\"} 1",
    ] {
        assert!(metric(&m, line), "{line} in\n{m}");
    }
}

#[tokio::test]
async fn a_key_replays_across_the_single_and_batch_endpoints() {
    let h = start(&[]).await;
    // Batch first, then alone: key order and spacing do not matter, as for a resend.
    let b = batch(&h, &[("via-batch", json!({"x": 1, "y": [1, 2]}))]).await;
    assert_eq!(
        (b[0]["status"].as_u64(), b[0]["replayed"].as_bool()),
        (Some(201), Some(false))
    );
    let alone = h.post("via-batch", r#"{ "y": [1, 2], "x": 1 }"#).await;
    assert_eq!(alone.status(), 201);
    assert_eq!(alone.headers()["idempotent-replayed"], "true");
    assert_eq!(alone.json::<Value>().await.unwrap(), b[0]["body"]);
    // A different body alone is a mismatch, as it would be for two single POSTs.
    assert_problem(h.post("via-batch", r#"{"x":2}"#).await, 422, "key-mismatch").await;

    // Alone first, then in a batch, bare and as an sf-string.
    let first = h.post("alone", r#"{"z":true}"#).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let b = batch(&h, &[("alone", json!({"z": true}))]).await;
    assert_eq!(b[0]["status"], 201);
    assert_eq!(b[0]["replayed"], true);
    assert_eq!(b[0]["body"], first);
    let b = batch(&h, &[("\"alone\"", json!({"z": true}))]).await;
    assert_eq!(
        (b[0]["replayed"].as_bool(), &b[0]["body"]),
        (Some(true), &first)
    );

    assert_eq!(h.log(DEMO).await["total"], 2);
}

#[tokio::test]
async fn more_than_a_hundred_items_is_413() {
    let h = start(&[]).await;
    let pairs: Vec<(String, Value)> = (0..101).map(|i| (format!("k{i}"), json!(i))).collect();
    let refs: Vec<(&str, Value)> = pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let p = assert_problem(
        send(&h, Some(DEMO), items(&refs)).await,
        413,
        "batch-too-large",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("100"));
    assert_eq!(h.log(DEMO).await["total"], 0);
    // A hundred is the limit, not over it.
    let ok = batch(&h, &refs[..100]).await;
    assert!(ok.iter().all(|r| r["status"] == 201));
    assert_eq!(h.log(DEMO).await["total"], 100);
    assert!(metric(
        &h.metrics().await,
        "outbox_batch_requests_total{outcome=\"rejected\"} 1"
    ));
}

#[tokio::test]
async fn empty_malformed_or_oversized_batches_are_refused_whole() {
    let h = start(&["--max-body", "300"]).await;
    for bad in [
        r#"{"items":[]}"#,
        r#"{}"#,
        r#"[{"key":"a","payload":1}]"#,
        r#"{"items":{"key":"a","payload":1}}"#,
        r#"{"items":[{"key":"a","payload":1}],"more":true}"#,
        r#"{"items":[{"key":"a","payload":1},{"key":"b"}]}"#,
        r#"{"items":[{"key":"a","payload":1},{"payload":1}]}"#,
        r#"{"items":[{"key":"a","payload":1},{"key":7,"payload":1}]}"#,
        r#"{"items":[{"key":"a","payload":1},"b"]}"#,
    ] {
        let p = assert_problem(send(&h, Some(DEMO), bad.into()).await, 400, "invalid-batch").await;
        assert!(!p["detail"].as_str().unwrap().is_empty(), "{bad}");
    }
    for not_json in ["", "{", "items: []", r#"{"items":[}"#] {
        assert_problem(
            send(&h, Some(DEMO), not_json.into()).await,
            400,
            "invalid-json",
        )
        .await;
    }
    let big = items(&[("big", json!("x".repeat(400)))]);
    assert_problem(send(&h, Some(DEMO), big).await, 413, "payload-too-large").await;
    assert_eq!(h.log(DEMO).await["total"], 0, "nothing applied");
}

#[tokio::test]
async fn a_key_twice_in_one_batch_refuses_the_batch() {
    let h = start(&[]).await;
    let body = items(&[("a", json!(1)), ("b", json!(2)), ("a", json!(1))]);
    let p = assert_problem(send(&h, Some(DEMO), body).await, 400, "invalid-batch").await;
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("\"a\"") && detail.contains("items[2]"),
        "{detail}"
    );
    assert_eq!(h.log(DEMO).await["total"], 0, "not even b was applied");
    // The same key bare and as an sf-string is the same key.
    let body = items(&[("c", json!(1)), ("\"c\"", json!(1))]);
    assert_problem(send(&h, Some(DEMO), body).await, 400, "invalid-batch").await;
    assert_eq!(h.log(DEMO).await["total"], 0);
}

#[tokio::test]
async fn a_batch_without_a_valid_token_is_401() {
    let h = start(&[]).await;
    let body = items(&[("a", json!(1))]);
    for token in [None, Some("wrong")] {
        let res = send(&h, token, body.clone()).await;
        assert_eq!(header(&res, "www-authenticate"), Some("Bearer"));
        assert_problem(res, 401, "unauthorized").await;
    }
    assert_eq!(h.log(DEMO).await["total"], 0);
    assert!(metric(
        &h.metrics().await,
        "outbox_batch_requests_total{outcome=\"unauthorized\"} 2"
    ));
}

#[tokio::test]
async fn chaos_lost_ack_on_a_batch_then_a_resend_applies_each_once() {
    let h = start(&["--chaos", "lost-ack=1"]).await;
    let pairs: Vec<(String, Value)> = (0..5)
        .map(|i| (format!("la{i}"), json!({"i": i})))
        .collect();
    let refs: Vec<(&str, Value)> = pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let lost = send(&h, Some(DEMO), items(&refs)).await;
    assert_eq!(header(&lost, "retry-after"), Some("1"));
    assert_problem(lost, 503, "chaos-lost-ack").await;
    assert_eq!(h.log(DEMO).await["total"], 5, "every effect was committed");
    // The resend only replays, so it cannot lose its answer.
    let resend = batch(&h, &refs).await;
    for (i, r) in resend.iter().enumerate() {
        assert_eq!(
            (r["status"].as_u64(), r["replayed"].as_bool()),
            (Some(201), Some(true))
        );
        assert_eq!(r["body"]["seq"], i as u64 + 1);
    }
    let log = h.log(DEMO).await;
    assert_eq!(
        (log["total"].as_u64(), log["replays"].as_u64()),
        (Some(5), Some(5))
    );
    let m = h.metrics().await;
    for line in [
        "outbox_chaos_injected_total{kind=\"lost-ack\"} 1",
        "outbox_effects_applied_total 5",
        "outbox_batch_requests_total{outcome=\"chaos\"} 1",
        "outbox_batch_requests_total{outcome=\"ok\"} 1",
    ] {
        assert!(metric(&m, line), "{line} in\n{m}");
    }
}

#[tokio::test]
async fn chaos_fail_refuses_the_whole_batch_before_any_effect() {
    let h = start(&["--chaos", "fail=1"]).await;
    let body = items(&[("f1", json!(1)), ("f2", json!(2))]);
    let res = send(&h, Some(DEMO), body.clone()).await;
    assert_eq!(header(&res, "retry-after"), Some("1"));
    assert_problem(res, 503, "chaos-failure").await;
    h.put_json("/admin/chaos", DEMO, r#"{"spec":"fail=1,status=500"}"#)
        .await;
    let res = send(&h, Some(DEMO), body.clone()).await;
    assert!(header(&res, "retry-after").is_none());
    assert_problem(res, 500, "chaos-failure").await;
    assert_eq!(h.log(DEMO).await["total"], 0);
    let state = h.server.state();
    assert!(
        state.store.lookup("demo", "f1").await.unwrap().is_none(),
        "no claim either"
    );
    // With chaos off the same batch applies normally.
    h.put_json("/admin/chaos", DEMO, r#"{"spec":"off"}"#).await;
    let ok = send(&h, Some(DEMO), body).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(h.log(DEMO).await["total"], 2);
    assert!(metric(
        &h.metrics().await,
        "outbox_chaos_injected_total{kind=\"fail\"} 2"
    ));
}

#[tokio::test]
async fn twenty_concurrent_batches_over_fifty_keys_apply_each_key_once() {
    // Latency while the claims are held widens the race, so that some items see 409s.
    let h = start(&["--chaos", "latency=50ms"]).await;
    let mut tasks = Vec::new();
    for b in 0..20usize {
        // Every batch names all 50 keys, each batch in another order.
        let pairs: Vec<(String, Value)> = (0..50)
            .map(|j| {
                let k = (j * 7 + b * 3) % 50;
                (format!("c{k}"), json!({"k": k}))
            })
            .collect();
        let refs: Vec<(&str, Value)> = pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let body = items(&refs);
        let (client, url) = (h.client.clone(), h.url.clone());
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(format!("{url}/v1/messages/batch"))
                .bearer_auth(DEMO)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let body: Value = res.json().await.unwrap();
            body["results"].as_array().unwrap().clone()
        }));
    }
    let mut fresh: HashMap<String, Value> = HashMap::new();
    let mut replays = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        let results = t.await.unwrap();
        assert_eq!(results.len(), 50);
        for r in results {
            let key = r["key"].as_str().unwrap().to_owned();
            match (r["status"].as_u64(), r["replayed"].as_bool()) {
                (Some(201), Some(false)) => {
                    assert!(r.get("retryAfter").is_none());
                    let dup = fresh.insert(key.clone(), r["body"].clone());
                    assert!(dup.is_none(), "{key} applied twice");
                }
                (Some(201), Some(true)) => replays.push((key, r["body"].clone())),
                (Some(409), Some(false)) => {
                    assert_eq!(r["retryAfter"], 1);
                    assert_eq!(r["body"]["type"], format!("{PROBLEM}key-in-use"));
                    conflicts += 1;
                }
                other => panic!("unexpected item answer {other:?}: {r}"),
            }
        }
    }
    assert_eq!(fresh.len(), 50, "every key applied by exactly one item");
    for (key, body) in &replays {
        assert_eq!(fresh[key], *body, "a replay is the stored answer");
    }
    assert_eq!(50 + replays.len() + conflicts, 20 * 50);
    assert!(
        conflicts > 0,
        "some items arrived while another batch held the key"
    );

    let log = h.log(DEMO).await;
    assert_eq!(log["total"], 50);
    let mut keys = log_keys(&log);
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 50, "each key once in the log");
    assert_eq!(log["conflicts"], conflicts as u64);
    assert_eq!(log["replays"], replays.len() as u64);
}

/// Delegates to SQLite but fails `complete_many`, as a broken disk would.
struct FailingBatches {
    inner: SqliteStore,
    fail: AtomicBool,
}

impl Store for FailingBatches {
    fn lookup(&self, t: &str, k: &str) -> StoreFuture<'_, Option<KeyRecord>> {
        self.inner.lookup(t, k)
    }
    fn claim(&self, r: ClaimRequest) -> StoreFuture<'_, Claim> {
        self.inner.claim(r)
    }
    fn complete(&self, d: Completion) -> StoreFuture<'_, Completed> {
        self.inner.complete(d)
    }
    fn release(&self, t: &str, k: &str, f: i64) -> StoreFuture<'_, bool> {
        self.inner.release(t, k, f)
    }
    fn sweep(&self, o: SystemTime, n: SystemTime, b: usize) -> StoreFuture<'_, usize> {
        self.inner.sweep(o, n, b)
    }
    fn messages(&self, t: &str) -> StoreFuture<'_, Vec<MessageRecord>> {
        self.inner.messages(t)
    }
    fn flags(&self, t: &str) -> StoreFuture<'_, Option<Flags>> {
        self.inner.flags(t)
    }
    fn put_flags(&self, t: &str, f: Flags) -> StoreFuture<'_, ()> {
        self.inner.put_flags(t, f)
    }
    // lookup_many and claim_many: the trait's defaults, over the single-key methods.
    fn complete_many(&self, d: Vec<Completion>) -> StoreFuture<'_, Vec<Completed>> {
        if self.fail.load(SeqCst) {
            return Box::pin(async { Err(StoreError("disk on fire".into())) });
        }
        self.inner.complete_many(d)
    }
}

#[tokio::test]
async fn a_store_failure_is_503_for_the_batch_and_releases_its_claims() {
    let store = Arc::new(FailingBatches {
        inner: SqliteStore::open(":memory:").unwrap(),
        fail: true.into(),
    });
    let h = start_with_store(&[], store.clone()).await;
    let pairs = [("s1", json!(1)), ("s2", json!(2))];
    let res = send(&h, Some(DEMO), items(&pairs)).await;
    assert_eq!(header(&res, "retry-after"), Some("1"));
    assert_problem(res, 503, "store-unavailable").await;
    // The claims were released, so the resend does not wait out the 30 s lease.
    for k in ["s1", "s2"] {
        assert!(store.lookup("demo", k).await.unwrap().is_none());
    }
    store.fail.store(false, SeqCst);
    let ok = batch(&h, &pairs).await;
    assert!(ok
        .iter()
        .all(|r| r["status"] == 201 && r["replayed"] == false));
    assert_eq!(h.log(DEMO).await["total"], 2);
    let m = h.metrics().await;
    for line in [
        "outbox_batch_requests_total{outcome=\"error\"} 1",
        "outbox_requests_total{outcome=\"error\"} 2",
    ] {
        assert!(metric(&m, line), "{line} in\n{m}");
    }
}
