//! The EmailProvider reconciler: validate the endpoints and app credentials, check them
//! against the backend (or a remembered answer), and build the status with the counts of
//! what uses the provider. Its deletion waits for those users (see [`super::usage`]).

use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::context::Context;
use super::probe_cache::{Inputs, probe_inputs_digest, spec_digest};
use super::reconciled::{HeldWhileUsed, Reconciled, Step, reverify_later};
use super::refusals;
use super::restart::{self, Recorded, recorded as recorded_inputs, stable_digest};
use super::{bundle, credentials, status_writer};
use crate::Error;
use crate::api::conditions::{self, AUTHENTICATED, Desired, REACHABLE, Reason};
use crate::api::{EmailProvider, EmailProviderStatus};
use crate::cache::Stores;
use crate::exchange::lockout::login_identity;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;

use crate::cache::index::secret_of_provider;
use crate::cache::usage::{self, Users};
use crate::cache::{SecretKey, object_key};
use crate::endpoints::{ProviderEndpoints, provider_endpoints};
use crate::exchange::{Failure, ProviderOutcome, ProviderProbe, Service, Trust};

impl Reconciled for EmailProvider {
    type Status = EmailProviderStatus;

    fn current_status(&self) -> Option<&EmailProviderStatus> {
        self.status.as_ref()
    }

    fn apply<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Step<EmailProviderStatus>> {
        Box::pin(apply(self, ctx))
    }
}

impl HeldWhileUsed for EmailProvider {
    fn users(stores: &Stores, name: &str) -> Users {
        usage::of_provider(stores, name)
    }

    fn users_by_quorum_read<'a>(
        client: &'a kube::Client,
        name: &'a str,
        deleting: Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    ) -> BoxFuture<'a, crate::Result<Users>> {
        super::deletion::provider_users_by_quorum_read(client, name, deleting)
    }

    fn forget(&self, ctx: &Context) {
        ctx.provider_probes.forget(&object_key(self));
    }
}

/// What the provider's checks came to.
#[derive(Debug)]
pub enum Check {
    /// The endpoint overrides are refused (nothing was sent).
    InvalidEndpoints(Error),
    /// The app credentials cannot be read (nothing was sent).
    InvalidApp {
        /// The effective service address.
        address: String,
        /// Why.
        error: Error,
    },
    /// The backend answered (or a remembered answer).
    Probed {
        /// The effective service address.
        address: String,
        /// The answer.
        outcome: ProviderOutcome,
        /// The digest of the inputs it was given for ([`stable_inputs`]), recorded in the
        /// status with a verdict.
        inputs: u64,
    },
}

/// What a provider's probe starts from.
struct Validated {
    endpoints: ProviderEndpoints,
    service: Service,
    app: Option<credentials::Resolved>,
}

/// Validate what was read, no API call: endpoints, trust and app credentials.
fn validate(
    p: &EmailProvider,
    secrets: &BTreeMap<SecretKey, Arc<Secret>>,
    trust: crate::Result<Trust>,
    allow_insecure: bool,
) -> std::result::Result<Validated, Box<Check>> {
    let invalid = |e| Box::new(Check::InvalidEndpoints(e));
    let endpoints = provider_endpoints(&p.spec, allow_insecure).map_err(invalid)?;
    let service = credentials::service(p, &endpoints, trust).map_err(invalid)?;
    match credentials::provider_app(p, &endpoints, secrets) {
        Ok(app) => Ok(Validated {
            endpoints,
            service,
            app,
        }),
        Err(error) => Err(Box::new(Check::InvalidApp {
            address: endpoints.service_address,
            error,
        })),
    }
}

/// The digest of what a provider's verdict depends on but the Secrets' values: its uid,
/// its spec, the versions of the Secrets it reads and of its CA bundle object (from the
/// cache's metadata).
fn stable_inputs(p: &EmailProvider, stores: &Stores) -> u64 {
    let base = probe_inputs_digest(&[
        p.uid().as_deref().unwrap_or_default(),
        &spec_digest(&p.spec),
    ]);
    let stable = stable_digest(base, &stores.secret_versions(secret_of_provider(p)));
    bundle::with_bundle_version(stable, stores, Some(p))
}

