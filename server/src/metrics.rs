//! Counters and latency histograms, rendered by hand in the Prometheus text format
//! (version 0.0.4); a handful of atomics does not need a metrics crate.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// What a request to `POST /v1/messages`, or one item of `POST /v1/messages/batch`
/// (or any authenticated request, for `Unauthorized`), came to. One per request or item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Effect applied, 201.
    Applied,
    /// Stored response replayed.
    Replayed,
    /// 409, key in use.
    Conflict,
    /// 422, key reused with another payload.
    Mismatch,
    /// 400 or 413.
    Rejected,
    /// 401.
    Unauthorized,
    /// Answered by chaos (failure before the effect, or lost ack after it).
    Chaos,
    /// Store failure, 503.
    Error,
}

const OUTCOMES: [(Outcome, &str); 8] = [
    (Outcome::Applied, "applied"),
    (Outcome::Replayed, "replayed"),
    (Outcome::Conflict, "conflict"),
    (Outcome::Mismatch, "mismatch"),
    (Outcome::Rejected, "rejected"),
    (Outcome::Unauthorized, "unauthorized"),
    (Outcome::Chaos, "chaos"),
    (Outcome::Error, "error"),
];

/// What a `POST /v1/messages/batch` request came to. One per batch request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// 200 with per-item results.
    Ok,
    /// The whole batch refused: 400 or 413.
    Rejected,
    /// 401.
    Unauthorized,
    /// Answered by chaos (failure before any effect, or lost ack after them).
    Chaos,
    /// Store failure, 503.
    Error,
}

const BATCH_OUTCOMES: [(BatchOutcome, &str); 5] = [
    (BatchOutcome::Ok, "ok"),
    (BatchOutcome::Rejected, "rejected"),
    (BatchOutcome::Unauthorized, "unauthorized"),
    (BatchOutcome::Chaos, "chaos"),
    (BatchOutcome::Error, "error"),
];

/// Store operations whose latency is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// [`crate::Store::lookup`]
    Lookup,
    /// [`crate::Store::claim`]
    Claim,
    /// [`crate::Store::complete`]
    Complete,
    /// [`crate::Store::sweep`]
    Sweep,
}

const OPS: [(StoreOp, &str); 4] = [
    (StoreOp::Lookup, "lookup"),
    (StoreOp::Claim, "claim"),
    (StoreOp::Complete, "complete"),
    (StoreOp::Sweep, "sweep"),
];

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (b, le) in self.buckets.iter().zip(BUCKETS) {
            if secs <= le {
                b.fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(d.as_nanos() as u64, Relaxed);
    }
}

/// Per-tenant counts shown by `GET /v1/messages` (since the process started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TenantCounts {
    /// Stored responses replayed.
    pub replays: u64,
    /// 409 answers.
    pub conflicts: u64,
    /// 422 answers.
    pub mismatches: u64,
}

/// All metrics of the process.
#[derive(Default)]
pub struct Metrics {
    requests: [AtomicU64; OUTCOMES.len()],
    batches: [AtomicU64; BATCH_OUTCOMES.len()],
    effects: AtomicU64,
    chaos_fail: AtomicU64,
    chaos_lost_ack: AtomicU64,
    swept: AtomicU64,
    latency: [Histogram; OPS.len()],
    tenants: Mutex<BTreeMap<String, TenantCounts>>,
}

fn index<T: PartialEq>(table: &[(T, &str)], x: T) -> usize {
    table.iter().position(|(t, _)| *t == x).expect("listed")
}

impl Metrics {
    /// Counts one request outcome, and the tenant's replay/conflict/mismatch counts.
    pub fn outcome(&self, tenant: Option<&str>, o: Outcome) {
        self.requests[index(&OUTCOMES, o)].fetch_add(1, Relaxed);
        if let Some(t) = tenant {
            if matches!(o, Outcome::Replayed | Outcome::Conflict | Outcome::Mismatch) {
                let mut m = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
                let c = m.entry(t.to_owned()).or_default();
                match o {
                    Outcome::Replayed => c.replays += 1,
                    Outcome::Conflict => c.conflicts += 1,
                    _ => c.mismatches += 1,
                }
            }
        }
    }

