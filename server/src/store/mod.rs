//! The storage interface the handlers use, and its embedded SQLite implementation.
//!
//! The trait is shaped around the idempotency protocol rather than around tables, so that
//! a PostgreSQL store can implement it with the same semantics and no handler changes:
//!
//! 1. [`Store::lookup`]: read-only replay check (a resend finds its stored response).
//! 2. [`Store::claim`]: atomically record "in progress" for `(tenant, key)` with a lease
//!    and a fresh fence token, or report that the key is completed, busy or mismatched.
//! 3. [`Store::complete`]: in ONE transaction, check the fence, apply the effect and store
//!    the response. A stale fence (the lease expired and another request took the key
//!    over) applies nothing.
//! 4. [`Store::release`]: drop our own claim when we fail before the effect, so that a
//!    retry need not wait for the lease to run out.
//! 5. [`Store::sweep`]: delete expired keys in bounded batches (the reaper).
//!
//! Steps 1 to 3 also come in a batched form ([`Store::lookup_many`],
//! [`Store::claim_many`], [`Store::complete_many`]) for `POST /v1/messages/batch`: the
//! same protocol per key, with several keys decided in one call (one transaction in the
//! SQLite store). They have default implementations that loop over the single-key
//! methods, so a store that does not override them keeps working, just with more
//! transactions.
//!
//! Methods return boxed futures rather than using `async fn` so the trait stays
//! dyn-compatible (`Arc<dyn Store>`) without an extra macro crate.

pub mod sqlite;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use crate::flags::Flags;

/// The future every store method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A failure of the storage backend (I/O, corruption, a panicked worker). Handlers map it
/// to 503: the request may be retried and nothing was half-applied.
#[derive(Debug, Clone)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store error: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// A response as stored with its key and returned verbatim on replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status of the first answer.
    pub status: u16,
    /// Its `Content-Type`.
    pub content_type: String,
    /// Its body bytes.
    pub body: Vec<u8>,
}

/// What is stored for one `(tenant, key)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// SHA-256 of the first request (see [`crate::idempotency::fingerprint`]).
    pub fingerprint: String,
    /// When the key was first claimed; retention counts from here.
    pub created_at: SystemTime,
    /// `Some` once completed, `None` while in progress.
    pub response: Option<StoredResponse>,
}

/// Arguments of [`Store::claim`].
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// Tenant the key belongs to; keys never cross tenants.
    pub tenant: String,
    /// The idempotency key.
    pub key: String,
    /// Fingerprint of this request.
    pub fingerprint: String,
    /// How long the claim holds before another request may take the key over.
    pub lease: Duration,
    /// The current time.
    pub now: SystemTime,
}

/// Result of [`Store::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours; pass the fence token to [`Store::complete`].
    Claimed {
        /// Strictly increasing across all claims of the store.
        fence: i64,
    },
    /// Another request holds an unexpired claim on the key.
    InProgress,
    /// The key was completed earlier with this same fingerprint: replay the response.
    Completed(StoredResponse),
    /// The key was first used with a different fingerprint.
    Mismatch,
}

/// The side effect of a request, applied by [`Store::complete`] in the same transaction
/// that stores the response. An enum so that later kinds of effect add variants instead
/// of new transaction paths. (A batch is not a new effect: each item is its own
/// [`Completion`] under its own key, passed together to [`Store::complete_many`].)
#[derive(Debug, Clone)]
pub enum Effect {
    /// Append one message to the tenant's log.
    Append {
        /// Canonical JSON of the payload.
        payload: String,
        /// Server receive time.
        received_at: SystemTime,
    },
}

/// What the effect produced, handed to the response builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Sequence number of the appended message within its tenant's log (from 1).
    pub seq: i64,
}

/// Builds the response from the applied effect, inside the transaction (the body names
/// the sequence number, which exists only once the effect is applied).
pub type Respond = Box<dyn FnOnce(&Applied) -> StoredResponse + Send>;

/// Arguments of [`Store::complete`].
pub struct Completion {
    /// Tenant of the claim.
    pub tenant: String,
    /// Key of the claim.
    pub key: String,
    /// The fence token [`Store::claim`] returned.
    pub fence: i64,
    /// The effect to apply.
    pub effect: Effect,
    /// Builds the response to store and return.
    pub respond: Respond,
    /// The current time.
    pub now: SystemTime,
}

