//! Talking to the cluster for the benchmark: objects created at a fixed concurrency, the
//! API server's own request counters, and the operator process's CPU and memory.

use std::collections::BTreeMap;
use std::future::Future;

use futures::StreamExt;
use kube::Client;

/// Requests in flight at once for bulk work (the floor and the set-up), as the issue's
/// reference measurement used.
pub const CONCURRENCY: usize = 16;

/// Run `make(i)` for `0..n`, `CONCURRENCY` at a time; the first error stops the run.
pub async fn bulk<F, Fut>(n: usize, make: F) -> Result<(), String>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut results = futures::stream::iter(0..n)
        .map(make)
        .buffer_unordered(CONCURRENCY);
    while let Some(result) = results.next().await {
        result?;
    }
    Ok(())
}

/// Write requests counted by the API server, by `resource/subresource verb`.
pub type WriteCounts = BTreeMap<String, u64>;

const WRITE_VERBS: [&str; 5] = ["POST", "PUT", "PATCH", "APPLY", "DELETE"];

/// The API server's `/metrics`, as text.
pub async fn metrics_text(client: &Client) -> Result<String, String> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    client
        .request_text(request)
        .await
        .map_err(|e| format!("reading the API server's /metrics: {e}"))
}

/// One sample line of the exposition format: its name, its labels and its value.
pub fn sample(line: &str) -> Option<(&str, &str, f64)> {
    if line.starts_with('#') {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let (name, labels) = match series.split_once('{') {
        Some((name, labels)) => (name, labels.strip_suffix('}')?),
        None => (series, ""),
    };
    Some((name, labels, value.parse().ok()?))
}

/// The value of label `name` in a sample's labels ("" when absent).
pub fn label<'a>(labels: &'a str, name: &str) -> &'a str {
    let key = format!("{name}=\"");
    labels
        .split(',')
        .find_map(|l| l.trim().strip_prefix(key.as_str()))
        .map(|v| v.trim_end_matches('"'))
        .unwrap_or("")
}

/// `apiserver_request_total` from the API server's `/metrics`, write verbs only.
pub async fn write_counts(client: &Client) -> Result<WriteCounts, String> {
    let text = metrics_text(client).await?;
    let mut counts = WriteCounts::new();
    for (name, labels, value) in text.lines().filter_map(sample) {
        let verb = label(labels, "verb");
        if name != "apiserver_request_total" || !WRITE_VERBS.contains(&verb) {
            continue;
        }
        let key = format!(
            "{}/{} {verb}",
            label(labels, "resource"),
            label(labels, "subresource")
        );
        *counts.entry(key).or_default() += value as u64;
    }
    Ok(counts)
}

/// Status writes to mailops' three kinds among `counts`.
pub fn status_writes(counts: &WriteCounts) -> u64 {
    counts
        .iter()
        .filter(|(k, _)| {
            STATUS_SUBRESOURCES.iter().any(|r| k.starts_with(r)) && !k.ends_with(" DELETE")
        })
        .map(|(_, v)| v)
        .sum()
}

/// The status subresources mailops writes, as [`WriteCounts`] keys begin.
const STATUS_SUBRESOURCES: [&str; 3] = [
    "emailproviders/status ",
    "exchangeserviceaccounts/status ",
    "mailboxbindings/status ",
];

/// What changed between two readings, only where something did.
pub fn delta(before: &WriteCounts, after: &WriteCounts) -> WriteCounts {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// Peak resident memory (MiB) and CPU seconds of a process, from `/proc`.
pub fn process_usage(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: utime and stime are 14, 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on Linux for every architecture the project builds for.
    Some((kib / 1024.0, ticks / 100.0))
}
