//! The MailboxBinding reconciler as one pipeline: read the caches and validate
//! (resolution, ready gates, credentials; no API call) → one probe step (remembered
//! answer, backend, refresh-token write-back) → a pure [`build_status`] → the driver's one
//! status write. No finalizer: a binding holds nothing, it is what others wait for.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};

use super::context::{
    Context, Guarded, object_key, probe_inputs_digest, spec_digest, typed_objects, well_formed,
};
use super::driver::{self, Reconciled, Step};
use super::{BINDING_KIND, credentials, rotation, status};
use crate::api::conditions::{self, AUTHORIZED, CALENDAR_CONNECTED, Desired, Reason, VERIFIED};
use crate::api::{AuthenticatedVia, EmailProvider, MailboxBinding, MailboxBindingStatus};
use crate::endpoints::{ProviderEndpoints, provider_endpoints};
use crate::exchange::{MailboxOutcome, MailboxProbe, Service};
use crate::resolve::{Catalog, Resolution, resolve_binding};
use crate::{Error, Result};

/// A verification worth remembering: its outcome (without any token) and when it ran.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The outcome.
    pub outcome: MailboxOutcome,
    /// When Exchange answered.
    pub at: Timestamp,
}

/// What is remembered of a verification that succeeded: that it did, whether the
/// calendar was part of it, and when. A success needs no more to be stated again, and
/// 10,000 of these are held.
#[derive(Clone, Copy, Debug)]
pub struct Confirmed {
    calendar: bool,
    at: Timestamp,
}

impl Confirmed {
    /// What to remember of `v`: nothing unless Exchange confirmed the mailbox.
    fn of(v: &Verified) -> Option<Confirmed> {
        outcome_error(&v.outcome).is_none().then(|| Confirmed {
            calendar: v.outcome.calendar.is_some(),
            at: v.at,
        })
    }

    /// The verification it stands for.
    fn verified(self) -> Verified {
        Verified {
            outcome: MailboxOutcome {
                mailbox: Ok(()),
                calendar: self.calendar.then_some(Ok(())),
                rotated_refresh_token: None,
            },
            at: self.at,
        }
    }
}

/// Reconcile one MailboxBinding (entry point for the controller).
pub async fn reconcile(obj: Arc<Guarded<MailboxBinding>>, ctx: Arc<Context>) -> Result<Action> {
    driver::reconcile(obj, ctx).await
}

