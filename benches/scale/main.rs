//! Scale benchmark against the cluster in `KUBECONFIG` (skipped without one):
//!
//! ```sh
//! KUBECONFIG=... MAILOPS_BENCH_N=10000 cargo bench --bench scale
//! ```
//!
//! Creates N MailboxBindings over P Microsoft 365 providers (one ExchangeServiceAccount
//! each) and M namespaces, with Entra ID and Graph answered by a fake on 127.0.0.1, and
//! N schema-less twins of the bindings (a CRD of the benchmark's own, `schemaless.rs`).
//! It first measures the API server's own floor in the same run, on mailops' CRD and on
//! the schema-less one (N server-side-apply status writes at concurrency 16, then N status
//! writes plus one Event each, the passes alternating between the kinds; with the API
//! server's metrics over each), then:
//!
//! 1. starts `mailops run` (this build) and watches until every binding is Ready, then a
//!    quiet period;
//! 2. restart: stops it (SIGTERM) and starts another, counting its first window;
//! 3. how long a provider takes to go after its last binding, and how long labelling a
//!    namespace takes to admit a waiting binding (on the restarted operator);
//! 4. failover: two replicas electing through one Lease; the leader is killed (SIGKILL)
//!    once the standby is warm, and the standby's takeover is timed and counted;
//! 5. steady state: an operator with a short re-verification interval, its status writes
//!    over a window after its first round, scaled to an hour.
//!
//! It reports one JSON line (writes are the API server's own `apiserver_request_total`)
//! and removes everything it created, the schema-less CRD too.
//!
//! Settings: `MAILOPS_BENCH_N` (1000), `MAILOPS_BENCH_PROVIDERS` (10),
//! `MAILOPS_BENCH_NAMESPACES` (100), `MAILOPS_BENCH_QUIET_SECONDS` (60),
//! `MAILOPS_BENCH_RESTART_SECONDS` (60, the restart's and the failover's window),
//! `MAILOPS_BENCH_STEADY_INTERVAL_SECONDS` (60, at least 60),
//! `MAILOPS_BENCH_STEADY_SECONDS` (120).

mod cluster;
mod cost;
mod failover;
mod fake;
mod floor;
mod objects;
mod operator;
mod restart;
mod schemaless;
mod timing;

use std::time::{Duration, Instant};

use kube::Client;
use serde_json::{Value, json};

use cluster::{bulk, delta, process_usage, write_counts};
use objects::Plan;
use operator::Operator;

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

fn seconds(name: &str, default: usize) -> Duration {
    Duration::from_secs(setting(name, default) as u64)
}

/// The windows of the phases, from the environment.
struct Windows {
    quiet: Duration,
    restart: Duration,
    steady_interval: Duration,
    steady: Duration,
}

