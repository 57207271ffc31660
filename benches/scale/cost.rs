//! What a status write costs the API server, from its own `/metrics`: request latency and
//! request body size by resource, the etcd requests behind them, CEL evaluation and
//! validation ratcheting; and the size of one object as the API server returns it.

use std::collections::BTreeMap;

use kube::Client;
use kube::api::ApiResource;
use serde_json::{Value, json};

use crate::cluster::{label, metrics_text, sample};
use crate::objects::Plan;

/// Histograms read by resource (`apiserver_*`) or by stored type (`etcd_*`).
const BY_RESOURCE: [&str; 3] = [
    "apiserver_request_duration_seconds",
    "apiserver_request_body_size_bytes",
    "etcd_request_duration_seconds",
];
/// Histograms read whole: CRD validation rules and ratcheting.
const WHOLE: [&str; 2] = [
    "apiserver_cel_",
    "apiextensions_apiserver_validation_ratcheting_",
];
/// The resources (and etcd types) the floors write.
const RESOURCES: [&str; 3] = ["mailboxbindings", "floorbindings", "events"];
/// The labels that say what was asked; the others are summed over.
const KEPT: [&str; 5] = ["verb", "resource", "subresource", "operation", "type"];

/// One histogram's sum and count.
#[derive(Clone, Copy, Debug, Default)]
pub struct Histogram {
    sum: f64,
    count: f64,
}

impl Histogram {
    /// The mean of what it observed.
    pub fn mean(&self) -> f64 {
        self.sum / self.count
    }
}

/// Histograms by `name{kept labels}`.
pub type Costs = BTreeMap<String, Histogram>;

fn ours(base: &str, labels: &str) -> bool {
    if WHOLE.iter().any(|p| base.starts_with(p)) {
        return true;
    }
    let what = match label(labels, "resource") {
        "" => label(labels, "type").split('.').next().unwrap_or(""),
        resource => resource,
    };
    BY_RESOURCE.contains(&base) && RESOURCES.contains(&what)
}

fn key(base: &str, labels: &str) -> String {
    let kept: Vec<String> = KEPT
        .iter()
        .filter_map(|k| Some((k, label(labels, k))).filter(|(_, v)| !v.is_empty()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{base}{{{}}}", kept.join(","))
}

/// Read the histograms of interest now.
pub async fn scrape(client: &Client) -> Result<Costs, String> {
    let text = metrics_text(client).await?;
    let mut costs = Costs::new();
    for (name, labels, value) in text.lines().filter_map(sample) {
        let (base, is_sum) = match (name.strip_suffix("_sum"), name.strip_suffix("_count")) {
            (Some(base), _) => (base, true),
            (_, Some(base)) => (base, false),
            _ => continue,
        };
        if !ours(base, labels) {
            continue;
        }
        let h = costs.entry(key(base, labels)).or_default();
        match is_sum {
            true => h.sum += value,
            false => h.count += value,
        }
    }
    Ok(costs)
}

/// What was observed between two readings, where anything was.
pub fn between(before: &Costs, after: &Costs) -> Costs {
    let mut out = Costs::new();
    for (k, a) in after {
        let b = before.get(k).copied().unwrap_or_default();
        let (sum, count) = (a.sum - b.sum, a.count - b.count);
        if count > 0.0 {
            out.insert(k.clone(), Histogram { sum, count });
        }
    }
    out
}

/// `more` added to `costs`.
pub fn add(costs: &mut Costs, more: &Costs) {
    for (k, m) in more {
        let h = costs.entry(k.clone()).or_default();
        h.sum += m.sum;
        h.count += m.count;
    }
}

/// Each histogram as count, sum and mean.
pub fn report(costs: &Costs) -> Value {
    let out: serde_json::Map<String, Value> = costs
        .iter()
        .map(|(k, h)| {
            let mean = round6(h.mean());
            (
                k.clone(),
                json!({"count": h.count, "sum": round6(h.sum), "mean": mean}),
            )
        })
        .collect();
    Value::Object(out)
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Object `i` of `kind` as the API server returns it in JSON: its bytes, and how many of
/// them are managedFields and status.
pub async fn stored_size(
    client: &Client,
    plan: &Plan,
    kind: &ApiResource,
    i: usize,
) -> Result<Value, String> {
    let (ns, name) = plan.binding(i);
    let url = format!(
        "/apis/{}/namespaces/{ns}/{}/{name}",
        kind.api_version, kind.plural
    );
    let request = http::Request::get(url)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let text = client
        .request_text(request)
        .await
        .map_err(|e| format!("reading {name}: {e}"))?;
    let object: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let size = |v: &Value| serde_json::to_string(v).map_or(0, |s| s.len());
    let managed = &object["metadata"]["managedFields"];
    Ok(json!({
        "bytes": text.len(),
        "managed_fields_bytes": size(managed),
        "field_managers": managed.as_array().map_or(0, Vec::len),
        "status_bytes": size(&object["status"]),
    }))
}
