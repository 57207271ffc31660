//! What a reconcile's outcome turns into: Events from its report, metrics, and when to
//! run again (back-off, server delays, or waiting for a change).

use std::sync::Arc;
use std::time::Instant;

use kube::Resource;
use kube::runtime::controller::Action;
use tracing::{info, warn};

use super::backoff;
use super::context::Context;
use super::events::{self, Report};
use crate::api::conditions::Reason;
use crate::api::kind_label;
use crate::cache::object_key;
use crate::{Error, Result};

/// The end of every reconcile: Events from the report, metrics, back-off reset.
pub async fn publish_outcome<K>(
    ctx: &Context,
    obj: &K,
    started: Instant,
    report: Report,
    result: Result<Action>,
) -> Result<Action>
where
    K: Resource<DynamicType = ()>,
{
    events::publish(&ctx.events, obj.object_ref(&()), &report).await;
    let label = match &result {
        Ok(_) => "success",
        Err(e) => e.reason().map(Reason::as_str).unwrap_or(e.category()),
    };
    ctx.metrics
        .record_reconcile(kind_label::<K>(), label, started.elapsed());
    if result.is_ok() {
        ctx.backoff.reset(&object_key(obj));
    }
    result
}

/// What to do after a failed reconcile: wait for a change when only the user can fix it,
/// try again in a few minutes when only the server's admin can (a certificate), else back
/// off exponentially up to a cap. A server-requested delay (`Retry-After`) is
/// honoured but never shortens the back-off, so `Retry-After: 0` cannot make a hot loop,
/// and a huge one waits at most [`backoff::MAX_SERVER_DELAY`].
pub fn error_policy<K>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    if err.is_permanent() {
        return Action::await_change();
    }
    let delay = if err.retries_slowly() {
        backoff::jitter(crate::api::conditions::SLOW_RETRY, 0.1)
    } else {
        let own = ctx.backoff.next_delay(&object_key(obj.as_ref()));
        backoff::with_server_delay(own, err.server_delay())
    };
    if err.is_conflict() {
        info!(
            object = %object_key(obj.as_ref()),
            retry_in_seconds = delay.as_secs(),
            "the object changed since the copy this reconcile read; again from the newer one"
        );
        return Action::requeue(delay);
    }
    warn!(
        object = %object_key(obj.as_ref()),
        category = err.category(),
        error = %err,
        retry_in_seconds = delay.as_secs(),
        "reconcile failed"
    );
    Action::requeue(delay)
}
