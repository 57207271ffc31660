//! The message refusing the deletion of a provider or service account while anything
//! uses it; who does comes from the controllers' own index (`cache::usage`).

use crate::cache::usage::{Users, named_users};

/// The refusal of a deletion: how many users, the first ten by name (the controllers'
/// own count and names, from their index), and what to do.
pub fn deletion_refusal(kind: &str, name: &str, users: &Users) -> String {
    format!(
        "{kind} \"{name}\" is used by {} object(s): {}; delete or re-point them first",
        users.total(),
        named_users(users)
    )
}
