//! `POST /v1/messages/batch`: up to [`MAX_ITEMS`] messages in one request, each with its
//! own idempotency key and each deduplicated exactly as if it had been sent alone to
//! `POST /v1/messages`.
//!
//! Request: `{"items": [{"key": "<key>", "payload": <any JSON>}, ...]}`.
//! Response: `200 {"results": [{"key", "status", "body", "replayed", "retryAfter"?}, ...]}`,
//! one result per item, in order, where `status` and `body` are what a single POST of
//! that item would have answered.
//!
//! Per item, as for a single POST:
//! - the key is validated by the same rule (a bad key gives that item a 400
//!   `invalid-idempotency-key`; the other items proceed);
//! - the fingerprint is computed as if the item were `POST /v1/messages` with the payload
//!   as its body, so a key sent alone and later in a batch (or the reverse) replays;
//! - a new key is applied (201), a completed one replays its stored answer
//!   (`replayed: true`), one in progress gets a 409 and one used with another payload a
//!   422.
//!
//! The whole batch goes through the store in three calls ([`Store::lookup_many`],
//! [`Store::claim_many`], [`Store::complete_many`]); in the SQLite store each is one
//! transaction, and every item's effect is committed with its key's stored answer.
//!
//! Whole-batch answers: 401 (token), 413 `payload-too-large` (body over `--max-body`),
//! 400 `invalid-json`, 400 `invalid-batch` (shape, no items, a key named twice), 413
//! `batch-too-large`, chaos (`fail` before anything, `lost-ack` after the commit) and 503
//! `store-unavailable` (nothing applied).
//!
//! [`Store::lookup_many`]: crate::store::Store::lookup_many
//! [`Store::claim_many`]: crate::store::Store::claim_many
//! [`Store::complete_many`]: crate::store::Store::complete_many

use std::collections::HashMap;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{Map, Value};

use super::messages::{
    append_completion, body_problem, chaos_fail_problem, in_use_problem, lost_ack_problem,
    mismatch_problem, store_problem, PATH,
};
use crate::app::AppState;
use crate::auth::Tenant;
use crate::idempotency::{canonical_json, fingerprint, parse_key};
use crate::metrics::{BatchOutcome, Outcome, StoreOp};
use crate::problem::{Kind, Problem};
use crate::store::{Claim, ClaimRequest, Completed, KeyRecord, StoreError, StoredResponse};

/// Most items one batch may carry; more is a 413 `batch-too-large`.
pub const MAX_ITEMS: usize = 100;

/// One item as sent.
struct Item {
    /// The key exactly as sent, echoed in the result.
    sent_key: String,
    /// The key (sf-string quotes stripped), or why it is invalid.
    key: Result<String, Problem>,
    payload: Value,
}

/// A valid item, ready for the store.
struct Valid {
    /// Index in the batch.
    index: usize,
    key: String,
    /// Canonical JSON of the payload.
    payload: String,
    fingerprint: String,
}

/// What one item came to.
enum Answer {
    /// A stored response: the 201 just committed, or a replay.
    Stored {
        resp: StoredResponse,
        replayed: bool,
    },
    /// An error answer for this item only.
    Problem(Problem),
}

type ItemAnswer = (Outcome, Answer);

/// One entry of the response's `results`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemView {
    key: String,
    status: u16,
    body: Value,
    replayed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

/// The response body.
#[derive(Serialize)]
struct BatchView {
    results: Vec<ItemView>,
}

/// `POST /v1/messages/batch`.
pub async fn post(
    State(st): State<AppState>,
    tenant: Result<Tenant, Problem>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Tenant(tenant) = match tenant {
        Ok(t) => t,
        Err(p) => {
            // The extractor already counted the item-level `unauthorized`.
            st.metrics.batch(BatchOutcome::Unauthorized);
            return p.into_response();
        }
    };
    let (outcome, response) = batch(&st, &tenant, body).await;
    st.metrics.batch(outcome);
    response
}

