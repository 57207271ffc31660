//! Building the Kubernetes client the operator uses. (The request-counting layer that
//! feeds `mailops_kube_requests_total` lands with the shipping work.)

use std::sync::Arc;

use crate::metrics::Metrics;

/// A client from the in-cluster config or `KUBECONFIG`.
pub async fn build(metrics: Arc<Metrics>) -> crate::Result<kube::Client> {
    let _ = metrics;
    Ok(kube::Client::try_default().await?)
}
