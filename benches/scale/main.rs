//! Scale benchmark against the cluster in `KUBECONFIG` (skipped without one):
//!
//! ```sh
//! KUBECONFIG=... MAILOPS_BENCH_N=10000 cargo bench --bench scale
//! ```
//!
//! Creates N MailboxBindings over P Microsoft 365 providers (one ExchangeServiceAccount
//! each) and M namespaces, with Entra ID and Graph answered by a fake on 127.0.0.1. It
//! first measures the API server's own floor in the same run (N server-side-apply status
//! writes at concurrency 16, then N status writes plus one Event each), then starts
//! `mailops run` (this build) and watches until every binding is Ready. It reports one
//! JSON line: time to Ready and its ratio to the floor, write requests by
//! resource/subresource/verb as the API server counted them while converging and during
//! a quiet period after, token requests, the operator's peak RSS and CPU seconds, how
//! long a provider takes to go after its last binding, and how long labelling a
//! namespace takes to admit a waiting binding. It removes everything it created.
//!
//! Settings: `MAILOPS_BENCH_N` (1000), `MAILOPS_BENCH_PROVIDERS` (10),
//! `MAILOPS_BENCH_NAMESPACES` (100), `MAILOPS_BENCH_QUIET_SECONDS` (60).

mod cluster;
mod fake;
mod objects;
mod timing;

use std::time::{Duration, Instant};

use kube::Client;
use serde_json::json;

use cluster::{bulk, delta, process_usage, write_counts};
use objects::Plan;

/// How long after the last binding is Ready the converging window closes.
const SETTLE: Duration = Duration::from_secs(2);

/// What the operator writes (the cluster's own controllers renew leases meanwhile).
const OPERATOR_RESOURCES: [&str; 5] = [
    "emailproviders/",
    "exchangeserviceaccounts/",
    "mailboxbindings/",
    "events/",
    "secrets/",
];

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::var_os("KUBECONFIG").is_none() {
        eprintln!("scale: no KUBECONFIG, nothing to measure (see the module docs)");
        return;
    }
    match run().await {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("scale: {e}");
            std::process::exit(1);
        }
    }
}

async fn run() -> Result<serde_json::Value, String> {
    let client = Client::try_default()
        .await
        .map_err(|e| format!("no cluster: {e}"))?;
    let fake = fake::Fake::start().await.map_err(|e| e.to_string())?;
    let plan = Plan::new(
        setting("MAILOPS_BENCH_N", 1000),
        setting("MAILOPS_BENCH_PROVIDERS", 10),
        setting("MAILOPS_BENCH_NAMESPACES", 100),
        (fake.url(), fake.ca_pem.clone()),
    );
    let quiet = Duration::from_secs(setting("MAILOPS_BENCH_QUIET_SECONDS", 60) as u64);
    let result = measure(&client, &plan, &fake, quiet).await;
    let cleaned = plan.clean_up(&client).await;
    let mut report = result?;
    report["cleaned_up"] = json!(cleaned.is_ok());
    cleaned?;
    Ok(report)
}

async fn measure(
    client: &Client,
    plan: &Plan,
    fake: &fake::Fake,
    quiet: Duration,
) -> Result<serde_json::Value, String> {
    let version = client
        .apiserver_version()
        .await
        .map_err(|e| e.to_string())?
        .git_version;
    let setup = Instant::now();
    plan.install_crds(client).await?;
    plan.create_fixtures(client).await?;
    bulk(plan.n, |i| plan.create_binding(client, i)).await?;
    let setup_seconds = setup.elapsed().as_secs_f64();

    let floor = Instant::now();
    bulk(plan.n, |i| plan.floor_status(client, i, "status")).await?;
    let floor_status = floor.elapsed().as_secs_f64();
    let floor = Instant::now();
    bulk(plan.n, |i| plan.floor_status_and_event(client, i)).await?;
    let floor_status_event = floor.elapsed().as_secs_f64();
    bulk(plan.n, |i| plan.floor_clear(client, i)).await?;

    let before = write_counts(client).await?;
    let mut operator = timing::Operator::start(&plan.run)?;
    let started = Instant::now();
    timing::until_all_ready(client, plan).await?;
    let ready_seconds = started.elapsed().as_secs_f64();
    // The providers' and accounts' last count writes land one settle window after the last
    // binding: part of converging, not of the quiet period.
    tokio::time::sleep(SETTLE).await;
    let converged = write_counts(client).await?;
    let (rss_converged, cpu_converged) = process_usage(operator.pid()).unwrap_or_default();
    tokio::time::sleep(quiet).await;
    let after_quiet = write_counts(client).await?;

    let release_seconds = timing::provider_release(client, plan).await?;
    let admit_seconds = timing::namespace_admission(client, plan).await?;
    let (peak_rss, cpu) = process_usage(operator.pid()).unwrap_or_default();
    operator.stop();

    let converging = delta(&before, &converged);
    let quiet_writes = delta(&converged, &after_quiet);
    let ours = |k: &&String| OPERATOR_RESOURCES.iter().any(|r| k.starts_with(r));
    let operator_quiet: u64 = quiet_writes
        .iter()
        .filter(|(k, _)| ours(k))
        .map(|(_, v)| v)
        .sum();
    let get = |k: &str| converging.get(k).copied().unwrap_or(0);
    let binding_status = get("mailboxbindings/status APPLY") + get("mailboxbindings/status PATCH");
    let counted_status = get("emailproviders/status APPLY")
        + get("emailproviders/status PATCH")
        + get("exchangeserviceaccounts/status APPLY")
        + get("exchangeserviceaccounts/status PATCH");
    Ok(json!({
        "n": plan.n, "providers": plan.providers, "namespaces": plan.namespaces,
        "kubernetes": version, "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "setup_seconds": round(setup_seconds),
        "floor_status_seconds": round(floor_status),
        "floor_status_event_seconds": round(floor_status_event),
        "ready_seconds": round(ready_seconds),
        "ratio_to_floor": round(ready_seconds / floor_status_event),
        "ratio_to_status_floor": round(ready_seconds / floor_status),
        "binding_status_writes_per_binding": round(binding_status as f64 / plan.n as f64),
        "provider_and_account_status_writes": counted_status,
        "writes_converging": converging,
        "writes_quiet": quiet_writes,
        "operator_writes_quiet": operator_quiet,
        "quiet_seconds": quiet.as_secs(),
        "token_requests": fake.counts.tokens.load(std::sync::atomic::Ordering::SeqCst),
        "graph_requests": fake.counts.graph.load(std::sync::atomic::Ordering::SeqCst),
        "rss_at_ready_mib": round(rss_converged), "cpu_seconds_at_ready": round(cpu_converged),
        "peak_rss_mib": round(peak_rss), "cpu_seconds": round(cpu),
        "release_seconds": round(release_seconds),
        "admit_seconds": round(admit_seconds),
    }))
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
