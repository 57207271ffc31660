//! Liveness and readiness state shared between the controllers and the HTTP endpoints.

use std::sync::atomic::{AtomicBool, Ordering};

/// What `/readyz` reports.
#[derive(Debug, Default)]
pub struct HealthState {
    caches_synced: AtomicBool,
    leader: AtomicBool,
    lease_lost: AtomicBool,
}

impl HealthState {
    /// Mark the reflector caches as synced (set once, after the initial LISTs).
    pub fn set_caches_synced(&self) {
        self.caches_synced.store(true, Ordering::Release);
    }

    /// Whether the caches are synced: the replica is ready, leading or not.
    pub fn ready(&self) -> bool {
        self.caches_synced.load(Ordering::Acquire)
    }

    /// Record whether this replica holds the leader Lease.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Release);
    }

    /// Record that this replica lost the leader Lease (it stopped acting and exits).
    pub fn set_lease_lost(&self) {
        self.lease_lost.store(true, Ordering::Release);
    }

    /// Whether the process is healthy: false once it lost the Lease, so a liveness probe
    /// restarts a replica that could not exit by itself.
    pub fn alive(&self) -> bool {
        !self.lease_lost.load(Ordering::Acquire)
    }

    /// Whether this replica holds the leader Lease.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }
}
