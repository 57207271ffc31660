//! Restarts trust what is already true. A starting operator, or a standby taking over,
//! has no memory of the verifications before it; the statuses have. A status that
//! describes the object's current generation and records the digest of the inputs its
//! verdict was reached with ([`Checked::stable`]) is taken as that verdict at its time:
//! nothing is written for it, nothing is sent to Exchange, and its next verification is
//! due a period after that time (or, that being past, spread over the next period, as the
//! verifications were spread before).
//!
//! [`Checked::stable`]: super::binding_probe::Checked::stable

use crate::api::condition::Condition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use tokio::time::Instant;

use super::probe_cache::{Confirmed, ProbeCache, probe_inputs_digest};
use crate::api::conditions::{self, AUTHENTICATED, CALENDAR_CONNECTED, READY, Reason, VERIFIED};
use crate::api::{Digest, MailboxBinding};
use crate::cache::{SecretKey, object_key};
use crate::exchange::Failure;

/// How a digest of inputs is written in a status.
pub fn recorded(stable: u64) -> Digest {
    Digest::of(stable)
}

/// A digest of `base` (specs and such) with the resourceVersions of the Secrets read,
/// computed from the cache's metadata before any Secret's data is read.
pub fn stable_digest(base: u64, secrets: &[(SecretKey, Option<String>)]) -> u64 {
    let versions: Vec<String> = secrets
        .iter()
        .map(|((ns, name), v)| format!("{ns}/{name}@{}", v.as_deref().unwrap_or("-")))
        .collect();
    probe_inputs_digest(&[&base.to_string(), &versions.join(",")])
}

/// The monotonic instant of a wall-clock time in the past (now, for one in the future).
pub fn instant_of(time: &Time) -> Instant {
    let ago = super::clock::now().duration_since(time.0);
    let ago = std::time::Duration::try_from(ago).unwrap_or_default();
    Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
}

/// Whether a status's verdict is about this generation and these inputs.
pub fn describes(
    generation: Option<i64>,
    observed: Option<i64>,
    recorded_inputs: Option<&Digest>,
    stable: u64,
) -> bool {
    generation == observed && recorded_inputs == Some(&recorded(stable))
}

/// The verdict a binding's status records for these inputs, taken into `cache`: a
/// confirmation at its `lastVerifiedTime`, or a refusal of the credentials (not sent
/// again). `None` when the status does not describe them, or when `cache` knows the
/// binding already (its own verification came due: the status is not a reason to skip
/// it).
pub fn trust_binding(
    b: &MailboxBinding,
    stable: u64,
    cache: &ProbeCache<Confirmed>,
) -> Option<Result<Confirmed, Failure>> {
    let key = object_key(b);
    if cache.knows(&key) {
        return None;
    }
    let s = b.status.as_ref()?;
    let current = describes(
        b.meta().generation,
        s.observed_generation,
        s.verified_inputs.as_ref(),
        stable,
    );
    if !current {
        return None;
    }
    let verified = conditions::find(&s.conditions, VERIFIED)?;
    if is_true(&s.conditions, READY) && verified.status == "True" {
        let at = s.last_verified_time.as_ref()?;
        let calendar = is_true(&s.conditions, CALENDAR_CONNECTED);
        let confirmed = Confirmed::new(calendar, at.0);
        cache.trust(&key, stable, confirmed, instant_of(at));
        return Some(Ok(confirmed));
    }
    if verified.reason == Reason::InvalidCredentials.as_str() {
        let refused = Failure::new(Reason::InvalidCredentials, verified.message.to_string());
        cache.refuse(&key, stable, refused.clone());
        return Some(Err(refused));
    }
    None
}

/// What a provider's or account's status says, as far as its verdict goes.
pub struct Recorded<'a> {
    /// `status.observedGeneration`.
    pub observed: Option<i64>,
    /// `status.verifiedInputs`.
    pub inputs: Option<&'a Digest>,
    /// `status.conditions`.
    pub conditions: &'a [Condition],
}

/// The verdict a provider's or account's status records for these inputs, taken into
/// `cache`: `Ready` (as `value`, due a period after `Ready` last turned, spread when
/// that is past), or the refusal of its credentials. `None` when the status does not
/// describe them.
pub fn trust_verdict<T: Clone>(
    key: &str,
    (generation, stable): (Option<i64>, u64),
    recorded: Option<Recorded<'_>>,
    cache: &ProbeCache<T>,
    value: T,
) -> Option<Result<T, Failure>> {
    let s = recorded.filter(|_| !cache.knows(key))?;
    if !describes(generation, s.observed, s.inputs, stable) {
        return None;
    }
    if let Some(ready) = conditions::find(s.conditions, READY).filter(|c| c.status == "True") {
        cache.trust(
            key,
            stable,
            value.clone(),
            instant_of(&ready.last_transition_time.time()),
        );
        return Some(Ok(value));
    }
    let authenticated = conditions::find(s.conditions, AUTHENTICATED)?;
    if authenticated.status == "False"
        && authenticated.reason == Reason::InvalidCredentials.as_str()
    {
        // The message as the status has it: a condition's message is the error's detail
        // (`Error::detail`), so the refusal rebuilt from it gives the same status back.
        let refused = Failure::new(
            Reason::InvalidCredentials,
            authenticated.message.to_string(),
        );
        cache.refuse(key, stable, refused.clone());
        return Some(Err(refused));
    }
    None
}

fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions::find(conditions, type_).is_some_and(|c| c.status == "True")
}
