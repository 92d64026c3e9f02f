//! `POST /v1/messages` (the idempotent append) and `GET /v1/messages` (the log).
//!
//! The POST follows the IETF Idempotency-Key draft:
//!
//! | situation                                   | answer                                   |
//! |---------------------------------------------|------------------------------------------|
//! | first request with a key                    | 201 `{key, receivedAt, seq}`             |
//! | same key, same fingerprint, completed       | stored status and body, `Idempotent-Replayed: true` |
//! | same key while the first is still in flight | 409 `key-in-use`, `Retry-After: 1`       |
//! | same key, different fingerprint             | 422 `key-mismatch`                       |
//! | key missing or malformed / body not JSON    | 400                                      |
//! | body over the limit                         | 413                                      |

use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;

use crate::app::{AppState, IDEMPOTENT_REPLAYED};
use crate::auth::Tenant;
use crate::idempotency::{canonical_json, fingerprint, key_from_headers};
use crate::metrics::{Outcome, StoreOp};
use crate::problem::{Kind, Problem};
use crate::store::{
    Applied, Claim, ClaimRequest, Completed, Completion, Effect, KeyRecord, StoreError,
    StoredResponse,
};

/// Path the fingerprint is computed over.
pub const PATH: &str = "/v1/messages";

/// Seconds a client is told to wait when its key is in use: the first request is
/// normally done within milliseconds; a crashed holder is bounded by the lease.
const IN_USE_RETRY_AFTER: u64 = 1;

/// The stored 201 answer of a first request (also used by the batch endpoint, so that a
/// key applied in a batch replays exactly what a single POST would have stored).
pub(crate) fn created(key: &str, received_at: SystemTime, seq: i64) -> StoredResponse {
    let body = Created {
        key,
        received_at: timestamp(received_at),
        seq,
    };
    StoredResponse {
        status: 201,
        content_type: "application/json".into(),
        body: serde_json::to_vec(&body).expect("body serializes"),
    }
}

/// 409 `key-in-use`, with `Retry-After`.
pub(crate) fn in_use_problem() -> Problem {
    Problem::new(
        Kind::KeyInUse,
        "a request with this Idempotency-Key is in progress",
    )
    .retry_after(IN_USE_RETRY_AFTER)
}

/// 422 `key-mismatch`.
pub(crate) fn mismatch_problem() -> Problem {
    Problem::new(
        Kind::KeyMismatch,
        "this Idempotency-Key was first used with a different request body",
    )
}

/// 503 `store-unavailable`, with `Retry-After`; logs the error.
pub(crate) fn store_problem(e: &StoreError) -> Problem {
    eprintln!("outbox-server: {e}");
    Problem::new(Kind::StoreUnavailable, "try again").retry_after(1)
}

/// The chaos `fail` answer with the configured status (503 carries `Retry-After`).
pub(crate) fn chaos_fail_problem(status: u16) -> Problem {
    let mut p = Problem::new(Kind::ChaosFailure, "injected failure before the effect")
        .with_status(StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE));
    if status == 503 {
        p = p.retry_after(1);
    }
    p
}

/// The chaos `lost-ack` answer.
pub(crate) fn lost_ack_problem() -> Problem {
    Problem::new(
        Kind::ChaosLostAck,
        "injected: the answer was lost after the effect",
    )
    .retry_after(1)
}

/// The answer to a body that could not be read: 413 over the limit, else 400.
pub(crate) fn body_problem(st: &AppState, rej: BytesRejection) -> Problem {
    if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let limit = st.config.max_body;
        Problem::new(Kind::PayloadTooLarge, format!("the limit is {limit} bytes"))
    } else {
        Problem::new(Kind::InvalidJson, rej.body_text())
    }
}

/// RFC 3339 with milliseconds, UTC.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Body of the first (201) answer, stored and replayed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created<'a> {
    key: &'a str,
    received_at: String,
    seq: i64,
}

type Answer = (Outcome, Response);

/// `POST /v1/messages`.
pub async fn post(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (outcome, response) = append(&st, tenant.clone(), &headers, body).await;
    st.metrics.outcome(Some(&tenant), outcome);
    response
}

fn stored(resp: StoredResponse, replayed: bool) -> Response {
    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::OK);
    let mut res = (status, resp.body).into_response();
    let headers = res.headers_mut();
    if let Ok(ct) = HeaderValue::from_str(&resp.content_type) {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    if replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    res
}

fn problem(outcome: Outcome, p: Problem) -> Answer {
    (outcome, p.into_response())
}

fn store_failed(e: StoreError) -> Answer {
    problem(Outcome::Error, store_problem(&e))
}

fn in_use() -> Answer {
    problem(Outcome::Conflict, in_use_problem())
}

fn mismatch() -> Answer {
    problem(Outcome::Mismatch, mismatch_problem())
}

