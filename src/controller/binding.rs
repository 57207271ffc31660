//! The MailboxBinding reconciler: resolve (provider, admission, login, service account),
//! read credentials, verify through the backend, write the status. No finalizer: a
//! binding holds nothing, it is what others wait for.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use secrecy::{ExposeSecret, SecretString};

use super::rotation::SecretView;
use super::status;
use super::{BINDING_KIND, Context, Guarded, Report, ReportCell, credentials};
use crate::api::conditions::{self, AUTHORIZED, CALENDAR_CONNECTED, Desired, Reason, VERIFIED};
use crate::api::{AuthenticatedVia, EmailProvider, MailboxBinding, MailboxBindingStatus};
use crate::endpoints::provider_endpoints;
use crate::exchange::{Credential, MailboxOutcome, MailboxProbe};
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

/// Reconcile one MailboxBinding (entry point for the controller).
pub async fn reconcile(obj: Arc<Guarded<MailboxBinding>>, ctx: Arc<Context>) -> Result<Action> {
    let Ok(binding) = &obj.0 else {
        // Bindings carry no finalizer: nothing to release.
        return super::report_malformed(&ctx, BINDING_KIND, &obj, |_| true).await;
    };
    let started = Instant::now();
    let report = ReportCell::default();
    let result = reconcile_binding(binding, &ctx, &report).await;
    let report: Report = report.into_inner().unwrap_or_else(|e| e.into_inner());
    super::finish(&ctx, BINDING_KIND, binding, started, report, result).await
}

