//! The one status write of a reconcile: server-side apply of `.status` under the one
//! field manager, sent only when the new status says something the old one does not, and
//! the `Ready` transition it makes (returned, for the Events).

use crate::api::condition::Condition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::conditions::{self, READY};
use crate::cache::usage::Users;

/// The field manager of every write mailops makes.
pub const FIELD_MANAGER: &str = "mailops";

/// Whether two statuses say the same thing. `lastTransitionTime` is ignored: it only moves
/// when a condition's status flips, which the comparison sees anyway.
pub fn says_the_same<S: Serialize>(old: Option<&S>, new: &S) -> bool {
    let Some(old) = old else { return false };
    let strip = |s: &S| {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        if let Some(conds) = v.get_mut("conditions").and_then(|c| c.as_array_mut()) {
            for c in conds.iter_mut() {
                if let Some(o) = c.as_object_mut() {
                    o.remove("lastTransitionTime");
                }
            }
            conds.sort_by(|a, b| a["type"].as_str().cmp(&b["type"].as_str()));
        }
        v
    };
    strip(old) == strip(new)
}

/// The `Ready` condition's move between two condition lists, for Events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transition {
    /// `Ready` before.
    pub before: Option<Condition>,
    /// `Ready` after.
    pub after: Option<Condition>,
}

impl Transition {
    /// Compare the `Ready` conditions of two lists.
    pub fn between(before: &[Condition], after: &[Condition]) -> Self {
        Transition {
            before: conditions::find(before, READY).cloned(),
            after: conditions::find(after, READY).cloned(),
        }
    }

    /// `Ready` became `True` (or was first set `True`).
    pub fn became_ready(&self) -> bool {
        let was = self.before.as_ref().is_some_and(|c| c.status == "True");
        let is = self.after.as_ref().is_some_and(|c| c.status == "True");
        is && !was
    }

    /// `Ready` is `False` with a reason it did not have before: the failure to report.
    pub fn new_failure(&self) -> Option<&Condition> {
        let after = self.after.as_ref().filter(|c| c.status == "False")?;
        let same_as_before = self
            .before
            .as_ref()
            .is_some_and(|b| b.status == after.status && b.reason == after.reason);
        (!same_as_before).then_some(after)
    }
}

/// A kind's status with standard conditions.
pub trait HasConditions {
    /// The conditions, `Ready` among them.
    fn conditions(&self) -> &[Condition];
}

/// The status of a kind whose users are counted (providers, service accounts): what the
/// blocked-deletion step sets, everything else kept.
pub trait CountedStatus: HasConditions + Clone + Default {
    /// Set the conditions and the generation they describe.
    fn set_conditions(&mut self, conditions: Vec<Condition>, generation: Option<i64>);
    /// The generation the status describes.
    fn observed_generation(&self) -> Option<i64>;
    /// Set the counts from the users.
    fn set_counts(&mut self, users: &Users);
}

impl CountedStatus for crate::api::EmailProviderStatus {
    fn set_conditions(&mut self, conditions: Vec<Condition>, generation: Option<i64>) {
        self.conditions = conditions;
        self.observed_generation = generation;
    }

    fn observed_generation(&self) -> Option<i64> {
        self.observed_generation
    }

    fn set_counts(&mut self, users: &Users) {
        self.mailbox_count = count(users.bindings);
        self.service_account_count = count(users.accounts);
    }
}

impl CountedStatus for crate::api::ExchangeServiceAccountStatus {
    fn set_conditions(&mut self, conditions: Vec<Condition>, generation: Option<i64>) {
        self.conditions = conditions;
        self.observed_generation = generation;
    }

    fn observed_generation(&self) -> Option<i64> {
        self.observed_generation
    }

    fn set_counts(&mut self, users: &Users) {
        self.mailbox_count = count(users.bindings);
    }
}

/// A count for a status field (`int32` in the schema; saturates, never wraps).
pub fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl HasConditions for crate::api::EmailProviderStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

impl HasConditions for crate::api::ExchangeServiceAccountStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

impl HasConditions for crate::api::MailboxBindingStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

/// Write `new` to the status subresource of `name` by server-side apply, unless it says
/// what `old` says; with `read_at`, only over that resourceVersion (a newer object
/// answers 409 Conflict, retried soon from the newer copy). Returns the `Ready` transition
/// of a status it wrote, `None` when nothing was sent.
pub async fn write_status<K, S>(
    api: &Api<K>,
    name: &str,
    (old, read_at): (Option<&S>, Option<&str>),
    new: &S,
) -> crate::Result<Option<Transition>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + HasConditions,
{
    if says_the_same(old, new) {
        return Ok(None);
    }
    let mut body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": new,
    });
    if let Some(version) = read_at {
        body["metadata"] = serde_json::json!({ "resourceVersion": version });
    }
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    let before = old.map(|s| s.conditions()).unwrap_or_default();
    Ok(Some(Transition::between(before, new.conditions())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{Desired, REACHABLE, Reason, materialize, with_ready};
    use crate::api::{EmailProviderStatus, MailboxBindingStatus};
    use k8s_openapi::jiff::Timestamp;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn recomputed_status_at_a_later_time_is_the_same() {
        let desired = with_ready(vec![Desired::ok(REACHABLE, Reason::Verified, "up")], "ok");
        let first = EmailProviderStatus {
            observed_generation: Some(1),
            conditions: materialize(&[], &desired, Some(1), t("2026-01-01T00:00:00Z")),
            mailbox_count: 2,
            ..Default::default()
        };
        let again = EmailProviderStatus {
            conditions: materialize(
                &first.conditions,
                &desired,
                Some(1),
                t("2026-02-01T00:00:00Z"),
            ),
            ..first.clone()
        };
        assert!(says_the_same(Some(&first), &again));
        let counted = EmailProviderStatus {
            mailbox_count: 3,
            ..again.clone()
        };
        assert!(!says_the_same(Some(&first), &counted));
        assert!(!says_the_same(None, &again));
    }

    #[test]
    fn new_generation_is_a_change() {
        let desired = with_ready(vec![], "ok");
        let old = MailboxBindingStatus {
            observed_generation: Some(1),
            conditions: materialize(&[], &desired, Some(1), t("2026-01-01T00:00:00Z")),
            ..Default::default()
        };
        let new = MailboxBindingStatus {
            observed_generation: Some(2),
            conditions: materialize(&[], &desired, Some(2), t("2026-01-01T00:00:00Z")),
            ..Default::default()
        };
        assert!(!says_the_same(Some(&old), &new));
    }

    #[test]
    fn transitions_name_what_to_report() {
        let now = t("2026-01-01T00:00:00Z");
        let ok = materialize(&[], &with_ready(vec![], "ok"), Some(1), now);
        let bad = materialize(
            &[],
            &with_ready(
                vec![Desired::fail(REACHABLE, Reason::Unreachable, "down")],
                "ok",
            ),
            Some(1),
            now,
        );
        assert!(Transition::between(&[], &ok).became_ready());
        assert!(!Transition::between(&ok, &ok).became_ready());
        assert!(Transition::between(&ok, &bad).new_failure().is_some());
        assert!(Transition::between(&bad, &bad).new_failure().is_none());
        assert!(Transition::between(&bad, &ok).new_failure().is_none());
    }
}
