//! The three controllers, each over its cache: the reconcile entry of each kind (the
//! driver), the way its triggers come in (settled for providers and accounts, through
//! the gate for bindings), and the objects due for re-verification.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use futures::channel::mpsc::UnboundedReceiver;
use futures::future::Shared;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use serde::de::DeserializeOwned;
use std::pin::Pin;

use super::context::Context;
use super::gate::Gate;
use super::probe_cache::{self, ProbeCache};
use super::reconciled::Reconciled;
use super::{driver, fanout, policy, settle};
use crate::Result;
use crate::api::kind_label;
use crate::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
use crate::cache::{BindingKey, Guarded, object_at, object_ref};

/// The shutdown signal, shared by everything that stops on it.
pub type Shutdown = Shared<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>;

/// Reconcile one EmailProvider: the driver, holding it while it is used.
pub async fn reconcile_provider(
    obj: Arc<Guarded<EmailProvider>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    driver::reconcile_held(obj, ctx).await
}

/// Reconcile one ExchangeServiceAccount: the driver, holding it while it is used.
pub async fn reconcile_service_account(
    obj: Arc<Guarded<ExchangeServiceAccount>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    driver::reconcile_held(obj, ctx).await
}

/// Reconcile one MailboxBinding: the driver (a binding holds nothing).
pub async fn reconcile_binding(
    obj: Arc<Guarded<MailboxBinding>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    driver::reconcile(obj, ctx).await
}

/// How long a provider's or account's triggers must be quiet before it reconciles: a
/// settle window for the counts of a wave of bindings, short enough that a released
/// provider goes within a second of its last binding.
pub const COUNTS_SETTLE: std::time::Duration = std::time::Duration::from_millis(400);

/// The longest a provider or account waits for its triggers to settle: during a long wave
/// its counts still move, at most one status write per this period.
pub const COUNTS_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Run the three controllers until `shutdown`.
pub async fn reconcile_every_kind(
    ctx: Arc<Context>,
    receivers: fanout::Receivers,
    shutdown: Shutdown,
) {
    futures::join!(
        reconcile_kind(
            ctx.stores.providers.clone(),
            Entrance::Settled(receivers.providers),
            due_triggers::<EmailProvider, _>(&ctx, |c| &c.provider_probes),
            shutdown.clone(),
            reconcile_provider,
            ctx.clone()
        ),
        reconcile_kind(
            ctx.stores.service_accounts.clone(),
            Entrance::Settled(receivers.service_accounts),
            due_triggers::<ExchangeServiceAccount, _>(&ctx, |c| &c.account_probes),
            shutdown.clone(),
            reconcile_service_account,
            ctx.clone()
        ),
        reconcile_kind(
            ctx.stores.bindings.clone(),
            Entrance::Gated(receivers.bindings),
            due_triggers::<MailboxBinding, _>(&ctx, |c| &c.mailbox_probes),
            shutdown,
            reconcile_binding,
            ctx.clone()
        ),
    );
}

/// The objects of kind `K` whose probes come due for re-verification.
pub fn due_triggers<K, T>(
    ctx: &Arc<Context>,
    cache: fn(&Context) -> &ProbeCache<T>,
) -> impl Stream<Item = ObjectRef<Guarded<K>>> + Send + 'static
where
    Guarded<K>: Resource<DynamicType = ()>,
    T: Clone + Send + 'static,
{
    probe_cache::due_keys(ctx.clone(), cache).filter_map(|key| async move { object_ref(&key) })
}

/// How the pumps' triggers enter a controller.
pub enum Entrance<K: Resource> {
    /// Settled: a wave of bindings attaching re-triggers a provider or account once per
    /// binding, and its counts are written once the wave is quiet, or every
    /// `COUNTS_MAX_WAIT` while it goes on.
    Settled(UnboundedReceiver<ObjectRef<K>>),
    /// Through a gate, at the pace the controller reconciles (bindings come in waves of
    /// thousands).
    Gated(Arc<Gate>),
}

/// Run one kind's controller over its cache, fed by the triggers the pumps send and by
/// the objects `due` for re-verification, until `shutdown`.
pub async fn reconcile_kind<K, F, Fut>(
    store: Store<Guarded<K>>,
    entrance: Entrance<Guarded<K>>,
    due: impl Stream<Item = ObjectRef<Guarded<K>>> + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    reconcile: F,
    ctx: Arc<Context>,
) where
    K: Reconciled,
    Guarded<K>:
        Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: FnMut(Arc<Guarded<K>>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action>> + Send + 'static,
{
    let config = kube::runtime::Config::default().concurrency(16);
    let (triggers, gate) = entrance.with(due);
    Controller::for_stream(
        futures::stream::pending::<std::result::Result<_, watcher::Error>>(),
        store,
    )
    .with_config(config)
    .reconcile_on(triggers)
    .graceful_shutdown_on(shutdown)
    .run(reconcile, policy::error_policy, ctx)
    .for_each(|r| {
        if let Some(gate) = &gate
            && let Some(key) = result_key(&r)
        {
            gate.done(&key);
        }
        log_result(kind_label::<K>(), r);
        futures::future::ready(())
    })
    .await;
}

impl<K: Resource<DynamicType = ()> + Send + 'static> Entrance<K> {
    /// All of a controller's triggers: the pumps' through this entrance, and the objects
    /// `due` for re-verification (through the gate too, when there is one); and the gate
    /// its results go back to.
    fn with(
        self,
        due: impl Stream<Item = ObjectRef<K>> + Send + 'static,
    ) -> (BoxStream<'static, ObjectRef<K>>, Option<Arc<Gate>>) {
        match self {
            Entrance::Settled(triggers) => {
                let settled = settle::settle(triggers, COUNTS_SETTLE, COUNTS_MAX_WAIT);
                (futures::stream::select(settled, due).boxed(), None)
            }
            Entrance::Gated(gate) => {
                let through = gate
                    .clone()
                    .stream()
                    .map(|(ns, name)| object_at(&ns, &name));
                // Yields nothing: polled beside the gate, it offers the due objects to it.
                let offers = gate.clone();
                let offered = due.filter_map(move |at| {
                    offers.offer(gate_key(&at));
                    futures::future::ready(None)
                });
                (
                    futures::stream::select(through, offered).boxed(),
                    Some(gate),
                )
            }
        }
    }
}

/// An object's key at the gate: its namespace (empty for none) and name.
fn gate_key<K: Resource>(at: &ObjectRef<K>) -> BindingKey {
    (at.namespace.clone().unwrap_or_default(), at.name.clone())
}

/// The object a controller's result is about, as a gate's key.
fn result_key<K: Resource, E, W>(
    r: &std::result::Result<(ObjectRef<K>, Action), kube::runtime::controller::Error<E, W>>,
) -> Option<BindingKey> {
    use kube::runtime::controller::Error as E;
    // Two arms: the errors carry the object as a `DynamicObject` reference.
    match r {
        Ok((obj, _)) => Some(gate_key(obj)),
        Err(E::ObjectNotFound(obj) | E::ReconcilerFailed(_, obj)) => Some(gate_key(obj)),
        Err(E::QueueError(_) | E::RunnerError(_)) => None,
    }
}

fn log_result<K, E: std::fmt::Display, W: std::fmt::Display>(
    kind: &'static str,
    r: std::result::Result<(ObjectRef<K>, Action), kube::runtime::controller::Error<E, W>>,
) where
    K: Resource,
{
    match r {
        Ok((obj, _)) => tracing::debug!(kind, object = %obj.name, "reconciled"),
        Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
        Err(e) => tracing::debug!(kind, error = %e, "reconcile did not succeed"),
    }
}
