//! Liveness and readiness state shared between the controllers, the webhook and the HTTP
//! endpoints.

use std::sync::atomic::{AtomicBool, Ordering};

/// What `/healthz` and `/readyz` report.
#[derive(Debug, Default)]
pub struct HealthState {
    caches_synced: AtomicBool,
    /// Whether readiness waits for the webhook's serving certificate (the webhook is on).
    needs_webhook_certificate: bool,
    webhook_certificate_loaded: AtomicBool,
    leader: AtomicBool,
    lease_lost: AtomicBool,
}

impl HealthState {
    /// A state whose readiness also waits for the admission webhook's serving certificate:
    /// the webhook Service sends the API server only to Ready pods, so a pod that cannot
    /// yet answer TLS must not be one of them.
    pub fn with_webhook() -> Self {
        HealthState {
            needs_webhook_certificate: true,
            ..HealthState::default()
        }
    }

    /// Mark the reflector caches as synced (set once, after the initial LISTs).
    pub fn set_caches_synced(&self) {
        self.caches_synced.store(true, Ordering::Release);
    }

    /// Mark the webhook's serving certificate as loaded (it answers TLS from now on).
    pub fn set_webhook_certificate_loaded(&self) {
        self.webhook_certificate_loaded
            .store(true, Ordering::Release);
    }

    /// Whether the replica is ready: caches synced and, with the webhook, its certificate
    /// loaded; leading or not.
    pub fn ready(&self) -> bool {
        self.not_ready_because().is_none()
    }

    /// What readiness still waits for, if anything.
    pub fn not_ready_because(&self) -> Option<&'static str> {
        if !self.caches_synced.load(Ordering::Acquire) {
            Some("caches not synced")
        } else if self.needs_webhook_certificate
            && !self.webhook_certificate_loaded.load(Ordering::Acquire)
        {
            Some("webhook serving certificate not loaded")
        } else {
            None
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_the_webhook_readiness_waits_for_the_certificate_too() {
        let health = HealthState::with_webhook();
        assert_eq!(health.not_ready_because(), Some("caches not synced"));
        health.set_caches_synced();
        assert!(!health.ready());
        assert_eq!(
            health.not_ready_because(),
            Some("webhook serving certificate not loaded")
        );
        health.set_webhook_certificate_loaded();
        assert!(health.ready());
        assert!(health.alive(), "liveness does not depend on it");
    }

    #[test]
    fn without_the_webhook_synced_caches_are_enough() {
        let health = HealthState::default();
        assert!(!health.ready());
        health.set_caches_synced();
        assert!(health.ready());
    }
}
