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

/// The longest a server may make an object wait (`Retry-After`, `BackOffMilliseconds`):
/// beyond it the value is more likely broken or hostile than meant.
pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(3600);

/// The delay after a failure: our own back-off (`own`, already counting this failure), or
/// the server's delay when that is longer, capped at [`MAX_SERVER_DELAY`] and jittered.
pub fn with_server_delay(own: Duration, server: Option<Duration>) -> Duration {
    match server {
        Some(server) => own.max(jitter(server.min(MAX_SERVER_DELAY), 0.1)),
        None => own,
    }
}

/// Spread `d` by up to `fraction` upwards so that many objects created together do not
/// hit Exchange in lockstep. Saturates instead of panicking on a huge `d`.
pub fn jitter(d: Duration, fraction: f64) -> Duration {
    let extra = rand::rng().random_range(0.0..=fraction.clamp(0.0, 1.0));
    Duration::try_from_secs_f64(d.as_secs_f64() * (1.0 + extra)).unwrap_or(Duration::MAX)
}

/// When to verify a healthy object again: the interval plus up to 10 % jitter, so a probe
/// made at `t` is always stale by the time it comes due.
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
    fn jitter_saturates_instead_of_panicking() {
        assert_eq!(jitter(Duration::MAX, 0.1), Duration::MAX);
        assert_eq!(jitter(Duration::ZERO, 0.1), Duration::ZERO);
    }

    #[test]
    fn a_server_delay_never_undercuts_the_backoff_nor_exceeds_the_cap() {
        let own = Duration::from_secs(5);
        assert_eq!(with_server_delay(own, Some(Duration::ZERO)), own);
        assert_eq!(with_server_delay(own, None), own);
        let huge = with_server_delay(own, Some(Duration::from_secs(u64::MAX)));
        assert!(huge >= MAX_SERVER_DELAY && huge <= MAX_SERVER_DELAY.mul_f64(1.1));
        let asked = with_server_delay(own, Some(Duration::from_secs(120)));
        assert!(asked >= Duration::from_secs(120) && asked <= Duration::from_secs(132));
    }

    #[test]
    fn reverify_is_never_early() {
        let i = Duration::from_secs(3600);
        let d = reverify_after(i);
        assert!(d >= i && d <= i.mul_f64(1.1));
    }
}
