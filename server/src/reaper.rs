//! Deletes idempotency keys older than the retention period.
//!
//! Batches keep each transaction short, so the sweep never holds SQLite's single write
//! lock long enough to stall incoming requests. The message log is not swept: it is the
//! effect, not dedupe bookkeeping. A resend arriving after its key was swept is treated
//! as new, which is why the retention must be at least the client's `maxAgeMs`.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;

use crate::app::AppState;
use crate::metrics::StoreOp;
use crate::store::StoreError;

/// Deletes every expired key now, batch by batch; returns how many.
pub async fn sweep_expired(state: &AppState) -> Result<usize, StoreError> {
    let now = SystemTime::now();
    let cutoff = now
        .checked_sub(state.config.retention)
        .unwrap_or(UNIX_EPOCH);
    let batch = state.config.reap_batch.max(1);
    let mut total = 0;
    loop {
        let n = state
            .timed(StoreOp::Sweep, state.store.sweep(cutoff, now, batch))
            .await?;
        state.metrics.swept(n);
        total += n;
        if n < batch {
            return Ok(total);
        }
        // Let waiting requests take the write lock between batches.
        tokio::task::yield_now().await;
    }
}

/// Runs [`sweep_expired`] every `reap_interval` until the task is aborted.
pub fn spawn(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config.reap_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sweep_expired(&state).await {
                eprintln!("outbox-server: reaper: {e}");
            }
        }
    })
}
