//! The flags document the demo's clients read: whether retries are on and their interval.
//! It mirrors the client's `flags` option (`{retryEnabled, retryIntervalMs}`). Flags are
//! kept per tenant, in the store, so they survive restarts.

use serde::{Deserialize, Serialize};

/// Smallest accepted retry interval, in milliseconds.
pub const MIN_INTERVAL_MS: u64 = 1;
/// Largest accepted retry interval (one hour), in milliseconds.
pub const MAX_INTERVAL_MS: u64 = 3_600_000;

/// Retry flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Flags {
    /// Whether clients resend automatically.
    pub retry_enabled: bool,
    /// Base of the client's exponential backoff.
    pub retry_interval_ms: u64,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            retry_enabled: true,
            retry_interval_ms: 1000,
        }
    }
}

impl Flags {
    /// Checks the ranges; the error text goes into a 400 problem.
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&self.retry_interval_ms) {
            return Err(format!(
                "retryIntervalMs must be an integer from {MIN_INTERVAL_MS} to {MAX_INTERVAL_MS}"
            ));
        }
        Ok(())
    }
}
