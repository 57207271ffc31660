//! What a kind gives the driver: how to get from its object to a status ([`Step`]), and,
//! for kinds whose deletion waits for their users, who those are. The kinds implement
//! these; the driver only calls them.

use std::fmt::Debug;

use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::Context;
use super::status_writer::{CountedStatus, HasConditions};
use crate::Result;
use crate::cache::Stores;
use crate::cache::usage::Users;

/// A reconcile's result before the status write: the status to write (if any), what to
/// do next, and a deletion newly blocked (reported only when the status changed).
#[derive(Debug)]
pub struct Step<S> {
    /// The complete status, written unless it says what the object already says.
    pub status: Option<S>,
    /// What to do next.
    pub result: Result<Action>,
    /// The Event note of a blocked deletion (counts, no names).
    pub deletion_blocked: Option<String>,
    /// The Event note of a login pause this reconcile was the first to meet.
    pub login_paused: Option<String>,
}

impl<S> Step<S> {
    /// Write `status`, then go on with `result`.
    pub fn write(status: S, result: Result<Action>) -> Self {
        Step {
            status: Some(status),
            result,
            deletion_blocked: None,
            login_paused: None,
        }
    }

    /// Nothing to write.
    pub fn done(result: Result<Action>) -> Self {
        Step {
            status: None,
            result,
            deletion_blocked: None,
            login_paused: None,
        }
    }
}

/// What the driver needs of a kind.
pub trait Reconciled:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static
{
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
    /// Whether a status computed from this copy may only replace the version it was
    /// computed from (the write carries its resourceVersion, a newer one answers 409 and
    /// the reconcile runs again from the newer copy). For a kind whose status from a stale
    /// copy could lose what only the newer one knows; off by default.
    fn guards_status_writes() -> bool {
        false
    }
}

/// Kinds whose deletion waits for their users, held by the in-use finalizer.
pub trait HeldWhileUsed: Reconciled<Status: CountedStatus> {
    /// Who uses the object of this name (from the caches).
    fn users(stores: &Stores, name: &str) -> Users;
    /// Forget what was remembered of the object (it is released).
    fn forget(&self, ctx: &Context);
    /// Who uses the object of this name, whose deletion began at `deleting`, by a
    /// consistent read from the API server: asked before the finalizer is released, when
    /// the cache shows no user.
    fn users_by_quorum_read<'a>(
        client: &'a Client,
        name: &'a str,
        deleting: Option<&'a Time>,
    ) -> BoxFuture<'a, Result<Users>>;
}

/// After a healthy check: nothing is scheduled here. Its probe, remembered in the kind's
/// [`super::probe_cache::ProbeCache`], comes due after the re-verification period and
/// triggers the object then; a requeue timer per object would cost the scheduler far more.
pub fn reverify_later() -> Action {
    Action::await_change()
}
