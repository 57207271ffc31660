//! The wall-clock time verifications are stamped with, read through tokio's clock: the
//! wall time at the first reading plus the monotonic time since. In production that is
//! the wall clock (less any step NTP makes while the process runs, which a verification
//! time does not need); on a paused test clock it moves with the clock, so that
//! re-verifications over days of paused time stamp days of verification times.

use std::sync::OnceLock;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

/// Now, as verification times and conditions are stamped.
pub fn now() -> Timestamp {
    static ANCHOR: OnceLock<(Timestamp, Instant)> = OnceLock::new();
    let (wall, at) = *ANCHOR.get_or_init(|| (Timestamp::now(), Instant::now()));
    let since = SignedDuration::try_from(Instant::now().saturating_duration_since(at))
        .unwrap_or(SignedDuration::ZERO);
    wall.checked_add(since).unwrap_or(wall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn it_moves_with_the_paused_clock() {
        let before = now();
        tokio::time::advance(std::time::Duration::from_secs(86_400)).await;
        let after = now();
        assert!(after.duration_since(before) >= SignedDuration::from_hours(24));
    }
}
