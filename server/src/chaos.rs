//! Fault injection for the demo and the tests. Off by default.
//!
//! Spec syntax (command line `--chaos`, comma-separated `name=value`, any order):
//!
//! | name       | value                        | effect on `POST /v1/messages`                          |
//! |------------|------------------------------|--------------------------------------------------------|
//! | `fail`     | fraction 0..=1               | answered `status` before anything is claimed or applied |
//! | `status`   | 500..=599 (default 503)      | status of `fail` answers (503 carries `Retry-After: 1`) |
//! | `lost-ack` | fraction 0..=1               | effect committed, then answered 503 + `Retry-After: 1`  |
//! | `latency`  | duration (`50ms`, `1s`)      | added while holding the claim, before the effect        |
//!
//! `POST /v1/messages/batch` counts as one request: one `fail` roll before any effect,
//! the latency once, and one `lost-ack` roll after all of its effects are committed.
//!
//! `off`, `none` or an empty string turn everything off. At runtime the same settings are
//! read and replaced as JSON through `GET`/`PUT /admin/chaos`.

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Longest accepted injected latency.
pub const MAX_LATENCY: Duration = Duration::from_secs(60);

/// A chaos setting. The JSON form is `{"fail":0.3,"status":503,"lostAck":0.1,"latencyMs":50}`
/// (missing fields take their defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ChaosSpec {
    /// Fraction of requests failed before the effect.
    pub fail: f64,
    /// Status of those failures.
    pub status: u16,
    /// Fraction of requests whose answer is lost after the effect.
    pub lost_ack: f64,
    /// Latency added to claimed requests, in milliseconds.
    pub latency_ms: u64,
}

impl Default for ChaosSpec {
    fn default() -> Self {
        ChaosSpec {
            fail: 0.0,
            status: 503,
            lost_ack: 0.0,
            latency_ms: 0,
        }
    }
}

impl ChaosSpec {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [("fail", self.fail), ("lost-ack", self.lost_ack)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be a fraction from 0 to 1, got {v}"));
            }
        }
        if !(500..=599).contains(&self.status) {
            return Err(format!("status must be a 5xx code, got {}", self.status));
        }
        if Duration::from_millis(self.latency_ms) > MAX_LATENCY {
            return Err(format!(
                "latency must be at most {}s",
                MAX_LATENCY.as_secs()
            ));
        }
        Ok(())
    }

    /// Whether any fault is configured.
    pub fn is_off(&self) -> bool {
        self.fail == 0.0 && self.lost_ack == 0.0 && self.latency_ms == 0
    }
}

impl FromStr for ChaosSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut spec = ChaosSpec::default();
        let s = s.trim();
        if s.is_empty() || s == "off" || s == "none" {
            return Ok(spec);
        }
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("expected name=value, got {part:?}"))?;
            let (name, value) = (name.trim(), value.trim());
            let bad = |e: &dyn fmt::Display| format!("bad {name} value {value:?}: {e}");
            match name {
                "fail" => spec.fail = value.parse().map_err(|e| bad(&e))?,
                "lost-ack" => spec.lost_ack = value.parse().map_err(|e| bad(&e))?,
                "status" => spec.status = value.parse().map_err(|e| bad(&e))?,
                "latency" => {
                    let d = humantime::parse_duration(value).map_err(|e| bad(&e))?;
                    spec.latency_ms = d.as_millis().try_into().map_err(|e| bad(&e))?;
                }
                other => {
                    return Err(format!(
                        "unknown chaos setting {other:?} (known: fail, status, lost-ack, latency)"
                    ))
                }
            }
        }
        spec.validate()?;
        Ok(spec)
    }
}

impl fmt::Display for ChaosSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_off() {
            return f.write_str("off");
        }
        write!(
            f,
            "fail={},status={},lost-ack={},latency={}ms",
            self.fail, self.status, self.lost_ack, self.latency_ms
        )
    }
}

/// SplitMix64: tiny, seedable, good enough to decide which requests fail.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The live chaos state shared by the handlers.
#[derive(Debug)]
pub struct Chaos {
    spec: RwLock<ChaosSpec>,
    rng: Mutex<SplitMix64>,
}

impl Chaos {
    /// Starts with `spec`; `seed` makes the sequence of decisions reproducible.
    pub fn new(spec: ChaosSpec, seed: Option<u64>) -> Self {
        let seed = seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
        Chaos {
            spec: RwLock::new(spec),
            rng: Mutex::new(SplitMix64(seed)),
        }
    }

    /// The current setting.
    pub fn spec(&self) -> ChaosSpec {
        self.spec.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the setting (already validated).
    pub fn set(&self, spec: ChaosSpec) {
        *self.spec.write().unwrap_or_else(|p| p.into_inner()) = spec;
    }

    fn roll(&self, p: f64) -> bool {
        // p = 0 never fires and p = 1 always does (next_f64 < 1), so those are exact in tests.
        p > 0.0
            && self
                .rng
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .next_f64()
                < p
    }

    /// `Some(status)` if this request should fail before the effect.
    pub fn roll_fail(&self) -> Option<u16> {
        let spec = self.spec();
        self.roll(spec.fail).then_some(spec.status)
    }

    /// Whether this request's answer should be lost after the effect.
    pub fn roll_lost_ack(&self) -> bool {
        self.roll(self.spec().lost_ack)
    }

    /// Latency to add while holding the claim.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.spec().latency_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let s: ChaosSpec = "fail=0.3, status=500,lost-ack=0.1,latency=50ms"
            .parse()
            .unwrap();
        assert_eq!(
            s,
            ChaosSpec {
                fail: 0.3,
                status: 500,
                lost_ack: 0.1,
                latency_ms: 50
            }
        );
        assert_eq!(s.to_string().parse::<ChaosSpec>().unwrap(), s);
        assert!("off".parse::<ChaosSpec>().unwrap().is_off());
        assert!("".parse::<ChaosSpec>().unwrap().is_off());
        for bad in [
            "fail=1.5",
            "status=404",
            "boom=1",
            "fail",
            "latency=2h",
            "fail=x",
        ] {
            assert!(bad.parse::<ChaosSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn seeded_rolls_are_reproducible_and_bounded() {
        let spec: ChaosSpec = "fail=0.5".parse().unwrap();
        let a = Chaos::new(spec.clone(), Some(7));
        let b = Chaos::new(spec, Some(7));
        let ra: Vec<_> = (0..1000).map(|_| a.roll_fail().is_some()).collect();
        let rb: Vec<_> = (0..1000).map(|_| b.roll_fail().is_some()).collect();
        assert_eq!(ra, rb);
        let n = ra.iter().filter(|x| **x).count();
        assert!((400..600).contains(&n), "{n}");
        let always = Chaos::new("fail=1,lost-ack=1".parse().unwrap(), None);
        assert!((0..100).all(|_| always.roll_fail() == Some(503) && always.roll_lost_ack()));
    }
}
