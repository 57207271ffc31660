//! The API server's floor: N status writes of the shape mailops writes, then N such
//! writes plus one Event each, at the benchmark's concurrency, on one kind; with what the
//! API server's own metrics say they cost it, and the size of one object after.

use std::time::Instant;

use kube::Client;
use kube::api::ApiResource;
use serde_json::{Value, json};

use crate::cluster::bulk;
use crate::cost;
use crate::objects::Plan;
use crate::round;

/// One floor, measured.
pub struct Floor {
    /// Seconds for N status writes.
    pub status: f64,
    /// Seconds for N status writes and N Events.
    pub status_event: f64,
    /// The API server's histograms over both, and the size of object 0 after.
    pub cost: Value,
}

/// Run the floor on `kind` (the run's bindings, or their schema-less twins).
pub async fn floor(client: &Client, plan: &Plan, kind: &ApiResource) -> Result<Floor, String> {
    let before = cost::scrape(client).await?;
    let start = Instant::now();
    bulk(plan.n, |i| plan.floor_status(client, kind, i, "status")).await?;
    let status = start.elapsed().as_secs_f64();
    let start = Instant::now();
    bulk(plan.n, |i| plan.floor_status_and_event(client, kind, i)).await?;
    let status_event = start.elapsed().as_secs_f64();
    let after = cost::scrape(client).await?;
    let cost = json!({
        "metrics": cost::between(&before, &after),
        "object": cost::stored_size(client, plan, kind, 0).await?,
    });
    Ok(Floor {
        status,
        status_event,
        cost,
    })
}

/// Both floors of one run side by side.
pub fn report(mailops: &Floor, schemaless: &Floor) -> Value {
    json!({
        "floor_status_seconds": round(mailops.status),
        "floor_status_event_seconds": round(mailops.status_event),
        "floor_schemaless_status_seconds": round(schemaless.status),
        "floor_schemaless_status_event_seconds": round(schemaless.status_event),
        "crd_cost_ratio": round(mailops.status_event / schemaless.status_event),
        "crd_cost_ratio_status": round(mailops.status / schemaless.status),
    })
}
