//! The HTTP surface request by request, over real HTTP on loopback.

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn first_request_is_201_and_repeat_replays_stored_answer() {
    let h = start(&[]).await;
    let first = h.post("k-1", r#"{"note":"hi","n":[1,2]}"#).await;
    assert_eq!(first.status(), 201);
    assert_eq!(header(&first, "idempotent-replayed"), None);
    assert_eq!(header(&first, "content-type"), Some("application/json"));
    let first_body = first.text().await.unwrap();
    let v: Value = serde_json::from_str(&first_body).unwrap();
    assert_eq!(v["key"], "k-1");
    assert_eq!(v["seq"], 1);
    assert!(v["receivedAt"].as_str().unwrap().ends_with('Z'));

    // Same request with other key order and whitespace: the same fingerprint.
    let again = h.post("k-1", "{ \"n\": [1, 2],\n \"note\": \"hi\" }").await;
    assert_eq!(again.status(), 201);
    assert_eq!(header(&again, "idempotent-replayed"), Some("true"));
    assert_eq!(again.text().await.unwrap(), first_body);

    let second = h.post("k-2", r#"{"note":"other"}"#).await;
    assert_eq!(second.status(), 201);
    assert_eq!(second.json::<Value>().await.unwrap()["seq"], 2);

    let log = h.log(DEMO).await;
    assert_eq!(log["total"], 2);
    assert_eq!(log["replays"], 1);
    assert_eq!(log["messages"][0]["key"], "k-1");
    assert_eq!(
        log["messages"][0]["payload"],
        json!({"note":"hi","n":[1,2]})
    );
    assert_eq!(log["messages"][0]["receivedAt"], v["receivedAt"]);
    assert_eq!(log["messages"][1]["seq"], 2);
}

#[tokio::test]
async fn same_key_with_different_payload_is_422_and_applies_nothing() {
    let h = start(&[]).await;
    assert_eq!(h.post("k", r#"{"a":1}"#).await.status(), 201);
    assert_problem(h.post("k", r#"{"a":2}"#).await, 422, "key-mismatch").await;
    // The original still replays.
    let again = h.post("k", r#"{"a":1}"#).await;
    assert_eq!(again.status(), 201);
    assert_eq!(header(&again, "idempotent-replayed"), Some("true"));
    let log = h.log(DEMO).await;
    assert_eq!(log["total"], 1);
    assert_eq!(log["mismatches"], 1);
}

#[tokio::test]
async fn same_key_while_in_progress_is_409_with_retry_after() {
    // Latency is added while the first request holds its claim.
    let h = start(&["--chaos", "latency=600ms"]).await;
    let first = {
        let (client, url) = (h.client.clone(), h.url.clone());
        tokio::spawn(async move {
            client
                .post(format!("{url}/v1/messages"))
                .bearer_auth(DEMO)
                .header("idempotency-key", "slow")
                .body(r#"{"x":1}"#)
                .send()
                .await
                .unwrap()
        })
    };
    // Poll until the claim exists instead of guessing a sleep.
    let store = h.server.state().store.clone();
    while store.lookup("demo", "slow").await.unwrap().is_none() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let busy = h.post("slow", r#"{"x":1}"#).await;
    assert_eq!(header(&busy, "retry-after"), Some("1"));
    assert_problem(busy, 409, "key-in-use").await;
    // A different payload on a busy key is still a mismatch, not a conflict.
    assert_problem(h.post("slow", r#"{"x":2}"#).await, 422, "key-mismatch").await;

    let first = first.await.unwrap();
    assert_eq!(first.status(), 201);
    assert_eq!(header(&first, "idempotent-replayed"), None);
    let replay = h.post("slow", r#"{"x":1}"#).await;
    assert_eq!(replay.status(), 201);
    assert_eq!(header(&replay, "idempotent-replayed"), Some("true"));
    let log = h.log(DEMO).await;
    assert_eq!(
        (log["total"].as_u64(), log["conflicts"].as_u64()),
        (Some(1), Some(1))
    );
}

#[tokio::test]
async fn missing_or_malformed_key_is_400() {
    let h = start(&[]).await;
    let body = r#"{"a":1}"#;
    assert_problem(
        h.post_as(DEMO, None, body).await,
        400,
        "missing-idempotency-key",
    )
    .await;
    let long = "k".repeat(256);
    for bad in [
        &b""[..],
        b"\"\"",
        long.as_bytes(),
        b"has space",
        b"caf\xc3\xa9",
        b"tab\there",
    ] {
        let res = h.post_as(DEMO, Some(bad), body).await;
        assert_problem(res, 400, "invalid-idempotency-key").await;
    }
    // The header sent twice.
    let twice = h
        .client
        .post(format!("{}/v1/messages", h.url))
        .bearer_auth(DEMO)
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .body(body)
        .send();
    assert_problem(twice.await.unwrap(), 400, "invalid-idempotency-key").await;
    // The edges that are allowed: 255 characters, all of visible ASCII, the quoted form.
    let max = "k".repeat(255);
    assert_eq!(h.post(&max, body).await.status(), 201);
    let visible: String = (0x21u8..=0x7e).map(char::from).collect();
    assert_eq!(h.post(&visible[..94], r#"{"v":1}"#).await.status(), 201);
    let quoted = h.post("\"q-1\"", body).await;
    assert_eq!(quoted.status(), 201);
    assert_eq!(quoted.json::<Value>().await.unwrap()["key"], "q-1");
    assert_eq!(
        h.post("q-1", body).await.status(),
        201,
        "bare form names the same key"
    );
    assert_eq!(h.log(DEMO).await["total"], 3);
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let h = start(&["--max-body", "1024"]).await;
    // Exactly at the limit is accepted.
    let fits = format!(r#"{{"s":"{}"}}"#, "x".repeat(1024 - 8));
    assert_eq!(fits.len(), 1024);
    assert_eq!(h.post("fits", &fits).await.status(), 201);
    let over = format!(r#"{{"s":"{}"}}"#, "x".repeat(1024 - 7));
    assert_problem(h.post("over", &over).await, 413, "payload-too-large").await;
    assert_eq!(h.log(DEMO).await["total"], 1);
    assert!(h
        .server
        .state()
        .store
        .lookup("demo", "over")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn default_body_limit_is_one_mib() {
    let h = start(&[]).await;
    let big = format!(r#""{}""#, "x".repeat(1024 * 1024));
    assert_problem(h.post("big", &big).await, 413, "payload-too-large").await;
    let ok = format!(r#""{}""#, "x".repeat(1024 * 1024 - 2));
    assert_eq!(h.post("ok", &ok).await.status(), 201);
}

#[tokio::test]
async fn body_that_is_not_json_is_400() {
    let h = start(&[]).await;
    for bad in ["", "not json", "{\"a\":", "{} {}"] {
        assert_problem(h.post("nj", bad).await, 400, "invalid-json").await;
    }
    assert!(h
        .server
        .state()
        .store
        .lookup("demo", "nj")
        .await
        .unwrap()
        .is_none());
    // Any JSON value is a payload, not only objects.
    assert_eq!(h.post("scalar", "42").await.status(), 201);
}

#[tokio::test]
async fn missing_or_unknown_token_is_401() {
    let h = start(&[]).await;
    let body = r#"{"a":1}"#;
    let res = h.post_as("wrong-token", Some(b"k"), body).await;
    assert_eq!(header(&res, "www-authenticate"), Some("Bearer"));
    assert_problem(res, 401, "unauthorized").await;
    // No Authorization header at all, and a non-Bearer scheme.
    let res = h
        .client
        .post(format!("{}/v1/messages", h.url))
        .header("idempotency-key", "k")
        .body(body)
        .send();
    assert_problem(res.await.unwrap(), 401, "unauthorized").await;
    let res = h
        .client
        .post(format!("{}/v1/messages", h.url))
        .basic_auth("demo-token", Some(""))
        .header("idempotency-key", "k")
        .body(body)
        .send();
    assert_problem(res.await.unwrap(), 401, "unauthorized").await;
    // Auth is checked before the key.
    assert_problem(
        h.post_as("wrong-token", None, body).await,
        401,
        "unauthorized",
    )
    .await;
    for path in ["/v1/messages", "/v1/flags", "/admin/chaos"] {
        assert_problem(h.get(path, None).await, 401, "unauthorized").await;
    }
    assert_problem(
        h.put_json(
            "/v1/flags",
            "nope",
            r#"{"retryEnabled":false,"retryIntervalMs":5}"#,
        )
        .await,
        401,
        "unauthorized",
    )
    .await;
    // Health and metrics need no token.
    assert_eq!(h.get("/healthz", None).await.status(), 200);
    assert_eq!(h.get("/metrics", None).await.status(), 200);
    // The bearer scheme is case-insensitive.
    let res = h
        .client
        .get(format!("{}/v1/messages", h.url))
        .header("authorization", "bearer demo-token");
    assert_eq!(res.send().await.unwrap().status(), 200);
    assert_eq!(h.log(DEMO).await["total"], 0);
}

#[tokio::test]
async fn tenants_are_isolated() {
    let h = start(&["--token", "tok-a=alice", "--token", "tok-b=bob"]).await;
    let a = h
        .post_as("tok-a", Some(b"shared"), r#"{"who":"alice"}"#)
        .await;
    assert_eq!(a.status(), 201);
    let a_body = a.text().await.unwrap();
    // Same key, other payload, other tenant: neither a mismatch nor a replay.
    let b = h
        .post_as("tok-b", Some(b"shared"), r#"{"who":"bob"}"#)
        .await;
    assert_eq!(b.status(), 201);
    assert_eq!(header(&b, "idempotent-replayed"), None);
    let b_body = b.text().await.unwrap();
    // Same key and same payload as alice's: still bob's own first request.
    let b2 = h
        .post_as("tok-b", Some(b"alice-key"), r#"{"who":"alice"}"#)
        .await;
    assert_eq!(b2.status(), 201);
    assert_eq!(header(&b2, "idempotent-replayed"), None);
    let a_again = h
        .post_as("tok-a", Some(b"shared"), r#"{"who":"alice"}"#)
        .await;
    assert_eq!(header(&a_again, "idempotent-replayed"), Some("true"));
    assert_eq!(a_again.text().await.unwrap(), a_body);
    let b_again = h
        .post_as("tok-b", Some(b"shared"), r#"{"who":"bob"}"#)
        .await;
    assert_eq!(b_again.text().await.unwrap(), b_body);

    let alice = h.log("tok-a").await;
    let bob = h.log("tok-b").await;
    assert_eq!(
        (alice["tenant"].as_str(), alice["total"].as_u64()),
        (Some("alice"), Some(1))
    );
    assert_eq!(alice["messages"][0]["payload"]["who"], "alice");
    assert_eq!(
        (bob["tenant"].as_str(), bob["total"].as_u64()),
        (Some("bob"), Some(2))
    );
    assert_eq!(
        (alice["replays"].as_u64(), bob["replays"].as_u64()),
        (Some(1), Some(1))
    );
    // With tokens configured, the demo token is not accepted.
    assert_problem(h.post("x", "{}").await, 401, "unauthorized").await;
}

#[tokio::test]
async fn flags_get_put_and_validation() {
    let h = start(&["--token", "tok-a=alice", "--token", "tok-b=bob"]).await;
    let get = |t: &'static str| {
        let h = &h;
        async move {
            let res = h.get("/v1/flags", Some(t)).await;
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(
        get("tok-a").await,
        json!({"retryEnabled": true, "retryIntervalMs": 1000})
    );
    let put = h
        .put_json(
            "/v1/flags",
            "tok-a",
            r#"{"retryEnabled":false,"retryIntervalMs":250}"#,
        )
        .await;
    assert_eq!(put.status(), 200);
    let want = json!({"retryEnabled": false, "retryIntervalMs": 250});
    assert_eq!(put.json::<Value>().await.unwrap(), want);
    assert_eq!(get("tok-a").await, want);
    // Per tenant.
    assert_eq!(get("tok-b").await["retryEnabled"], true);
    for bad in [
        r#"{"retryEnabled":true}"#,
        r#"{"retryEnabled":"yes","retryIntervalMs":10}"#,
        r#"{"retryEnabled":true,"retryIntervalMs":-5}"#,
        r#"{"retryEnabled":true,"retryIntervalMs":1.5}"#,
        r#"{"retryEnabled":true,"retryIntervalMs":0}"#,
        r#"{"retryEnabled":true,"retryIntervalMs":3600001}"#,
        r#"{"retryEnabled":true,"retryIntervalMs":10,"extra":1}"#,
        "not json",
    ] {
        assert_problem(
            h.put_json("/v1/flags", "tok-a", bad).await,
            400,
            "invalid-flags",
        )
        .await;
    }
    assert_eq!(get("tok-a").await, want, "bad input changed nothing");
}

#[tokio::test]
async fn cors_preflight_allows_key_header_and_exposes_replay_headers() {
    let h = start(&[]).await;
    let pre = h
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/v1/messages", h.url))
        .header("origin", "http://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "idempotency-key, authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success());
    assert_eq!(header(&pre, "access-control-allow-origin"), Some("*"));
    let allowed = header(&pre, "access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for name in ["idempotency-key", "authorization", "content-type"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert!(header(&pre, "access-control-allow-methods")
        .unwrap()
        .contains("POST"));
    assert_eq!(header(&pre, "access-control-max-age"), Some("600"));

    let res = h
        .client
        .post(format!("{}/v1/messages", h.url))
        .header("origin", "http://app.example")
        .bearer_auth(DEMO)
        .header("idempotency-key", "c")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let exposed = header(&res, "access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("idempotent-replayed") && exposed.contains("retry-after"),
        "{exposed}"
    );
}

#[tokio::test]
async fn cors_origins_can_be_restricted() {
    let h = start(&["--cors-origin", "http://app.example"]).await;
    let preflight = |origin: &'static str| {
        h.client
            .request(reqwest::Method::OPTIONS, format!("{}/v1/messages", h.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let ok = preflight("http://app.example").await.unwrap();
    assert_eq!(
        header(&ok, "access-control-allow-origin"),
        Some("http://app.example")
    );
    let other = preflight("http://evil.example").await.unwrap();
    assert_eq!(header(&other, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn metrics_count_outcomes_and_store_latency() {
    let h = start(&["--token", "t=x"]).await;
    let post = |key: &'static str, body: &'static str| h.post_as("t", Some(key.as_bytes()), body);
    assert_eq!(post("m", r#"{"a":1}"#).await.status(), 201);
    assert_eq!(post("m", r#"{"a":1}"#).await.status(), 201);
    assert_eq!(post("m", r#"{"a":2}"#).await.status(), 422);
    assert_eq!(post("m", "nope").await.status(), 400);
    assert_eq!(h.post_as("bad", Some(b"m"), "{}").await.status(), 401);
    let res = h.get("/metrics", None).await;
    assert!(header(&res, "content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = res.text().await.unwrap();
    for line in [
        "# TYPE outbox_requests_total counter",
        "outbox_requests_total{outcome=\"applied\"} 1",
        "outbox_requests_total{outcome=\"replayed\"} 1",
        "outbox_requests_total{outcome=\"mismatch\"} 1",
        "outbox_requests_total{outcome=\"rejected\"} 1",
        "outbox_requests_total{outcome=\"unauthorized\"} 1",
        "outbox_requests_total{outcome=\"conflict\"} 0",
        "outbox_requests_total{outcome=\"chaos\"} 0",
        "outbox_effects_applied_total 1",
        "# TYPE outbox_store_latency_seconds histogram",
        "outbox_store_latency_seconds_count{op=\"claim\"} 1",
        "outbox_store_latency_seconds_count{op=\"complete\"} 1",
        "outbox_store_latency_seconds_bucket{op=\"claim\",le=\"+Inf\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // The lookup fast path ran for the three requests that got past validation.
    assert!(
        text.contains("outbox_store_latency_seconds_count{op=\"lookup\"} 3"),
        "{text}"
    );
}

#[tokio::test]
async fn health_and_static_files() {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(www.join("index.html"), "<h1>demo</h1>").unwrap();
    std::fs::write(pkg.join("durable_outbox.js"), "export class Outbox {}").unwrap();
    let (w, p) = (www.to_str().unwrap(), pkg.to_str().unwrap());
    let h = start(&["--www", w, "--pkg", p]).await;
    let health = h.get("/healthz", None).await;
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    let index = h.get("/", None).await;
    assert_eq!(index.status(), 200);
    assert_eq!(index.text().await.unwrap(), "<h1>demo</h1>");
    let js = h.get("/pkg/durable_outbox.js", None).await;
    assert_eq!(js.status(), 200);
    assert!(header(&js, "content-type").unwrap().contains("javascript"));
    assert_eq!(h.get("/nope.html", None).await.status(), 404);

    // Missing directories answer 404 and the API still works.
    let bare = start(&[]).await;
    assert_eq!(bare.get("/", None).await.status(), 404);
    assert_eq!(bare.get("/pkg/durable_outbox.js", None).await.status(), 404);
    assert_eq!(bare.get("/healthz", None).await.status(), 200);
}

#[tokio::test]
async fn chaos_failures_before_the_effect_apply_nothing() {
    let h = start(&[]).await;
    let chaos = h
        .get("/admin/chaos", Some(DEMO))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(chaos["spec"], "off");
    assert_eq!(chaos["status"], 503);

    let set = h.put_json("/admin/chaos", DEMO, r#"{"fail":1}"#).await;
    assert_eq!(set.status(), 200);
    assert_eq!(set.json::<Value>().await.unwrap()["fail"], 1.0);
    for _ in 0..3 {
        let res = h.post("c", r#"{"a":1}"#).await;
        assert_eq!(header(&res, "retry-after"), Some("1"));
        assert_problem(res, 503, "chaos-failure").await;
    }
    let set = h
        .put_json("/admin/chaos", DEMO, r#"{"spec":"fail=1,status=500"}"#)
        .await;
    assert_eq!(set.json::<Value>().await.unwrap()["status"], 500);
    let res = h.post("c", r#"{"a":1}"#).await;
    assert_eq!(header(&res, "retry-after"), None);
    assert_problem(res, 500, "chaos-failure").await;
    assert!(h
        .server
        .state()
        .store
        .lookup("demo", "c")
        .await
        .unwrap()
        .is_none());

    for bad in [
        r#"{"fail":2}"#,
        r#"{"status":404}"#,
        r#"{"spec":"boom=1"}"#,
        r#"{"nope":1}"#,
        "x",
    ] {
        assert_problem(
            h.put_json("/admin/chaos", DEMO, bad).await,
            400,
            "invalid-chaos",
        )
        .await;
    }
    assert_eq!(
        h.put_json("/admin/chaos", DEMO, r#"{"spec":"off"}"#)
            .await
            .status(),
        200
    );
    assert_eq!(h.post("c", r#"{"a":1}"#).await.status(), 201);
    assert_eq!(h.log(DEMO).await["total"], 1);
    assert!(h
        .metrics()
        .await
        .contains("outbox_chaos_injected_total{kind=\"fail\"} 4"));
}
