//! The one driver of the three controllers: malformed objects, timing, the in-use
//! finalizer, the single status write, and the report, metrics and Events at the end.
//! Each kind only says how to get from its object to a status ([`Reconciled::apply`]).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use kube::runtime::controller::Action;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::context::{Context, Guarded};
use super::policy::{self, Report, ReportCell};
use super::status::{self, CountedStatus, HasConditions};
use super::{finalizer, usage};
use crate::Result;
use crate::api::IN_USE_FINALIZER;

/// A reconcile's result before the status write: the status to write (if any), what to
/// do next, and a deletion newly blocked (reported only when the status changed).
#[derive(Debug)]
pub struct Step<S> {
    /// The complete status, written unless it says what the object already says.
    pub status: Option<S>,
    /// What to do next.
    pub result: Result<Action>,
    /// The `InUse` message of a blocked deletion.
    pub deletion_blocked: Option<String>,
}

impl<S> Step<S> {
    /// Write `status`, then go on with `result`.
    pub fn write(status: S, result: Result<Action>) -> Self {
        Step {
            status: Some(status),
            result,
            deletion_blocked: None,
        }
    }

    /// Nothing to write.
    pub fn done(result: Result<Action>) -> Self {
        Step {
            status: None,
            result,
            deletion_blocked: None,
        }
    }
}

/// What the driver needs of a kind.
pub trait Reconciled:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static
{
    /// Metric and log label.
    const KIND: &'static str;
    /// The kind's status.
    type Status: Serialize + HasConditions + Debug + Send + Sync;
    /// The status as the object carries it.
    fn current_status(&self) -> Option<&Self::Status>;
    /// The API the object's status is written through; cluster-scoped unless the kind
    /// says otherwise.
    fn api(&self, client: Client) -> Api<Self> {
        Api::all(client)
    }
    /// Read the caches, validate, probe, and build the complete status.
    fn apply<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Step<Self::Status>>;
}

/// Kinds whose deletion waits for their users, held by the in-use finalizer.
pub trait HeldWhileUsed: Reconciled<Status: CountedStatus> {
    /// Who uses the object of this name (from the caches).
    fn users(name: &str, ctx: &Context) -> usage::Users;
    /// Forget what was remembered of the object (it is released).
    fn forget(&self, ctx: &Context);
}

/// Reconcile a kind without a finalizer (bindings hold nothing).
pub async fn reconcile<K: Reconciled>(obj: Arc<Guarded<K>>, ctx: Arc<Context>) -> Result<Action>
where
    Guarded<K>: Resource<DynamicType = ()>,
{
    let Ok(typed) = &obj.0 else {
        return report_malformed(&ctx, K::KIND, &obj, |_| true).await;
    };
    ctx.forget_deleted();
    let started = Instant::now();
    let report = ReportCell::default();
    let step = typed.apply(&ctx).await;
    let result = write_step(typed, &ctx, &report, step).await;
    conclude(&ctx, typed, started, report, result).await
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
        let in_use = |name: &str| !K::users(name, &ctx).is_empty();
        return report_malformed(&ctx, K::KIND, &obj, in_use).await;
    };
    ctx.forget_deleted();
    let started = Instant::now();
    let report = ReportCell::default();
    let result = held_step(typed, &ctx, &report).await;
    conclude(&ctx, typed, started, report, result).await
}

async fn held_step<K: HeldWhileUsed>(
    obj: &K,
    ctx: &Context,
    report: &ReportCell,
) -> Result<Action> {
    let api = obj.api(ctx.client.clone());
    let holds = obj.finalizers().iter().any(|f| f == IN_USE_FINALIZER);
    if obj.meta().deletion_timestamp.is_none() {
        if !holds {
            finalizer::hold::<K>(&api, &obj.name_any()).await?;
        }
        let step = obj.apply(ctx).await;
        return write_step(obj, ctx, report, step).await;
    }
    if !holds {
        // Not ours to release: another finalizer keeps it, or it is on its way out.
        return Ok(Action::await_change());
    }
    let step = usage::blocked_deletion(obj, ctx);
    let action = write_step(obj, ctx, report, step).await?;
    finalizer::release::<K>(&api, &obj.name_any()).await?;
    Ok(action)
}

/// The one status write of every reconcile.
async fn write_step<K: Reconciled>(
    obj: &K,
    ctx: &Context,
    report: &ReportCell,
    step: Step<K::Status>,
) -> Result<Action> {
    if let Some(new) = &step.status {
        let api = obj.api(ctx.client.clone());
        let written =
            status::write_status(&api, &obj.name_any(), obj.current_status(), new, report).await?;
        if written && step.deletion_blocked.is_some() {
            report
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .deletion_blocked = step.deletion_blocked;
        }
    }
    step.result
}

async fn conclude<K: Reconciled>(
    ctx: &Context,
    obj: &K,
    started: Instant,
    report: ReportCell,
    result: Result<Action>,
) -> Result<Action> {
    let report: Report = report.into_inner().unwrap_or_else(|e| e.into_inner());
    policy::publish_outcome(ctx, K::KIND, obj, started, report, result).await
}

/// After a healthy check: nothing is scheduled here. Its probe, remembered in the kind's
/// [`super::probe_cache::ProbeCache`], comes due after the re-verification period and
/// triggers the object then; a requeue timer per object would cost the scheduler far more.
pub fn reverify_later() -> Action {
    Action::await_change()
}

/// Report an object that could not be deserialized (logged and counted) and wait for a
/// change: the watch and the other objects go on. One being deleted that nothing uses
/// (`in_use` by name) is released from the in-use finalizer, which needs no typed object:
/// a malformed provider or account must not be stuck in deletion until fixed.
async fn report_malformed<K>(
    ctx: &Context,
    kind: &'static str,
    obj: &Guarded<K>,
    in_use: impl Fn(&str) -> bool,
) -> Result<Action>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    Guarded<K>: Resource<DynamicType = ()>,
{
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
    if obj.meta().deletion_timestamp.is_some() && held && !in_use(&obj.name_any()) {
        let api: Api<Guarded<K>> = Api::all(ctx.client.clone());
        finalizer::drop_entry(&api, obj).await?;
        info!(kind, name = %obj.name_any(), "released a malformed object nothing uses");
    }
    Ok(Action::await_change())
}