    /// Counts one batch request's outcome (its items go through [`Metrics::outcome`]).
    pub fn batch(&self, o: BatchOutcome) {
        self.batches[index(&BATCH_OUTCOMES, o)].fetch_add(1, Relaxed);
    }

    /// Counts one applied effect (including those whose ack chaos then lost).
    pub fn effect_applied(&self) {
        self.effects_applied(1);
    }

    /// Counts `n` applied effects.
    pub fn effects_applied(&self, n: u64) {
        self.effects.fetch_add(n, Relaxed);
    }

    /// Counts an injected fault.
    pub fn chaos(&self, lost_ack: bool) {
        if lost_ack {
            &self.chaos_lost_ack
        } else {
            &self.chaos_fail
        }
        .fetch_add(1, Relaxed);
    }

    /// Counts keys deleted by the reaper.
    pub fn swept(&self, n: usize) {
        self.swept.fetch_add(n as u64, Relaxed);
    }

    /// Records a store call's latency.
    pub fn store_latency(&self, op: StoreOp, d: Duration) {
        self.latency[index(&OPS, op)].observe(d);
    }

    /// The tenant's counts.
    pub fn tenant(&self, tenant: &str) -> TenantCounts {
        let m = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        m.get(tenant).copied().unwrap_or_default()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let counter = |s: &mut String, name: &str, help: &str| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
        };
        counter(
            &mut s,
            "outbox_requests_total",
            "POST /v1/messages requests and batch items by outcome; unauthorized counts every route.",
        );
        for ((_, label), c) in OUTCOMES.iter().zip(&self.requests) {
            let _ = writeln!(
                s,
                "outbox_requests_total{{outcome=\"{label}\"}} {}",
                c.load(Relaxed)
            );
        }
        counter(
            &mut s,
            "outbox_batch_requests_total",
            "POST /v1/messages/batch requests by outcome.",
        );
        for ((_, label), c) in BATCH_OUTCOMES.iter().zip(&self.batches) {
            let _ = writeln!(
                s,
                "outbox_batch_requests_total{{outcome=\"{label}\"}} {}",
                c.load(Relaxed)
            );
        }
        counter(
            &mut s,
            "outbox_effects_applied_total",
            "Messages appended to the log.",
        );
        let _ = writeln!(
            s,
            "outbox_effects_applied_total {}",
            self.effects.load(Relaxed)
        );
        counter(
            &mut s,
            "outbox_chaos_injected_total",
            "Faults injected by chaos.",
        );
        let _ = writeln!(
            s,
            "outbox_chaos_injected_total{{kind=\"fail\"}} {}",
            self.chaos_fail.load(Relaxed)
        );
        let _ = writeln!(
            s,
            "outbox_chaos_injected_total{{kind=\"lost-ack\"}} {}",
            self.chaos_lost_ack.load(Relaxed)
        );
        counter(
            &mut s,
            "outbox_keys_swept_total",
            "Expired idempotency keys deleted.",
        );
        let _ = writeln!(s, "outbox_keys_swept_total {}", self.swept.load(Relaxed));
        let name = "outbox_store_latency_seconds";
        let _ = writeln!(
            s,
            "# HELP {name} Store call latency.\n# TYPE {name} histogram"
        );
        for ((_, op), h) in OPS.iter().zip(&self.latency) {
            for (le, b) in BUCKETS.iter().zip(&h.buckets) {
                let _ = writeln!(
                    s,
                    "{name}_bucket{{op=\"{op}\",le=\"{le}\"}} {}",
                    b.load(Relaxed)
                );
            }
            let count = h.count.load(Relaxed);
            let _ = writeln!(s, "{name}_bucket{{op=\"{op}\",le=\"+Inf\"}} {count}");
            let sum = h.sum_nanos.load(Relaxed) as f64 / 1e9;
            let _ = writeln!(s, "{name}_sum{{op=\"{op}\"}} {sum}");
            let _ = writeln!(s, "{name}_count{{op=\"{op}\"}} {count}");
        }
        s
    }
}
