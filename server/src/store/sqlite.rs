//! The embedded default store: SQLite through rusqlite (bundled, so nothing to install).
//!
//! One connection behind a mutex, used from `spawn_blocking` so the async workers never
//! block on disk. SQLite allows one writer at a time anyway, and every write here is a
//! short transaction, so a pool would add nothing. WAL mode lets a second process (or a
//! restarted one) read while this one writes; `synchronous=FULL` makes each commit
//! durable before the 201 goes out, because a key that is acknowledged and then lost to
//! a power cut would let a resend apply the effect twice.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    Applied, Claim, ClaimRequest, Completed, Completion, Effect, KeyRecord, MessageRecord, Store,
    StoreError, StoreFuture, StoredResponse,
};
use crate::flags::Flags;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS idempotency_keys (
    tenant          TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    fingerprint     TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('in_progress', 'completed')),
    fence           INTEGER NOT NULL,
    lease_until_ms  INTEGER,
    created_at_ms   INTEGER NOT NULL,
    completed_at_ms INTEGER,
    status          INTEGER,
    content_type    TEXT,
    body            BLOB,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at_ms);
CREATE TABLE IF NOT EXISTS messages (
    tenant         TEXT    NOT NULL,
    seq            INTEGER NOT NULL,
    key            TEXT    NOT NULL,
    payload        TEXT    NOT NULL,
    received_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, seq)
);
CREATE TABLE IF NOT EXISTS flags (
    tenant            TEXT    PRIMARY KEY,
    retry_enabled     INTEGER NOT NULL,
    retry_interval_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters (name, value) VALUES ('fence', 0);
";

/// SQLite implementation of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`; `:memory:` gives a throwaway one.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let conn = if path.as_os_str() == ":memory:" {
            Connection::open_in_memory()
        } else {
            Connection::open(path)
        }
        .map_err(err)?;
        // journal_mode answers with a row, so it is read rather than executed.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err)?;
        conn.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
        )
        .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    fn run<T, F>(&self, f: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                // A panic while holding the lock leaves no open transaction behind
                // (rusqlite rolls back on drop), so a poisoned lock is safe to reuse.
                let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
                f(&mut c)
            })
            .await
            .map_err(err)?
        })
    }
}

fn next_fence(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<i64> {
    tx.query_row(
        "UPDATE counters SET value = value + 1 WHERE name = 'fence' RETURNING value",
        [],
        |r| r.get(0),
    )
}

fn response_from(
    status: Option<i64>,
    content_type: Option<String>,
    body: Option<Vec<u8>>,
) -> Option<StoredResponse> {
    Some(StoredResponse {
        status: u16::try_from(status?).ok()?,
        content_type: content_type.unwrap_or_else(|| "application/json".into()),
        body: body.unwrap_or_default(),
    })
}

/// The read-only record of one key.
fn lookup_in(c: &Connection, tenant: &str, key: &str) -> Result<Option<KeyRecord>, StoreError> {
    c.prepare_cached(
        "SELECT fingerprint, created_at_ms, state, status, content_type, body
         FROM idempotency_keys WHERE tenant = ?1 AND key = ?2",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![tenant, key], |r| {
            let state: String = r.get(2)?;
            let response = if state == "completed" {
                response_from(r.get(3)?, r.get(4)?, r.get(5)?)
            } else {
                None
            };
            Ok(KeyRecord {
                fingerprint: r.get(0)?,
                created_at: from_ms(r.get(1)?),
                response,
            })
        })
        .optional()
    })
    .map_err(err)
}