/// Result of [`Store::complete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completed {
    /// Effect applied and response stored, atomically.
    Committed(StoredResponse),
    /// The fence no longer matches (lease expired and the key was taken over, or swept):
    /// nothing was written.
    StaleFence,
}

/// One entry of a tenant's message log.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    /// Per-tenant sequence number, from 1.
    pub seq: i64,
    /// The idempotency key that applied it.
    pub key: String,
    /// Canonical JSON payload.
    pub payload: String,
    /// Server receive time.
    pub received_at: SystemTime,
}

/// The storage backend. See the module docs for the protocol.
pub trait Store: Send + Sync + 'static {
    /// Returns the record of `(tenant, key)`, if any, without locking anything.
    fn lookup(&self, tenant: &str, key: &str) -> StoreFuture<'_, Option<KeyRecord>>;

    /// Claims the key, or reports why not. Atomic with respect to concurrent claims.
    fn claim(&self, req: ClaimRequest) -> StoreFuture<'_, Claim>;

    /// Applies the effect and stores the response in one transaction, if the fence holds.
    fn complete(&self, done: Completion) -> StoreFuture<'_, Completed>;

    /// Deletes an in-progress claim held with `fence`; returns whether one was deleted.
    fn release(&self, tenant: &str, key: &str, fence: i64) -> StoreFuture<'_, bool>;

    /// Deletes up to `batch` keys created before `older_than` (completed ones, and claims
    /// whose lease has run out by `now`), in one transaction; returns how many.
    fn sweep(
        &self,
        older_than: SystemTime,
        now: SystemTime,
        batch: usize,
    ) -> StoreFuture<'_, usize>;

    /// The tenant's message log, oldest first.
    fn messages(&self, tenant: &str) -> StoreFuture<'_, Vec<MessageRecord>>;

    /// The tenant's flags, if ever set.
    fn flags(&self, tenant: &str) -> StoreFuture<'_, Option<Flags>>;

    /// Replaces the tenant's flags.
    fn put_flags(&self, tenant: &str, flags: Flags) -> StoreFuture<'_, ()>;

    /// [`Store::lookup`] for several keys of one tenant: one entry per key, in order.
    ///
    /// The default calls [`Store::lookup`] once per key.
    fn lookup_many(
        &self,
        tenant: &str,
        keys: Vec<String>,
    ) -> StoreFuture<'_, Vec<Option<KeyRecord>>> {
        let tenant = tenant.to_owned();
        Box::pin(async move {
            let mut out = Vec::with_capacity(keys.len());
            for key in &keys {
                out.push(self.lookup(&tenant, key).await?);
            }
            Ok(out)
        })
    }

    /// [`Store::claim`] for several keys: one [`Claim`] per request, in order, each
    /// decided exactly as a single claim would be. The keys must be distinct.
    ///
    /// On `Err`, no claim is left behind. The default calls [`Store::claim`] once per
    /// request and, if one fails, releases the claims it already took.
    fn claim_many(&self, reqs: Vec<ClaimRequest>) -> StoreFuture<'_, Vec<Claim>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(reqs.len());
            for req in &reqs {
                match self.claim(req.clone()).await {
                    Ok(c) => out.push(c),
                    Err(e) => {
                        for (req, c) in reqs.iter().zip(&out) {
                            if let Claim::Claimed { fence } = c {
                                let _ = self.release(&req.tenant, &req.key, *fence).await;
                            }
                        }
                        return Err(e);
                    }
                }
            }
            Ok(out)
        })
    }

    /// [`Store::complete`] for several claims: one [`Completed`] per completion, in
    /// order. Each item's effect and stored response stay atomic together, and effects
    /// are applied in the given order (so log sequence numbers follow it). A stale fence
    /// skips only its own item.
    ///
    /// The SQLite store does it all in one transaction, so `Err` means nothing was
    /// applied. The default calls [`Store::complete`] once per completion and stops at
    /// the first error; the items before it are then committed (and a resend replays
    /// them), which is still safe because each item is atomic on its own.
    fn complete_many(&self, done: Vec<Completion>) -> StoreFuture<'_, Vec<Completed>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(done.len());
            for d in done {
                out.push(self.complete(d).await?);
            }
            Ok(out)
        })
    }
}
