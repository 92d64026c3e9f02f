//! Options and feature flags, and the rules that make them valid.
//!
//! Numbers arrive as `f64` because that is what JavaScript hands over; validating them
//! here keeps "negative, NaN, fractional" checks in one tested place.

use alloc::string::String;

use super::error::{ErrorCode, OutboxError};
use super::text::{concat, decimal};

/// How a retry delay is spread so that many clients do not retry in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Anywhere from zero to the full delay (AWS's "full jitter"; the default).
    Full,
    /// Half the delay plus up to another half.
    Equal,
    /// Exactly the delay.
    None,
}

/// The runtime-changeable retry settings: feature flags an app may read from its server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flags {
    /// When false, failed messages wait (pending, not dead) until the flag is turned
    /// back on or `flush()` is called. First sends still happen.
    pub retry_enabled: bool,
    /// The base of the exponential backoff, in milliseconds.
    pub retry_interval_ms: u64,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            retry_enabled: true,
            retry_interval_ms: 1_000,
        }
    }
}

/// A partial flags update, as `setFlags` takes it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FlagsPatch {
    /// New value of [`Flags::retry_enabled`], if given.
    pub retry_enabled: Option<bool>,
    /// New value of [`Flags::retry_interval_ms`], if given.
    pub retry_interval_ms: Option<f64>,
}

impl Flags {
    /// Applies a patch, refusing (and changing nothing) if a value is out of range.
    pub fn patched(self, patch: FlagsPatch) -> Result<Flags, OutboxError> {
        Ok(Flags {
            retry_enabled: patch.retry_enabled.unwrap_or(self.retry_enabled),
            retry_interval_ms: match patch.retry_interval_ms {
                Some(v) => whole_number("flags.retryIntervalMs", v, 1.0)?,
                None => self.retry_interval_ms,
            },
        })
    }
}

/// The numeric and policy options of an outbox, as given to `Outbox.open`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// See [`Config::max_attempts`].
    pub max_attempts: Option<f64>,
    /// See [`Config::max_delay_ms`].
    pub max_delay_ms: Option<f64>,
    /// `"full"`, `"equal"` or `"none"`.
    pub jitter: Option<String>,
    /// See [`Config::max_age_ms`].
    pub max_age_ms: Option<f64>,
    /// See [`Config::concurrency`].
    pub concurrency: Option<f64>,
    /// See [`Config::request_timeout_ms`].
    pub request_timeout_ms: Option<f64>,
    /// See [`Config::max_payload_bytes`].
    pub max_payload_bytes: Option<f64>,
    /// See [`Config::batch_max_items`].
    pub batch_max_items: Option<f64>,
    /// See [`Config::batch_max_bytes`].
    pub batch_max_bytes: Option<f64>,
    /// Initial flags, used only when none are persisted yet.
    pub flags: Option<FlagsPatch>,
}

/// Validated options.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Counted attempts (the server answered, or the request timed out) before a message
    /// is dead-lettered with reason `max-attempts`. Network failures do not count.
    pub max_attempts: u32,
    /// The longest backoff wait, before jitter.
    pub max_delay_ms: u64,
    /// How waits are spread.
    pub jitter: Jitter,
    /// A message older than this is dead-lettered with reason `expired` instead of being
    /// sent: the server may have forgotten its key by then.
    pub max_age_ms: u64,
    /// At most this many requests in flight.
    pub concurrency: usize,
    /// Each request is aborted after this long and counts as a timeout.
    pub request_timeout_ms: u64,
    /// The largest payload accepted, measured as UTF-8 JSON.
    pub max_payload_bytes: usize,
    /// In batch mode, at most this many messages per request (the reference server
    /// takes 100).
    pub batch_max_items: usize,
    /// In batch mode, at most this many payload bytes per request (a message larger than
    /// this goes alone).
    pub batch_max_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_attempts: 5,
            max_delay_ms: 300_000,
            jitter: Jitter::Full,
            max_age_ms: 7 * 24 * 3600 * 1000,
            concurrency: 4,
            request_timeout_ms: 30_000,
            max_payload_bytes: 1 << 20,
            batch_max_items: 25,
            batch_max_bytes: 512 * 1024,
        }
    }
}