/// A verdict known without reading a Secret: remembered for these inputs, or what the
/// status records for them (a restart, a new leader).
fn known(p: &EmailProvider, stable: u64, ctx: &Context) -> Option<Check> {
    let endpoints = provider_endpoints(&p.spec, ctx.config.allow_insecure_endpoints).ok()?;
    let (key, cache) = (object_key(p), &ctx.provider_probes);
    let recorded = p.status.as_ref().map(|s| Recorded {
        observed: s.observed_generation,
        inputs: s.verified_inputs.as_ref(),
        conditions: &s.conditions,
    });
    let outcome = cache
        .get(&key, stable, None)
        .or_else(|| cache.refusal(&key, stable, None).map(refused))
        .or_else(|| {
            let at = (p.metadata.generation, stable);
            let verdict = restart::trust_verdict(&key, at, recorded, cache, restated(p))?;
            Some(verdict.unwrap_or_else(refused))
        })?;
    Some(Check::Probed {
        address: endpoints.service_address,
        outcome,
        inputs: stable,
    })
}

/// The outcome a `Ready` status stands for.
fn restated(p: &EmailProvider) -> ProviderOutcome {
    let authenticated = p
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, AUTHENTICATED));
    let basic = authenticated.is_some_and(|c| c.reason == Reason::NotRequested.as_str());
    ProviderOutcome {
        reachable: Ok(()),
        authenticated: (!basic).then_some(Ok(())),
    }
}

fn refused(failure: Failure) -> ProviderOutcome {
    ProviderOutcome {
        reachable: Ok(()),
        authenticated: Some(Err(failure)),
    }
}

/// The backend's answer, or the remembered one while the values read are unchanged (a
/// success, or the app credentials' refusal); with the note of a login pause this probe
/// was the first to meet.
async fn probe(
    p: &EmailProvider,
    v: Validated,
    stable: u64,
    ctx: &Context,
) -> (Check, Option<String>) {
    let versions = v.app.as_ref().map(|a| a.versions.join(","));
    let values = probe_inputs_digest(&[&versions.unwrap_or_default(), &v.service.trust().digest()]);
    let inputs = Inputs {
        stable,
        values: Some(values),
    };
    let key = object_key(p);
    let probed = |outcome| Check::Probed {
        address: v.endpoints.service_address.clone(),
        outcome,
        inputs: stable,
    };
    let cache = &ctx.provider_probes;
    let remembered = cache
        .get(&key, stable, inputs.values)
        .or_else(|| cache.refusal(&key, stable, inputs.values).map(refused));
    if let Some(o) = remembered {
        return (probed(o), None);
    }
    let credential = v.app.as_ref().map(|a| a.credential.clone());
    let identity = credential.as_ref().map(|c| login_identity(c, ""));
    let probe = ProviderProbe {
        provider: p.name_any(),
        service: v.service.clone(),
        credential,
    };
    let o = ctx.backend.check_provider(&probe).await;
    let refused = o.authenticated.as_ref().and_then(|a| a.as_ref().err());
    let ok = failure(&o).is_none();
    if ok {
        ctx.metrics
            .verified("EmailProvider", super::clock::now().as_second());
    }
    refusals::remember(cache, &key, inputs, ok.then(|| o.clone()), refused);
    let notice = identity.and_then(|id| refusals::pause_notice(ctx.backend.as_ref(), &id, refused));
    (probed(o), notice)
}

/// Read the provider's Secrets, validate and probe.
async fn verify(
    p: &EmailProvider,
    stable: u64,
    ctx: &Context,
) -> crate::Result<(Check, Option<String>)> {
    let secrets = ctx
        .stores
        .read_secrets(&ctx.client, secret_of_provider(p))
        .await?;
    let trust = bundle::read_trust(&ctx.stores, &ctx.client, Some(p)).await?;
    Ok(
        match validate(p, &secrets, trust, ctx.config.allow_insecure_endpoints) {
            Ok(v) => probe(p, v, stable, ctx).await,
            Err(check) => (*check, None),
        },
    )
}