fn reject(p: Problem) -> (BatchOutcome, Response) {
    (BatchOutcome::Rejected, p.into_response())
}

async fn batch(
    st: &AppState,
    tenant: &str,
    body: Result<Bytes, BytesRejection>,
) -> (BatchOutcome, Response) {
    // 1. Validate the batch as a whole: size, JSON, shape, count, distinct keys.
    let bytes = match body {
        Ok(b) => b,
        Err(rej) => return reject(body_problem(st, rej)),
    };
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return reject(Problem::new(Kind::InvalidJson, e.to_string())),
    };
    let items = match parse(value) {
        Ok(items) => items,
        Err(p) => return reject(p),
    };
    let count_all = |outcome: Outcome| {
        for _ in 0..items.len() {
            st.metrics.outcome(Some(tenant), outcome);
        }
    };

    // 2. Chaos before anything is looked up or claimed: the batch leaves no trace.
    if let Some(status) = st.chaos.roll_fail() {
        st.metrics.chaos(false);
        count_all(Outcome::Chaos);
        return (
            BatchOutcome::Chaos,
            chaos_fail_problem(status).into_response(),
        );
    }

    // 3. Per item: invalid keys are answered now, the others go to the store.
    let mut answers: Vec<Option<ItemAnswer>> = (0..items.len()).map(|_| None).collect();
    let mut valid = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match &item.key {
            Err(p) => answers[index] = Some((Outcome::Rejected, Answer::Problem(p.clone()))),
            Ok(key) => {
                let payload = canonical_json(&item.payload);
                valid.push(Valid {
                    index,
                    key: key.clone(),
                    // Exactly the single POST's fingerprint, so the two endpoints agree.
                    fingerprint: fingerprint("POST", PATH, &payload),
                    payload,
                });
            }
        }
    }

    // 4. Decide and apply in a task of its own, so that a client hanging up does not
    //    strand the claims until their lease runs out.
    let task = tokio::spawn(decide(st.clone(), tenant.to_owned(), valid));
    let (decided, applied) = match task.await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            count_all(Outcome::Error);
            return (BatchOutcome::Error, store_problem(&e).into_response());
        }
        Err(e) => {
            count_all(Outcome::Error);
            let e = StoreError(e.to_string());
            return (BatchOutcome::Error, store_problem(&e).into_response());
        }
    };
    for (index, answer) in decided {
        answers[index] = Some(answer);
    }

    // 5. Chaos after the commit, only if this batch applied something (replays never
    //    lose their answer): every effect and stored answer exists, the client sees a
    //    failure, resends the batch and gets replays.
    if applied > 0 && st.chaos.roll_lost_ack() {
        st.metrics.chaos(true);
        count_all(Outcome::Chaos);
        return (BatchOutcome::Chaos, lost_ack_problem().into_response());
    }

    let results = items
        .into_iter()
        .zip(answers)
        .map(|(item, answer)| {
            let (outcome, answer) = answer.expect("every item is answered");
            st.metrics.outcome(Some(tenant), outcome);
            view(item.sent_key, answer)
        })
        .collect();
    (
        BatchOutcome::Ok,
        (StatusCode::OK, Json(BatchView { results })).into_response(),
    )
}

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::new(Kind::InvalidBatch, detail)
}

