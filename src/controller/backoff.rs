//! Per-object exponential back-off with a cap and jitter for transient failures, and the
//! jittered period of re-verification.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;

/// Counts consecutive transient failures per object and turns them into delays.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_secs(5), Duration::from_secs(300))
    }
}

impl Backoff {
    /// Delays start at `base` and double up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The delay before the next attempt for `key`, counting this failure.
    pub fn next_delay(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        let delay = exponential(self.base, self.cap, *n);
        *n = n.saturating_add(1);
        jitter(delay, 0.1)
    }

    /// Forget the failures of `key` after a success.
    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Consecutive failures recorded for `key`.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

/// `base * 2^attempt`, never more than `cap`.
pub fn exponential(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(20));
    base.saturating_mul(factor).min(cap)
}

/// Spread `d` by up to `fraction` upwards so that many objects created together do not
/// hit Exchange in lockstep.
pub fn jitter(d: Duration, fraction: f64) -> Duration {
    let extra = rand::rng().random_range(0.0..=fraction.max(0.0));
    d.mul_f64(1.0 + extra)
}

/// When to verify a healthy object again: the interval plus up to 10 % jitter, so a cache
/// of probes made at `t` is always stale by the time the requeue fires.
pub fn reverify_after(interval: Duration) -> Duration {
    jitter(interval, 0.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_until_the_cap() {
        let base = Duration::from_secs(5);
        let cap = Duration::from_secs(60);
        assert_eq!(exponential(base, cap, 0), Duration::from_secs(5));
        assert_eq!(exponential(base, cap, 2), Duration::from_secs(20));
        assert_eq!(exponential(base, cap, 10), cap);
        assert_eq!(exponential(base, cap, u32::MAX), cap);
    }

    #[test]
    fn backoff_grows_per_object_and_resets() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(100));
        let first = b.next_delay("a");
        let second = b.next_delay("a");
        assert!(first >= Duration::from_secs(1) && first <= Duration::from_millis(1100));
        assert!(second >= Duration::from_secs(2) && second <= Duration::from_millis(2200));
        assert_eq!(b.failures("b"), 0);
        b.reset("a");
        assert_eq!(b.failures("a"), 0);
    }

    #[test]
    fn reverify_is_never_early() {
        let i = Duration::from_secs(3600);
        let d = reverify_after(i);
        assert!(d >= i && d <= i.mul_f64(1.1));
    }
}
