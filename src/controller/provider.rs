//! The EmailProvider reconciler: endpoint and app checks, counts of what uses it, and the
//! `mailops.dev/in-use` finalizer that holds deletion while anything does.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::fanout::attached_to_provider;
use super::status;
use super::{Context, Guarded, PROVIDER_KIND, Report, ReportCell, credentials};
use crate::api::conditions::{AUTHENTICATED, Desired, REACHABLE, Reason, TERMINATING};
use crate::api::{EmailProvider, EmailProviderStatus, IN_USE_FINALIZER};
use crate::endpoints::provider_endpoints;
use crate::exchange::ProviderProbe;
use crate::resolve::check_account_may_attach;
use crate::{Error, Result};

/// Reconcile one EmailProvider (entry point for the controller).
pub async fn reconcile(obj: Arc<Guarded<EmailProvider>>, ctx: Arc<Context>) -> Result<Action> {
    let Ok(provider) = &obj.0 else {
        let in_use = |name: &str| {
            let (bindings, accounts) = users(name, &ctx);
            !(bindings.is_empty() && accounts.is_empty())
        };
        return super::report_malformed(&ctx, PROVIDER_KIND, &obj, in_use).await;
    };
    let started = Instant::now();
    let provider = Arc::new(provider.clone());
    let report = ReportCell::default();
    let api: Api<EmailProvider> = Api::all(ctx.client.clone());
    let result = finalizer(&api, IN_USE_FINALIZER, provider.clone(), |event| async {
        match event {
            Event::Apply(p) => apply(&p, &ctx, &report).await,
            Event::Cleanup(p) => cleanup(&p, &ctx, &report).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    let report: Report = report.into_inner().unwrap_or_else(|e| e.into_inner());
    super::finish(
        &ctx,
        PROVIDER_KIND,
        provider.as_ref(),
        started,
        report,
        result,
    )
    .await
}

/// Names of the objects using a provider: attached bindings (`namespace/name`) and its
/// service accounts, sorted.
pub fn users(name: &str, ctx: &Context) -> (Vec<String>, Vec<String>) {
    let mut bindings: Vec<String> = super::typed(&super::valid(&ctx.stores.bindings))
        .into_iter()
        .filter(|b| attached_to_provider(b, name))
        .map(|b| {
            format!(
                "MailboxBinding {}/{}",
                b.namespace().unwrap_or_default(),
                b.name_any()
            )
        })
        .collect();
    let provider = ctx.stores.providers.get(&ObjectRef::new(name));
    let provider = provider.as_ref().and_then(|p| p.0.as_ref().ok());
    let mut accounts: Vec<String> = super::typed(&super::valid(&ctx.stores.service_accounts))
        .into_iter()
        .filter(|a| a.spec.provider_ref.name == name)
        // An account refused for coming after the deletion began does not hold it.
        .filter(|a| provider.is_none_or(|p| check_account_may_attach(a, p).is_ok()))
        .map(|a| format!("ExchangeServiceAccount {}", a.name_any()))
        .collect();
    bindings.sort();
    accounts.sort();
    (bindings, accounts)
}

/// The `InUse` message: how many users, and the first ten by name.
pub fn in_use_message(users: &[String]) -> String {
    let shown: Vec<&str> = users.iter().take(10).map(String::as_str).collect();
    let more = users.len().saturating_sub(shown.len());
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "deletion waits for {} object(s) still using it: {}{tail}",
        users.len(),
        shown.join(", ")
    )
}

/// Pure: conditions of a provider from its checks.
pub fn desired(
    endpoints: &std::result::Result<(), Error>,
    app: &std::result::Result<(), Error>,
    outcome: Option<&crate::exchange::ProviderOutcome>,
) -> Vec<Desired> {
    let mut parts = Vec::new();
    if let Err(e) = endpoints {
        let reason = e.reason().unwrap_or(Reason::InsecureEndpoint);
        parts.push(Desired::fail(REACHABLE, reason, e.to_string()));
        parts.push(Desired::fail(
            AUTHENTICATED,
            reason,
            "endpoints are not usable".to_string(),
        ));
        return status::with_ready(parts, "");
    }
    match outcome.map(|o| &o.reachable) {
        Some(Ok(())) => parts.push(Desired::ok(
            REACHABLE,
            Reason::Verified,
            "endpoint answers over TLS",
        )),
        Some(Err(f)) => parts.push(Desired::fail(REACHABLE, f.reason, f.message.clone())),
        None => {}
    }
    match (app, outcome.and_then(|o| o.authenticated.as_ref())) {
        (Err(e), _) => parts.push(Desired::fail(
            AUTHENTICATED,
            e.reason().unwrap_or(Reason::SecretNotFound),
            e.to_string(),
        )),
        (Ok(()), Some(Ok(()))) => parts.push(Desired::ok(
            AUTHENTICATED,
            Reason::Verified,
            "a token was obtained with the app credentials",
        )),
        (Ok(()), Some(Err(f))) => {
            parts.push(Desired::fail(AUTHENTICATED, f.reason, f.message.clone()))
        }
        (Ok(()), None) => parts.push(Desired::ok(
            AUTHENTICATED,
            Reason::NotRequested,
            "Basic provider: no app token to obtain",
        )),
    }
    status::with_ready(parts, "the provider is reachable and its credentials work")
}

async fn apply(p: &EmailProvider, ctx: &Context, report: &ReportCell) -> Result<Action> {
    let name = p.name_any();
    let endpoints = provider_endpoints(&p.spec, ctx.config.allow_insecure_endpoints);
    let mut failure: Option<Error> = None;
    let mut outcome = None;
    let mut app_result = Ok(());
    let mut address = None;
    if let Ok(ep) = &endpoints {
        address = Some(ep.service_address.clone());
        match credentials::provider_app(p, ep, &ctx.stores.secrets) {
            Err(e) => app_result = Err(e),
            Ok(app) => {
                let versions = app
                    .as_ref()
                    .map(|a| a.versions.join(","))
                    .unwrap_or_default();
                let fp = super::fingerprint(&[
                    &p.metadata.generation.unwrap_or(0).to_string(),
                    &versions,
                ]);
                let key = super::object_key(p);
                let cached = ctx
                    .provider_probes
                    .get(&key, fp, ctx.config.reverify_interval);
                let o = match cached {
                    Some(o) => o,
                    None => {
                        let probe = ProviderProbe {
                            provider: name.clone(),
                            service: credentials::service(p, ep),
                            credential: app.map(|a| a.credential),
                        };
                        let o = ctx.backend.check_provider(&probe).await;
                        let ok = o.reachable.is_ok()
                            && o.authenticated.as_ref().is_none_or(|a| a.is_ok());
                        if ok {
                            ctx.provider_probes.put(&key, fp, o.clone());
                        } else {
                            ctx.provider_probes.forget(&key);
                        }
                        o
                    }
                };
                outcome = Some(o);
            }
        }
    }
    let endpoints_ok = endpoints.map(|_| ());
    let parts = desired(&endpoints_ok, &app_result, outcome.as_ref());
    if let Err(e) = endpoints_ok {
        failure = Some(e);
    } else if let Err(e) = app_result {
        failure = Some(e);
    } else if let Some(o) = &outcome {
        let f = o
            .reachable
            .as_ref()
            .err()
            .or(o.authenticated.as_ref().and_then(|a| a.as_ref().err()));
        if let Some(f) = f {
            failure = Some(Error::Exchange {
                reason: f.reason,
                message: f.message.clone(),
                retry_after: f.retry_after,
            });
        }
    }
    let (bindings, accounts) = users(&name, ctx);
    let old = p.status.as_ref();
    let now = Timestamp::now();
    let new = EmailProviderStatus {
        observed_generation: p.metadata.generation,
        conditions: status::conditions(
            old.map(|s| s.conditions.as_slice()).unwrap_or_default(),
            &parts,
            p.metadata.generation,
            now,
        ),
        service_address: address,
        mailbox_count: bindings.len() as i32,
        service_account_count: accounts.len() as i32,
    };
    let api: Api<EmailProvider> = Api::all(ctx.client.clone());
    super::write_status(&api, &p.name_any(), old, &new, report).await?;
    match failure {
        Some(e) => Err(e),
        None => Ok(Action::requeue(super::backoff::reverify_after(
            ctx.config.reverify_interval,
        ))),
    }
}

/// Deletion: blocked (`Terminating=True`, `InUse`, no requeue) while anything uses the
/// provider; otherwise done, and the finalizer helper removes the finalizer. Copes with
/// Apply never having run.
async fn cleanup(p: &EmailProvider, ctx: &Context, report: &ReportCell) -> Result<Action> {
    let name = p.name_any();
    let (bindings, accounts) = users(&name, ctx);
    let all: Vec<String> = accounts.iter().chain(bindings.iter()).cloned().collect();
    if all.is_empty() {
        ctx.provider_probes.forget(&super::object_key(p));
        return Ok(Action::await_change());
    }
    let message = in_use_message(&all);
    let old = p.status.as_ref();
    let previous = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let terminating = Desired::ok(TERMINATING, Reason::InUse, message.clone());
    let new = EmailProviderStatus {
        observed_generation: p.metadata.generation,
        conditions: status::set_condition(
            previous,
            &terminating,
            p.metadata.generation,
            Timestamp::now(),
        ),
        mailbox_count: bindings.len() as i32,
        service_account_count: accounts.len() as i32,
        ..old.cloned().unwrap_or_default()
    };
    let api: Api<EmailProvider> = Api::all(ctx.client.clone());
    if status::apply(&api, &name, old, &new).await? {
        report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .deletion_blocked = Some(message.clone());
    }
    // Waiting, not failing: the last user's deletion re-triggers this through the mappers.
    Err(Error::Spec {
        reason: Reason::InUse,
        message,
    })
}
