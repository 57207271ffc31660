//! The operator's HTTP endpoints: `/metrics`, `/healthz`, `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::health::HealthState;
use crate::metrics::Metrics;

/// Serve the endpoints until the process ends. (Placeholder until the shipping work lands.)
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<HealthState>,
) -> crate::Result<()> {
    let _ = (addr, metrics, health);
    Err(crate::Error::Config(
        "HTTP endpoints are not implemented yet".into(),
    ))
}
