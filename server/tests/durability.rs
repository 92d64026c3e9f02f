//! Exactly-once under concurrency, restarts, lost acks, crashed claims and expiry.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use outbox_server::idempotency::{canonical_json, fingerprint};
use outbox_server::store::{Claim, ClaimRequest, Completed, Completion, Effect, StoredResponse};
use outbox_server::{SqliteStore, Store};
use serde_json::Value;

#[tokio::test]
async fn hundred_concurrent_requests_with_one_key_apply_once() {
    // Latency while the claim is held makes the race window wide enough to see 409s.
    let h = start(&["--chaos", "latency=200ms"]).await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (client, url) = (h.client.clone(), h.url.clone());
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(format!("{url}/v1/messages"))
                .bearer_auth(DEMO)
                .header("idempotency-key", "same")
                .body(r#"{"n":1}"#)
                .send()
                .await
                .unwrap();
            let replayed = res.headers().get("idempotent-replayed").is_some();
            let retry_after = res.headers().get("retry-after").is_some();
            (
                res.status().as_u16(),
                replayed,
                retry_after,
                res.text().await.unwrap(),
            )
        }));
    }
    let mut fresh = Vec::new();
    let (mut replays, mut conflicts) = (Vec::new(), 0);
    for t in tasks {
        match t.await.unwrap() {
            (201, false, _, body) => fresh.push(body),
            (201, true, _, body) => replays.push(body),
            (409, _, true, _) => conflicts += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(fresh.len(), 1, "exactly one request applied the effect");
    assert!(
        replays.iter().all(|b| *b == fresh[0]),
        "every replay is the stored answer"
    );
    assert_eq!(1 + replays.len() + conflicts, 100);
    assert!(
        conflicts > 0,
        "some requests arrived while the first held the claim"
    );
    let log = h.log(DEMO).await;
    assert_eq!(log["total"], 1);
    assert_eq!(log["conflicts"], conflicts as u64);
    assert_eq!(log["replays"], replays.len() as u64);
    // And after the dust settles every resend is a replay.
    let after = h.post("same", r#"{"n":1}"#).await;
    assert_eq!(after.headers()["idempotent-replayed"], "true");
    assert_eq!(after.text().await.unwrap(), fresh[0]);
}

#[tokio::test]
async fn replay_survives_a_restart_on_the_same_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("outbox.sqlite");
    let db = db.to_str().unwrap();

    let h = start(&["--db", db]).await;
    let first = h.post("persist", r#"{"a":1}"#).await;
    assert_eq!(first.status(), 201);
    let first_body = first.text().await.unwrap();
    h.server.shutdown().await.unwrap();

    let h = start(&["--db", db]).await;
    let again = h.post("persist", r#"{"a":1}"#).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.unwrap(), first_body);
    assert_problem(h.post("persist", r#"{"a":2}"#).await, 422, "key-mismatch").await;
    let log = h.log(DEMO).await;
    assert_eq!(log["total"], 1);
    // The sequence continues after the restart.
    let next = h.post("next", "{}").await.json::<Value>().await.unwrap();
    assert_eq!(next["seq"], 2);
}

#[tokio::test]
async fn lost_ack_then_resend_applies_once() {
    let h = start(&["--chaos", "lost-ack=1"]).await;
    let lost = h.post("la", r#"{"v":"x"}"#).await;
    assert_eq!(lost.headers()["retry-after"], "1");
    assert_problem(lost, 503, "chaos-lost-ack").await;
    // The effect happened although the client saw a failure.
    assert_eq!(h.log(DEMO).await["total"], 1);
    // The resend gets the stored answer (lost-ack only hits the request that applies).
    let resend = h.post("la", r#"{"v":"x"}"#).await;
    assert_eq!(resend.status(), 201);
    assert_eq!(resend.headers()["idempotent-replayed"], "true");
    let body: Value = resend.json().await.unwrap();
    assert_eq!(
        (body["key"].as_str(), body["seq"].as_u64()),
        (Some("la"), Some(1))
    );
    let log = h.log(DEMO).await;
    assert_eq!(
        (log["total"].as_u64(), log["replays"].as_u64()),
        (Some(1), Some(1))
    );
    let m = h.metrics().await;
    assert!(
        m.contains("outbox_chaos_injected_total{kind=\"lost-ack\"} 1"),
        "{m}"
    );
    assert!(m.contains("outbox_effects_applied_total 1"), "{m}");
}

#[tokio::test]
async fn expired_keys_are_swept_in_batches() {
    let retention = Duration::from_millis(400);
    let h = start(&[
        "--retention",
        "400ms",
        "--reap-batch",
        "2",
        "--reap-interval",
        "1h",
    ])
    .await;
    let start = Instant::now();
    for i in 0..5 {
        assert_eq!(h.post(&format!("old-{i}"), "{}").await.status(), 201);
    }
    let early = h.post_admin("/admin/sweep").await["deleted"]
        .as_u64()
        .unwrap();
    if start.elapsed() < retention {
        assert_eq!(early, 0, "nothing has expired yet");
    }
    // From the last key's creation, not from `start`: on a loaded machine the five
    // POSTs can take longer than the margin.
    let last_created = Instant::now();
    tokio::time::sleep_until((last_created + retention + Duration::from_millis(50)).into()).await;
    assert_eq!(h.post("young", "{}").await.status(), 201);
    let late = h.post_admin("/admin/sweep").await["deleted"]
        .as_u64()
        .unwrap();
    assert_eq!(early + late, 5, "five keys in batches of two");
    let store = h.server.state().store.clone();
    assert!(store.lookup("demo", "old-0").await.unwrap().is_none());
    assert!(store.lookup("demo", "young").await.unwrap().is_some());
    assert!(h.metrics().await.contains("outbox_keys_swept_total 5"));
    // The log (the effect) is kept; only the dedupe records go. A resend after expiry is
    // new, which is why retention must cover the client's maxAgeMs.
    assert_eq!(h.log(DEMO).await["total"], 6);
    let late = h.post("old-0", "{}").await;
    assert_eq!(
        (
            late.status().as_u16(),
            late.headers().get("idempotent-replayed")
        ),
        (201, None)
    );
}

#[tokio::test]
async fn the_reaper_task_sweeps_on_its_interval() {
    let h = start(&["--retention", "50ms", "--reap-interval", "50ms"]).await;
    assert_eq!(h.post("tick", "{}").await.status(), 201);
    let store = h.server.state().store.clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.lookup("demo", "tick").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "reaper never swept the key");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn crashed_claim_expires_and_its_stale_fence_cannot_complete() {
    let store = Arc::new(SqliteStore::open(":memory:").unwrap());
    let h = start_with_store(&[], store.clone()).await;
    let body = r#"{"crash":true}"#;
    let fp = fingerprint(
        "POST",
        "/v1/messages",
        &canonical_json(&serde_json::from_str(body).unwrap()),
    );

    // A worker claims the key with a short lease and then "crashes" (never completes).
    let claim = store
        .claim(ClaimRequest {
            tenant: "demo".into(),
            key: "crash".into(),
            fingerprint: fp,
            lease: Duration::from_millis(500),
            now: std::time::SystemTime::now(),
        })
        .await
        .unwrap();
    let claimed_at = Instant::now();
    let Claim::Claimed { fence: stale } = claim else {
        panic!("{claim:?}")
    };

    let busy = h.post("crash", body).await;
    assert_eq!(busy.headers()["retry-after"], "1");
    assert_problem(busy, 409, "key-in-use").await;

    tokio::time::sleep_until((claimed_at + Duration::from_millis(550)).into()).await;
    let retry = h.post("crash", body).await;
    assert_eq!(
        retry.status(),
        201,
        "the retry takes the expired claim over"
    );
    assert!(retry.headers().get("idempotent-replayed").is_none());
    let retry_body = retry.text().await.unwrap();

    // The crashed worker wakes up and tries to finish: its fence is stale.
    let late = store
        .complete(Completion {
            tenant: "demo".into(),
            key: "crash".into(),
            fence: stale,
            effect: Effect::Append {
                payload: "{}".into(),
                received_at: std::time::SystemTime::now(),
            },
            respond: Box::new(|_| StoredResponse {
                status: 201,
                content_type: "application/json".into(),
                body: b"stale".to_vec(),
            }),
            now: std::time::SystemTime::now(),
        })
        .await
        .unwrap();
    assert_eq!(late, Completed::StaleFence);
    assert_eq!(h.log(DEMO).await["total"], 1);
    let replay = h.post("crash", body).await;
    assert_eq!(replay.text().await.unwrap(), retry_body);
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_outbox-server"))
}

#[test]
fn binary_help_lists_every_env_var() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for var in [
        "OUTBOX_LISTEN",
        "OUTBOX_DB",
        "OUTBOX_TOKENS",
        "OUTBOX_RETENTION",
        "OUTBOX_LEASE",
        "OUTBOX_REAP_INTERVAL",
        "OUTBOX_REAP_BATCH",
        "OUTBOX_MAX_BODY",
        "OUTBOX_CHAOS",
        "OUTBOX_CHAOS_SEED",
        "OUTBOX_WWW",
        "OUTBOX_PKG",
        "OUTBOX_CORS_ORIGINS",
    ] {
        assert!(help.contains(var), "--help lacks {var}:\n{help}");
    }
    let bad = bin().args(["--chaos", "fail=7"]).output().unwrap();
    assert!(!bad.status.success());
}

#[tokio::test]
async fn binary_prints_its_address_reads_env_and_stops_on_sigterm() {
    let mut child = bin()
        .args(["--listen", "127.0.0.1:0"])
        .env("OUTBOX_DB", ":memory:")
        .env("OUTBOX_TOKENS", "env-token=envy")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect(&line)
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let c = client();
    assert_eq!(
        c.get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let res = c
        .get(format!("{url}/v1/messages"))
        .bearer_auth("env-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["tenant"], "envy");

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Delegates to SQLite but can be told to fail `complete`, as a broken disk would.
struct FlakyStore {
    inner: SqliteStore,
    fail_complete: std::sync::atomic::AtomicBool,
}

impl Store for FlakyStore {
    fn lookup(
        &self,
        t: &str,
        k: &str,
    ) -> outbox_server::store::StoreFuture<'_, Option<outbox_server::store::KeyRecord>> {
        self.inner.lookup(t, k)
    }
    fn claim(&self, r: ClaimRequest) -> outbox_server::store::StoreFuture<'_, Claim> {
        self.inner.claim(r)
    }
    fn complete(&self, d: Completion) -> outbox_server::store::StoreFuture<'_, Completed> {
        if self.fail_complete.load(std::sync::atomic::Ordering::SeqCst) {
            return Box::pin(async {
                Err(outbox_server::store::StoreError("disk on fire".into()))
            });
        }
        self.inner.complete(d)
    }
    fn release(&self, t: &str, k: &str, f: i64) -> outbox_server::store::StoreFuture<'_, bool> {
        self.inner.release(t, k, f)
    }
    fn sweep(
        &self,
        o: std::time::SystemTime,
        n: std::time::SystemTime,
        b: usize,
    ) -> outbox_server::store::StoreFuture<'_, usize> {
        self.inner.sweep(o, n, b)
    }
    fn messages(
        &self,
        t: &str,
    ) -> outbox_server::store::StoreFuture<'_, Vec<outbox_server::store::MessageRecord>> {
        self.inner.messages(t)
    }
    fn flags(
        &self,
        t: &str,
    ) -> outbox_server::store::StoreFuture<'_, Option<outbox_server::flags::Flags>> {
        self.inner.flags(t)
    }
    fn put_flags(
        &self,
        t: &str,
        f: outbox_server::flags::Flags,
    ) -> outbox_server::store::StoreFuture<'_, ()> {
        self.inner.put_flags(t, f)
    }
}

#[tokio::test]
async fn store_failure_is_503_and_releases_the_claim() {
    let store = Arc::new(FlakyStore {
        inner: SqliteStore::open(":memory:").unwrap(),
        fail_complete: true.into(),
    });
    let h = start_with_store(&[], store.clone()).await;
    let res = h.post("flaky", r#"{"a":1}"#).await;
    assert_eq!(res.headers()["retry-after"], "1");
    assert_problem(res, 503, "store-unavailable").await;
    // The claim was released, so the retry does not wait out the 30 s lease.
    assert!(store.lookup("demo", "flaky").await.unwrap().is_none());
    store
        .fail_complete
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let retry = h.post("flaky", r#"{"a":1}"#).await;
    assert_eq!(retry.status(), 201);
    assert!(retry.headers().get("idempotent-replayed").is_none());
    assert_eq!(h.log(DEMO).await["total"], 1);
    assert!(h
        .metrics()
        .await
        .contains("outbox_requests_total{outcome=\"error\"} 1"));
}

#[tokio::test]
async fn graceful_shutdown_lets_a_request_in_flight_finish() {
    let h = start(&["--chaos", "latency=300ms"]).await;
    let store = h.server.state().store.clone();
    let (client, url) = (h.client.clone(), h.url.clone());
    let in_flight = tokio::spawn(async move {
        client
            .post(format!("{url}/v1/messages"))
            .bearer_auth(DEMO)
            .header("idempotency-key", "late")
            .body("{}")
            .send()
            .await
            .unwrap()
            .status()
    });
    while store.lookup("demo", "late").await.unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.server.shutdown().await.unwrap();
    assert_eq!(in_flight.await.unwrap(), 201);
    assert_eq!(store.messages("demo").await.unwrap().len(), 1);
    // And the listener is closed.
    assert!(h
        .client
        .get(format!("{}/healthz", h.url))
        .send()
        .await
        .is_err());
}