fn resolve(b: &MailboxBinding, ctx: &Context) -> Result<Resolution> {
    let providers = super::valid(&ctx.stores.providers);
    let accounts = super::valid(&ctx.stores.service_accounts);
    let providers = super::typed(&providers);
    let accounts = super::typed(&accounts);
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

fn ready_gate(r: &Resolution, ctx: &Context) -> Result<Arc<Guarded<EmailProvider>>> {
    let guard = ctx
        .stores
        .providers
        .get(&ObjectRef::new(&r.provider))
        .ok_or_else(|| Error::Spec {
            reason: Reason::ProviderNotFound,
            message: format!("EmailProvider {:?} does not exist", r.provider),
        })?;
    let provider_ready = guard
        .0
        .as_ref()
        .ok()
        .and_then(|p| p.status.as_ref())
        .is_some_and(|s| conditions::is_ready(&s.conditions));
    if !provider_ready {
        return Err(Error::Spec {
            reason: Reason::ProviderNotReady,
            message: format!(
                "EmailProvider {:?} is not Ready; waiting for it",
                r.provider
            ),
        });
    }
    if let Some(name) = &r.service_account {
        let ready = ctx
            .stores
            .service_accounts
            .get(&ObjectRef::new(name))
            .and_then(|g| g.0.as_ref().ok().and_then(|a| a.status.clone()))
            .is_some_and(|s| conditions::is_ready(&s.conditions));
        if !ready {
            return Err(Error::Spec {
                reason: Reason::ServiceAccountNotReady,
                message: format!("ExchangeServiceAccount {name:?} is not Ready; waiting for it"),
            });
        }
    }
    Ok(guard)
}

async fn reconcile_binding(
    b: &MailboxBinding,
    ctx: &Context,
    report: &ReportCell,
) -> Result<Action> {
    let resolution = match resolve(b, ctx) {
        Ok(r) => r,
        Err(e) => {
            let parts = unresolved(&e);
            write(b, ctx, report, parts, None, None).await?;
            return Err(e);
        }
    };
    let (verified, write_back_failed) = match verify(b, &resolution, ctx).await {
        Ok(v) => v,
        Err(e) => {
            let parts = authorized_but(&e);
            write(b, ctx, report, parts, Some(&resolution), None).await?;
            return Err(e);
        }
    };
    let parts = desired(&resolution, &verified.outcome);
    let error = outcome_error(&verified.outcome);
    // "When Exchange last confirmed the mailbox": a failure leaves it where it was.
    let confirmed_at = error.is_none().then_some(verified.at);
    write(b, ctx, report, parts, Some(&resolution), confirmed_at).await?;
    match error.or(write_back_failed) {
        Some(e) => Err(e),
        None => Ok(Action::requeue(super::backoff::reverify_after(
            ctx.config.reverify_interval,
        ))),
    }
}

/// Gate, credentials, and the backend call (or a remembered answer). The second value is
/// a failed write-back of a rotated refresh token: the verification stands, the token is
/// held in memory, and the write is retried with back-off.
async fn verify(
    b: &MailboxBinding,
    r: &Resolution,
    ctx: &Context,
) -> Result<(Verified, Option<Error>)> {
    let guard = ready_gate(r, ctx)?;
    let Ok(provider) = &guard.0 else {
        return Err(Error::Spec {
            reason: Reason::ProviderNotFound,
            message: format!("EmailProvider {:?} cannot be read", r.provider),
        });
    };
    let endpoints = provider_endpoints(&provider.spec, ctx.config.allow_insecure_endpoints)?;
    let (mut creds, account_gen) = binding_credentials(b, r, provider, &endpoints, ctx)?;
    let mut own = own_refresh_secret(b, ctx, &creds);
    let mut write_back_failed = None;
    if let Some(own) = &mut own {
        write_back_failed = adopt_rotated(ctx, own, &mut creds).await.err();
    }
    let key = super::object_key(b);
    let fp = super::fingerprint(&[
        b.uid().as_deref().unwrap_or_default(),
        &b.metadata.generation.unwrap_or(0).to_string(),
        &format!("{r:?}"),
        &provider.metadata.generation.unwrap_or(0).to_string(),
        &account_gen,
        &creds.versions.join(","),
    ]);
    if let Some(v) = ctx
        .mailbox_probes
        .get(&key, fp, ctx.config.reverify_interval)
    {
        return Ok((v, write_back_failed));
    }
    let probe = MailboxProbe {
        provider: r.provider.clone(),
        email: b.spec.email_address.clone(),
        login: r.login.clone(),
        service: credentials::service(provider, &endpoints),
        credential: creds.credential,
        via_service_account: r.via == AuthenticatedVia::ServiceAccount,
        check_calendar: r.settings.calendar,
        check_send: r.settings.sending,
    };
    let mut outcome = ctx.backend.verify_mailbox(&probe).await;
    if let (Some(token), Some(own)) = (outcome.rotated_refresh_token.take(), &own) {
        ctx.rotated_tokens
            .rotated(&own.key, &own.base_version, token.clone());
        write_back_failed = write_back_refresh_token(ctx, own, &token).await.err();
    }
    let verified = Verified {
        outcome,
        at: Timestamp::now(),
    };
    if outcome_error(&verified.outcome).is_none() {
        ctx.mailbox_probes.put(&key, fp, verified.clone());
    } else {
        ctx.mailbox_probes.forget(&key);
    }
    Ok((verified, write_back_failed))
}

/// The credentials a binding acts with, and the generation of its service account (empty
/// for its own credentials).
fn binding_credentials(
    b: &MailboxBinding,
    r: &Resolution,
    provider: &EmailProvider,
    endpoints: &crate::endpoints::ProviderEndpoints,
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
            let generation = account.metadata.generation.unwrap_or(0).to_string();
            let creds =
                credentials::service_account(account, provider, endpoints, &ctx.stores.secrets)?;
            Ok((creds, generation))
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

/// The binding's own Secret when it holds a refresh token (the only credential the
/// authority rotates).
struct OwnSecret {
    /// `namespace/name`, as in the credential versions and the rotation store.
    key: String,
    namespace: String,
    name: String,
    /// The cached resourceVersion.
    version: String,
    /// The version verifications are keyed on (see [`rotation`]).
    base_version: String,
}

fn own_refresh_secret(
    b: &MailboxBinding,
    ctx: &Context,
    creds: &credentials::Resolved,
) -> Option<OwnSecret> {
    if !matches!(creds.credential, Credential::RefreshToken { .. }) {
        return None;
    }
    let name = b
        .spec
        .authentication
        .credentials_secret_ref
        .as_ref()?
        .name
        .clone();
    let namespace = b.namespace().unwrap_or_default();
    let version = ctx
        .stores
        .secrets
        .get(&ObjectRef::<Secret>::new(&name).within(&namespace))?
        .resource_version()
        .unwrap_or_default();
    Some(OwnSecret {
        key: format!("{namespace}/{name}"),
        base_version: version.clone(),
        namespace,
        name,
        version,
    })
}

/// Use a token the authority rotated instead of the cached Secret's, key the verification
/// on the Secret as it was before our own write-back, and retry a write-back that failed.
async fn adopt_rotated(
    ctx: &Context,
    own: &mut OwnSecret,
    creds: &mut credentials::Resolved,
) -> Result<()> {
    let SecretView::Rotated {
        base_version,
        token,
        unwritten,
    } = ctx.rotated_tokens.view(&own.key, &own.version)
    else {
        return Ok(());
    };
    let cached = format!("{}@{}", own.key, own.version);
    for v in creds.versions.iter_mut().filter(|v| **v == cached) {
        *v = format!("{}@{base_version}", own.key);
    }
    own.base_version = base_version;
    if let Credential::RefreshToken { refresh_token, .. } = &mut creds.credential {
        *refresh_token = token.clone();
    }
    if unwritten && ctx.config.secret_write_back {
        write_back_refresh_token(ctx, own, &token).await?;
    }
    Ok(())
}

/// Store a refresh token the authority rotated in the binding's Secret, so the next
/// verification (and the mail client) uses the live one.
async fn write_back_refresh_token(
    ctx: &Context,
    own: &OwnSecret,
    token: &SecretString,
) -> Result<()> {
    let (ns, name) = (own.namespace.as_str(), own.name.as_str());
    if !ctx.config.secret_write_back {
        // Without write-back the old refresh token keeps working until it expires; say
        // so, so the admin can rotate the Secret before it does.
        tracing::warn!(
            namespace = ns,
            secret = name,
            "the authority rotated this mailbox's refresh token, but write-back is off (--no-secret-write-back): update the Secret's refreshToken before the old one expires"
        );
        return Ok(());
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({
        "data": { crate::api::REFRESH_TOKEN_KEY: k8s_openapi::ByteString(token.expose_secret().as_bytes().to_vec()) }
    });
    let written = api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .inspect_err(|e| {
            tracing::warn!(namespace = ns, secret = name, error = %e,
                "cannot store a rotated refresh token; holding it and retrying");
        })?;
    ctx.rotated_tokens
        .written(&own.key, &written.resource_version().unwrap_or_default());
    tracing::info!(
        namespace = ns,
        secret = name,
        "stored a rotated refresh token"
    );
    Ok(())
}

fn outcome_error(o: &MailboxOutcome) -> Option<Error> {
    let f = o
        .mailbox
        .as_ref()
        .err()
        .or(o.calendar.as_ref().and_then(|c| c.as_ref().err()))?;
    Some(Error::Exchange {
        reason: f.reason,
        message: f.message.clone(),
        retry_after: f.retry_after,
    })
}

fn reason_of(e: &Error) -> Reason {
    e.reason().unwrap_or(Reason::UnexpectedResponse)
}

/// Pure: conditions when resolution failed (nothing was sent to Exchange).
pub fn unresolved(e: &Error) -> Vec<Desired> {
    status::with_ready(
        vec![Desired::fail(AUTHORIZED, reason_of(e), e.to_string())],
        "",
    )
}

/// Pure: conditions when the binding is authorized but could not be verified before
/// calling Exchange (provider not ready, Secret missing) or the call failed outright.
pub fn authorized_but(e: &Error) -> Vec<Desired> {
    status::with_ready(
        vec![
            Desired::ok(
                AUTHORIZED,
                Reason::Verified,
                "the namespace may use the provider and account",
            ),
            Desired::fail(VERIFIED, reason_of(e), e.to_string()),
        ],
        "",
    )
}

/// Pure: conditions from a verification outcome.
pub fn desired(r: &Resolution, o: &MailboxOutcome) -> Vec<Desired> {
    let mut parts = vec![Desired::ok(
        AUTHORIZED,
        Reason::Verified,
        "the namespace may use the provider and account",
    )];
    parts.push(match &o.mailbox {
        Ok(()) => Desired::ok(
            VERIFIED,
            Reason::Verified,
            format!("Exchange confirmed {} as {}", r.endpoint, r.login),
        ),
        Err(f) => Desired::fail(VERIFIED, f.reason, f.message.clone()),
    });
    parts.push(match (&o.calendar, r.settings.calendar) {
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
    });
    let mut ready = status::with_ready(Vec::new(), "");
    ready[0] = status::ready_summary(
        &parts
            .iter()
            .filter(|d| !(d.type_ == CALENDAR_CONNECTED && d.reason == Reason::NotRequested))
            .cloned()
            .collect::<Vec<_>>(),
        &format!("mailbox verified{}", notes(r)),
    );
    ready.extend(parts);
    ready
}

fn notes(r: &Resolution) -> String {
    if r.settings.notes.is_empty() {
        String::new()
    } else {
        format!("; {}", r.settings.notes.join("; "))
    }
}

async fn write(
    b: &MailboxBinding,
    ctx: &Context,
    report: &ReportCell,
    parts: Vec<Desired>,
    r: Option<&Resolution>,
    verified_at: Option<Timestamp>,
) -> Result<()> {
    let old = b.status.as_ref();
    let new = MailboxBindingStatus {
        observed_generation: b.metadata.generation,
        conditions: status::conditions(
            old.map(|s| s.conditions.as_slice()).unwrap_or_default(),
            &parts,
            b.metadata.generation,
            Timestamp::now(),
        ),
        provider: r.map(|r| r.provider.clone()),
        login: r.map(|r| r.login.clone()),
        authenticated_via: r.map(|r| r.via),
        service_account: r.and_then(|r| r.service_account.clone()),
        endpoint: r.map(|r| r.endpoint.clone()),
        last_verified_time: verified_at
            .map(Time)
            .or_else(|| old.and_then(|s| s.last_verified_time.clone())),
    };
    let api: Api<MailboxBinding> =
        Api::namespaced(ctx.client.clone(), &b.namespace().unwrap_or_default());
    super::write_status(&api, &b.name_any(), old, &new, report).await?;
    Ok(())
}
