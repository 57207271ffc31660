//! The MailboxBinding reconciler as one pipeline: [`dereference`] (the caches read once:
//! providers, accounts, the namespace's labels, the versions of the Secrets the result
//! references) → [`validate`] (pure: resolution, ready gates, endpoints, and the digest of
//! what a verification depends on) → [`super::binding_probe`] (a remembered or
//! status-recorded verdict, else the Secrets' data, the credentials and the backend, then
//! the write-back of a rotated token) → the pure status ([`super::binding_status`]) → the
//! driver's one status write. No finalizer: a binding holds nothing, it is what others
//! wait for.

use std::sync::Arc;

use crate::api::condition::Condition;
use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};

use super::binding_probe::{self, Checked};
use super::binding_status::{Outcome, build_status, outcome_error};
use super::bundle;
use super::context::Context;
use super::probe_cache::{probe_inputs_digest, spec_digest};
use super::reconciled::{Reconciled, Step, reverify_later};
use super::restart::stable_digest;
use crate::api::conditions::{self, Reason};
use crate::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding, MailboxBindingStatus};
use crate::cache::index::{secret_of_binding, secret_of_provider, secrets_of_account};
use crate::cache::{Guarded, SecretKey, Stores, typed_objects, well_formed};
use crate::config::OperatorConfig;
use crate::endpoints::provider_endpoints;
use crate::resolve::{Catalog, Resolution, resolve_binding};
use crate::{Error, Result};

impl Reconciled for MailboxBinding {
    type Status = MailboxBindingStatus;

    fn current_status(&self) -> Option<&MailboxBindingStatus> {
        self.status.as_deref()
    }

    fn api(&self, client: Client) -> Api<Self> {
        Api::namespaced(client, &self.namespace().unwrap_or_default())
    }

    /// A binding's status says which provider and account it is attached to, and an
    /// attached binding keeps a provider being deleted: a verdict from a copy that does
    /// not show the attachment yet (the watch lagging behind our own write) would detach
    /// it, and the provider would go under a Ready binding.
    fn guards_status_writes() -> bool {
        true
    }

    fn apply<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Step<MailboxBindingStatus>> {
        Box::pin(apply(self, ctx))
    }
}

async fn apply(b: &MailboxBinding, ctx: &Context) -> Step<MailboxBindingStatus> {
    let snapshot = dereference(b, &ctx.stores, ctx.config.allow_insecure_endpoints);
    let outcome = match validate(b, snapshot, &ctx.config) {
        Ok(checked) => match binding_probe::verify(b, checked, ctx).await {
            Ok(outcome) => outcome,
            // The Secrets could not be read: nothing to say yet.
            Err(e) => return Step::done(Err(e)),
        },
        Err(outcome) => *outcome,
    };
    if let Outcome::Pending = outcome {
        return Step::done(Ok(Action::await_change()));
    }
    let new = build_status(b, &outcome, super::clock::now());
    let login_paused = match &outcome {
        Outcome::Verified { login_paused, .. } => login_paused.clone(),
        _ => None,
    };
    let result = match outcome {
        Outcome::Pending => Ok(Action::await_change()),
        Outcome::Unresolved(e) | Outcome::Unverified { error: e, .. } => Err(e),
        Outcome::Verified {
            verified,
            write_back_failed,
            ..
        } => match outcome_error(&verified.outcome).or(write_back_failed) {
            Some(e) => Err(e),
            None => Ok(reverify_later()),
        },
    };
    Step {
        login_paused,
        ..Step::write(new, result)
    }
}

/// What a binding's reconcile reads of the caches, read once: the resolution (from every
/// provider and account, and the namespace's labels), the provider and account it came
/// to, and the Secrets those and the binding reference with their versions (no data:
/// that is read only when a verification needs it).
pub struct Snapshot {
    resolution: Result<Resolution>,
    provider: Option<Arc<Guarded<EmailProvider>>>,
    account: Option<Arc<Guarded<ExchangeServiceAccount>>>,
    secrets: Vec<(SecretKey, Option<String>)>,
    /// Where the provider's CA bundle object stands ([`bundle::bundle_version`]).
    bundle: Option<String>,
}

/// Read the caches for a binding: the one place its reconcile touches them.
pub fn dereference(b: &MailboxBinding, stores: &Stores, allow_insecure: bool) -> Snapshot {
    let providers = well_formed(&stores.providers);
    let accounts = well_formed(&stores.service_accounts);
    let labels = stores.namespace_labels(&b.namespace().unwrap_or_default());
    let resolution = {
        let (providers, accounts) = (typed_objects(&providers), typed_objects(&accounts));
        let catalog = Catalog {
            providers: &providers,
            service_accounts: &accounts,
            allow_insecure_endpoints: allow_insecure,
        };
        resolve_binding(b, catalog, labels.as_ref())
    };
    let (provider, account) = match &resolution {
        Ok(r) => (
            named(&providers, &r.provider),
            r.service_account
                .as_deref()
                .and_then(|name| named(&accounts, name)),
        ),
        Err(_) => (None, None),
    };
    let secrets = stores.secret_versions(
        secret_of_binding(b)
            .into_iter()
            .chain(typed(&provider).and_then(secret_of_provider))
            .chain(typed(&account).map(secrets_of_account).unwrap_or_default()),
    );
    let bundle = typed(&provider).and_then(|p| bundle::bundle_version(stores, p));
    Snapshot {
        resolution,
        provider,
        account,
        secrets,
        bundle,
    }
}

