//! The message refusing the deletion of a provider or service account while anything
//! uses it: how many users of each kind (from the controllers' own index,
//! `cache::usage`), and how to list them. No names: the request may come from anyone who
//! can reach the webhook's port, and the users are other tenants' objects; whoever may
//! list bindings everywhere gets them with the field selector the message shows.

use crate::cache::usage::Users;

/// Which users the refusal is about, for the listing command it shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// An EmailProvider (bindings attached to it, accounts naming it).
    Provider,
    /// An ExchangeServiceAccount (bindings attached through it).
    Account,
}

/// The refusal of a deletion: how many users, of what kinds, how to list them, and what
/// to do.
pub fn deletion_refusal(kind: &str, name: &str, users: &Users, held: Held) -> String {
    let listing = match held {
        Held::Provider => format!(
            "kubectl get mbx -A --field-selector status.provider={name}; kubectl get esa --field-selector spec.providerRef.name={name}"
        ),
        Held::Account => {
            format!("kubectl get mbx -A --field-selector status.serviceAccount={name}")
        }
    };
    format!(
        "{kind} \"{name}\" is used by {} object(s) ({} ExchangeServiceAccount(s), {} MailboxBinding(s)); list them with `{listing}`; delete or re-point them first",
        users.total(),
        users.accounts,
        users.bindings
    )
}