impl Reconciled for MailboxBinding {
    const KIND: &'static str = BINDING_KIND;
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

/// What a binding's reconcile came to.
#[derive(Debug)]
pub enum Outcome {
    /// Its provider or service account has no verdict on its current generation yet:
    /// nothing to say until it has (its status write triggers this binding again), so
    /// bindings created before their provider are written once, not twice.
    Pending,
    /// Resolution failed: nothing was sent to Exchange.
    Unresolved(Error),
    /// Resolved, but not verified: the provider or account is not Ready, a Secret is
    /// missing, the endpoints are refused.
    Unverified {
        /// The resolution.
        resolution: Resolution,
        /// Why it was not verified.
        error: Error,
    },
    /// Exchange answered (or a remembered answer).
    Verified {
        /// The resolution.
        resolution: Resolution,
        /// The answer.
        verified: Verified,
        /// A rotated refresh token could not be written back (it is held, and retried).
        write_back_failed: Option<Error>,
    },
}

/// What a binding's probe starts from.
struct Validated {
    resolution: Resolution,
    service: Service,
    /// The provider's spec, digested: its generation would also move when its deletion
    /// begins, which changes nothing a probe depends on.
    provider_spec: String,
    creds: credentials::Resolved,
    account_spec: String,
}

async fn apply(b: &MailboxBinding, ctx: &Context) -> Step<MailboxBindingStatus> {
    let outcome = match validate(b, ctx) {
        Ok(v) => probe(b, v, ctx).await,
        Err(outcome) => *outcome,
    };
    if let Outcome::Pending = outcome {
        return Step::done(Ok(Action::await_change()));
    }
    let new = build_status(b, &outcome, Timestamp::now());
    let result = match outcome {
        Outcome::Pending => Ok(Action::await_change()),
        Outcome::Unresolved(e) | Outcome::Unverified { error: e, .. } => Err(e),
        Outcome::Verified {
            verified,
            write_back_failed,
            ..
        } => match outcome_error(&verified.outcome).or(write_back_failed) {
            Some(e) => Err(e),
            None => Ok(driver::reverify_later()),
        },
    };
    Step::write(new, result)
}

/// Resolve against the caches: the provider, admission, login and service account.
fn resolve(b: &MailboxBinding, ctx: &Context) -> Result<Resolution> {
    let providers = well_formed(&ctx.stores.providers);
    let accounts = well_formed(&ctx.stores.service_accounts);
    let providers = typed_objects(&providers);
    let accounts = typed_objects(&accounts);
    let catalog = Catalog {
        providers: &providers,
        service_accounts: &accounts,
        allow_insecure_endpoints: ctx.config.allow_insecure_endpoints,
    };
    let ns = b.namespace().unwrap_or_default();
    let labels: Option<BTreeMap<String, String>> = ctx
        .stores
        .namespaces
        .get(&ObjectRef::<Namespace>::new(&ns))
        .map(|n| n.labels().clone());
    resolve_binding(b, catalog, labels.as_ref())
}

/// Validate from the caches, no API call: resolution, ready gates, endpoints, credentials.
fn validate(b: &MailboxBinding, ctx: &Context) -> std::result::Result<Validated, Box<Outcome>> {
    let resolution = resolve(b, ctx).map_err(|e| Box::new(Outcome::Unresolved(e)))?;
    if verdict_pending(&resolution, ctx) {
        return Err(Box::new(Outcome::Pending));
    }
    let unverified = |error| {
        Box::new(Outcome::Unverified {
            resolution: resolution.clone(),
            error,
        })
    };
    let provider = ready_gate(&resolution, ctx).map_err(unverified)?;
    let Ok(typed) = &provider.0 else {
        return Err(unverified(Error::Spec {
            reason: Reason::ProviderNotFound,
            message: format!("EmailProvider {:?} cannot be read", resolution.provider),
        }));
    };
    let endpoints =
        provider_endpoints(&typed.spec, ctx.config.allow_insecure_endpoints).map_err(unverified)?;
    let (creds, account_spec) =
        binding_credentials(b, &resolution, typed, &endpoints, ctx).map_err(unverified)?;
    Ok(Validated {
        service: credentials::service(typed, &endpoints).map_err(unverified)?,
        provider_spec: spec_digest(&typed.spec),
        resolution,
        creds,
        account_spec,
    })
}

fn is_ready_in<K>(guard: Option<Arc<Guarded<K>>>, status: fn(&K) -> Option<&[Condition]>) -> bool {
    guard
        .as_ref()
        .and_then(|g| g.0.as_ref().ok())
        .and_then(status)
        .is_some_and(conditions::is_ready)
}

/// Whether `Ready` is missing or about an older generation.
fn no_verdict(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    conds: Option<&[Condition]>,
) -> bool {
    conds
        .and_then(|c| conditions::find(c, conditions::READY))
        .is_none_or(|ready| ready.observed_generation != meta.generation)
}

/// Whether the provider or service account the binding resolved to has not yet judged
/// its current generation (a malformed one never will: that is reported, not waited on).
fn verdict_pending(r: &Resolution, ctx: &Context) -> bool {
    let provider = ctx.stores.providers.get(&ObjectRef::new(&r.provider));
    let provider_pending = provider
        .as_ref()
        .and_then(|g| g.0.as_ref().ok())
        .is_some_and(|p| {
            no_verdict(
                &p.metadata,
                p.status.as_ref().map(|s| s.conditions.as_slice()),
            )
        });
    let account_pending = r.service_account.as_ref().is_some_and(|name| {
        let account = ctx.stores.service_accounts.get(&ObjectRef::new(name));
        account
            .as_ref()
            .and_then(|g| g.0.as_ref().ok())
            .is_some_and(|a| {
                no_verdict(
                    &a.metadata,
                    a.status.as_ref().map(|s| s.conditions.as_slice()),
                )
            })
    });
    provider_pending || account_pending
}

/// The provider (and service account) must be Ready before the mailbox is verified.
fn ready_gate(r: &Resolution, ctx: &Context) -> Result<Arc<Guarded<EmailProvider>>> {
    let guard = ctx
        .stores
        .providers
        .get(&ObjectRef::new(&r.provider))
        .ok_or_else(|| Error::Spec {
            reason: Reason::ProviderNotFound,
            message: format!("EmailProvider {:?} does not exist", r.provider),
        })?;
    if !is_ready_in(Some(guard.clone()), |p: &EmailProvider| {
        p.status.as_ref().map(|s| s.conditions.as_slice())
    }) {
        return Err(Error::Waiting {
            reason: Reason::ProviderNotReady,
            message: format!(
                "EmailProvider {:?} is not Ready; waiting for it",
                r.provider
            ),
        });
    }
    if let Some(name) = &r.service_account {
        let account = ctx.stores.service_accounts.get(&ObjectRef::new(name));
        if !is_ready_in(account, |a: &crate::api::ExchangeServiceAccount| {
            a.status.as_ref().map(|s| s.conditions.as_slice())
        }) {
            return Err(Error::Waiting {
                reason: Reason::ServiceAccountNotReady,
                message: format!("ExchangeServiceAccount {name:?} is not Ready; waiting for it"),
            });
        }
    }
    Ok(guard)
}

/// The one probe step: a remembered answer while the inputs are unchanged, else the
/// backend; a refresh token the authority rotates is held and written back.
async fn probe(b: &MailboxBinding, mut v: Validated, ctx: &Context) -> Outcome {
    let mut own = rotation::own_refresh_secret(b, ctx, &v.creds);
    let mut write_back_failed = None;
    if let Some(own) = &mut own {
        write_back_failed = rotation::adopt_rotated(ctx, own, &mut v.creds).await.err();
    }
    let r = &v.resolution;
    let key = object_key(b);
    let inputs = probe_inputs_digest(&[
        b.uid().as_deref().unwrap_or_default(),
        &b.metadata.generation.unwrap_or(0).to_string(),
        &format!("{r:?}"),
        &v.provider_spec,
        &v.account_spec,
        &v.creds.versions.join(","),
        &v.service.trust().digest(),
    ]);
    let remembered = ctx
        .mailbox_probes
        .get(&key, inputs)
        .map(Confirmed::verified);
    let verified = match remembered {
        Some(verified) => verified,
        None => {
            let probe = MailboxProbe {
                provider: r.provider.clone(),
                email: b.spec.email_address.clone(),
                login: r.login.clone(),
                service: v.service,
                credential: v.creds.credential,
                via_service_account: r.via == AuthenticatedVia::ServiceAccount,
                check_calendar: r.settings.calendar,
                check_send: r.settings.sending,
            };
            let mut outcome = ctx.backend.verify_mailbox(&probe).await;
            if let (Some(token), Some(own)) = (outcome.rotated_refresh_token.take(), &own) {
                ctx.rotated_tokens
                    .rotated(&own.key, &own.base_version, token.clone());
                write_back_failed = rotation::write_back_refresh_token(ctx, own, &token)
                    .await
                    .err();
            }
            let verified = Verified {
                outcome,
                at: Timestamp::now(),
            };
            ctx.mailbox_probes
                .record(&key, inputs, Confirmed::of(&verified));
            verified
        }
    };
    Outcome::Verified {
        resolution: v.resolution,
        verified,
        write_back_failed,
    }
}

/// The credentials a binding acts with, and the digest of its service account's spec
/// (empty for its own credentials).
fn binding_credentials(
    b: &MailboxBinding,
    r: &Resolution,
    provider: &EmailProvider,
    endpoints: &ProviderEndpoints,
    ctx: &Context,
) -> Result<(credentials::Resolved, String)> {
    let ns = b.namespace().unwrap_or_default();
    match (
        &r.service_account,
        &b.spec.authentication.credentials_secret_ref,
    ) {
        (Some(name), _) => {
            let g = ctx.stores.service_accounts.get(&ObjectRef::new(name));
            let account =
                g.as_ref()
                    .and_then(|g| g.0.as_ref().ok())
                    .ok_or_else(|| Error::Spec {
                        reason: Reason::ServiceAccountNotFound,
                        message: format!("ExchangeServiceAccount {name:?} does not exist"),
                    })?;
            let creds =
                credentials::service_account(account, provider, endpoints, &ctx.stores.secrets)?;
            Ok((creds, spec_digest(&account.spec)))
        }
        (None, Some(secret)) => {
            let creds = credentials::binding_own(
                &ns,
                &secret.name,
                &r.login,
                provider,
                endpoints,
                &ctx.stores.secrets,
            )?;
            Ok((creds, String::new()))
        }
        (None, None) => Err(Error::Spec {
            reason: Reason::SecretNotFound,
            message: "spec.authentication names neither serviceAccountRef nor credentialsSecretRef"
                .into(),
        }),
    }
}

fn outcome_error(o: &MailboxOutcome) -> Option<Error> {
    let f = o
        .mailbox
        .as_ref()
        .err()
        .or(o.calendar.as_ref().and_then(|c| c.as_ref().err()))?;
    Some(f.clone().into())
}

fn reason_of(e: &Error) -> Reason {
    e.reason().unwrap_or(Reason::UnexpectedResponse)
}

/// Pure: the complete status of a binding from what its reconcile came to.
pub fn build_status(b: &MailboxBinding, outcome: &Outcome, now: Timestamp) -> MailboxBindingStatus {
    let old = b.status.as_ref();
    let (parts, resolution, confirmed_at) = match outcome {
        Outcome::Pending => (Vec::new(), None, None),
        Outcome::Unresolved(e) => (unresolved(e), None, None),
        Outcome::Unverified { resolution, error } => {
            (authorized_but(error), Some(resolution), None)
        }
        Outcome::Verified {
            resolution,
            verified,
            ..
        } => {
            // "When Exchange last confirmed the mailbox": a failure leaves it where it was.
            let confirmed = outcome_error(&verified.outcome)
                .is_none()
                .then_some(verified.at);
            (
                verified_conditions(resolution, &verified.outcome),
                Some(resolution),
                confirmed,
            )
        }
    };
    MailboxBindingStatus {
        observed_generation: b.metadata.generation,
        conditions: status::conditions(
            old.map(|s| s.conditions.as_slice()).unwrap_or_default(),
            &parts,
            b.metadata.generation,
            now,
        ),
        provider: resolution.map(|r| r.provider.clone()),
        login: resolution.map(|r| r.login.clone()),
        authenticated_via: resolution.map(|r| r.via),
        service_account: resolution.and_then(|r| r.service_account.clone()),
        endpoint: resolution.map(|r| r.endpoint.clone()),
        last_verified_time: confirmed_at
            .map(Time)
            .or_else(|| old.and_then(|s| s.last_verified_time.clone())),
    }
}

/// Pure: conditions when resolution failed (nothing was sent to Exchange).
pub fn unresolved(e: &Error) -> Vec<Desired> {
    status::with_ready(
        vec![Desired::fail(AUTHORIZED, reason_of(e), e.to_string())],
        "",
    )
}

fn authorized() -> Desired {
    Desired::ok(
        AUTHORIZED,
        Reason::Verified,
        "the namespace may use the provider and account",
    )
}

/// Pure: conditions when the binding is authorized but could not be verified before
/// calling Exchange (provider not ready, Secret missing) or the call failed outright.
pub fn authorized_but(e: &Error) -> Vec<Desired> {
    status::with_ready(
        vec![
            authorized(),
            Desired::fail(VERIFIED, reason_of(e), e.to_string()),
        ],
        "",
    )
}

/// Pure: conditions from a verification outcome.
pub fn verified_conditions(r: &Resolution, o: &MailboxOutcome) -> Vec<Desired> {
    let verified = match &o.mailbox {
        Ok(()) => Desired::ok(
            VERIFIED,
            Reason::Verified,
            format!("Exchange confirmed {} as {}", r.endpoint, r.login),
        ),
        Err(f) => Desired::fail(VERIFIED, f.reason, f.message.clone()),
    };
    let calendar = match (&o.calendar, r.settings.calendar) {
        (Some(Ok(())), _) => Desired::ok(
            CALENDAR_CONNECTED,
            Reason::Verified,
            "the calendar is connected",
        ),
        (Some(Err(f)), _) => Desired::fail(CALENDAR_CONNECTED, f.reason, f.message.clone()),
        (None, true) => Desired::fail(
            CALENDAR_CONNECTED,
            Reason::Reconciling,
            "the calendar was not checked yet",
        ),
        (None, false) => Desired::fail(
            CALENDAR_CONNECTED,
            Reason::NotRequested,
            "connectCalendar is off",
        ),
    };
    let parts = vec![authorized(), verified, calendar];
    // A calendar nobody asked for does not hold Ready back.
    let counted: Vec<Desired> = parts
        .iter()
        .filter(|d| !(d.type_ == CALENDAR_CONNECTED && d.reason == Reason::NotRequested))
        .cloned()
        .collect();
    let mut all = vec![status::ready_summary(
        &counted,
        &format!("mailbox verified{}", notes(r)),
    )];
    all.extend(parts);
    all
}

fn notes(r: &Resolution) -> String {
    if r.settings.notes.is_empty() {
        String::new()
    } else {
        format!("; {}", r.settings.notes.join("; "))
    }
}
