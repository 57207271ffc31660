//! Objects → the status tree: bindings under the service account they authenticate
//! through, or directly under their provider; counts per reason; blocked deletions with
//! the users the tree shows.

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::{Entry, Ready, Snapshot};
use crate::api::{ExchangeServiceAccount, MailboxBinding, kind_label};

/// The whole answer of `mailops status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusTree {
    /// Providers by name; then, for objects naming a provider that does not exist or none
    /// at all, groups without a provider object.
    pub providers: Vec<ProviderNode>,
    /// How many objects there are.
    pub total: usize,
    /// How many are not `Ready=True`.
    pub not_ready: usize,
    /// Objects per `Ready` reason.
    pub reasons: BTreeMap<String, usize>,
    /// Providers and service accounts whose deletion waits for their users.
    pub blocked_deletions: Vec<BlockedDeletion>,
    /// Providers and service accounts could not be read (forbidden): those named are
    /// shown as unknown, not as missing.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cluster_scoped_forbidden: bool,
}

impl StatusTree {
    /// Whether every object is `Ready=True` (what the exit code says).
    pub fn all_ready(&self) -> bool {
        self.not_ready == 0
    }
}

/// A provider and what hangs below it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderNode {
    /// The provider's name; `None` for bindings whose provider cannot be named yet (no
    /// `providerRef` and no resolved `status.provider`).
    pub name: Option<String>,
    /// The provider; `None` when no EmailProvider of that name exists.
    pub provider: Option<Entry>,
    /// Its service accounts.
    pub service_accounts: Vec<AccountNode>,
    /// Bindings with their own credentials.
    pub bindings: Vec<Entry>,
}

/// A service account and the bindings that authenticate through it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountNode {
    /// The account's name.
    pub name: String,
    /// The account; `None` when bindings name one that does not exist.
    pub account: Option<Entry>,
    /// Its bindings.
    pub bindings: Vec<Entry>,
}

/// A provider or service account held in deletion, and what holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockedDeletion {
    /// The object being deleted.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// The `Terminating` condition's message.
    pub message: String,
    /// Its users as this tree shows them (`Kind name` or `Kind namespace/name`).
    pub users: Vec<String>,
}

/// Where a binding hangs: (provider name, service account name).
fn place(b: &MailboxBinding) -> (Option<String>, Option<String>) {
    let account = b
        .spec
        .authentication
        .service_account_ref
        .as_ref()
        .map(|r| r.name.to_string());
    let provider = b
        .status
        .as_ref()
        .and_then(|s| s.provider.as_deref().map(str::to_string))
        .or_else(|| b.spec.provider_ref.as_ref().map(|r| r.name.to_string()));
    (provider, account)
}

/// Build the tree. Sorted by name throughout, so the output is stable.
pub fn build(snapshot: &Snapshot) -> StatusTree {
    let mut groups: BTreeMap<Option<String>, ProviderNode> = BTreeMap::new();
    for p in &snapshot.providers {
        group(
            &mut groups,
            Some(p.metadata.name.clone().unwrap_or_default()),
        )
        .provider = Some(Entry::of_provider(p));
    }
    let mut account_of: BTreeMap<String, Option<String>> = BTreeMap::new();
    for a in &snapshot.accounts {
        let provider = a.spec.provider_ref.name.to_string();
        let entry = Entry::of_account(a);
        let name = entry.name.clone();
        account_of.insert(name.clone(), Some(provider.clone()));
        account(group(&mut groups, Some(provider)), &name).account = Some(entry);
    }
    for b in &snapshot.bindings {
        let entry = Entry::of_binding(b);
        match place(b) {
            (provider, Some(name)) => {
                // Under the account's provider; an unknown account under the binding's.
                let provider = account_of.get(&name).cloned().unwrap_or(provider);
                account(group(&mut groups, provider), &name)
                    .bindings
                    .push(entry);
            }
            (provider, None) => group(&mut groups, provider).bindings.push(entry),
        }
    }
    let mut tree = finish(groups);
    tree.cluster_scoped_forbidden = snapshot.cluster_scoped_forbidden;
    tree
}

fn group(
    groups: &mut BTreeMap<Option<String>, ProviderNode>,
    name: Option<String>,
) -> &mut ProviderNode {
    groups.entry(name.clone()).or_insert(ProviderNode {
        name,
        provider: None,
        service_accounts: Vec::new(),
        bindings: Vec::new(),
    })
}

fn account<'a>(node: &'a mut ProviderNode, name: &str) -> &'a mut AccountNode {
    let at = match node.service_accounts.iter().position(|a| a.name == name) {
        Some(at) => at,
        None => {
            node.service_accounts.push(AccountNode {
                name: name.to_string(),
                account: None,
                bindings: Vec::new(),
            });
            node.service_accounts.len() - 1
        }
    };
    &mut node.service_accounts[at]
}

/// Sort, count and collect blocked deletions.
fn finish(groups: BTreeMap<Option<String>, ProviderNode>) -> StatusTree {
    // `None` sorts first in a BTreeMap; the unnamed group goes last.
    let (mut providers, unnamed): (Vec<_>, Vec<_>) =
        groups.into_values().partition(|g| g.name.is_some());
    providers.extend(unnamed);
    let mut tree = StatusTree {
        providers: Vec::new(),
        total: 0,
        not_ready: 0,
        reasons: BTreeMap::new(),
        blocked_deletions: Vec::new(),
        cluster_scoped_forbidden: false,
    };
    for mut node in providers {
        node.service_accounts.sort_by(|a, b| a.name.cmp(&b.name));
        node.bindings.sort_by_key(Entry::display_name);
        for a in &mut node.service_accounts {
            a.bindings.sort_by_key(Entry::display_name);
        }
        count(&mut tree, &node);
        tree.blocked_deletions.extend(blocked(&node));
        tree.providers.push(node);
    }
    tree
}

fn entries(node: &ProviderNode) -> impl Iterator<Item = &Entry> {
    node.provider
        .iter()
        .chain(
            node.service_accounts
                .iter()
                .flat_map(|a| a.account.iter().chain(a.bindings.iter())),
        )
        .chain(node.bindings.iter())
}

fn count(tree: &mut StatusTree, node: &ProviderNode) {
    for entry in entries(node) {
        tree.total += 1;
        if entry.ready != Ready::True {
            tree.not_ready += 1;
        }
        *tree.reasons.entry(entry.reason.clone()).or_default() += 1;
    }
}

fn label(entry: &Entry) -> String {
    format!("{} {}", entry.kind, entry.display_name())
}

fn blocked(node: &ProviderNode) -> Vec<BlockedDeletion> {
    let mut out = Vec::new();
    if let Some(p) = &node.provider
        && let Some(message) = &p.deletion_blocked_by
    {
        let users = node
            .service_accounts
            .iter()
            .map(|a| format!("{} {}", kind_label::<ExchangeServiceAccount>(), a.name))
            .chain(node.bindings.iter().map(label))
            .collect();
        out.push(blocked_one(p, message, users));
    }
    for a in &node.service_accounts {
        if let Some(entry) = &a.account
            && let Some(message) = &entry.deletion_blocked_by
        {
            out.push(blocked_one(
                entry,
                message,
                a.bindings.iter().map(label).collect(),
            ));
        }
    }
    out
}

fn blocked_one(entry: &Entry, message: &str, users: Vec<String>) -> BlockedDeletion {
    BlockedDeletion {
        kind: entry.kind,
        name: entry.name.clone(),
        message: message.to_string(),
        users,
    }
}
