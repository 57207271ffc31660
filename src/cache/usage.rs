//! Who uses a provider or a service account, asked of the index in O(users): the counts
//! in their status, the `InUse` message, and the webhook's refusal of an in-use deletion
//! all come from here.

use super::index::BindingKey;
use super::stores::Stores;
use crate::resolve::check_account_may_attach;

/// Shown by name in an `InUse` message; the rest are counted.
pub const NAMED_USERS: usize = 10;

/// The objects using a provider or a service account: how many of each, and the first
/// [`NAMED_USERS`] as `Kind namespace/name` (accounts first, each group sorted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Users {
    /// Service accounts (of a provider).
    pub accounts: usize,
    /// Attached bindings.
    pub bindings: usize,
    /// The first users by name.
    pub first: Vec<String>,
}

impl Users {
    /// Nothing uses it.
    pub fn is_empty(&self) -> bool {
        self.accounts == 0 && self.bindings == 0
    }

    /// How many in all.
    pub fn total(&self) -> usize {
        self.accounts + self.bindings
    }

    /// From the accounts and the bindings' count with the first of them (from the index,
    /// or from a LIST).
    pub fn new(
        accounts: Vec<String>,
        (bindings, first_bindings): (usize, Vec<BindingKey>),
    ) -> Users {
        let room = NAMED_USERS.saturating_sub(accounts.len());
        let first = accounts
            .iter()
            .take(NAMED_USERS)
            .map(|a| format!("ExchangeServiceAccount {a}"))
            .chain(
                first_bindings
                    .iter()
                    .take(room)
                    .map(|(ns, name)| format!("MailboxBinding {ns}/{name}")),
            )
            .collect();
        Users {
            accounts: accounts.len(),
            bindings,
            first,
        }
    }
}

/// Users of a provider: attached bindings and its service accounts (except one refused
/// for coming after the deletion began: it does not hold that deletion).
pub fn of_provider(stores: &Stores, name: &str) -> Users {
    let provider = stores.provider(name);
    let provider = provider.as_ref().and_then(|p| p.0.as_ref().ok());
    let accounts: Vec<String> = stores
        .index
        .accounts_of_provider(name)
        .into_iter()
        .filter(|a| {
            let account = stores.service_account(a);
            match (account.as_ref().and_then(|g| g.0.as_ref().ok()), provider) {
                (Some(a), Some(p)) => check_account_may_attach(a, p).is_ok(),
                (Some(_), None) => true,
                // A malformed account does not hold a provider.
                (None, _) => false,
            }
        })
        .collect();
    Users::new(
        accounts,
        stores.index.attached_to_provider_sample(name, NAMED_USERS),
    )
}

/// Users of a service account: the bindings attached through it.
pub fn of_account(stores: &Stores, name: &str) -> Users {
    Users::new(
        Vec::new(),
        stores.index.attached_to_account_sample(name, NAMED_USERS),
    )
}

/// The users by name: the first ten, and how many more (`a, b and 3 more`).
pub fn named_users(users: &Users) -> String {
    let more = users.total().saturating_sub(users.first.len());
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!("{}{tail}", users.first.join(", "))
}

/// The `InUse` message: how many users, and the first ten by name.
pub fn in_use_message(users: &Users) -> String {
    format!(
        "deletion waits for {} object(s) still using it: {}",
        users.total(),
        named_users(users)
    )
}

/// The note of a `DeletionBlocked` Event: how many users of each kind, and no names. The
/// Events of cluster-scoped objects land in `default`, where whoever may read Events
/// there would learn other tenants' binding names; the names stay in the object's own
/// `Terminating` condition, readable by who may read the object.
pub fn in_use_count_message(users: &Users) -> String {
    format!(
        "deletion waits for {} object(s) still using it ({} ExchangeServiceAccount(s), {} MailboxBinding(s)); its Terminating condition names them",
        users.total(),
        users.accounts,
        users.bindings
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_use_message_names_ten_and_counts_the_rest() {
        let bindings: Vec<BindingKey> =
            (0..12).map(|i| ("ns".into(), format!("b{i:02}"))).collect();
        let users = Users::new(vec![], (bindings.len(), bindings));
        assert_eq!((users.bindings, users.first.len()), (12, 10));
        let m = in_use_message(&users);
        assert!(
            m.starts_with("deletion waits for 12 object(s) still using it: MailboxBinding ns/b00")
        );
        assert!(m.contains("ns/b09") && !m.contains("ns/b10"), "{m}");
        assert!(m.ends_with(" and 2 more"), "{m}");
        let note = in_use_count_message(&users);
        assert!(
            note.starts_with("deletion waits for 12 object(s)"),
            "{note}"
        );
        assert!(!note.contains("ns/"), "{note}");
    }
}
