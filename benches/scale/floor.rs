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

/// The floor on each kind, passes alternating between them (status on each, then status
/// and Event on each) so that both meet the machine in the same state.
pub async fn floors(
    client: &Client,
    plan: &Plan,
    kinds: [&ApiResource; 2],
) -> Result<[Floor; 2], String> {
    let mut floors = [Floor::default(), Floor::default()];
    for event in [false, true] {
        for (floor, kind) in floors.iter_mut().zip(kinds) {
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
    })
}
