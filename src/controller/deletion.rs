//! The deletion step of the in-use finalizer. While anything uses a provider or an
//! account being deleted, it says so (`Terminating=True`, `InUse`, the users counted and
//! the first ten named) beside its own verdict recomputed for its current spec, and waits
//! for the users' changes. When the cache shows no user, a consistent LIST with the CRDs'
//! field selectors confirms it before the finalizer goes: a binding whose attachment the
//! API server accepted but the watch has not delivered yet, or one the operator cannot
//! even read, still holds it.

use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};

use super::context::Context;
use super::reconciled::{HeldWhileUsed, Step};
use super::status_writer::{CountedStatus, HasConditions};
use crate::api::conditions::{Desired, Reason, TERMINATING, set_condition};
use crate::api::{ExchangeServiceAccount, MailboxBinding};
use crate::cache::BindingKey;
use crate::cache::usage::{NAMED_USERS, Users, in_use_count_message, in_use_message};
use crate::{Error, Result};

/// How soon a deletion held only by what the cache has not seen is looked at again: the
/// users' own watch events may never reach this object (one that cannot be read names
/// nothing the triggers know).
pub const RECHECK: Duration = Duration::from_secs(30);

/// Deletion requested: blocked while anything uses the object, by the cache or by a
/// consistent read; otherwise done, and the finalizer is removed. Copes with apply never
/// having run.
pub async fn deletion_step<K: HeldWhileUsed>(obj: &K, ctx: &Context) -> Step<K::Status> {
    let users = K::users(&ctx.stores, &obj.name_any());
    if !users.is_empty() {
        let waiting = Err(Error::Waiting {
            reason: Reason::InUse,
            message: in_use_message(&users),
        });
        return blocked(obj, ctx, users, waiting).await;
    }
    let deleting = obj.meta().deletion_timestamp.as_ref();
    match K::users_by_quorum_read(&ctx.client, &obj.name_any(), deleting).await {
        Ok(found) if found.is_empty() => {
            obj.forget(ctx);
            Step::done(Ok(Action::await_change()))
        }
        Ok(found) => blocked(obj, ctx, found, Ok(Action::requeue(RECHECK))).await,
        // Not confirmed: the finalizer stays, and this is tried again.
        Err(e) => Step::done(Err(e)),
    }
}

/// The blocked deletion's status: the object's verdict on its current spec (it still
/// serves its users; remembered probes make this cheap), `Terminating`, and the counts.
async fn blocked<K: HeldWhileUsed>(
    obj: &K,
    ctx: &Context,
    users: Users,
    result: Result<Action>,
) -> Step<K::Status> {
    let applied = obj.apply(ctx).await;
    let (mut status, generation) = match applied.status {
        Some(status) => (status, obj.meta().generation),
        // Not recomputed (its Secrets could not be read): its conditions keep the
        // generation they were about.
        None => {
            let status = obj.current_status().cloned().unwrap_or_default();
            let generation = status.observed_generation();
            (status, generation)
        }
    };
    let terminating = Desired::ok(TERMINATING, Reason::InUse, in_use_message(&users));
    let conditions = set_condition(
        status.conditions(),
        &terminating,
        obj.meta().generation,
        Timestamp::now(),
    );
    status.set_conditions(conditions, generation);
    status.set_counts(&users);
    Step {
        status: Some(status),
        result,
        deletion_blocked: Some(in_use_count_message(&users)),
        login_paused: applied.login_paused,
    }
}

/// Bindings with `field=value`, by a consistent read (no resourceVersion: from etcd, not
/// a cache), metadata only: how many, and the first of them by key. Only asked when the
/// cache shows no user, so the answer is small unless the cache is badly behind.
async fn listed_bindings(
    client: &Client,
    field: &str,
    value: &str,
) -> Result<(usize, Vec<BindingKey>)> {
    let api: Api<MailboxBinding> = Api::all(client.clone());
    let params = ListParams::default().fields(&format!("{field}={value}"));
    let mut keys: Vec<BindingKey> = api
        .list_metadata(&params)
        .await?
        .items
        .iter()
        .map(|b| (b.namespace().unwrap_or_default(), b.name_any()))
        .collect();
    keys.sort();
    let count = keys.len();
    keys.truncate(NAMED_USERS);
    Ok((count, keys))
}

/// Who uses a provider, by a consistent read: bindings attached to it, and accounts
/// naming it that were there before its deletion began.
pub fn provider_users_by_quorum_read<'a>(
    client: &'a Client,
    name: &'a str,
    deleting: Option<&'a Time>,
) -> BoxFuture<'a, Result<Users>> {
    Box::pin(async move {
        let bindings = listed_bindings(client, "status.provider", name).await?;
        let api: Api<ExchangeServiceAccount> = Api::all(client.clone());
        let params = ListParams::default().fields(&format!("spec.providerRef.name={name}"));
        let accounts = api
            .list_metadata(&params)
            .await?
            .items
            .into_iter()
            .filter(
                |a| match (deleting, a.metadata.creation_timestamp.as_ref()) {
                    (Some(deleting), Some(created)) => created.0 < deleting.0,
                    _ => true,
                },
            )
            .map(|a| a.name_any())
            .collect();
        Ok(Users::new(accounts, bindings))
    })
}

/// Who uses an account, by a consistent read: the bindings attached through it.
pub fn account_users_by_quorum_read<'a>(
    client: &'a Client,
    name: &'a str,
    _deleting: Option<&'a Time>,
) -> BoxFuture<'a, Result<Users>> {
    Box::pin(async move {
        let bindings = listed_bindings(client, "status.serviceAccount", name).await?;
        Ok(Users::new(Vec::new(), bindings))
    })
}
