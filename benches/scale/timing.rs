//! What the benchmark times: every binding Ready, a provider's release after its last
//! binding, and a namespace label admitting a waiting binding.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use mailops::api::conditions::{AUTHORIZED, TERMINATING, find, is_ready};
use mailops::api::{EmailProvider, MailboxBinding};
use serde_json::json;

use crate::objects::{LABEL, MANAGER, Plan};

/// How long any one wait may take before the run fails.
const PATIENCE: Duration = Duration::from_secs(1800);

fn ready(b: &MailboxBinding) -> bool {
    b.status.as_ref().is_some_and(|s| is_ready(&s.conditions))
}

/// Watch the run's bindings until all N are Ready.
pub async fn until_all_ready(client: &Client, plan: &Plan) -> Result<(), String> {
    let api: Api<MailboxBinding> = Api::all(client.clone());
    let config = watcher::Config::default().labels(&format!("{LABEL}={}", plan.run));
    let mut ready_now: HashSet<(String, String)> = HashSet::new();
    let stream = watcher(api, config).applied_objects();
    let mut stream = std::pin::pin!(stream);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while ready_now.len() < plan.n {
        let next = tokio::time::timeout_at(deadline, stream.try_next()).await;
        let b = match next {
            Err(_) => {
                return Err(format!(
                    "only {} of {} Ready in time",
                    ready_now.len(),
                    plan.n
                ));
            }
            Ok(Err(e)) => return Err(format!("watching bindings: {e}")),
            Ok(Ok(None)) => return Err("the binding watch ended".into()),
            Ok(Ok(Some(b))) => b,
        };
        let key = (b.namespace().unwrap_or_default(), b.name_any());
        if ready(&b) {
            ready_now.insert(key);
        } else {
            ready_now.remove(&key);
        }
    }
    Ok(())
}

async fn wait<K>(api: &Api<K>, name: &str, cond: impl Condition<K>) -> Result<(), String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    tokio::time::timeout(PATIENCE, await_condition(api.clone(), name, cond))
        .await
        .map_err(|_| format!("{name} did not get there in time"))?
        .map(|_| ())
        .map_err(|e| format!("watching {name}: {e}"))
}

/// Seconds from deleting a provider's last binding to the provider being gone.
pub async fn provider_release(client: &Client, plan: &Plan) -> Result<f64, String> {
    let (provider, domain) = plan.create_lone_provider(client).await?;
    let ns = plan.namespace(0);
    let bindings: Api<MailboxBinding> = Api::namespaced(client.clone(), &ns);
    let body = plan.binding_body("lone", &format!("lone@{domain}"), None);
    bindings
        .patch(
            "lone",
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| e.to_string())?;
    wait(&bindings, "lone", |b: Option<&MailboxBinding>| {
        b.is_some_and(ready)
    })
    .await?;
    let providers: Api<EmailProvider> = Api::all(client.clone());
    let uid = providers
        .get(&provider)
        .await
        .map_err(|e| e.to_string())?
        .uid();
    providers
        .delete(&provider, &DeleteParams::default())
        .await
        .map_err(|e| e.to_string())?;
    let in_use = |p: Option<&EmailProvider>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| find(&s.conditions, TERMINATING))
            .is_some_and(|c| c.reason == "InUse")
    };
    wait(&providers, &provider, in_use).await?;
    bindings
        .delete("lone", &DeleteParams::default())
        .await
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    wait(
        &providers,
        &provider,
        conditions::is_deleted(&uid.unwrap_or_default()),
    )
    .await?;
    Ok(start.elapsed().as_secs_f64())
}

/// Seconds from labelling a namespace to the binding waiting in it being Ready.
pub async fn namespace_admission(client: &Client, plan: &Plan) -> Result<f64, String> {
    let ns = plan.late_namespace();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    let pp = PatchParams::apply(MANAGER).force();
    namespaces
        .patch(&ns, &pp, &Patch::Apply(&body))
        .await
        .map_err(|e| e.to_string())?;
    let (account, domain) = plan.provider(0);
    let bindings: Api<MailboxBinding> = Api::namespaced(client.clone(), &ns);
    let body = plan.binding_body("late", &format!("late@{domain}"), Some(&account));
    bindings
        .patch("late", &pp, &Patch::Apply(&body))
        .await
        .map_err(|e| e.to_string())?;
    let refused = |b: Option<&MailboxBinding>| {
        b.and_then(|b| b.status.as_ref())
            .and_then(|s| find(&s.conditions, AUTHORIZED))
            .is_some_and(|c| c.reason == "NamespaceNotAllowed")
    };
    wait(&bindings, "late", refused).await?;
    let labelled = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {LABEL: plan.run}}});
    let start = Instant::now();
    namespaces
        .patch(&ns, &pp, &Patch::Apply(&labelled))
        .await
        .map_err(|e| e.to_string())?;
    wait(&bindings, "late", |b: Option<&MailboxBinding>| {
        b.is_some_and(ready)
    })
    .await?;
    Ok(start.elapsed().as_secs_f64())
}
