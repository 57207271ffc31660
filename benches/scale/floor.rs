//! The API server's floor: N status writes of the shape mailops writes, then N such
//! writes plus one Event each, at the benchmark's concurrency, on mailops' CRD and on the
//! schema-less one; with what the API server's own metrics say they cost it, and the size
//! of one object after.

use std::time::Instant;

use kube::Client;
use kube::api::ApiResource;
use serde_json::{Value, json};

use crate::cluster::bulk;
use crate::cost::{self, Costs};
use crate::objects::Plan;
use crate::round;

/// One floor, measured.
#[derive(Default)]
pub struct Floor {
    /// Seconds for N status writes.
    pub status: f64,
    /// Seconds for N status writes and N Events.
    pub status_event: f64,
    /// The API server's histograms over both passes.
    pub costs: Costs,
    /// The size of object 0 after them.
    pub object: Value,
}

impl Floor {
    /// The API server's cost over this floor, and one object's size.
    pub fn cost(&self) -> Value {
        json!({"metrics": cost::report(&self.costs), "object": self.object})
    }
}

/// One pass of N writes to `kind` (each with an Event, or not): its seconds and what the
/// API server's histograms observed meanwhile.
async fn pass(
    client: &Client,
    plan: &Plan,
    kind: &ApiResource,
    event: bool,
) -> Result<(f64, Costs), String> {
    let before = cost::scrape(client).await?;
    let start = Instant::now();
    match event {
        false => bulk(plan.n, |i| plan.floor_status(client, kind, i, "status")).await?,
        true => bulk(plan.n, |i| plan.floor_status_and_event(client, kind, i)).await?,
    }
    let seconds = start.elapsed().as_secs_f64();
    let after = cost::scrape(client).await?;
    Ok((seconds, cost::between(&before, &after)))
}

/// The floor on each kind, passes alternating between them in the order A B B A (status
/// on each, then status and Event on each the other way round), so that a machine (or an
/// etcd) that slows down or speeds up over the run weighs on both kinds alike.
pub async fn floors(
    client: &Client,
    plan: &Plan,
    kinds: [&ApiResource; 2],
) -> Result<[Floor; 2], String> {
    let mut floors = [Floor::default(), Floor::default()];
    for event in [false, true] {
        let mut order: Vec<(&mut Floor, &ApiResource)> = floors.iter_mut().zip(kinds).collect();
        if event {
            order.reverse();
        }
        for (floor, kind) in order {
            let (seconds, costs) = pass(client, plan, kind, event).await?;
            match event {
                false => floor.status = seconds,
                true => floor.status_event = seconds,
            }
            cost::add(&mut floor.costs, &costs);
        }
    }
    for (floor, kind) in floors.iter_mut().zip(kinds) {
        floor.object = cost::stored_size(client, plan, kind, 0).await?;
    }
    Ok(floors)
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
        "crd_cost_ratio_request_latency": round(
            status_latency(mailops, "mailboxbindings") / status_latency(schemaless, "floorbindings")
        ),
    })
}

/// The API server's mean latency of the floor's status writes to `resource`, by its own
/// `apiserver_request_duration_seconds` (no client, queue or machine time around it).
fn status_latency(floor: &Floor, resource: &str) -> f64 {
    let key = format!(
        "apiserver_request_duration_seconds{{verb=APPLY,resource={resource},subresource=status}}"
    );
    floor
        .costs
        .get(&key)
        .map_or(f64::NAN, cost::Histogram::mean)
}
