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

fn label<'a>(labels: &'a str, name: &str) -> &'a str {
    let key = format!("{name}=\"");
    labels
        .split(',')
        .find_map(|l| l.trim().strip_prefix(key.as_str()))
        .map(|v| v.trim_end_matches('"'))
        .unwrap_or("")
}

/// `apiserver_request_total` from the API server's `/metrics`, write verbs only.
pub async fn write_counts(client: &Client) -> Result<WriteCounts, String> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let text = client
        .request_text(request)
        .await
        .map_err(|e| format!("reading the API server's /metrics: {e}"))?;
    let mut counts = WriteCounts::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let verb = label(labels, "verb");
        if !WRITE_VERBS.contains(&verb) {
            continue;
        }
        let key = format!(
            "{}/{} {verb}",
            label(labels, "resource"),
            label(labels, "subresource")
        );
        let n = value.trim().parse::<f64>().unwrap_or(0.0) as u64;
        *counts.entry(key).or_default() += n;
    }
    Ok(counts)
}

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