async fn append(
    st: &AppState,
    tenant: String,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    // 1. Validate: key, size, JSON. Nothing is stored for a bad request.
    let key = match key_from_headers(headers) {
        Ok(k) => k,
        Err(p) => return problem(Outcome::Rejected, p),
    };
    let bytes = match body {
        Ok(b) => b,
        Err(rej) => return problem(Outcome::Rejected, body_problem(st, rej)),
    };
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return problem(
                Outcome::Rejected,
                Problem::new(Kind::InvalidJson, e.to_string()),
            )
        }
    };
    let payload = canonical_json(&value);
    let fp = fingerprint("POST", PATH, &payload);

    // 2. Chaos before anything is claimed: the request leaves no trace.
    if let Some(status) = st.chaos.roll_fail() {
        st.metrics.chaos(false);
        return problem(Outcome::Chaos, chaos_fail_problem(status));
    }

    // 3. Read-only fast path: a resend of a completed request (the common case for an
    //    outbox) is answered without taking the write lock.
    match st
        .timed(StoreOp::Lookup, st.store.lookup(&tenant, &key))
        .await
    {
        Ok(Some(KeyRecord { fingerprint, .. })) if fingerprint != fp => return mismatch(),
        Ok(Some(KeyRecord {
            response: Some(resp),
            ..
        })) => return (Outcome::Replayed, stored(resp, true)),
        Ok(_) => {}
        Err(e) => return store_failed(e),
    }

    // 4. Claim the key (atomic; decides between concurrent requests).
    let req = ClaimRequest {
        tenant: tenant.clone(),
        key: key.clone(),
        fingerprint: fp,
        lease: st.config.lease,
        now: SystemTime::now(),
    };
    let fence = match st.timed(StoreOp::Claim, st.store.claim(req)).await {
        Ok(Claim::Claimed { fence }) => fence,
        Ok(Claim::Completed(resp)) => return (Outcome::Replayed, stored(resp, true)),
        Ok(Claim::InProgress) => return in_use(),
        Ok(Claim::Mismatch) => return mismatch(),
        Err(e) => return store_failed(e),
    };

    // 5. Process under the claim in a task of its own, so that a client hanging up
    //    mid-request does not abandon a claim that then blocks its own resend until
    //    the lease runs out.
    let task = tokio::spawn(process(st.clone(), tenant, key, fence, payload));
    let committed = match task.await {
        Ok(Ok(Completed::Committed(resp))) => resp,
        Ok(Ok(Completed::StaleFence)) => return in_use(),
        Ok(Err(e)) => return store_failed(e),
        Err(e) => return store_failed(StoreError(e.to_string())),
    };

    // 6. Chaos after the commit: the effect and its stored answer exist, the client
    //    sees a failure and resends, and gets the replay.
    if st.chaos.roll_lost_ack() {
        st.metrics.chaos(true);
        return problem(Outcome::Chaos, lost_ack_problem());
    }
    (Outcome::Applied, stored(committed, false))
}

async fn process(
    st: AppState,
    tenant: String,
    key: String,
    fence: i64,
    payload: String,
) -> Result<Completed, StoreError> {
    let latency = st.chaos.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let completion = append_completion(tenant.clone(), key.clone(), fence, payload);
    match st
        .timed(StoreOp::Complete, st.store.complete(completion))
        .await
    {
        Ok(done) => {
            if matches!(done, Completed::Committed(_)) {
                st.metrics.effect_applied();
            }
            Ok(done)
        }
        Err(e) => {
            // Nothing was applied (the transaction rolled back): free the key now rather
            // than make the client's retry wait out the lease.
            let _ = st.store.release(&tenant, &key, fence).await;
            Err(e)
        }
    }
}

/// The completion that appends `payload` under a claimed key and stores its 201 answer.
pub(crate) fn append_completion(
    tenant: String,
    key: String,
    fence: i64,
    payload: String,
) -> Completion {
    let received_at = SystemTime::now();
    let body_key = key.clone();
    Completion {
        tenant,
        key,
        fence,
        effect: Effect::Append {
            payload,
            received_at,
        },
        respond: Box::new(move |applied: &Applied| created(&body_key, received_at, applied.seq)),
        now: received_at,
    }
}

/// One entry of `GET /v1/messages`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    key: String,
    payload: Value,
    received_at: String,
    seq: i64,
}

/// Body of `GET /v1/messages`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogView {
    tenant: String,
    /// Messages applied (the log's length).
    total: usize,
    messages: Vec<MessageView>,
    /// Replays answered to this tenant since the process started.
    replays: u64,
    /// 409 answers since the process started.
    conflicts: u64,
    /// 422 answers since the process started.
    mismatches: u64,
}

/// `GET /v1/messages`: the tenant's log, oldest first, with replay and conflict counts.
pub async fn list(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<LogView>, Problem> {
    let records = st
        .store
        .messages(&tenant)
        .await
        .map_err(|e| Problem::new(Kind::StoreUnavailable, e.to_string()))?;
    let messages: Vec<MessageView> = records
        .into_iter()
        .map(|m| MessageView {
            key: m.key,
            payload: serde_json::from_str(&m.payload).unwrap_or(Value::String(m.payload)),
            received_at: timestamp(m.received_at),
            seq: m.seq,
        })
        .collect();
    let counts = st.metrics.tenant(&tenant);
    Ok(Json(LogView {
        tenant,
        total: messages.len(),
        messages,
        replays: counts.replays,
        conflicts: counts.conflicts,
        mismatches: counts.mismatches,
    }))
}