async fn apply(p: &EmailProvider, ctx: &Context) -> Step<EmailProviderStatus> {
    let stable = stable_inputs(p, &ctx.stores);
    let (check, login_paused) = match known(p, stable, ctx) {
        Some(check) => (check, None),
        None => match verify(p, stable, ctx).await {
            Ok(verified) => verified,
            Err(e) => return Step::done(Err(e)),
        },
    };
    let users = usage::of_provider(&ctx.stores, &p.name_any());
    let new = build_status(p, &check, &users, super::clock::now());
    let result = match check {
        Check::InvalidEndpoints(e) | Check::InvalidApp { error: e, .. } => Err(e),
        Check::Probed { outcome, .. } => match failure(&outcome) {
            Some(f) => Err(f.clone().into()),
            None => Ok(reverify_later()),
        },
    };
    Step {
        login_paused,
        ..Step::write(new, result)
    }
}

/// The first failure of a provider check, if any.
fn failure(o: &ProviderOutcome) -> Option<&crate::exchange::Failure> {
    o.reachable
        .as_ref()
        .err()
        .or(o.authenticated.as_ref().and_then(|a| a.as_ref().err()))
}

/// Pure: the complete status of a provider from its check and its users.
pub fn build_status(
    p: &EmailProvider,
    check: &Check,
    users: &Users,
    now: Timestamp,
) -> EmailProviderStatus {
    let previous = p.status.as_ref().map(|s| s.conditions.as_slice());
    let address = match check {
        Check::InvalidEndpoints(_) => None,
        Check::InvalidApp { address, .. } | Check::Probed { address, .. } => Some(address.clone()),
    };
    EmailProviderStatus {
        observed_generation: p.metadata.generation,
        conditions: conditions::materialize(
            previous.unwrap_or_default(),
            &conditions(check),
            p.metadata.generation,
            now,
        ),
        service_address: address,
        mailbox_count: status_writer::count(users.bindings),
        service_account_count: status_writer::count(users.accounts),
        verified_inputs: verdict_inputs(check).map(recorded_inputs),
    }
}

/// The inputs of a verdict worth trusting after a restart: the backend confirmed the
/// provider, or refused its app credentials (not to be sent again).
fn verdict_inputs(check: &Check) -> Option<u64> {
    let Check::Probed {
        outcome, inputs, ..
    } = check
    else {
        return None;
    };
    match failure(outcome) {
        None => Some(*inputs),
        Some(f) if f.reason == Reason::InvalidCredentials => Some(*inputs),
        Some(_) => None,
    }
}

/// Pure: conditions of a provider from its check.
pub fn conditions(check: &Check) -> Vec<Desired> {
    let parts = match check {
        Check::InvalidEndpoints(e) => {
            let reason = e.reason().unwrap_or(Reason::InsecureEndpoint);
            vec![
                Desired::fail(REACHABLE, reason, e.detail()),
                Desired::fail(AUTHENTICATED, reason, "endpoints are not usable"),
            ]
        }
        Check::InvalidApp { error, .. } => vec![Desired::fail(
            AUTHENTICATED,
            error.reason().unwrap_or(Reason::SecretNotFound),
            error.detail(),
        )],
        Check::Probed { outcome, .. } => vec![reachable(outcome), authenticated(outcome)],
    };
    conditions::with_ready(parts, conditions::MSG_PROVIDER_WORKS)
}

fn reachable(o: &ProviderOutcome) -> Desired {
    match &o.reachable {
        Ok(()) => Desired::ok(
            REACHABLE,
            Reason::Verified,
            conditions::MSG_ENDPOINT_ANSWERS,
        ),
        Err(f) => Desired::fail(REACHABLE, f.reason, f.message.clone()),
    }
}

fn authenticated(o: &ProviderOutcome) -> Desired {
    match &o.authenticated {
        Some(Ok(())) => Desired::ok(
            AUTHENTICATED,
            Reason::Verified,
            conditions::MSG_TOKEN_OBTAINED,
        ),
        Some(Err(f)) => Desired::fail(AUTHENTICATED, f.reason, f.message.clone()),
        None => Desired::ok(
            AUTHENTICATED,
            Reason::NotRequested,
            conditions::MSG_NO_APP_TOKEN,
        ),
    }
}
