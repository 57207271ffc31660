//! The one driver of the three controllers: malformed objects, timing, the in-use
//! finalizer, the single status write, and the report, metrics and Events at the end.
//! Each kind only says how to get from its object to a status ([`Reconciled::apply`]).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::context::Context;
use super::deletion::deletion_step;
use super::events::Report;
use super::reconciled::{HeldWhileUsed, Reconciled, Step};
use super::{finalizer, policy, status_writer};
use crate::Result;
use crate::api::IN_USE_FINALIZER;
use crate::api::kind_label;
use crate::cache::Guarded;

/// Reconcile a kind without a finalizer (bindings hold nothing).
pub async fn reconcile<K: Reconciled>(obj: Arc<Guarded<K>>, ctx: Arc<Context>) -> Result<Action>
where
    Guarded<K>: Resource<DynamicType = ()>,
{
    let Ok(typed) = &obj.0 else {
        return report_malformed(&ctx, &obj, true).await;
    };
    ctx.forget_deleted();
    let started = Instant::now();
    let step = typed.apply(&ctx).await;
    let (report, result) = write_step(typed, &ctx, step).await;
    policy::publish_outcome(&ctx, typed, started, report, result).await
}

/// Reconcile a kind whose deletion waits for its users: hold the in-use finalizer and
/// apply while it lives; the blocked-deletion step while it is being deleted, releasing
/// the finalizer once nothing uses it.
pub async fn reconcile_held<K: HeldWhileUsed>(
    obj: Arc<Guarded<K>>,
    ctx: Arc<Context>,
) -> Result<Action>
where
    Guarded<K>: Resource<DynamicType = ()>,
{
    let Ok(typed) = &obj.0 else {
        let in_use = still_used::<K>(&ctx, &obj).await;
        return report_malformed(&ctx, &obj, in_use).await;
    };
    ctx.forget_deleted();
    let started = Instant::now();
    let (report, result) = held_step(typed, &ctx).await;
    policy::publish_outcome(&ctx, typed, started, report, result).await
}

async fn held_step<K: HeldWhileUsed>(obj: &K, ctx: &Context) -> (Report, Result<Action>) {
    let api = obj.api(ctx.client.clone());
    let holds = obj.finalizers().iter().any(|f| f == IN_USE_FINALIZER);
    if obj.meta().deletion_timestamp.is_none() {
        if !holds && let Err(e) = finalizer::hold::<K>(&api, &obj.name_any()).await {
            return (Report::default(), Err(e));
        }
        let step = obj.apply(ctx).await;
        return write_step(obj, ctx, step).await;
    }
    if !holds {
        // Not ours to release: another finalizer keeps it, or it is on its way out.
        return (Report::default(), Ok(Action::await_change()));
    }
    let step = deletion_step(obj, ctx).await;
    // A blocked deletion says so in the status; only an unused object has nothing to say.
    let unused = step.status.is_none() && step.result.is_ok();
    let (report, result) = write_step(obj, ctx, step).await;
    if !unused || result.is_err() {
        return (report, result);
    }
    match finalizer::release::<K>(&api, &obj.name_any()).await {
        Ok(()) => (report, result),
        Err(e) => (report, Err(e)),
    }
}

/// The one status write of every reconcile, and what it is to be reported for.
async fn write_step<K: Reconciled>(
    obj: &K,
    ctx: &Context,
    step: Step<K::Status>,
) -> (Report, Result<Action>) {
    let login_paused = step.login_paused;
    let Some(new) = &step.status else {
        let report = Report {
            login_paused,
            ..Report::default()
        };
        return (report, step.result);
    };
    let api = obj.api(ctx.client.clone());
    let read_at = obj.resource_version().filter(|_| K::guards_status_writes());
    let written = status_writer::write_status(
        &api,
        &obj.name_any(),
        (obj.current_status(), read_at.as_deref()),
        new,
    )
    .await;
    match written {
        Ok(transition) => {
            let deletion_blocked = step.deletion_blocked.filter(|_| transition.is_some());
            let report = Report {
                transition,
                deletion_blocked,
                login_paused,
            };
            (report, step.result)
        }
        Err(e) => {
            let report = Report {
                login_paused,
                ..Report::default()
            };
            (report, Err(e))
        }
    }
}

/// Whether anything uses a malformed object being deleted, by the cache or, when that
/// shows nothing, by a consistent read (a failed read counts as used: the finalizer stays).
async fn still_used<K: HeldWhileUsed>(ctx: &Context, obj: &Guarded<K>) -> bool
where
    Guarded<K>: Resource<DynamicType = ()>,
{
    let name = obj.name_any();
    if obj.meta().deletion_timestamp.is_none() || !K::users(&ctx.stores, &name).is_empty() {
        return true;
    }
    let deleting = obj.meta().deletion_timestamp.as_ref();
    K::users_by_quorum_read(&ctx.client, &name, deleting)
        .await
        .map_or(true, |users| !users.is_empty())
}

/// Report an object that could not be deserialized (logged and counted) and wait for a
/// change: the watch and the other objects go on. One being deleted that nothing uses
/// (`in_use`) is released from the in-use finalizer, which needs no typed object:
/// a malformed provider or account must not be stuck in deletion until fixed.
async fn report_malformed<K>(ctx: &Context, obj: &Guarded<K>, in_use: bool) -> Result<Action>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    Guarded<K>: Resource<DynamicType = ()>,
{
    let kind = kind_label::<K>();
    if let Err(invalid) = &obj.0 {
        warn!(
            kind,
            name = %obj.name_any(),
            namespace = obj.namespace().unwrap_or_default(),
            error = %invalid.error,
            "object cannot be read; fix it or delete it"
        );
        ctx.metrics
            .record_reconcile(kind, "malformed", Duration::ZERO);
    }
    let held = obj.finalizers().iter().any(|f| f == IN_USE_FINALIZER);
    if obj.meta().deletion_timestamp.is_some() && held && !in_use {
        let api: Api<Guarded<K>> = Api::all(ctx.client.clone());
        finalizer::drop_entry(&api, obj).await?;
        info!(kind, name = %obj.name_any(), "released a malformed object nothing uses");
    }
    Ok(Action::await_change())
}