impl Config {
    /// Validates options, filling in defaults. Returns the config and the initial flags.
    pub fn from_options(options: &Options) -> Result<(Config, Flags), OutboxError> {
        let d = Config::default();
        let num = |name: &str, v: Option<f64>, min: f64, default: u64| match v {
            Some(v) => whole_number(name, v, min),
            None => Ok(default),
        };
        let jitter = match options.jitter.as_deref() {
            None | Some("full") => Jitter::Full,
            Some("equal") => Jitter::Equal,
            Some("none") => Jitter::None,
            Some(other) => {
                return Err(invalid(concat(&[
                    "jitter must be \"full\", \"equal\" or \"none\", not \"",
                    other,
                    "\"",
                ])))
            }
        };
        let config = Config {
            max_attempts: num(
                "maxAttempts",
                options.max_attempts,
                1.0,
                d.max_attempts.into(),
            )?
            .min(u32::MAX.into()) as u32,
            max_delay_ms: num("maxDelayMs", options.max_delay_ms, 0.0, d.max_delay_ms)?,
            jitter,
            max_age_ms: num("maxAgeMs", options.max_age_ms, 1.0, d.max_age_ms)?,
            concurrency: num(
                "concurrency",
                options.concurrency,
                1.0,
                d.concurrency as u64,
            )? as usize,
            request_timeout_ms: num(
                "requestTimeoutMs",
                options.request_timeout_ms,
                1.0,
                d.request_timeout_ms,
            )?,
            max_payload_bytes: num(
                "maxPayloadBytes",
                options.max_payload_bytes,
                1.0,
                d.max_payload_bytes as u64,
            )? as usize,
            batch_max_items: num(
                "batchMaxItems",
                options.batch_max_items,
                1.0,
                d.batch_max_items as u64,
            )?
            .min(100) as usize,
            batch_max_bytes: num(
                "batchMaxBytes",
                options.batch_max_bytes,
                1.0,
                d.batch_max_bytes,
            )?,
        };
        let flags = Flags::default().patched(options.flags.unwrap_or_default())?;
        Ok((config, flags))
    }
}

/// A non-negative whole number at least `min`, that JavaScript can represent exactly.
fn whole_number(name: &str, v: f64, min: f64) -> Result<u64, OutboxError> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    // In range, a whole number survives the round trip through u64 (`f64::fract` is
    // not in `core`).
    if !(min..=MAX_SAFE).contains(&v) || v as u64 as f64 != v {
        // Neither number is formatted as a float: that would bring core's float printing
        // into the wasm module for one error message.
        return Err(invalid(concat(&[
            name,
            " must be a whole number from ",
            &decimal(min as u64),
            " to 2^53 - 1",
        ])));
    }
    Ok(v as u64)
}

fn invalid(message: String) -> OutboxError {
    OutboxError::new(ErrorCode::InvalidOptions, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let (c, f) = Config::from_options(&Options::default()).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.max_age_ms, 604_800_000);
        assert_eq!(
            f,
            Flags {
                retry_enabled: true,
                retry_interval_ms: 1000
            }
        );
    }

    #[test]
    fn bad_numbers_and_unknown_jitter_are_refused() {
        let cases = [
            Options {
                max_attempts: Some(-1.0),
                ..Default::default()
            },
            Options {
                max_attempts: Some(0.0),
                ..Default::default()
            },
            Options {
                max_delay_ms: Some(f64::NAN),
                ..Default::default()
            },
            Options {
                concurrency: Some(1.5),
                ..Default::default()
            },
            Options {
                request_timeout_ms: Some(f64::INFINITY),
                ..Default::default()
            },
            Options {
                jitter: Some("bogus".into()),
                ..Default::default()
            },
            Options {
                flags: Some(FlagsPatch {
                    retry_interval_ms: Some(-5.0),
                    retry_enabled: None,
                }),
                ..Default::default()
            },
        ];
        for o in cases {
            assert_eq!(
                Config::from_options(&o).unwrap_err().code,
                ErrorCode::InvalidOptions,
                "{o:?}"
            );
        }
    }

    #[test]
    fn a_flags_patch_changes_only_what_it_names() {
        let f = Flags::default();
        let g = f
            .patched(FlagsPatch {
                retry_enabled: Some(false),
                retry_interval_ms: None,
            })
            .unwrap();
        assert_eq!(
            g,
            Flags {
                retry_enabled: false,
                retry_interval_ms: 1000
            }
        );
        assert!(f
            .patched(FlagsPatch {
                retry_interval_ms: Some(0.0),
                ..Default::default()
            })
            .is_err());
    }
}
