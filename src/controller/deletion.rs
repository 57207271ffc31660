//! The blocked-deletion step of the in-use finalizer: while anything uses a provider or
//! an account being deleted, it says so (`Terminating=True`, `InUse`, the users counted
//! and the first ten named) and waits for the users' changes.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;

use super::context::Context;
use super::reconciled::{HeldWhileUsed, Step};
use super::status_writer::{CountedStatus, HasConditions};
use crate::Error;
use crate::api::conditions::{Desired, Reason, TERMINATING, set_condition};
use crate::cache::usage::{in_use_count_message, in_use_message};

/// Deletion requested: blocked (`Terminating=True`, `InUse`, waiting for the users'
/// changes) while anything uses the object; otherwise done, and the finalizer is removed.
/// Copes with apply never having run.
pub fn blocked_deletion<K: HeldWhileUsed>(obj: &K, ctx: &Context) -> Step<K::Status> {
    let users = K::users(&ctx.stores, &obj.name_any());
    if users.is_empty() {
        obj.forget(ctx);
        return Step::done(Ok(Action::await_change()));
    }
    let message = in_use_message(&users);
    let terminating = Desired::ok(TERMINATING, Reason::InUse, message.clone());
    let mut status = obj.current_status().cloned().unwrap_or_default();
    let generation = obj.meta().generation;
    let mut conditions = set_condition(
        status.conditions(),
        &terminating,
        generation,
        Timestamp::now(),
    );
    // Deletion bumps a custom resource's generation without touching its spec: the other
    // verdicts still hold for it, and a binding waiting for a verdict on the current
    // generation must not wait for ever.
    for c in &mut conditions {
        c.observed_generation = generation;
    }
    status.set_conditions(conditions, generation);
    status.set_counts(&users);
    Step {
        status: Some(status),
        result: Err(Error::Waiting {
            reason: Reason::InUse,
            message,
        }),
        deletion_blocked: Some(in_use_count_message(&users)),
        login_paused: None,
    }
}
