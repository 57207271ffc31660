//! The failover phase: two replicas electing through one Lease. Once one leads, the other
//! is warm (caches synced) and the leader has stopped writing, the leader is killed
//! (SIGKILL: no shutdown, no Lease release, as when its node fails) and the standby's
//! takeover is timed: until it holds the Lease, until its first write to the run's
//! objects, and what it writes and asks of the fake in its first window as leader.

use std::fmt::Debug;
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::{Api, Client, Resource};
use mailops::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cluster::{status_writes, write_counts};
use crate::fake::Fake;
use crate::objects::{LABEL, Plan};
use crate::operator::{Operator, electing};
use crate::restart::Counted;
use crate::round;

/// How long any one wait of this phase may take before it fails.
const PATIENCE: Duration = Duration::from_secs(900);
/// How long the leader's status writes must stand still before it is killed.
const STILL: Duration = Duration::from_secs(10);

/// Poll the Lease until a holder other than `not` holds it; returns that holder.
async fn holder_other_than(api: &Api<Lease>, name: &str, not: &str) -> Result<String, String> {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let lease = api.get_opt(name).await.map_err(|e| e.to_string())?;
        let holder = lease
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
            .filter(|h| !h.is_empty() && h != not);
        if let Some(holder) = holder {
            return Ok(holder);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("no replica but {not:?} took Lease {name} in time"))
}

/// Wait until `operator` answers `/readyz` (its caches synced).
async fn warm(operator: &Operator) -> Result<f64, String> {
    let start = Instant::now();
    while !operator.ready().await {
        if start.elapsed() > PATIENCE {
            return Err("the standby's caches did not sync in time".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Wait until the API server counts no new status write for [`STILL`]; seconds waited.
async fn still(client: &Client) -> Result<f64, String> {
    let start = Instant::now();
    let mut last = status_writes(&write_counts(client).await?);
    loop {
        tokio::time::sleep(STILL).await;
        let now = status_writes(&write_counts(client).await?);
        if now == last || start.elapsed() > PATIENCE {
            return Ok(start.elapsed().as_secs_f64());
        }
        last = now;
    }
}

/// Changes to the run's objects of kind `K` from now on (the watch is open on return).
async fn changes<K>(api: Api<K>, labels: &str) -> Result<BoxStream<'static, ()>, String>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let lp = ListParams::default().labels(labels).limit(1);
    let list = api.list_metadata(&lp).await.map_err(|e| e.to_string())?;
    let version = list.metadata.resource_version.unwrap_or_default();
    let wp = WatchParams::default().labels(labels).timeout(290);
    let stream = api.watch(&wp, &version).await.map_err(|e| e.to_string())?;
    let written = |e: kube::Result<WatchEvent<K>>| {
        let write = matches!(
            e,
            Ok(WatchEvent::Added(_) | WatchEvent::Modified(_) | WatchEvent::Deleted(_))
        );
        futures::future::ready(write.then_some(()))
    };
    Ok(stream.filter_map(written).boxed())
}

/// When the first write to any of the run's providers, accounts or bindings after now is
/// seen (status, or metadata such as a finalizer); the watches are open on return.
async fn first_write(client: &Client, plan: &Plan) -> Result<JoinHandle<Option<Instant>>, String> {
    let labels = format!("{LABEL}={}", plan.run);
    let streams = vec![
        changes(Api::<EmailProvider>::all(client.clone()), &labels).await?,
        changes(Api::<ExchangeServiceAccount>::all(client.clone()), &labels).await?,
        changes(Api::<MailboxBinding>::all(client.clone()), &labels).await?,
    ];
    let mut all = futures::stream::select_all(streams);
    Ok(tokio::spawn(async move {
        all.next().await.map(|_| Instant::now())
    }))
}

/// Two replicas up, one leading, the other warm, the leader quiet: (leader, standby,
/// the leader's identity, seconds until then).
async fn elect(
    client: &Client,
    plan: &Plan,
    lease: &str,
) -> Result<(Operator, Operator, String, f64), String> {
    let start = Instant::now();
    let ns = plan.namespace(0);
    let a = Operator::start(&plan.run, "replica-a", &electing(&ns, lease, "replica-a"))?;
    let b = Operator::start(&plan.run, "replica-b", &electing(&ns, lease, "replica-b"))?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let leader = holder_other_than(&leases, lease, "").await?;
    let (leader_process, standby) = match leader.as_str() {
        "replica-a" => (a, b),
        _ => (b, a),
    };
    warm(&standby).await?;
    still(client).await?;
    Ok((
        leader_process,
        standby,
        leader,
        start.elapsed().as_secs_f64(),
    ))
}

/// Kill the leader of two replicas and time the standby's takeover over `window`.
pub async fn failover(
    client: &Client,
    plan: &Plan,
    fake: &Fake,
    window: Duration,
) -> Result<Value, String> {
    let lease = format!("mailops-bench-{}", plan.run);
    let (mut leader, mut standby, leader_id, settle) = elect(client, plan, &lease).await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &plan.namespace(0));
    let duration = leases
        .get(&lease)
        .await
        .map_err(|e| e.to_string())?
        .spec
        .and_then(|s| s.lease_duration_seconds);
    let first = first_write(client, plan).await?;
    let before = Counted::now(client, fake).await?;
    let killed = Instant::now();
    leader.kill();
    let new_leader = holder_other_than(&leases, &lease, &leader_id).await?;
    let led = Instant::now();
    tokio::time::sleep_until(led + window).await;
    let (writes, graph, tokens) = Counted::now(client, fake).await?.since(&before);
    let first_at = match first.is_finished() {
        true => first.await.ok().flatten().filter(|t| *t <= led + window),
        false => {
            first.abort();
            None
        }
    };
    standby.terminate().await;
    Ok(json!({
        "failover_lease_duration_seconds": duration,
        "failover_elect_and_settle_seconds": round(settle),
        "failover_new_leader": new_leader,
        "failover_window_seconds": window.as_secs(),
        "failover_seconds_to_lead": round((led - killed).as_secs_f64()),
        "failover_seconds_to_first_write": first_at.map(|t| round((t - killed).as_secs_f64())),
        "failover_status_writes_60s": status_writes(&writes),
        "failover_graph_requests_60s": graph,
        "failover_token_requests_60s": tokens,
        "failover_writes": writes,
    }))
}
