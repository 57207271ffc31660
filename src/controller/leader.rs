//! Leader election on a `coordination.k8s.io/v1` Lease (kube 5 ships none): acquire before
//! any write, renew well inside the lease duration, give up (and stop writing) as soon as
//! renewal cannot be proven, release on shutdown so a successor starts at once.
//!
//! Every write to the Lease carries the `resourceVersion` it was computed from, so two
//! replicas racing for it cannot both succeed: the loser gets a 409 Conflict.
//!
//! Time is judged as client-go does: a standby takes a Lease over only when the record it
//! sees has not changed for a whole lease duration by its *own* monotonic clock (the
//! holder's `renewTime` is never compared with the local wall clock, so clock skew cannot
//! hand a live Lease to a second replica). The holder measures its deadline from when it
//! *sent* its last successful renewal and abandons a renewal that does not answer by then,
//! so it stops acting before any standby may take over, whatever the API server does.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::{Error, Result};

/// How long a Lease is valid without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews.
pub const RENEW_PERIOD: Duration = Duration::from_secs(5);
/// How soon a failed renewal is tried again (within the deadline), and how often a
/// standby looks at the Lease.
pub const RETRY_PERIOD: Duration = Duration::from_secs(1);
/// How long the holder may fail to renew before it stops acting (less than the duration,
/// so it stops before anyone else may take over).
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);

/// One replica's view of the Lease.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    observed: Mutex<Observer>,
}

/// The parts of a Lease record whose change proves its holder alive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
}

impl Record {
    fn of(spec: &LeaseSpec) -> Self {
        Record {
            holder: spec.holder_identity.clone(),
            renew_time: spec.renew_time.clone(),
            transitions: spec.lease_transitions,
        }
    }
}

/// When this replica first saw the Lease record it now sees, by its own clock.
#[derive(Debug, Default)]
pub struct Observer {
    last: Option<(Record, Instant)>,
}

impl Observer {
    /// Record what was read at `now`; returns since when the record has been unchanged.
    pub fn observe(&mut self, spec: &LeaseSpec, now: Instant) -> Instant {
        let record = Record::of(spec);
        match &self.last {
            Some((seen, since)) if *seen == record => *since,
            _ => {
                self.last = Some((record, now));
                now
            }
        }
    }
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

/// Pure: decide from the Lease's spec, our identity, since when (by our clock) the record
/// has been unchanged, and now.
pub fn decide(
    lease: Option<&LeaseSpec>,
    identity: &str,
    unchanged_since: Instant,
    now: Instant,
) -> Decision {
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
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(LEASE_DURATION, Duration::from_secs);
    if now.saturating_duration_since(unchanged_since) >= duration {
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
            observed: Mutex::default(),
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
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let seen = Instant::now();
        let unchanged_since = spec.map_or(seen, |spec| {
            self.observed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .observe(spec, seen)
        });
        let decision = decide(spec, &self.identity, unchanged_since, seen);
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

    /// Wait until this replica holds the Lease; returns when the successful attempt was
    /// sent, the start of the first renewal deadline.
    pub async fn acquire(&self) -> Result<Instant> {
        info!(lease = %self.name, identity = %self.identity, "waiting for leadership");
        loop {
            let sent = Instant::now();
            let attempt = tokio::time::timeout(RENEW_DEADLINE, self.try_acquire_or_renew());
            match attempt.await {
                Ok(Ok(true)) => {
                    info!(lease = %self.name, "became leader");
                    return Ok(sent);
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => warn!(error = %e, "cannot read or write the leader Lease"),
                Err(_) => warn!("the API server did not answer about the leader Lease in time"),
            }
            // A standby times the holder from when it sees a renewal: it must look often
            // enough that "unchanged for a lease duration" is at most one retry late.
            tokio::time::sleep(super::backoff::jitter(RETRY_PERIOD, 0.2)).await;
        }
    }

    /// Renew until renewal cannot be proven within [`RENEW_DEADLINE`] of the last
    /// successful one (counted from when it was sent), or another replica holds the Lease;
    /// then return an error (the caller stops all writes). A renewal still in flight at
    /// the deadline is abandoned, so a black-holed request cannot keep us acting.
    pub async fn keep_renewed(&self, acquired: Instant) -> Result<()> {
        let mut renewed = acquired;
        let mut next_attempt = acquired + RENEW_PERIOD;
        loop {
            let deadline = renewed + RENEW_DEADLINE;
            tokio::time::sleep_until(next_attempt.min(deadline)).await;
            if Instant::now() >= deadline {
                return Err(Error::Config(
                    "could not renew the leader Lease in time; stopping".into(),
                ));
            }
            let sent = Instant::now();
            match tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => {
                    renewed = sent;
                    next_attempt = sent + RENEW_PERIOD;
                }
                Ok(Ok(false)) => {
                    return Err(Error::Config(
                        "lost the leader Lease to another replica".into(),
                    ));
                }
                Ok(Err(e)) => {
                    warn!(error = %e, "cannot renew the leader Lease");
                    next_attempt = Instant::now() + RETRY_PERIOD;
                }
                // The deadline passed with the request in flight: the next turn stops.
                Err(_) => {}
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

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn lease_decisions() {
        let t0 = Instant::now();
        let now = t0 + S(20);
        let held = spec("b", "2026-01-01T00:00:10Z");
        assert_eq!(decide(None, "a", now, now), Decision::Create);
        assert_eq!(
            decide(Some(&spec("a", "2026-01-01T00:00:00Z")), "a", t0, now),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&held), "a", now - S(10), now),
            Decision::HeldByOther("b".into())
        );
        assert_eq!(decide(Some(&held), "a", t0, now), Decision::TakeOver);
        assert_eq!(
            decide(Some(&spec("", "2026-01-01T00:00:19Z")), "a", now, now),
            Decision::TakeOver
        );
    }

    #[test]
    fn a_skewed_clock_cannot_hand_over_a_live_lease() {
        // By our wall clock b renewed a year ago; what counts is that we saw it change.
        let mut observer = Observer::default();
        let t0 = Instant::now();
        let old = spec("b", "2025-01-01T00:00:00Z");
        let since = observer.observe(&old, t0);
        assert_eq!(
            decide(Some(&old), "a", since, t0 + S(1)),
            Decision::HeldByOther("b".into())
        );
        // b renews: the clock starts again from when we saw that.
        let renewed = spec("b", "2025-01-01T00:00:05Z");
        let since = observer.observe(&renewed, t0 + S(14));
        assert_eq!(since, t0 + S(14));
        assert_eq!(
            decide(Some(&renewed), "a", since, t0 + S(20)),
            Decision::HeldByOther("b".into())
        );
        // Unchanged for a whole lease duration by our clock: b is gone.
        let since = observer.observe(&renewed, t0 + S(29));
        assert_eq!(
            decide(Some(&renewed), "a", since, t0 + S(29)),
            Decision::TakeOver
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_black_holed_renewal_stops_the_leader_before_the_lease_can_expire() {
        use http::{Request, Response};
        use kube::client::Body;
        // An API server that accepts requests and never answers.
        let (service, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let lock = LeaseLock::new(Client::new(service, "default"), "ns", "lease", "a");
        let acquired = Instant::now();
        let stopped = tokio::time::timeout(S(60), lock.keep_renewed(acquired))
            .await
            .expect("keep_renewed returns while the request still hangs");
        assert!(stopped.is_err());
        let acting = Instant::now() - acquired;
        assert!(
            acting <= RENEW_DEADLINE,
            "acted {acting:?} after the last renewal"
        );
        assert!(acting < LEASE_DURATION);
    }
}
