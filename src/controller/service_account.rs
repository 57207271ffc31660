//! The ExchangeServiceAccount reconciler: its provider and credentials, an authentication
//! check, the count of mailboxes using it, and the `mailops.dev/in-use` finalizer.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::fanout::attached_to_account;
use super::provider::in_use_message;
use super::status;
use super::{Context, Guarded, Report, ReportCell, SERVICE_ACCOUNT_KIND, credentials};
use crate::api::conditions::{AUTHENTICATED, Desired, Reason, TERMINATING};
use crate::api::{ExchangeServiceAccount, ExchangeServiceAccountStatus, IN_USE_FINALIZER};
use crate::endpoints::provider_endpoints;
use crate::resolve::{check_account_may_attach, check_service_account_fits};
use crate::{Error, Result};

/// Reconcile one ExchangeServiceAccount (entry point for the controller).
pub async fn reconcile(
    obj: Arc<Guarded<ExchangeServiceAccount>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    let Ok(account) = &obj.0 else {
        let in_use = |name: &str| !users(name, &ctx).is_empty();
        return super::report_malformed(&ctx, SERVICE_ACCOUNT_KIND, &obj, in_use).await;
    };
    let started = Instant::now();
    let account = Arc::new(account.clone());
    let report = ReportCell::default();
    let api: Api<ExchangeServiceAccount> = Api::all(ctx.client.clone());
    let result = finalizer(&api, IN_USE_FINALIZER, account.clone(), |event| async {
        match event {
            Event::Apply(a) => apply(&a, &ctx, &report).await,
            Event::Cleanup(a) => cleanup(&a, &ctx, &report).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    let report: Report = report.into_inner().unwrap_or_else(|e| e.into_inner());
    super::finish(
        &ctx,
        SERVICE_ACCOUNT_KIND,
        account.as_ref(),
        started,
        report,
        result,
    )
    .await
}

/// Bindings attached through this account, as `MailboxBinding namespace/name`, sorted.
pub fn users(name: &str, ctx: &Context) -> Vec<String> {
    let mut out: Vec<String> = super::typed(&super::valid(&ctx.stores.bindings))
        .into_iter()
        .filter(|b| attached_to_account(b, name))
        .map(|b| {
            format!(
                "MailboxBinding {}/{}",
                b.namespace().unwrap_or_default(),
                b.name_any()
            )
        })
        .collect();
    out.sort();
    out
}

/// Everything up to the backend call: the provider, fit, endpoints and credentials.
fn prepare(
    a: &ExchangeServiceAccount,
    ctx: &Context,
) -> Result<(
    String,
    crate::exchange::Service,
    credentials::Resolved,
    String,
)> {
    let provider_name = &a.spec.provider_ref.name;
    let guard = ctx
        .stores
        .providers
        .get(&ObjectRef::new(provider_name))
        .ok_or_else(|| Error::Spec {
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
    let endpoints = provider_endpoints(&provider.spec, ctx.config.allow_insecure_endpoints)?;
    let creds = credentials::service_account(a, provider, &endpoints, &ctx.stores.secrets)?;
    let service = credentials::service(provider, &endpoints);
    Ok((
        provider_name.clone(),
        service,
        creds,
        provider.metadata.generation.unwrap_or(0).to_string(),
    ))
}

async fn apply(a: &ExchangeServiceAccount, ctx: &Context, report: &ReportCell) -> Result<Action> {
    let key = super::object_key(a);
    let checked: Result<()> = match prepare(a, ctx) {
        Err(e) => Err(e),
        Ok((provider, service, creds, provider_gen)) => {
            let fp = super::fingerprint(&[
                &a.metadata.generation.unwrap_or(0).to_string(),
                &provider_gen,
                &creds.versions.join(","),
            ]);
            if ctx
                .account_probes
                .get(&key, fp, ctx.config.reverify_interval)
                .is_some()
            {
                Ok(())
            } else {
                match ctx
                    .backend
                    .authenticate(&provider, &service, &creds.credential)
                    .await
                {
                    Ok(()) => {
                        ctx.account_probes.put(&key, fp, ());
                        Ok(())
                    }
                    Err(f) => {
                        ctx.account_probes.forget(&key);
                        Err(Error::Exchange {
                            reason: f.reason,
                            message: f.message,
                            retry_after: f.retry_after,
                        })
                    }
                }
            }
        }
    };
    let parts = desired(&checked);
    let old = a.status.as_ref();
    let new = ExchangeServiceAccountStatus {
        observed_generation: a.metadata.generation,
        conditions: status::conditions(
            old.map(|s| s.conditions.as_slice()).unwrap_or_default(),
            &parts,
            a.metadata.generation,
            Timestamp::now(),
        ),
        mailbox_count: users(&a.name_any(), ctx).len() as i32,
    };
    let api: Api<ExchangeServiceAccount> = Api::all(ctx.client.clone());
    super::write_status(&api, &a.name_any(), old, &new, report).await?;
    checked.map(|()| Action::requeue(super::backoff::reverify_after(ctx.config.reverify_interval)))
}

/// Pure: conditions of a service account from the result of its check.
pub fn desired(checked: &Result<()>) -> Vec<Desired> {
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
    status::with_ready(vec![part], "the service account's credentials work")
}

async fn cleanup(a: &ExchangeServiceAccount, ctx: &Context, report: &ReportCell) -> Result<Action> {
    let name = a.name_any();
    let users = users(&name, ctx);
    if users.is_empty() {
        ctx.account_probes.forget(&super::object_key(a));
        return Ok(Action::await_change());
    }
    let message = in_use_message(&users);
    let old = a.status.as_ref();
    let previous = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let terminating = Desired::ok(TERMINATING, Reason::InUse, message.clone());
    let new = ExchangeServiceAccountStatus {
        observed_generation: a.metadata.generation,
        conditions: status::set_condition(
            previous,
            &terminating,
            a.metadata.generation,
            Timestamp::now(),
        ),
        mailbox_count: users.len() as i32,
    };
    let api: Api<ExchangeServiceAccount> = Api::all(ctx.client.clone());
    if status::apply(&api, &name, old, &new).await? {
        report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .deletion_blocked = Some(message.clone());
    }
    Err(Error::Spec {
        reason: Reason::InUse,
        message,
    })
}
