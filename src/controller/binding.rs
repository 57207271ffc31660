//! The MailboxBinding reconciler as one pipeline: [`dereference`] (the caches read once:
//! providers, accounts, the namespace's labels, the Secrets the result references) →
//! [`validate`] (pure: resolution, ready gates, endpoints, credentials) → [`probe`] (a
//! remembered answer or the backend) → [`write_back`] of a rotated refresh token → the
//! pure status ([`super::binding_status`]) → the driver's one status write. No finalizer:
//! a binding holds nothing, it is what others wait for.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};
use secrecy::SecretString;

use super::binding_status::{Outcome, Verified, build_status, outcome_error};
use super::context::Context;
use super::credentials;
use super::probe_cache::{Confirmed, ProbeCache, probe_inputs_digest, spec_digest};
use super::reconciled::{Reconciled, Step, reverify_later};
use super::refusals;
use super::write_back::{
    OwnSecret, SinkResult, TokenStore, adopt_rotated, write_back_refresh_token,
};
use crate::api::conditions::{self, Reason};
use crate::api::{
    AuthenticatedVia, EmailProvider, ExchangeServiceAccount, MailboxBinding, MailboxBindingStatus,
};
use crate::cache::index::{secret_of_binding, secret_of_provider, secrets_of_account};
use crate::cache::{Guarded, SecretKey, object_key, typed_objects, well_formed};
use crate::config::OperatorConfig;
use crate::endpoints::provider_endpoints;
use crate::exchange::lockout::login_identity;
use crate::exchange::{MailboxOutcome, MailboxProbe, Service};
use crate::resolve::{Catalog, Resolution, resolve_binding};
use crate::{Error, Result};

impl Reconciled for MailboxBinding {
    type Status = MailboxBindingStatus;

    fn current_status(&self) -> Option<&MailboxBindingStatus> {
        self.status.as_ref()
    }

    fn api(&self, client: Client) -> Api<Self> {
        Api::namespaced(client, &self.namespace().unwrap_or_default())
    }

    fn apply<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Step<MailboxBindingStatus>> {
        Box::pin(apply(self, ctx))
    }
}

