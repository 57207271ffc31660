//! Who uses a provider or a service account, in one place: the counts in their status,
//! the `InUse` message, and the blocked-deletion step of the in-use finalizer.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use super::context::{Context, typed_objects, well_formed};
use super::driver::{HeldWhileUsed, Step};
use super::status::{CountedStatus, HasConditions, set_condition};
use crate::Error;
use crate::api::MailboxBinding;
use crate::api::conditions::{Desired, Reason, TERMINATING};
use crate::resolve::check_account_may_attach;

/// The objects using a provider or a service account, as `Kind namespace/name`, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Users {
    /// Service accounts (of a provider).
    pub accounts: Vec<String>,
    /// Attached bindings.
    pub bindings: Vec<String>,
}

impl Users {
    /// Nothing uses it.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.bindings.is_empty()
    }

    /// Every user, accounts first.
    pub fn names(&self) -> Vec<String> {
        self.accounts
            .iter()
            .chain(self.bindings.iter())
            .cloned()
            .collect()
    }
}

/// Whether a binding is attached to (counted by, holding the deletion of) a provider.
pub fn attached_to_provider(b: &MailboxBinding, provider: &str) -> bool {
    b.status
        .as_ref()
        .is_some_and(|s| s.provider.as_deref() == Some(provider))
}

/// Whether a binding is attached to (counted by) a service account.
pub fn attached_to_account(b: &MailboxBinding, account: &str) -> bool {
    b.attached_service_account() == Some(account)
}

fn bindings_where(ctx: &Context, attached: impl Fn(&MailboxBinding) -> bool) -> Vec<String> {
    let mut out: Vec<String> = typed_objects(&well_formed(&ctx.stores.bindings))
        .into_iter()
        .filter(|b| attached(b))
        .map(|b| {
            format!(
                "MailboxBinding {}/{}",
                b.namespace().unwrap_or_default(),
                b.name_any()
            )
        })
        .collect();
    out.sort();
    out
}

/// Users of a provider: attached bindings and its service accounts (except one refused
/// for coming after the deletion began: it does not hold that deletion).
pub fn of_provider(name: &str, ctx: &Context) -> Users {
    let provider = ctx.stores.providers.get(&ObjectRef::new(name));
    let provider = provider.as_ref().and_then(|p| p.0.as_ref().ok());
    let mut accounts: Vec<String> = typed_objects(&well_formed(&ctx.stores.service_accounts))
        .into_iter()
        .filter(|a| a.spec.provider_ref.name == name)
        .filter(|a| provider.is_none_or(|p| check_account_may_attach(a, p).is_ok()))
        .map(|a| format!("ExchangeServiceAccount {}", a.name_any()))
        .collect();
    accounts.sort();
    Users {
        accounts,
        bindings: bindings_where(ctx, |b| attached_to_provider(b, name)),
    }
}

/// Users of a service account: the bindings attached through it.
pub fn of_account(name: &str, ctx: &Context) -> Users {
    Users {
        accounts: Vec::new(),
        bindings: bindings_where(ctx, |b| attached_to_account(b, name)),
    }
}

/// The `InUse` message: how many users, and the first ten by name.
pub fn in_use_message(users: &[String]) -> String {
    let shown: Vec<&str> = users.iter().take(10).map(String::as_str).collect();
    let more = users.len().saturating_sub(shown.len());
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "deletion waits for {} object(s) still using it: {}{tail}",
        users.len(),
        shown.join(", ")
    )
}

/// Deletion requested: blocked (`Terminating=True`, `InUse`, waiting for the users'
/// changes) while anything uses the object; otherwise done, and the finalizer is removed.
/// Copes with apply never having run.
pub fn blocked_deletion<K: HeldWhileUsed>(obj: &K, ctx: &Context) -> Step<K::Status> {
    let users = K::users(&obj.name_any(), ctx);
    if users.is_empty() {
        obj.forget(ctx);
        return Step::done(Ok(Action::await_change()));
    }
    let message = in_use_message(&users.names());
    let terminating = Desired::ok(TERMINATING, Reason::InUse, message.clone());
    let mut status = obj.current_status().cloned().unwrap_or_default();
    let generation = obj.meta().generation;
    let conditions = set_condition(
        status.conditions(),
        &terminating,
        generation,
        Timestamp::now(),
    );
    status.set_conditions(conditions, generation);
    status.set_counts(&users);
    Step {
        status: Some(status),
        result: Err(Error::Waiting {
            reason: Reason::InUse,
            message: message.clone(),
        }),
        deletion_blocked: Some(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_use_message_names_ten_and_counts_the_rest() {
        let users: Vec<String> = (0..12)
            .map(|i| format!("MailboxBinding ns/b{i:02}"))
            .collect();
        let m = in_use_message(&users);
        assert!(
            m.starts_with("deletion waits for 12 object(s) still using it: MailboxBinding ns/b00")
        );
        assert!(m.contains("ns/b09") && !m.contains("ns/b10"), "{m}");
        assert!(m.ends_with(" and 2 more"), "{m}");
    }
}
