//! The ExchangeServiceAccount reconciler: validate its provider and credentials, check
//! that they authenticate (or remember that they did), and build the status with the
//! count of mailboxes using it. Its deletion waits for them (see [`super::usage`]).

use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::context::Context;
use super::probe_cache::{probe_inputs_digest, spec_digest};
use super::reconciled::{HeldWhileUsed, Reconciled, Step, reverify_later};
use super::refusals;
use super::{credentials, status_writer};
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
use crate::exchange::Service;
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
    secrets: &BTreeMap<SecretKey, Arc<Secret>>,
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
        provider: provider_name.clone(),
        provider_spec: spec_digest(&provider.spec),
        service: credentials::service(provider, &endpoints)?,
        creds: credentials::service_account(a, provider, &endpoints, secrets)?,
    })
}

/// Authenticate, or remember that it worked while the inputs are unchanged.
/// Authenticate, or restate what was remembered while the inputs are unchanged (a
/// success, or the refusal of the credentials); with the note of a login pause this
/// probe was the first to meet.
async fn probe(
    a: &ExchangeServiceAccount,
    v: Validated,
    ctx: &Context,
) -> (Result<()>, Option<String>) {
    let key = object_key(a);
    let inputs = probe_inputs_digest(&[
        a.uid().as_deref().unwrap_or_default(),
        &spec_digest(&a.spec),
        &v.provider_spec,
        &v.creds.versions.join(","),
        &v.service.trust().digest(),
    ]);
    if ctx.account_probes.get(&key, inputs, None).is_some() {
        return (Ok(()), None);
    }
    if let Some(refused) = ctx.account_probes.refusal(&key, inputs, None) {
        return (Err(refused.into()), None);
    }
    let result = ctx
        .backend
        .authenticate(&v.provider, &v.service, &v.creds.credential)
        .await;
    let refused = result.as_ref().err();
    refusals::remember(
        &ctx.account_probes,
        &key,
        inputs,
        result.is_ok().then_some(()),
        refused,
    );
    let identity = login_identity(&v.creds.credential, "");
    let notice = refusals::pause_notice(ctx.backend.as_ref(), &identity, refused);
    (result.map_err(Error::from), notice)
}

async fn apply(a: &ExchangeServiceAccount, ctx: &Context) -> Step<ExchangeServiceAccountStatus> {
    // Read once: the provider, and the Secrets the account (or, falling back on it, the
    // provider's app) reads.
    let provider = ctx.stores.provider(&a.spec.provider_ref.name);
    let typed = provider.as_ref().and_then(|g| g.0.as_ref().ok());
    let keys = secrets_of_account(a)
        .into_iter()
        .chain(typed.and_then(secret_of_provider));
    let secrets = match ctx.stores.read_secrets(&ctx.client, keys).await {
        Ok(secrets) => secrets,
        Err(e) => return Step::done(Err(e)),
    };
    let (checked, login_paused) =
        match validate(a, provider, &secrets, ctx.config.allow_insecure_endpoints) {
            Ok(v) => probe(a, v, ctx).await,
            Err(e) => (Err(e), None),
        };
    let users = usage::of_account(&ctx.stores, &a.name_any());
    let new = build_status(a, &checked, &users, Timestamp::now());
    Step {
        login_paused,
        ..Step::write(new, checked.map(|()| reverify_later()))
    }
}

/// Pure: the complete status of a service account from its check and its users.
pub fn build_status(
    a: &ExchangeServiceAccount,
    checked: &Result<()>,
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
    }
}

/// Pure: conditions of a service account from the result of its check.
pub fn conditions(checked: &Result<()>) -> Vec<Desired> {
    let part = match checked {
        Ok(()) => Desired::ok(
            AUTHENTICATED,
            Reason::Verified,
            "the service account's credentials work",
        ),
        Err(e) => Desired::fail(
            AUTHENTICATED,
            e.reason().unwrap_or(Reason::UnexpectedResponse),
            e.to_string(),
        ),
    };
    conditions::with_ready(vec![part], "the service account's credentials work")
}