/// Checks the shape `{"items": [{"key": string, "payload": any}, ...]}` with 1 to
/// [`MAX_ITEMS`] items and no key named twice. Unknown fields are refused.
fn parse(value: Value) -> Result<Vec<Item>, Problem> {
    let Value::Object(mut top) = value else {
        return Err(invalid(r#"the body must be an object {"items": [...]}"#));
    };
    let items = match top.remove("items") {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid("items must be an array")),
        None => return Err(invalid("items is missing")),
    };
    if let Some(field) = top.keys().next() {
        return Err(invalid(format!("unknown field {field:?}")));
    }
    if items.is_empty() {
        return Err(invalid("items is empty; send 1 to 100 items"));
    }
    if items.len() > MAX_ITEMS {
        return Err(Problem::new(
            Kind::BatchTooLarge,
            format!("{} items, over the limit of {MAX_ITEMS}", items.len()),
        ));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(mut obj) = item else {
            return Err(invalid(format!("items[{i}] must be an object")));
        };
        let item = take_item(&mut obj).map_err(|e| invalid(format!("items[{i}]: {e}")))?;
        if let Ok(key) = &item.key {
            if let Some(first) = seen.insert(key.clone(), i) {
                return Err(invalid(format!(
                    "items[{i}] repeats the key {key:?} of items[{first}]; each key may appear once"
                )));
            }
        }
        out.push(item);
    }
    Ok(out)
}

fn take_item(obj: &mut Map<String, Value>) -> Result<Item, String> {
    let sent_key = match obj.remove("key") {
        Some(Value::String(k)) => k,
        Some(_) => return Err("key must be a string".into()),
        None => return Err("key is missing".into()),
    };
    let payload = obj.remove("payload").ok_or("payload is missing")?;
    if let Some(field) = obj.keys().next() {
        return Err(format!("unknown field {field:?}"));
    }
    Ok(Item {
        key: parse_key(sent_key.as_bytes()),
        sent_key,
        payload,
    })
}

/// Lookup, claim, latency, complete: the single POST's steps 3 to 6 for every valid
/// item at once. Returns each item's answer and how many effects were applied.
/// On `Err`, nothing was applied and no claim of this batch is left.
async fn decide(
    st: AppState,
    tenant: String,
    valid: Vec<Valid>,
) -> Result<(Vec<(usize, ItemAnswer)>, u64), StoreError> {
    let mut out = Vec::with_capacity(valid.len());
    if valid.is_empty() {
        return Ok((out, 0));
    }
    let wrong_len = || StoreError("the store answered a different number of items".into());

    // Read-only: completed keys replay (or mismatch) without taking the write lock.
    let keys = valid.iter().map(|v| v.key.clone()).collect();
    let records = st
        .timed(StoreOp::Lookup, st.store.lookup_many(&tenant, keys))
        .await?;
    if records.len() != valid.len() {
        return Err(wrong_len());
    }
    let mut pending = Vec::new();
    for (v, record) in valid.into_iter().zip(records) {
        match record {
            Some(KeyRecord { fingerprint, .. }) if fingerprint != v.fingerprint => {
                out.push((v.index, mismatch()));
            }
            Some(KeyRecord {
                response: Some(resp),
                ..
            }) => out.push((v.index, replay(resp))),
            _ => pending.push(v),
        }
    }
    if pending.is_empty() {
        return Ok((out, 0));
    }

    // Claim every remaining key at once (one transaction in SQLite).
    let now = SystemTime::now();
    let reqs = pending
        .iter()
        .map(|v| ClaimRequest {
            tenant: tenant.clone(),
            key: v.key.clone(),
            fingerprint: v.fingerprint.clone(),
            lease: st.config.lease,
            now,
        })
        .collect();
    let claims = st.timed(StoreOp::Claim, st.store.claim_many(reqs)).await?;
    if claims.len() != pending.len() {
        return Err(wrong_len());
    }
    let mut claimed = Vec::new();
    for (v, claim) in pending.into_iter().zip(claims) {
        match claim {
            Claim::Claimed { fence } => claimed.push((v, fence)),
            Claim::Completed(resp) => out.push((v.index, replay(resp))),
            Claim::InProgress => out.push((v.index, in_use())),
            Claim::Mismatch => out.push((v.index, mismatch())),
        }
    }
    if claimed.is_empty() {
        return Ok((out, 0));
    }

    // Chaos latency, once per batch, while the claims are held.
    let latency = st.chaos.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    // Every effect with its key's stored answer, in batch order (one transaction).
    let release = |claimed: Vec<(Valid, i64)>| {
        let st = st.clone();
        let tenant = tenant.clone();
        async move {
            for (v, fence) in claimed {
                let _ = st.store.release(&tenant, &v.key, fence).await;
            }
        }
    };
    let completions = claimed
        .iter()
        .map(|(v, fence)| {
            append_completion(tenant.clone(), v.key.clone(), *fence, v.payload.clone())
        })
        .collect();
    let done = match st
        .timed(StoreOp::Complete, st.store.complete_many(completions))
        .await
    {
        Ok(done) if done.len() == claimed.len() => done,
        Ok(_) => {
            release(claimed).await;
            return Err(wrong_len());
        }
        Err(e) => {
            // Nothing was applied (the transaction rolled back): free the keys now
            // rather than make the client's resend wait out the lease.
            release(claimed).await;
            return Err(e);
        }
    };
    let mut applied = 0;
    for ((v, _), completed) in claimed.into_iter().zip(done) {
        match completed {
            Completed::Committed(resp) => {
                applied += 1;
                out.push((
                    v.index,
                    (
                        Outcome::Applied,
                        Answer::Stored {
                            resp,
                            replayed: false,
                        },
                    ),
                ));
            }
            // The lease ran out during the latency and another request took the key.
            Completed::StaleFence => out.push((v.index, in_use())),
        }
    }
    st.metrics.effects_applied(applied);
    Ok((out, applied))
}

fn replay(resp: StoredResponse) -> ItemAnswer {
    (
        Outcome::Replayed,
        Answer::Stored {
            resp,
            replayed: true,
        },
    )
}

fn in_use() -> ItemAnswer {
    (Outcome::Conflict, Answer::Problem(in_use_problem()))
}

fn mismatch() -> ItemAnswer {
    (Outcome::Mismatch, Answer::Problem(mismatch_problem()))
}

fn json_body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn view(key: String, answer: Answer) -> ItemView {
    match answer {
        Answer::Stored { resp, replayed } => ItemView {
            key,
            status: resp.status,
            body: json_body(&resp.body),
            replayed,
            retry_after: None,
        },
        Answer::Problem(p) => ItemView {
            key,
            status: p.status().as_u16(),
            body: json_body(&p.body()),
            replayed: false,
            retry_after: p.retry_after_secs(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kind(v: Value) -> Kind {
        match parse(v) {
            Ok(_) => panic!("expected a rejection"),
            Err(p) => p.kind(),
        }
    }

    #[test]
    fn shape() {
        let ok = parse(
            json!({"items": [{"key": "a", "payload": null}, {"key": "\"b\"", "payload": 1}]}),
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].sent_key, "\"b\"");
        assert_eq!(ok[1].key.as_ref().unwrap(), "b");
        for bad in [
            json!([]),
            json!({}),
            json!({"items": {}}),
            json!({"items": []}),
            json!({"items": [{"key": "a", "payload": 1}], "extra": 1}),
            json!({"items": [1]}),
            json!({"items": [{"key": 1, "payload": 1}]}),
            json!({"items": [{"payload": 1}]}),
            json!({"items": [{"key": "a"}]}),
            json!({"items": [{"key": "a", "payload": 1, "x": 2}]}),
            // The same key, bare and quoted.
            json!({"items": [{"key": "a", "payload": 1}, {"key": "\"a\"", "payload": 1}]}),
        ] {
            assert_eq!(kind(bad.clone()), Kind::InvalidBatch, "{bad}");
        }
        let many: Vec<Value> = (0..=MAX_ITEMS)
            .map(|i| json!({"key": format!("k{i}"), "payload": i}))
            .collect();
        assert_eq!(kind(json!({ "items": many })), Kind::BatchTooLarge);
        // An invalid key is the item's problem, not the batch's; two of them are not
        // duplicates of a key.
        let ok = parse(json!({"items": [{"key": "", "payload": 1}, {"key": "", "payload": 1}]}))
            .unwrap();
        assert_eq!(ok[0].key.as_ref().unwrap_err().kind(), Kind::InvalidKey);
    }
}