async fn apply(b: &MailboxBinding, ctx: &Context) -> Step<MailboxBindingStatus> {
    let snapshot = match dereference(b, ctx).await {
        Ok(snapshot) => snapshot,
        Err(e) => return Step::done(Err(e)),
    };
    let outcome = match validate(b, snapshot, &ctx.config) {
        Ok(v) => {
            let probed = probe(b, v, ctx).await;
            write_back(probed, ctx).await
        }
        Err(outcome) => *outcome,
    };
    if let Outcome::Pending = outcome {
        return Step::done(Ok(Action::await_change()));
    }
    let new = build_status(b, &outcome, Timestamp::now());
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
/// to, and the Secrets those and the binding reference.
pub struct Snapshot {
    resolution: Result<Resolution>,
    provider: Option<Arc<Guarded<EmailProvider>>>,
    account: Option<Arc<Guarded<ExchangeServiceAccount>>>,
    secrets: BTreeMap<SecretKey, Arc<Secret>>,
}

/// Read the caches for a binding: the one place its reconcile touches them (with a GET
/// for a referenced Secret's data not yet held).
pub async fn dereference(b: &MailboxBinding, ctx: &Context) -> Result<Snapshot> {
    let (stores, allow_insecure) = (&ctx.stores, ctx.config.allow_insecure_endpoints);
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
    let referenced = secret_of_binding(b)
        .into_iter()
        .chain(typed(&provider).and_then(secret_of_provider))
        .chain(typed(&account).map(secrets_of_account).unwrap_or_default());
    let secrets = stores.read_secrets(&ctx.client, referenced).await?;
    Ok(Snapshot {
        resolution,
        provider,
        account,
        secrets,
    })
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

/// What a binding's probe starts from.
pub struct Validated {
    resolution: Resolution,
    service: Service,
    /// The provider's spec, digested: its generation would also move when its deletion
    /// begins, which changes nothing a probe depends on.
    provider_spec: String,
    creds: credentials::Resolved,
    account_spec: String,
    own: Option<OwnSecret>,
}

/// Validate what was read, purely: resolution, ready gates, endpoints, credentials.
pub fn validate(
    b: &MailboxBinding,
    snap: Snapshot,
    config: &OperatorConfig,
) -> std::result::Result<Validated, Box<Outcome>> {
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
    let (creds, account_spec) = match (&resolution.service_account, account) {
        (Some(_), Some(account)) => (
            credentials::service_account(account, provider, &endpoints, &snap.secrets),
            spec_digest(&account.spec),
        ),
        (Some(name), None) => (
            Err(Error::Spec {
                reason: Reason::ServiceAccountNotFound,
                message: format!("ExchangeServiceAccount {name:?} does not exist"),
            }),
            String::new(),
        ),
        (None, _) => (
            own_credentials(b, &resolution, provider, &endpoints, &snap.secrets),
            String::new(),
        ),
    };
    let creds = creds.map_err(unverified)?;
    let own = secret_of_binding(b)
        .and_then(|key| snap.secrets.get(&key))
        .and_then(|secret| OwnSecret::of(secret, &creds));
    Ok(Validated {
        service: credentials::service(provider, &endpoints).map_err(unverified)?,
        provider_spec: spec_digest(&provider.spec),
        resolution,
        creds,
        account_spec,
        own,
    })
}

fn own_credentials(
    b: &MailboxBinding,
    r: &Resolution,
    provider: &EmailProvider,
    endpoints: &crate::endpoints::ProviderEndpoints,
    secrets: &BTreeMap<SecretKey, Arc<Secret>>,
) -> Result<credentials::Resolved> {
    let Some(secret) = &b.spec.authentication.credentials_secret_ref else {
        return Err(Error::Spec {
            reason: Reason::SecretNotFound,
            message: "spec.authentication names neither serviceAccountRef nor credentialsSecretRef"
                .into(),
        });
    };
    let ns = b.namespace().unwrap_or_default();
    credentials::binding_own(&ns, &secret.name, &r.login, provider, endpoints, secrets)
}

/// Whether `Ready` is missing or about an older generation.
fn no_verdict(meta: &ObjectMeta, conds: Option<&[Condition]>) -> bool {
    conds
        .and_then(|c| conditions::find(c, conditions::READY))
        .is_none_or(|ready| ready.observed_generation != meta.generation)
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

/// What the probe came to, and the refresh token to store in the binding's own Secret.
pub struct Probed {
    resolution: Resolution,
    verified: Verified,
    own: Option<OwnSecret>,
    to_write: Option<SecretString>,
    /// A rotated token was stored as it arrived, and how that went.
    stored: Option<Result<()>>,
    login_paused: Option<String>,
}

/// A remembered answer while the inputs are unchanged, else the backend. A refresh token
/// the authority rotated (now or earlier, and not written yet) is held for [`write_back`].
pub async fn probe(b: &MailboxBinding, mut v: Validated, ctx: &Context) -> Probed {
    let unwritten = v
        .own
        .as_mut()
        .and_then(|own| adopt_rotated(&ctx.rotated_tokens, own, &mut v.creds))
        .filter(|_| ctx.config.secret_write_back);
    let key = object_key(b);
    let inputs = probe_inputs(b, &v);
    let probed = |verified, stored: Option<Result<()>>, login_paused| Probed {
        resolution: v.resolution.clone(),
        verified,
        own: v.own.clone(),
        // A token stored as it arrived supersedes one held from before.
        to_write: unwritten.clone().filter(|_| stored.is_none()),
        stored,
        login_paused,
    };
    if let Some(remembered) = remembered(&ctx.mailbox_probes, &key, inputs) {
        return probed(remembered, None, None);
    }
    let sunk: SinkResult = Arc::default();
    let store = TokenStore::of(ctx);
    let r = &v.resolution;
    let identity = login_identity(&v.creds.credential, &r.login);
    let probe = MailboxProbe {
        provider: r.provider.clone(),
        email: b.spec.email_address.clone(),
        login: r.login.clone(),
        service: v.service.clone(),
        credential: v.creds.credential.clone(),
        via_service_account: r.via == AuthenticatedVia::ServiceAccount,
        check_calendar: r.settings.calendar,
        check_send: r.settings.sending,
        store_rotated: v.own.clone().map(|own| store.sink(own, sunk.clone())),
    };
    let mut outcome = ctx.backend.verify_mailbox(&probe).await;
    outcome.rotated_refresh_token = None;
    let stored = sunk.lock().unwrap_or_else(|e| e.into_inner()).take();
    let at = Timestamp::now();
    let failure = failure_of(&outcome);
    refusals::remember(
        &ctx.mailbox_probes,
        &key,
        inputs,
        Confirmed::of(&outcome, at),
        failure,
    );
    let login_paused = refusals::pause_notice(ctx.backend.as_ref(), &identity, failure);
    probed(Verified { outcome, at }, stored, login_paused)
}

/// What a binding's probe depends on, digested.
fn probe_inputs(b: &MailboxBinding, v: &Validated) -> u64 {
    probe_inputs_digest(&[
        b.uid().as_deref().unwrap_or_default(),
        &b.metadata.generation.unwrap_or(0).to_string(),
        &format!("{:?}", v.resolution),
        &v.provider_spec,
        &v.account_spec,
        &v.creds.versions.join(","),
        &v.service.trust().digest(),
    ])
}

/// A success or a refusal remembered for these inputs: nothing is sent.
fn remembered(cache: &ProbeCache<Confirmed>, key: &str, inputs: u64) -> Option<Verified> {
    if let Some(confirmed) = cache.get(key, inputs) {
        return Some(Verified {
            outcome: confirmed.outcome(),
            at: confirmed.at,
        });
    }
    let refused = cache.refusal(key, inputs)?;
    Some(Verified {
        outcome: MailboxOutcome {
            mailbox: Err(refused),
            calendar: None,
            rotated_refresh_token: None,
        },
        at: Timestamp::now(),
    })
}

/// The failure of a verification: its mailbox's, else its calendar's.
fn failure_of(o: &MailboxOutcome) -> Option<&crate::exchange::Failure> {
    o.mailbox
        .as_ref()
        .err()
        .or(o.calendar.as_ref().and_then(|c| c.as_ref().err()))
}

/// Store a rotated refresh token in the binding's own Secret; a failure is reported (the
/// token stays held and this is tried again).
pub async fn write_back(p: Probed, ctx: &Context) -> Outcome {
    let write_back_failed = match (&p.to_write, &p.own, p.stored) {
        (_, _, Some(stored)) => stored.err(),
        (Some(token), Some(own), None) => write_back_refresh_token(ctx, own, token).await.err(),
        _ => None,
    };
    Outcome::Verified {
        resolution: p.resolution,
        verified: p.verified,
        write_back_failed,
        login_paused: p.login_paused,
    }
}
