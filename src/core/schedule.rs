//! The retry schedule: retry `n` waits `min(maxDelayMs, retryIntervalMs * 2^(n-1))`,
//! spread by jitter. `Retry-After` is applied on top by the engine, as a minimum.

use super::config::{Config, Flags, Jitter};

/// The wait before retry `n` (1-based), before jitter.
pub fn backoff(flags: &Flags, config: &Config, n: u32) -> u64 {
    let exp = n.saturating_sub(1).min(63);
    let scaled = flags.retry_interval_ms.saturating_mul(1u64 << exp);
    scaled.min(config.max_delay_ms)
}

/// Spreads a wait by the jitter mode. `rand` is a uniform sample in `[0, 1)`, passed in
/// so that the same sample can be reused when flags change and a wait is recomputed.
pub fn jittered(wait: u64, jitter: Jitter, rand: f64) -> u64 {
    let rand = if rand.is_finite() {
        rand.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let w = wait as f64;
    let spread = match jitter {
        Jitter::Full => w * rand,
        Jitter::Equal => w / 2.0 + (w / 2.0) * rand,
        Jitter::None => w,
    };
    // `spread` is not negative, so the cast rounds down (`f64::floor` is not in `core`).
    (spread as u64).min(wait)
}

/// The wait before retry `n`, jittered.
pub fn retry_delay(flags: &Flags, config: &Config, n: u32, rand: f64) -> u64 {
    jittered(backoff(flags, config, n), config.jitter, rand)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(interval: u64, max: u64, jitter: Jitter) -> (Flags, Config) {
        let flags = Flags {
            retry_enabled: true,
            retry_interval_ms: interval,
        };
        (
            flags,
            Config {
                max_delay_ms: max,
                jitter,
                ..Config::default()
            },
        )
    }

    #[test]
    fn doubles_from_the_interval_up_to_the_cap() {
        let (f, c) = setup(1_000, 10_000, Jitter::None);
        let waits: Vec<u64> = (1..=6).map(|n| retry_delay(&f, &c, n, 0.5)).collect();
        assert_eq!(waits, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
        assert_eq!(
            retry_delay(&f, &c, 500, 0.5),
            10_000,
            "huge n saturates, no overflow"
        );
    }

    #[test]
    fn jitter_stays_within_its_band() {
        assert_eq!(jittered(1_000, Jitter::Full, 0.0), 0);
        assert_eq!(jittered(1_000, Jitter::Full, 0.25), 250);
        assert_eq!(jittered(1_000, Jitter::Equal, 0.0), 500);
        assert_eq!(jittered(1_000, Jitter::Equal, 0.999), 999);
        assert_eq!(jittered(1_000, Jitter::None, 0.7), 1_000);
        assert_eq!(jittered(1_000, Jitter::Full, f64::NAN), 0);
    }
}