fn named<K>(objects: &[Arc<Guarded<K>>], name: &str) -> Option<Arc<Guarded<K>>>
where
    Guarded<K>: ResourceExt,
{
    objects.iter().find(|g| g.name_any() == name).cloned()
}

fn typed<K>(guard: &Option<Arc<Guarded<K>>>) -> Option<&K> {
    guard.as_ref().and_then(|g| g.0.as_ref().ok())
}

/// Validate what was read, purely: resolution, ready gates, endpoints.
pub fn validate(
    b: &MailboxBinding,
    snap: Snapshot,
    config: &OperatorConfig,
) -> std::result::Result<Checked, Box<Outcome>> {
    let resolution = snap
        .resolution
        .map_err(|e| Box::new(Outcome::Unresolved(e)))?;
    let (provider, account) = (typed(&snap.provider), typed(&snap.account));
    if verdict_pending(provider, account) {
        return Err(Box::new(Outcome::Pending));
    }
    let unverified = |error| {
        Box::new(Outcome::Unverified {
            resolution: resolution.clone(),
            error,
        })
    };
    let provider = ready_gate(&resolution, provider, account).map_err(unverified)?;
    let endpoints =
        provider_endpoints(&provider.spec, config.allow_insecure_endpoints).map_err(unverified)?;
    let base = probe_inputs_digest(&[
        b.uid().as_deref().unwrap_or_default(),
        &b.metadata.generation.unwrap_or(0).to_string(),
        &format!("{resolution:?}"),
        &spec_digest(&provider.spec),
        &account.map(|a| spec_digest(&a.spec)).unwrap_or_default(),
    ]);
    // The version of the provider's CA bundle object: a new bundle is a new input.
    let base = bundle::fold_version(base, snap.bundle.as_deref());
    let Some(provider_object) = snap.provider.clone() else {
        return Err(unverified(Error::Spec {
            reason: Reason::ProviderNotFound,
            message: format!("EmailProvider {:?} does not exist", resolution.provider),
        }));
    };
    Ok(Checked {
        provider: provider_object,
        account: snap.account.clone(),
        resolution,
        endpoints,
        stable: stable_digest(base, &snap.secrets),
        secrets: snap.secrets,
        base,
    })
}

/// Whether `Ready` is missing or about an older generation.
fn no_verdict(meta: &ObjectMeta, conds: Option<&[Condition]>) -> bool {
    conds
        .and_then(|c| conditions::find(c, conditions::READY))
        .is_none_or(|ready| ready.generation() != meta.generation)
}

/// Whether the provider or service account the binding resolved to has not yet judged
/// its current generation (a malformed one never will: that is reported, not waited on).
fn verdict_pending(
    provider: Option<&EmailProvider>,
    account: Option<&ExchangeServiceAccount>,
) -> bool {
    let provider_pending = provider.is_some_and(|p| {
        no_verdict(
            &p.metadata,
            p.status.as_ref().map(|s| s.conditions.as_slice()),
        )
    });
    let account_pending = account.is_some_and(|a| {
        no_verdict(
            &a.metadata,
            a.status.as_ref().map(|s| s.conditions.as_slice()),
        )
    });
    provider_pending || account_pending
}

/// The provider (and service account) must be Ready before the mailbox is verified.
fn ready_gate<'a>(
    r: &Resolution,
    provider: Option<&'a EmailProvider>,
    account: Option<&ExchangeServiceAccount>,
) -> Result<&'a EmailProvider> {
    let provider = provider.ok_or_else(|| Error::Spec {
        reason: Reason::ProviderNotFound,
        message: format!("EmailProvider {:?} does not exist", r.provider),
    })?;
    let ready = |conds: Option<&[Condition]>| conds.is_some_and(conditions::is_ready);
    if !ready(provider.status.as_ref().map(|s| s.conditions.as_slice())) {
        return Err(Error::Waiting {
            reason: Reason::ProviderNotReady,
            message: format!(
                "EmailProvider {:?} is not Ready; waiting for it",
                r.provider
            ),
        });
    }
    if let Some(name) = &r.service_account {
        let conds = account.and_then(|a| a.status.as_ref().map(|s| s.conditions.as_slice()));
        if !ready(conds) {
            return Err(Error::Waiting {
                reason: Reason::ServiceAccountNotReady,
                message: format!("ExchangeServiceAccount {name:?} is not Ready; waiting for it"),
            });
        }
    }
    Ok(provider)
}
