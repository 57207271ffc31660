//! Restarts trust what is already true. A starting operator, or a standby taking over,
//! has no memory of the verifications before it; the statuses have. A status that
//! describes the object's current generation and records the digest of the inputs its
//! verdict was reached with ([`Checked::stable`]) is taken as that verdict at its time:
//! nothing is written for it, nothing is sent to Exchange, and its next verification is
//! due a period after that time (or, that being past, spread over the next period, as the
//! verifications were spread before).
//!
//! [`Checked::stable`]: super::binding::Checked::stable

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use tokio::time::Instant;

use super::probe_cache::{Confirmed, ProbeCache};
use crate::api::MailboxBinding;
use crate::api::conditions::{self, CALENDAR_CONNECTED, READY, Reason, VERIFIED};
use crate::cache::object_key;
use crate::exchange::Failure;

/// How a digest of inputs is written in a status.
pub fn recorded(stable: u64) -> String {
    format!("{stable:016x}")
}

/// The monotonic instant of a wall-clock time in the past (now, for one in the future).
pub fn instant_of(time: &Time) -> Instant {
    let ago = Timestamp::now().duration_since(time.0);
    let ago = std::time::Duration::try_from(ago).unwrap_or_default();
    Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
}

/// Whether a status's verdict is about this generation and these inputs.
pub fn describes(
    generation: Option<i64>,
    observed: Option<i64>,
    recorded_inputs: Option<&str>,
    stable: u64,
) -> bool {
    generation == observed && recorded_inputs == Some(recorded(stable).as_str())
}

/// The verdict a binding's status records for these inputs, taken into `cache`: a
/// confirmation at its `lastVerifiedTime`, or a refusal of the credentials (not sent
/// again). `None` when the status does not describe them.
pub fn trust_binding(
    b: &MailboxBinding,
    stable: u64,
    cache: &ProbeCache<Confirmed>,
) -> Option<Result<Confirmed, Failure>> {
    let s = b.status.as_ref()?;
    let current = describes(
        b.meta().generation,
        s.observed_generation,
        s.verified_inputs.as_deref(),
        stable,
    );
    if !current {
        return None;
    }
    let verified = conditions::find(&s.conditions, VERIFIED)?;
    let key = object_key(b);
    if is_true(&s.conditions, READY) && verified.status == "True" {
        let at = s.last_verified_time.as_ref()?;
        let calendar = is_true(&s.conditions, CALENDAR_CONNECTED);
        let confirmed = Confirmed::new(calendar, at.0);
        cache.trust(&key, stable, confirmed, instant_of(at));
        return Some(Ok(confirmed));
    }
    if verified.reason == Reason::InvalidCredentials.as_str() {
        let refused = Failure::new(Reason::InvalidCredentials, verified.message.clone());
        cache.refuse(&key, stable, refused.clone());
        return Some(Err(refused));
    }
    None
}

fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions::find(conditions, type_).is_some_and(|c| c.status == "True")
}