impl Windows {
    fn from_env() -> Windows {
        Windows {
            quiet: seconds("MAILOPS_BENCH_QUIET_SECONDS", 60),
            restart: seconds("MAILOPS_BENCH_RESTART_SECONDS", 60),
            // `mailops run` takes no interval under 60 s.
            steady_interval: seconds("MAILOPS_BENCH_STEADY_INTERVAL_SECONDS", 60)
                .max(Duration::from_secs(60)),
            steady: seconds("MAILOPS_BENCH_STEADY_SECONDS", 120),
        }
    }
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

async fn run() -> Result<Value, String> {
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
    let result = measure(&client, &plan, &fake, &Windows::from_env()).await;
    let cleaned = plan.clean_up(&client).await;
    let removed = schemaless::remove(&client).await;
    let mut report = result?;
    report["cleaned_up"] = json!(cleaned.is_ok() && removed.is_ok());
    cleaned?;
    removed?;
    Ok(report)
}

/// Add `more`'s keys to `report`.
fn merge(report: &mut Value, more: Value) {
    if let (Some(report), Value::Object(more)) = (report.as_object_mut(), more) {
        report.extend(more);
    }
}

/// A phase's keys, or `<phase>_error` with why it failed (the other phases still count).
fn merge_phase(report: &mut Value, phase: &str, result: Result<Value, String>) {
    match result {
        Ok(more) => merge(report, more),
        Err(e) => report[format!("{phase}_error")] = json!(e),
    }
}

async fn measure(
    client: &Client,
    plan: &Plan,
    fake: &fake::Fake,
    windows: &Windows,
) -> Result<Value, String> {
    let version = client
        .apiserver_version()
        .await
        .map_err(|e| e.to_string())?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut report = json!({"n": plan.n, "providers": plan.providers,
        "namespaces": plan.namespaces, "kubernetes": version.git_version, "cores": cores});
    let setup = Instant::now();
    set_up(client, plan).await?;
    report["setup_seconds"] = json!(round(setup.elapsed().as_secs_f64()));
    let kinds = [&objects::binding_kind(), &schemaless::kind()];
    let [floor, schemaless] = floor::floors(client, plan, kinds).await?;
    bulk(plan.n, |i| plan.floor_clear(client, i)).await?;
    merge(&mut report, floor::report(&floor, &schemaless));
    let (operator, converged) = converge(client, plan, fake, windows.quiet, &floor).await?;
    merge(&mut report, converged);
    report["apiserver_cost"] = json!({
        "mailops_floor": floor.cost(), "schemaless_floor": schemaless.cost(),
        "binding_at_ready": cost::stored_size(client, plan, &objects::binding_kind(), 0).await?,
    });
    let (mut operator, restarted) =
        restart::restart(client, plan, fake, operator, windows.restart).await?;
    merge(&mut report, restarted);
    report["release_seconds"] = json!(round(timing::provider_release(client, plan).await?));
    report["admit_seconds"] = json!(round(timing::namespace_admission(client, plan).await?));
    operator.terminate().await;
    let failover = failover::failover(client, plan, fake, windows.restart).await;
    merge_phase(&mut report, "failover", failover);
    let steady = restart::steady(client, plan, fake, windows.steady_interval, windows.steady);
    merge_phase(&mut report, "steady", steady.await);
    Ok(report)
}

/// The CRDs (mailops' and the schema-less one), the fixtures, N bindings and N
/// schema-less twins of them.
async fn set_up(client: &Client, plan: &Plan) -> Result<(), String> {
    plan.install_crds(client).await?;
    schemaless::install(client).await?;
    plan.create_fixtures(client).await?;
    bulk(plan.n, |i| plan.create_binding(client, i)).await?;
    bulk(plan.n, |i| schemaless::create_object(plan, client, i)).await
}

/// Start the operator, time it to all Ready, then a quiet period. Returns it running.
async fn converge(
    client: &Client,
    plan: &Plan,
    fake: &fake::Fake,
    quiet: Duration,
    floor: &floor::Floor,
) -> Result<(Operator, Value), String> {
    let before = write_counts(client).await?;
    let operator = Operator::start(&plan.run, "first", &operator::single())?;
    let started = Instant::now();
    timing::until_all_ready(client, plan).await?;
    let ready_seconds = started.elapsed().as_secs_f64();
    // The providers' and accounts' last count writes land one settle window after the last
    // binding: part of converging, not of the quiet period.
    tokio::time::sleep(SETTLE).await;
    let converged = write_counts(client).await?;
    let (rss_converged, cpu_converged) = process_usage(operator.pid()).unwrap_or_default();
    let tokens = fake.counts.tokens.load(std::sync::atomic::Ordering::SeqCst);
    let graph = fake.counts.graph.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(quiet).await;
    let after_quiet = write_counts(client).await?;
    let (peak_rss, cpu) = process_usage(operator.pid()).unwrap_or_default();
    let mut report = writes_report(
        plan,
        &delta(&before, &converged),
        &delta(&converged, &after_quiet),
    );
    merge(
        &mut report,
        json!({
            "ready_seconds": round(ready_seconds),
            "ratio_to_floor": round(ready_seconds / floor.status_event),
            "ratio_to_status_floor": round(ready_seconds / floor.status),
            "quiet_seconds": quiet.as_secs(),
            "token_requests": tokens, "graph_requests": graph,
            "rss_at_ready_mib": round(rss_converged), "cpu_seconds_at_ready": round(cpu_converged),
            "peak_rss_mib": round(peak_rss), "cpu_seconds": round(cpu),
        }),
    );
    Ok((operator, report))
}

/// The writes while converging and in the quiet period after.
fn writes_report(
    plan: &Plan,
    converging: &cluster::WriteCounts,
    quiet: &cluster::WriteCounts,
) -> Value {
    let ours = |k: &&String| OPERATOR_RESOURCES.iter().any(|r| k.starts_with(r));
    let operator_quiet: u64 = quiet.iter().filter(|(k, _)| ours(k)).map(|(_, v)| v).sum();
    let get = |k: &str| converging.get(k).copied().unwrap_or(0);
    let binding_status = get("mailboxbindings/status APPLY") + get("mailboxbindings/status PATCH");
    let counted_status = cluster::status_writes(converging) - binding_status;
    json!({
        "binding_status_writes_per_binding": round(binding_status as f64 / plan.n as f64),
        "provider_and_account_status_writes": counted_status,
        "writes_converging": converging,
        "writes_quiet": quiet,
        "operator_writes_quiet": operator_quiet,
    })
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
