//! What `status` shows of each object: its line ([`Entry`]), its `Ready` as the tree
//! tells it, and the objects read ([`Snapshot`]).

use crate::api::condition::Condition;
use kube::{Resource, ResourceExt};
use serde::Serialize;

use crate::api::conditions::{READY, TERMINATING, find};
use crate::api::kind_label;
use crate::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};

/// Shown as the reason of an object no controller has written a status for yet.
pub const NO_STATUS: &str = "NoStatus";
/// Shown as the reason of an object whose status describes an older generation.
pub const OUTDATED: &str = "Outdated";

/// Every object `status` reads.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// All EmailProviders.
    pub providers: Vec<EmailProvider>,
    /// All ExchangeServiceAccounts.
    pub accounts: Vec<ExchangeServiceAccount>,
    /// The MailboxBindings of the chosen namespace(s).
    pub bindings: Vec<MailboxBinding>,
    /// The credentials may not list the cluster-scoped kinds (a namespace editor's or
    /// viewer's, through a RoleBinding): `providers` and `accounts` are empty for that
    /// reason, not because there are none.
    pub cluster_scoped_forbidden: bool,
}

/// The `Ready` condition's status, as the API writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Ready {
    /// `Ready=True` at the current generation.
    True,
    /// `Ready=False`.
    False,
    /// No `Ready` condition, or one about an older generation.
    Unknown,
}

/// One object's line in the tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// `EmailProvider`, `ExchangeServiceAccount` or `MailboxBinding`.
    pub kind: &'static str,
    /// Bindings only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
    /// The `Ready` status.
    pub ready: Ready,
    /// The `Ready` reason, or [`NO_STATUS`] / [`OUTDATED`].
    pub reason: String,
    /// The `Ready` message, when not Ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Terminating=True` with reason `InUse`: the message naming the users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_blocked_by: Option<String>,
}

impl Entry {
    /// `namespace/name` for bindings, `name` otherwise.
    pub fn display_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    fn of<K: Resource<DynamicType = ()>>(
        obj: &K,
        observed: Option<i64>,
        conditions: &[Condition],
    ) -> Entry {
        let generation = obj.meta().generation;
        let ready = find(conditions, READY);
        let current = |c: &Condition| {
            let seen = c.generation().or(observed);
            generation.is_none() || seen.is_none() || seen >= generation
        };
        let (state, reason, message) = match ready {
            None => (Ready::Unknown, NO_STATUS.to_string(), None),
            Some(c) if !current(c) => (Ready::Unknown, OUTDATED.to_string(), None),
            Some(c) => {
                let state = match c.status.as_str() {
                    "True" => Ready::True,
                    "False" => Ready::False,
                    _ => Ready::Unknown,
                };
                let message =
                    (state != Ready::True && !c.message.is_empty()).then(|| c.message.to_string());
                (state, c.reason.to_string(), message)
            }
        };
        let deletion_blocked_by = find(conditions, TERMINATING)
            .filter(|c| c.status == "True" && c.reason == "InUse")
            .map(|c| c.message.to_string());
        Entry {
            kind: kind_label::<K>(),
            namespace: obj.namespace(),
            name: obj.name_any(),
            ready: state,
            reason,
            message,
            deletion_blocked_by,
        }
    }

    /// A provider's line.
    pub fn of_provider(p: &EmailProvider) -> Entry {
        let status = p.status.as_ref();
        let conditions = status.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
        Entry::of(p, status.and_then(|s| s.observed_generation), conditions)
    }

    /// A service account's line.
    pub fn of_account(a: &ExchangeServiceAccount) -> Entry {
        let status = a.status.as_ref();
        let conditions = status.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
        Entry::of(a, status.and_then(|s| s.observed_generation), conditions)
    }

    /// A binding's line.
    pub fn of_binding(b: &MailboxBinding) -> Entry {
        let status = b.status.as_ref();
        let conditions = status.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
        Entry::of(b, status.and_then(|s| s.observed_generation), conditions)
    }
}
