//! The ExchangeServiceAccount reconciler: validate its provider and credentials, check
//! that they authenticate (or remember that they did), and build the status with the
//! count of mailboxes using it. Its deletion waits for them (see [`super::usage`]).

use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::context::Context;
use super::probe_cache::{Inputs, probe_inputs_digest, spec_digest};
use super::reconciled::{HeldWhileUsed, Reconciled, Step, reverify_later};
use super::refusals;
use super::restart::{self, Recorded, stable_digest};
use super::{bundle, credentials, status_writer};
use crate::api::conditions::{self, AUTHENTICATED, Desired, Reason};
use crate::api::{ExchangeServiceAccount, ExchangeServiceAccountStatus};
use crate::cache::Stores;
use crate::exchange::lockout::login_identity;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;

use crate::api::EmailProvider;
use crate::cache::index::{secret_of_provider, secrets_of_account};
use crate::cache::usage::{self, Users};
use crate::cache::{Guarded, SecretKey, object_key};
use crate::endpoints::provider_endpoints;
use crate::exchange::{Service, Trust};
use crate::resolve::{check_account_may_attach, check_service_account_fits};
use crate::{Error, Result};

impl Reconciled for ExchangeServiceAccount {
    type Status = ExchangeServiceAccountStatus;

    fn current_status(&self) -> Option<&ExchangeServiceAccountStatus> {
        self.status.as_ref()
    }

    fn apply<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Step<ExchangeServiceAccountStatus>> {
        Box::pin(apply(self, ctx))
    }
}

impl HeldWhileUsed for ExchangeServiceAccount {
    fn users(stores: &Stores, name: &str) -> Users {
        usage::of_account(stores, name)
    }

    fn users_by_quorum_read<'a>(
        client: &'a kube::Client,
        name: &'a str,
        deleting: Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    ) -> BoxFuture<'a, crate::Result<Users>> {
        super::deletion::account_users_by_quorum_read(client, name, deleting)
    }

    fn forget(&self, ctx: &Context) {
        ctx.account_probes.forget(&object_key(self));
    }
}

/// What an account's authentication check starts from.
struct Validated {
    provider: String,
    provider_spec: String,
    service: Service,
    creds: credentials::Resolved,
}

/// Validate from the caches, no API call: the provider, that the account may use it and
/// fits its method, the endpoints and the credentials.
fn validate(
    a: &ExchangeServiceAccount,
    provider: Option<Arc<Guarded<EmailProvider>>>,
    (secrets, trust): (&BTreeMap<SecretKey, Arc<Secret>>, Result<Trust>),
    allow_insecure: bool,
) -> Result<Validated> {
    let provider_name = &a.spec.provider_ref.name;
    let guard = provider.ok_or_else(|| Error::Spec {
        reason: Reason::ProviderNotFound,
        message: format!(
            "EmailProvider {provider_name:?} named in spec.providerRef does not exist"
        ),
    })?;
    let provider = guard.0.as_ref().map_err(|e| Error::Spec {
        reason: Reason::ProviderNotFound,
        message: format!(
            "EmailProvider {provider_name:?} cannot be read: {}",
            e.error
        ),
    })?;
    check_account_may_attach(a, provider)?;
    check_service_account_fits(&a.spec, &provider.spec)?;
    let endpoints = provider_endpoints(&provider.spec, allow_insecure)?;
    Ok(Validated {
        provider: provider_name.to_string(),
        provider_spec: spec_digest(&provider.spec),
        service: credentials::service(provider, &endpoints, trust)?,
        creds: credentials::service_account(a, provider, &endpoints, secrets)?,
    })
}

/// The digest of what an account's verdict depends on but the Secrets' values: its uid
/// and spec, its provider's spec, the versions of the Secrets read (cache metadata).
fn stable_inputs(
    a: &ExchangeServiceAccount,
    provider: Option<&EmailProvider>,
    secrets: &[(SecretKey, Option<String>)],
    allow_insecure: bool,
) -> u64 {
    let base = probe_inputs_digest(&[
        a.uid().as_deref().unwrap_or_default(),
        &spec_digest(&a.spec),
        &provider.map(|p| spec_digest(&p.spec)).unwrap_or_default(),
        &allow_insecure.to_string(),
    ]);
    stable_digest(base, secrets)
}

/// A verdict known without reading a Secret: remembered for these inputs, or what the
/// status records for them (a restart, a new leader).
fn known(a: &ExchangeServiceAccount, stable: u64, ctx: &Context) -> Option<Result<()>> {
    let (key, cache) = (object_key(a), &ctx.account_probes);
    if cache.get(&key, stable, None).is_some() {
        return Some(Ok(()));
    }
    if let Some(refused) = cache.refusal(&key, stable, None) {
        return Some(Err(refused.into()));
    }
    let recorded = a.status.as_ref().map(|s| Recorded {
        observed: s.observed_generation,
        inputs: s.verified_inputs.as_ref(),
        conditions: &s.conditions,
    });
    let at = (a.metadata.generation, stable);
    restart::trust_verdict(&key, at, recorded, cache, ()).map(|v| v.map_err(Error::from))
}

