//! The phases that stop and start the operator once it has converged: a restart with
//! nothing changed, and a steady state with a short re-verification interval. Both count
//! what the new process costs the API server and the fake in a fixed window.

use std::sync::atomic::Ordering;
use std::time::Duration;

use kube::Client;
use serde_json::{Value, json};

use crate::cluster::{WriteCounts, delta, process_usage, status_writes, write_counts};
use crate::fake::Fake;
use crate::objects::Plan;
use crate::operator::{Operator, single};
use crate::round;

/// What the API server and the fake had counted at one moment.
pub struct Counted {
    writes: WriteCounts,
    graph: usize,
    tokens: usize,
}

impl Counted {
    /// Read both now.
    pub async fn now(client: &Client, fake: &Fake) -> Result<Counted, String> {
        Ok(Counted {
            writes: write_counts(client).await?,
            graph: fake.counts.graph.load(Ordering::SeqCst),
            tokens: fake.counts.tokens.load(Ordering::SeqCst),
        })
    }

    /// Writes by resource, Graph requests and token requests since `earlier`.
    pub fn since(&self, earlier: &Counted) -> (WriteCounts, usize, usize) {
        (
            delta(&earlier.writes, &self.writes),
            self.graph.saturating_sub(earlier.graph),
            self.tokens.saturating_sub(earlier.tokens),
        )
    }
}

/// Stop `operator` as a rollout does (SIGTERM), start a new one and count its first
/// `window`. Returns the new operator, which goes on running.
pub async fn restart(
    client: &Client,
    plan: &Plan,
    fake: &Fake,
    mut operator: Operator,
    window: Duration,
) -> Result<(Operator, Value), String> {
    let stop_seconds = operator.terminate().await;
    drop(operator);
    let before = Counted::now(client, fake).await?;
    let restarted = Operator::start(&plan.run, "restarted", &single())?;
    tokio::time::sleep(window).await;
    let (writes, graph, tokens) = Counted::now(client, fake).await?.since(&before);
    let (rss, cpu) = process_usage(restarted.pid()).unwrap_or_default();
    let report = json!({
        "restart_stop_seconds": round(stop_seconds),
        "restart_window_seconds": window.as_secs(),
        "restart_status_writes": status_writes(&writes),
        "restart_graph_requests": graph,
        "restart_token_requests": tokens,
        "restart_cpu_seconds": round(cpu),
        "restart_peak_rss_mib": round(rss),
        "restart_writes": writes,
    });
    Ok((restarted, report))
}

/// The re-verification interval `mailops run` uses unless told otherwise.
fn default_interval() -> Duration {
    mailops::config::OperatorConfig::default().reverify_interval
}

/// A fresh operator with `--reverify-interval-seconds interval`: once its first round of
/// re-verifications has passed (1.1 intervals, the most jitter adds), count its status
/// writes over `window`, and scale them to an hour at this interval and at the default.
pub async fn steady(
    client: &Client,
    plan: &Plan,
    fake: &Fake,
    interval: Duration,
    window: Duration,
) -> Result<Value, String> {
    let mut flags = single();
    flags.extend([
        "--reverify-interval-seconds".into(),
        interval.as_secs().to_string(),
    ]);
    let started = Counted::now(client, fake).await?;
    let mut operator = Operator::start(&plan.run, "steady", &flags)?;
    tokio::time::sleep(interval.mul_f64(1.1)).await;
    let before = Counted::now(client, fake).await?;
    let (warm_up_writes, warm_up_graph, _) = before.since(&started);
    tokio::time::sleep(window).await;
    let (writes, graph, _) = Counted::now(client, fake).await?.since(&before);
    operator.terminate().await;
    let status = status_writes(&writes) as f64;
    let per_hour = status * 3600.0 / window.as_secs_f64();
    let scale = interval.as_secs_f64() / default_interval().as_secs_f64();
    Ok(json!({
        "steady_reverify_interval_seconds": interval.as_secs(),
        "steady_window_seconds": window.as_secs(),
        "steady_status_writes": status,
        "steady_graph_requests": graph,
        "steady_status_writes_per_hour_at_interval": round(per_hour),
        "steady_default_interval_seconds": default_interval().as_secs(),
        "steady_status_writes_per_hour_estimate": round(per_hour * scale),
        "steady_writes": writes,
        "steady_warm_up_status_writes": status_writes(&warm_up_writes),
        "steady_warm_up_graph_requests": warm_up_graph,
    }))
}
