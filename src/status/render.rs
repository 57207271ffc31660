//! The status tree as text (a tree drawn with box characters, ANSI colours only when
//! asked for) or as JSON. Every string from the cluster goes through [`escape`] on the
//! way out: the only control sequences printed are mailops' own colours.

use std::fmt::Write;

use super::escape::{self, text as esc};
use super::model::{Entry, Ready};
use super::tree::{AccountNode, BlockedDeletion, ProviderNode, StatusTree};
use crate::api::kind_label;
use crate::api::{EmailProvider, ExchangeServiceAccount};

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// The tree as pretty-printed JSON, ending in a newline; control and formatting
/// characters in strings as `\uXXXX` escapes.
pub fn json(tree: &StatusTree) -> crate::Result<String> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, escape::Formatter::new());
    serde::Serialize::serialize(tree, &mut serializer)
        .map_err(|e| crate::Error::Serialize(e.to_string()))?;
    // Only whole strings were written, so the bytes are UTF-8.
    String::from_utf8(out)
        .map(|s| s + "\n")
        .map_err(|e| crate::Error::Serialize(e.to_string()))
}

/// The tree as text; `color` wraps each Ready state in ANSI colours.
pub fn text(tree: &StatusTree, color: bool) -> String {
    let mut out = String::new();
    if tree.providers.is_empty() {
        out.push_str("No mailops objects found.\n");
    }
    // What a missing provider or account means: gone, or hidden from these credentials.
    let missing = if tree.cluster_scoped_forbidden {
        "not readable"
    } else {
        "not found"
    };
    for node in &tree.providers {
        provider(&mut out, node, missing, color);
    }
    summary(&mut out, tree);
    if tree.cluster_scoped_forbidden {
        out.push_str(
            "EmailProviders and ExchangeServiceAccounts are cluster-scoped, and these \
             credentials may not list them: only MailboxBindings are shown.\n",
        );
    }
    for blocked in &tree.blocked_deletions {
        blocked_deletion(&mut out, blocked);
    }
    out
}

fn provider(out: &mut String, node: &ProviderNode, missing: &str, color: bool) {
    match (&node.provider, &node.name) {
        (Some(entry), _) => line(out, "", entry, color),
        (None, Some(name)) => {
            let _ = writeln!(
                out,
                "{} {}: {missing}",
                kind_label::<EmailProvider>(),
                esc(name)
            );
        }
        (None, None) => out.push_str("(no provider resolved yet)\n"),
    }
    let last_account = node.service_accounts.len();
    for (i, account) in node.service_accounts.iter().enumerate() {
        let last = i + 1 == last_account && node.bindings.is_empty();
        service_account(out, account, last, missing, color);
    }
    for (i, binding) in node.bindings.iter().enumerate() {
        let branch = if i + 1 == node.bindings.len() {
            "└─ "
        } else {
            "├─ "
        };
        line(out, branch, binding, color);
    }
}

fn service_account(out: &mut String, node: &AccountNode, last: bool, missing: &str, color: bool) {
    let (branch, indent) = if last {
        ("└─ ", "   ")
    } else {
        ("├─ ", "│  ")
    };
    match &node.account {
        Some(entry) => line(out, branch, entry, color),
        None => {
            let _ = writeln!(
                out,
                "{branch}{} {}: {missing}",
                kind_label::<ExchangeServiceAccount>(),
                esc(&node.name)
            );
        }
    }
    for (i, binding) in node.bindings.iter().enumerate() {
        let sub = if i + 1 == node.bindings.len() {
            "└─ "
        } else {
            "├─ "
        };
        line(out, &format!("{indent}{sub}"), binding, color);
    }
}

fn line(out: &mut String, prefix: &str, entry: &Entry, color: bool) {
    let (word, colour) = match entry.ready {
        Ready::True => ("Ready", GREEN),
        Ready::False => ("Not ready", RED),
        Ready::Unknown => ("Unknown", YELLOW),
    };
    let state = if color {
        format!("{colour}{word}{RESET}")
    } else {
        word.to_string()
    };
    let _ = write!(
        out,
        "{prefix}{} {}: {state} ({})",
        entry.kind,
        esc(&entry.display_name()),
        esc(&entry.reason)
    );
    if let Some(message) = &entry.message {
        let _ = write!(out, " {}", esc(message));
    }
    if entry.deletion_blocked_by.is_some() {
        out.push_str(" [deletion blocked]");
    }
    out.push('\n');
}

fn summary(out: &mut String, tree: &StatusTree) {
    let _ = writeln!(
        out,
        "\n{} object(s), {} not ready",
        tree.total, tree.not_ready
    );
    if !tree.reasons.is_empty() {
        let counts: Vec<String> = tree
            .reasons
            .iter()
            .map(|(reason, n)| format!("{} {n}", esc(reason)))
            .collect();
        let _ = writeln!(out, "Reasons: {}", counts.join(", "));
    }
}

fn blocked_deletion(out: &mut String, blocked: &BlockedDeletion) {
    let _ = writeln!(
        out,
        "Deletion of {} {} is blocked: {}",
        blocked.kind,
        esc(&blocked.name),
        esc(&blocked.message)
    );
    for user in &blocked.users {
        let _ = writeln!(out, "  - {}", esc(user));
    }
}
