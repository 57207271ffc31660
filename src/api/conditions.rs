//! Helpers that build conditions while keeping `lastTransitionTime` stable when nothing
//! changed; the condition types and reasons are re-exported from [`super::reasons`].

use std::num::NonZeroI64;

use super::condition::Condition;
use k8s_openapi::jiff::Timestamp;

pub use super::reasons::*;

/// A condition as computed by pure code, before timestamps are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Condition type, one of the constants of [`super::reasons`].
    pub type_: &'static str,
    /// `true` for `"True"`, `false` for `"False"`.
    pub status: bool,
    /// Why.
    pub reason: Reason,
    /// Human-readable detail; never holds a secret value.
    pub message: String,
}

impl Desired {
    /// A `"True"` condition.
    pub fn ok(type_: &'static str, reason: Reason, message: impl Into<String>) -> Self {
        Desired {
            type_,
            status: true,
            reason,
            message: message.into(),
        }
    }

    /// A `"False"` condition.
    pub fn fail(type_: &'static str, reason: Reason, message: impl Into<String>) -> Self {
        Desired {
            type_,
            status: false,
            reason,
            message: message.into(),
        }
    }
}

/// Turn desired conditions into `metav1.Condition`s. A condition whose status did not
/// change keeps its previous `lastTransitionTime`, so re-applying an unchanged status is
/// byte-identical and costs no write.
pub fn materialize(
    previous: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    desired
        .iter()
        .map(|d| {
            let status = if d.status { "True" } else { "False" };
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == d.type_ && c.status == status)
                .map_or_else(|| now.into(), |c| c.last_transition_time);
            Condition {
                type_: d.type_.into(),
                status: status.into(),
                reason: d.reason.as_str().into(),
                message: d.message.as_str().into(),
                observed_generation: generation.and_then(NonZeroI64::new),
                last_transition_time,
            }
        })
        .collect()
}

/// Find a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the `Ready` condition is `"True"`.
pub fn is_ready(conditions: &[Condition]) -> bool {
    find(conditions, READY).is_some_and(|c| c.status == "True")
}

/// The summary `Ready` condition: the first failing part decides, else all is verified.
pub fn ready_summary(parts: &[Desired], ok_message: &str) -> Desired {
    parts
        .iter()
        .find(|d| !d.status)
        .map(|d| Desired::fail(READY, d.reason, d.message.clone()))
        .unwrap_or_else(|| Desired::ok(READY, Reason::Verified, ok_message))
}

/// Parts plus their `Ready` summary, in a stable order (`Ready` first).
pub fn with_ready(parts: Vec<Desired>, ok_message: &str) -> Vec<Desired> {
    let mut all = vec![ready_summary(&parts, ok_message)];
    all.extend(parts);
    all
}

/// Replace (or add) one condition, keeping every other previous condition as it is.
pub fn set_condition(
    previous: &[Condition],
    desired: &Desired,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let new = materialize(previous, std::slice::from_ref(desired), generation, now).remove(0);
    let mut out: Vec<Condition> = previous
        .iter()
        .filter(|c| c.type_ != desired.type_)
        .cloned()
        .collect();
    out.push(new);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_strings_are_unique_camel_case() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            let s = r.as_str();
            assert!(s.chars().next().unwrap().is_ascii_uppercase(), "{s}");
            assert!(s.chars().all(|c| c.is_ascii_alphanumeric()), "{s}");
            assert_eq!(format!("{r:?}"), s, "as_str must match the variant name");
            assert!(seen.insert(s), "duplicate {s}");
        }
    }

    #[test]
    fn certificate_problems_wait_minutes_and_a_bad_bundle_waits_for_a_change() {
        for r in [
            Reason::CertificateUntrusted,
            Reason::CertificateExpired,
            Reason::CertificateNameMismatch,
        ] {
            assert_eq!(r.retry(), Retry::Slowly, "{r}");
        }
        for r in [
            Reason::InvalidCABundle,
            Reason::ConfigMapNotFound,
            Reason::ConfigMapKeyMissing,
        ] {
            assert_eq!(r.retry(), Retry::AwaitChange, "{r}");
        }
        assert_eq!(SLOW_RETRY, std::time::Duration::from_secs(300));
    }

    #[test]
    fn unchanged_status_keeps_transition_time() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let first = materialize(
            &[],
            &[Desired::ok(READY, Reason::Verified, "ok")],
            Some(1),
            t0,
        );
        let again = materialize(
            &first,
            &[Desired::ok(READY, Reason::Verified, "ok")],
            Some(2),
            t1,
        );
        assert_eq!(again[0].last_transition_time.time().0, t0);
        let flipped = materialize(
            &again,
            &[Desired::fail(READY, Reason::Unreachable, "down")],
            Some(2),
            t1,
        );
        assert_eq!(flipped[0].last_transition_time.time().0, t1);
        assert_eq!(flipped[0].reason, "Unreachable");
    }

    #[test]
    fn ready_takes_the_first_failure() {
        let parts = vec![
            Desired::ok(REACHABLE, Reason::Verified, "up"),
            Desired::fail(AUTHENTICATED, Reason::InvalidCredentials, "AADSTS7000215"),
        ];
        let all = with_ready(parts, "all good");
        assert_eq!(all[0].type_, READY);
        assert!(!all[0].status);
        assert_eq!(all[0].reason, Reason::InvalidCredentials);
        assert_eq!(all[0].message, "AADSTS7000215");
    }

    #[test]
    fn ready_is_true_when_every_part_holds() {
        let all = with_ready(
            vec![Desired::ok(REACHABLE, Reason::Verified, "up")],
            "all good",
        );
        assert!(all[0].status);
        assert_eq!(all[0].reason, Reason::Verified);
    }

    #[test]
    fn set_condition_keeps_the_others() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let prev = materialize(
            &[],
            &with_ready(vec![Desired::ok(REACHABLE, Reason::Verified, "up")], "ok"),
            Some(1),
            now,
        );
        let term = Desired::ok(TERMINATING, Reason::InUse, "used by 1");
        let out = set_condition(&prev, &term, Some(1), now);
        assert_eq!(out.len(), 3);
        assert!(is_ready(&out));
        assert_eq!(find(&out, TERMINATING).unwrap().reason, "InUse");
    }
}