/// The claim protocol for one key, inside the caller's IMMEDIATE transaction.
fn claim_in(tx: &rusqlite::Transaction<'_>, req: &ClaimRequest) -> Result<Claim, StoreError> {
    let now = to_ms(req.now);
    let lease_until = now.saturating_add(req.lease.as_millis() as i64);
    type Row = (
        String,
        String,
        Option<i64>,
        Option<i64>,
        Option<String>,
        Option<Vec<u8>>,
    );
    let row: Option<Row> = tx
        .prepare_cached(
            "SELECT fingerprint, state, lease_until_ms, status, content_type, body
             FROM idempotency_keys WHERE tenant = ?1 AND key = ?2",
        )
        .and_then(|mut stmt| {
            stmt.query_row(params![req.tenant, req.key], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .optional()
        })
        .map_err(err)?;
    Ok(match row {
        None => {
            let fence = next_fence(tx).map_err(err)?;
            tx.execute(
                "INSERT INTO idempotency_keys
                 (tenant, key, fingerprint, state, fence, lease_until_ms, created_at_ms)
                 VALUES (?1, ?2, ?3, 'in_progress', ?4, ?5, ?6)",
                params![
                    req.tenant,
                    req.key,
                    req.fingerprint,
                    fence,
                    lease_until,
                    now
                ],
            )
            .map_err(err)?;
            Claim::Claimed { fence }
        }
        Some((fp, ..)) if fp != req.fingerprint => Claim::Mismatch,
        Some((_, state, _, status, ct, body)) if state == "completed" => {
            match response_from(status, ct, body) {
                Some(resp) => Claim::Completed(resp),
                None => return Err(StoreError("completed key without a response".into())),
            }
        }
        Some((_, _, lease, ..)) if lease.unwrap_or(0) > now => Claim::InProgress,
        Some(_) => {
            // The holder's lease ran out (it crashed or hung): take the key over
            // with a new fence so the old holder can no longer complete.
            let fence = next_fence(tx).map_err(err)?;
            tx.execute(
                "UPDATE idempotency_keys SET fence = ?3, lease_until_ms = ?4
                 WHERE tenant = ?1 AND key = ?2",
                params![req.tenant, req.key, fence, lease_until],
            )
            .map_err(err)?;
            Claim::Claimed { fence }
        }
    })
}

/// Checks the fence, applies the effect and stores the response, inside the caller's
/// IMMEDIATE transaction. A stale fence writes nothing.
fn complete_in(tx: &rusqlite::Transaction<'_>, done: Completion) -> Result<Completed, StoreError> {
    let held: Option<(String, i64)> = tx
        .query_row(
            "SELECT state, fence FROM idempotency_keys WHERE tenant = ?1 AND key = ?2",
            params![done.tenant, done.key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(err)?;
    if held != Some(("in_progress".to_owned(), done.fence)) {
        return Ok(Completed::StaleFence);
    }
    let applied = match done.effect {
        Effect::Append {
            payload,
            received_at,
        } => {
            let seq: i64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE tenant = ?1",
                    params![done.tenant],
                    |r| r.get(0),
                )
                .map_err(err)?;
            tx.execute(
                "INSERT INTO messages (tenant, seq, key, payload, received_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![done.tenant, seq, done.key, payload, to_ms(received_at)],
            )
            .map_err(err)?;
            Applied { seq }
        }
    };
    let resp = (done.respond)(&applied);
    tx.execute(
        "UPDATE idempotency_keys SET state = 'completed', lease_until_ms = NULL,
         completed_at_ms = ?3, status = ?4, content_type = ?5, body = ?6
         WHERE tenant = ?1 AND key = ?2",
        params![
            done.tenant,
            done.key,
            to_ms(done.now),
            resp.status,
            resp.content_type,
            resp.body
        ],
    )
    .map_err(err)?;
    Ok(Completed::Committed(resp))
}

impl Store for SqliteStore {
    fn lookup(&self, tenant: &str, key: &str) -> StoreFuture<'_, Option<KeyRecord>> {
        let (tenant, key) = (tenant.to_owned(), key.to_owned());
        self.run(move |c| lookup_in(c, &tenant, &key))
    }

    fn claim(&self, req: ClaimRequest) -> StoreFuture<'_, Claim> {
        self.run(move |c| {
            // IMMEDIATE takes the write lock up front: two processes on one file cannot
            // both read "no row" and then both insert.
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            let claim = claim_in(&tx, &req)?;
            tx.commit().map_err(err)?;
            Ok(claim)
        })
    }

    fn complete(&self, done: Completion) -> StoreFuture<'_, Completed> {
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            let completed = complete_in(&tx, done)?;
            tx.commit().map_err(err)?;
            Ok(completed)
        })
    }

    fn lookup_many(
        &self,
        tenant: &str,
        keys: Vec<String>,
    ) -> StoreFuture<'_, Vec<Option<KeyRecord>>> {
        let tenant = tenant.to_owned();
        // One read transaction, so the records are one consistent snapshot.
        self.run(move |c| {
            let tx = c.transaction().map_err(err)?;
            let out = keys
                .iter()
                .map(|k| lookup_in(&tx, &tenant, k))
                .collect::<Result<Vec<_>, _>>()?;
            tx.commit().map_err(err)?;
            Ok(out)
        })
    }

    fn claim_many(&self, reqs: Vec<ClaimRequest>) -> StoreFuture<'_, Vec<Claim>> {
        // All claims in one IMMEDIATE transaction: an error rolls every one of them back.
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            let out = reqs
                .iter()
                .map(|r| claim_in(&tx, r))
                .collect::<Result<Vec<_>, _>>()?;
            tx.commit().map_err(err)?;
            Ok(out)
        })
    }

    fn complete_many(&self, done: Vec<Completion>) -> StoreFuture<'_, Vec<Completed>> {
        // Every item's effect and stored response in one transaction, in order: either
        // all of them are committed (stale fences aside) or none is.
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            let out = done
                .into_iter()
                .map(|d| complete_in(&tx, d))
                .collect::<Result<Vec<_>, _>>()?;
            tx.commit().map_err(err)?;
            Ok(out)
        })
    }

    fn release(&self, tenant: &str, key: &str, fence: i64) -> StoreFuture<'_, bool> {
        let (tenant, key) = (tenant.to_owned(), key.to_owned());
        self.run(move |c| {
            let n = c
                .execute(
                    "DELETE FROM idempotency_keys
                     WHERE tenant = ?1 AND key = ?2 AND fence = ?3 AND state = 'in_progress'",
                    params![tenant, key, fence],
                )
                .map_err(err)?;
            Ok(n > 0)
        })
    }

    fn sweep(
        &self,
        older_than: SystemTime,
        now: SystemTime,
        batch: usize,
    ) -> StoreFuture<'_, usize> {
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            let n = tx
                .execute(
                    "DELETE FROM idempotency_keys WHERE (tenant, key) IN (
                         SELECT tenant, key FROM idempotency_keys
                         WHERE created_at_ms < ?1
                           AND (state = 'completed' OR lease_until_ms <= ?2)
                         LIMIT ?3)",
                    params![to_ms(older_than), to_ms(now), batch as i64],
                )
                .map_err(err)?;
            tx.commit().map_err(err)?;
            Ok(n)
        })
    }

    fn messages(&self, tenant: &str) -> StoreFuture<'_, Vec<MessageRecord>> {
        let tenant = tenant.to_owned();
        self.run(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, key, payload, received_at_ms FROM messages
                     WHERE tenant = ?1 ORDER BY seq",
                )
                .map_err(err)?;
            let rows = stmt
                .query_map(params![tenant], |r| {
                    Ok(MessageRecord {
                        seq: r.get(0)?,
                        key: r.get(1)?,
                        payload: r.get(2)?,
                        received_at: from_ms(r.get(3)?),
                    })
                })
                .map_err(err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(err)
        })
    }

    fn flags(&self, tenant: &str) -> StoreFuture<'_, Option<Flags>> {
        let tenant = tenant.to_owned();
        self.run(move |c| {
            c.query_row(
                "SELECT retry_enabled, retry_interval_ms FROM flags WHERE tenant = ?1",
                params![tenant],
                |r| {
                    Ok(Flags {
                        retry_enabled: r.get(0)?,
                        retry_interval_ms: r.get::<_, i64>(1)?.max(0) as u64,
                    })
                },
            )
            .optional()
            .map_err(err)
        })
    }

    fn put_flags(&self, tenant: &str, flags: Flags) -> StoreFuture<'_, ()> {
        let tenant = tenant.to_owned();
        self.run(move |c| {
            c.execute(
                "INSERT INTO flags (tenant, retry_enabled, retry_interval_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant) DO UPDATE SET retry_enabled = excluded.retry_enabled,
                     retry_interval_ms = excluded.retry_interval_ms",
                params![tenant, flags.retry_enabled, flags.retry_interval_ms as i64],
            )
            .map_err(err)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim_req(key: &str, fp: &str, lease_ms: u64, now_ms: u64) -> ClaimRequest {
        ClaimRequest {
            tenant: "t".into(),
            key: key.into(),
            fingerprint: fp.into(),
            lease: Duration::from_millis(lease_ms),
            now: UNIX_EPOCH + Duration::from_millis(now_ms),
        }
    }

    fn completion(key: &str, fence: i64) -> Completion {
        Completion {
            tenant: "t".into(),
            key: key.into(),
            fence,
            effect: Effect::Append {
                payload: "{}".into(),
                received_at: UNIX_EPOCH,
            },
            respond: Box::new(|a| StoredResponse {
                status: 201,
                content_type: "application/json".into(),
                body: a.seq.to_string().into_bytes(),
            }),
            now: UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn claim_complete_replay_and_fencing() {
        let s = SqliteStore::open(":memory:").unwrap();
        let Claim::Claimed { fence: f1 } = s.claim(claim_req("k", "a", 100, 1000)).await.unwrap()
        else {
            panic!("first claim")
        };
        assert_eq!(
            s.claim(claim_req("k", "a", 100, 1050)).await.unwrap(),
            Claim::InProgress
        );
        assert_eq!(
            s.claim(claim_req("k", "b", 100, 1050)).await.unwrap(),
            Claim::Mismatch
        );
        // Lease over: a second worker takes over with a higher fence.
        let Claim::Claimed { fence: f2 } = s.claim(claim_req("k", "a", 100, 1200)).await.unwrap()
        else {
            panic!("takeover")
        };
        assert!(f2 > f1);
        assert_eq!(
            s.complete(completion("k", f1)).await.unwrap(),
            Completed::StaleFence
        );
        assert!(s.messages("t").await.unwrap().is_empty());
        let Completed::Committed(resp) = s.complete(completion("k", f2)).await.unwrap() else {
            panic!("complete")
        };
        assert_eq!(resp.body, b"1");
        assert_eq!(
            s.claim(claim_req("k", "a", 100, 1300)).await.unwrap(),
            Claim::Completed(resp)
        );
        // A completed key cannot be completed again.
        assert_eq!(
            s.complete(completion("k", f2)).await.unwrap(),
            Completed::StaleFence
        );
        assert_eq!(s.messages("t").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn batched_claims_and_completions_decide_each_key_as_alone() {
        let s = SqliteStore::open(":memory:").unwrap();
        // "done" completed, "busy" held by someone else, "other" used with fingerprint b.
        let Claim::Claimed { fence } = s.claim(claim_req("done", "a", 100, 0)).await.unwrap()
        else {
            panic!()
        };
        s.complete(completion("done", fence)).await.unwrap();
        s.claim(claim_req("busy", "a", 100_000, 0)).await.unwrap();
        s.claim(claim_req("other", "b", 100_000, 0)).await.unwrap();

        let keys = ["new1", "done", "busy", "other", "new2"];
        let records = s
            .lookup_many("t", keys.iter().map(|k| k.to_string()).collect())
            .await
            .unwrap();
        let completed: Vec<bool> = records
            .iter()
            .map(|r| r.as_ref().is_some_and(|r| r.response.is_some()))
            .collect();
        assert_eq!(completed, [false, true, false, false, false]);
        assert!(records[0].is_none() && records[2].is_some());

        let claims = s
            .claim_many(keys.iter().map(|k| claim_req(k, "a", 100, 10)).collect())
            .await
            .unwrap();
        let [Claim::Claimed { fence: f1 }, Claim::Completed(_), Claim::InProgress, Claim::Mismatch, Claim::Claimed { fence: f2 }] =
            claims[..]
        else {
            panic!("{claims:?}")
        };
        assert!(f2 > f1);
        // A stale fence skips only its own item; the others commit in order.
        let done = s
            .complete_many(vec![
                completion("new2", f2),
                completion("new1", f1 + 1000),
                completion("new1", f1),
            ])
            .await
            .unwrap();
        let bodies: Vec<Option<Vec<u8>>> = done
            .into_iter()
            .map(|d| match d {
                Completed::Committed(r) => Some(r.body),
                Completed::StaleFence => None,
            })
            .collect();
        assert_eq!(bodies, [Some(b"2".to_vec()), None, Some(b"3".to_vec())]);
        let log: Vec<String> = s
            .messages("t")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(log, ["done", "new2", "new1"]);
        assert!(matches!(
            s.claim(claim_req("new1", "a", 100, 20)).await.unwrap(),
            Claim::Completed(_)
        ));
    }

    #[tokio::test]
    async fn release_and_sweep() {
        let s = SqliteStore::open(":memory:").unwrap();
        let Claim::Claimed { fence } = s.claim(claim_req("r", "a", 100, 0)).await.unwrap() else {
            panic!()
        };
        assert!(!s.release("t", "r", fence + 1).await.unwrap());
        assert!(s.release("t", "r", fence).await.unwrap());
        assert!(s.lookup("t", "r").await.unwrap().is_none());
        for i in 0..7 {
            let k = format!("k{i}");
            let Claim::Claimed { fence } = s.claim(claim_req(&k, "a", 100, i)).await.unwrap()
            else {
                panic!()
            };
            s.complete(completion(&k, fence)).await.unwrap();
        }
        let cut = UNIX_EPOCH + Duration::from_millis(5);
        assert_eq!(s.sweep(cut, cut, 3).await.unwrap(), 3);
        assert_eq!(s.sweep(cut, cut, 3).await.unwrap(), 2);
        assert_eq!(s.sweep(cut, cut, 3).await.unwrap(), 0);
        assert!(s.lookup("t", "k5").await.unwrap().is_some());
    }
}