/// Authenticate, or restate what was remembered while the values read are unchanged (a
/// success, or the refusal of the credentials); with the note of a login pause this
/// probe was the first to meet.
async fn probe(
    a: &ExchangeServiceAccount,
    v: Validated,
    stable: u64,
    ctx: &Context,
) -> (Result<()>, Option<String>) {
    let key = object_key(a);
    let values = probe_inputs_digest(&[
        &v.provider_spec,
        &v.creds.versions.join(","),
        &v.service.trust().digest(),
    ]);
    let inputs = Inputs {
        stable,
        values: Some(values),
    };
    if ctx
        .account_probes
        .get(&key, stable, inputs.values)
        .is_some()
    {
        return (Ok(()), None);
    }
    if let Some(refused) = ctx.account_probes.refusal(&key, stable, inputs.values) {
        return (Err(refused.into()), None);
    }
    let result = ctx
        .backend
        .authenticate(&v.provider, &v.service, &v.creds.credential)
        .await;
    let refused = result.as_ref().err();
    let ok = result.is_ok().then_some(());
    if ok.is_some() {
        let now = super::clock::now().as_second();
        ctx.metrics.verified("ExchangeServiceAccount", now);
    }
    refusals::remember(&ctx.account_probes, &key, inputs, ok, refused);
    let identity = login_identity(&v.creds.credential, "");
    let notice = refusals::pause_notice(ctx.backend.as_ref(), &identity, refused);
    (result.map_err(Error::from), notice)
}

/// Read the Secrets, validate and authenticate.
async fn verify(
    a: &ExchangeServiceAccount,
    provider: Option<Arc<Guarded<EmailProvider>>>,
    (keys, stable): (Vec<SecretKey>, u64),
    ctx: &Context,
) -> Result<(Result<()>, Option<String>)> {
    let secrets = ctx.stores.read_secrets(&ctx.client, keys).await?;
    let typed = provider.as_ref().and_then(|g| g.0.as_ref().ok());
    let trust = bundle::read_trust(&ctx.stores, &ctx.client, typed).await?;
    let read = (&secrets, trust);
    Ok(
        match validate(a, provider, read, ctx.config.allow_insecure_endpoints) {
            Ok(v) => probe(a, v, stable, ctx).await,
            Err(e) => (Err(e), None),
        },
    )
}

async fn apply(a: &ExchangeServiceAccount, ctx: &Context) -> Step<ExchangeServiceAccountStatus> {
    // Read once: the provider, and the Secrets the account (or, falling back on it, the
    // provider's app) reads.
    let provider = ctx.stores.provider(&a.spec.provider_ref.name);
    let typed = provider.as_ref().and_then(|g| g.0.as_ref().ok());
    let keys: Vec<SecretKey> = secrets_of_account(a)
        .into_iter()
        .chain(typed.and_then(secret_of_provider))
        .collect();
    let versions = ctx.stores.secret_versions(keys.clone());
    let stable = stable_inputs(a, typed, &versions, ctx.config.allow_insecure_endpoints);
    let stable = bundle::with_bundle_version(stable, &ctx.stores, typed);
    let (checked, login_paused) = match known(a, stable, ctx) {
        Some(verdict) => (verdict, None),
        None => match verify(a, provider.clone(), (keys, stable), ctx).await {
            Ok(verified) => verified,
            Err(e) => return Step::done(Err(e)),
        },
    };
    let users = usage::of_account(&ctx.stores, &a.name_any());
    let inputs = is_verdict(&checked).then_some(stable);
    let new = build_status(a, (&checked, inputs), &users, super::clock::now());
    Step {
        login_paused,
        ..Step::write(new, checked.map(|()| reverify_later()))
    }
}

/// Whether a check is a verdict worth trusting after a restart: the credentials worked,
/// or were refused (not to be sent again).
fn is_verdict(checked: &Result<()>) -> bool {
    match checked {
        Ok(()) => true,
        Err(e) => e.reason() == Some(Reason::InvalidCredentials),
    }
}

/// Pure: the complete status of a service account from its check and its users.
///
/// `inputs`: the digest of what a verdict was reached with, recorded for a restart.
pub fn build_status(
    a: &ExchangeServiceAccount,
    (checked, inputs): (&Result<()>, Option<u64>),
    users: &Users,
    now: Timestamp,
) -> ExchangeServiceAccountStatus {
    let previous = a.status.as_ref().map(|s| s.conditions.as_slice());
    ExchangeServiceAccountStatus {
        observed_generation: a.metadata.generation,
        conditions: conditions::materialize(
            previous.unwrap_or_default(),
            &conditions(checked),
            a.metadata.generation,
            now,
        ),
        mailbox_count: status_writer::count(users.bindings),
        verified_inputs: inputs.map(restart::recorded),
    }
}

/// Pure: conditions of a service account from the result of its check.
pub fn conditions(checked: &Result<()>) -> Vec<Desired> {
    let part = match checked {
        Ok(()) => Desired::ok(
            AUTHENTICATED,
            Reason::Verified,
            conditions::MSG_ACCOUNT_WORKS,
        ),
        Err(e) => Desired::fail(
            AUTHENTICATED,
            e.reason().unwrap_or(Reason::UnexpectedResponse),
            e.detail(),
        ),
    };
    conditions::with_ready(vec![part], conditions::MSG_ACCOUNT_WORKS)
}
