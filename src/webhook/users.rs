//! Who uses a provider or a service account, read from the caches the webhook shares with
//! the controllers, with the controllers' own predicates (`controller::usage`), and the
//! message refusing a deletion while anything does.

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::api::MailboxBinding;
use crate::controller::Stores;
use crate::controller::context::{typed_objects, well_formed};
use crate::controller::usage::{attached_to_account, attached_to_provider};
use crate::resolve::check_account_may_attach;

/// Users named in a refusal; the rest are counted.
pub const NAMED_USERS: usize = 10;

fn bindings_where(stores: &Stores, attached: impl Fn(&MailboxBinding) -> bool) -> Vec<String> {
    let guards = well_formed(&stores.bindings);
    let mut out: Vec<String> = typed_objects(&guards)
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

/// Users of a provider, as `Kind namespace/name`: its service accounts (except one that
/// came after the provider's deletion began, which does not hold it), then the bindings
/// attached to it.
pub fn of_provider(stores: &Stores, name: &str) -> Vec<String> {
    let provider = stores.providers.get(&ObjectRef::new(name));
    let provider = provider.as_ref().and_then(|p| p.0.as_ref().ok());
    let guards = well_formed(&stores.service_accounts);
    let mut accounts: Vec<String> = typed_objects(&guards)
        .into_iter()
        .filter(|a| a.spec.provider_ref.name == name)
        .filter(|a| provider.is_none_or(|p| check_account_may_attach(a, p).is_ok()))
        .map(|a| format!("ExchangeServiceAccount {}", a.name_any()))
        .collect();
    accounts.sort();
    accounts.extend(bindings_where(stores, |b| attached_to_provider(b, name)));
    accounts
}

/// Users of a service account: the bindings attached through it.
pub fn of_account(stores: &Stores, name: &str) -> Vec<String> {
    bindings_where(stores, |b| attached_to_account(b, name))
}

/// The refusal of a deletion: how many users, the first [`NAMED_USERS`] by name, and what
/// to do.
pub fn deletion_refusal(kind: &str, name: &str, users: &[String]) -> String {
    let shown: Vec<&str> = users.iter().take(NAMED_USERS).map(String::as_str).collect();
    let more = users.len() - shown.len();
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "{kind} \"{name}\" is used by {} object(s): {}{tail}; delete or re-point them first",
        users.len(),
        shown.join(", ")
    )
}
