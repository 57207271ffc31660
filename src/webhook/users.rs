//! The message refusing the deletion of a provider or service account while anything
//! uses it; who does comes from the controllers' own index (`controller::usage`).

use crate::controller::usage::Users;

/// The refusal of a deletion: how many users, the first ten by name (the controllers'
/// own count and names, from their index), and what to do.
pub fn deletion_refusal(kind: &str, name: &str, users: &Users) -> String {
    let shown: Vec<&str> = users.first.iter().map(String::as_str).collect();
    let more = users.total().saturating_sub(shown.len());
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "{kind} \"{name}\" is used by {} object(s): {}{tail}; delete or re-point them first",
        users.total(),
        shown.join(", ")
    )
}
