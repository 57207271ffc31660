//! Leader election on a `coordination.k8s.io/v1` Lease (kube 5 ships none): acquire before
//! any write, renew well inside the lease duration, give up (and stop writing) as soon as
//! renewal cannot be proven, release on shutdown so a successor starts at once.
//!
//! Every write to the Lease carries the `resourceVersion` it was computed from, so two
//! replicas racing for it cannot both succeed: the loser gets a 409 Conflict.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};
use tracing::{info, warn};

use crate::{Error, Result};

/// How long a Lease is valid without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews.
pub const RENEW_PERIOD: Duration = Duration::from_secs(5);
/// How long the holder may fail to renew before it stops acting (less than the duration,
/// so it stops before anyone else may take over).
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);

/// One replica's view of the Lease.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
}

/// What to do with the Lease as it stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nobody has it: create it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Free or expired: take it over.
    TakeOver,
    /// Someone else holds a valid Lease.
    HeldByOther(String),
}

/// Pure: decide from the Lease's spec, our identity and the time.
pub fn decide(lease: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = lease else {
        return Decision::Create;
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::TakeOver;
    }
    let duration = SignedDuration::from_secs(
        spec.lease_duration_seconds
            .map_or(LEASE_DURATION.as_secs() as i64, i64::from),
    );
    let expired = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .is_none_or(|t| t.0 + duration < now);
    if expired {
        Decision::TakeOver
    } else {
        Decision::HeldByOther(holder)
    }
}

impl LeaseLock {
    /// A lock on `namespace/name` for this replica's `identity`.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        LeaseLock {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
        }
    }

    fn spec(&self, now: Timestamp, acquire: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
            acquire_time: Some(acquire.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// One attempt: `Ok(true)` when we hold the Lease afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
        );
        let lease = match (&decision, current) {
            (Decision::HeldByOther(_), _) => return Ok(false),
            (Decision::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(self.spec(now, None, 0)),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e.into()),
                };
            }
            (Decision::Renew, Some(mut lease)) => {
                let old = lease.spec.take().unwrap_or_default();
                lease.spec =
                    Some(self.spec(now, old.acquire_time, old.lease_transitions.unwrap_or(0)));
                lease
            }
            (Decision::TakeOver, Some(mut lease)) => {
                let old = lease.spec.take().unwrap_or_default();
                lease.spec = Some(self.spec(now, None, old.lease_transitions.unwrap_or(0) + 1));
                lease
            }
        };
        // `lease` still carries the resourceVersion we read: a concurrent writer makes
        // this replace fail with 409 instead of both of us believing we lead.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Wait until this replica holds the Lease.
    pub async fn acquire(&self) -> Result<()> {
        info!(lease = %self.name, identity = %self.identity, "waiting for leadership");
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    info!(lease = %self.name, "became leader");
                    return Ok(());
                }
                Ok(false) => {}
                Err(e) => warn!(error = %e, "cannot read or write the leader Lease"),
            }
            tokio::time::sleep(super::backoff::jitter(RENEW_PERIOD, 0.2)).await;
        }
    }

    /// Renew until renewal fails for longer than the deadline or another replica holds
    /// the Lease; then return an error (the caller stops all writes).
    pub async fn keep_renewed(&self) -> Result<()> {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW_PERIOD).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    return Err(Error::Config(
                        "lost the leader Lease to another replica".into(),
                    ));
                }
                Err(e) => warn!(error = %e, "cannot renew the leader Lease"),
            }
            if last_renewed.elapsed() > RENEW_DEADLINE {
                return Err(Error::Config(
                    "could not renew the leader Lease in time; stopping".into(),
                ));
            }
        }
    }

    /// Give the Lease up (best effort) so another replica need not wait for it to expire.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let ours = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.identity.as_str());
        if !ours {
            return;
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.renew_time = None;
        }
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!(lease = %self.name, "released leadership"),
            Err(e) => warn!(error = %e, "cannot release the leader Lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: &str) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(renewed.parse().unwrap())),
            ..Default::default()
        }
    }

    #[test]
    fn lease_decisions() {
        let now: Timestamp = "2026-01-01T00:00:20Z".parse().unwrap();
        assert_eq!(decide(None, "a", now), Decision::Create);
        assert_eq!(
            decide(Some(&spec("a", "2026-01-01T00:00:00Z")), "a", now),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&spec("b", "2026-01-01T00:00:10Z")), "a", now),
            Decision::HeldByOther("b".into())
        );
        assert_eq!(
            decide(Some(&spec("b", "2026-01-01T00:00:00Z")), "a", now),
            Decision::TakeOver
        );
        assert_eq!(
            decide(Some(&spec("", "2026-01-01T00:00:19Z")), "a", now),
            Decision::TakeOver
        );
    }
}
