//! How many probes may be in flight at once: a few per mailbox (Exchange throttles per
//! mailbox and per app, and a burst of reconciles must not look like an attack) and a
//! configurable cap per provider.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Most probes in flight for one mailbox.
pub const PER_MAILBOX: usize = 2;

/// The limits of one client.
pub struct ProbeLimits {
    per_mailbox: KeyedLimiter,
    per_provider: KeyedLimiter,
    waiting: Arc<AtomicUsize>,
}

/// Counts a probe as waiting until it holds its slots (or is cancelled).
struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn enter(counter: &Arc<AtomicUsize>) -> Waiting {
        counter.fetch_add(1, Ordering::SeqCst);
        Waiting(counter.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Held while a probe runs; dropping it frees the slots.
pub struct ProbeSlot {
    // The mailbox slot is taken first and released last, so a mailbox waiting for its own
    // turn never holds one of the provider's slots.
    _provider: KeyedPermit,
    _mailbox: Option<KeyedPermit>,
}

impl ProbeLimits {
    /// Limits with `per_provider` probes in flight per provider (at least one).
    pub fn new(per_provider: usize) -> Self {
        ProbeLimits {
            per_mailbox: KeyedLimiter::new(PER_MAILBOX),
            per_provider: KeyedLimiter::new(per_provider.max(1)),
            waiting: Arc::default(),
        }
    }

    /// Wait for a slot of the mailbox (when given, case-insensitive) and of the provider.
    pub async fn acquire(&self, provider: &str, mailbox: Option<&str>) -> ProbeSlot {
        let _waiting = Waiting::enter(&self.waiting);
        let mailbox = match mailbox {
            Some(m) => Some(self.per_mailbox.acquire(&m.to_ascii_lowercase()).await),
            None => None,
        };
        let provider = self.per_provider.acquire(provider).await;
        ProbeSlot {
            _provider: provider,
            _mailbox: mailbox,
        }
    }

    /// How many probes wait for a slot.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// How many keys currently have a limiter (entries are removed when idle).
    #[cfg(test)]
    fn tracked_keys(&self) -> usize {
        lock(&self.per_mailbox.slots).len() + lock(&self.per_provider.slots).len()
    }
}

type Slots = Arc<Mutex<HashMap<String, Arc<Semaphore>>>>;

/// One semaphore per key, created on first use and dropped when nobody holds or awaits it.
struct KeyedLimiter {
    permits: usize,
    slots: Slots,
}

struct KeyedPermit {
    key: String,
    semaphore: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
    slots: Slots,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The map holds no invariant a panic could break half-way.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl KeyedLimiter {
    fn new(permits: usize) -> Self {
        KeyedLimiter {
            permits,
            slots: Arc::default(),
        }
    }

    async fn acquire(&self, key: &str) -> KeyedPermit {
        let semaphore = lock(&self.slots)
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.permits)))
            .clone();
        // These semaphores are never closed, so acquiring only fails in theory; going on
        // without a permit then is better than panicking a reconcile.
        let permit = semaphore.clone().acquire_owned().await.ok();
        KeyedPermit {
            key: key.to_string(),
            semaphore,
            permit,
            slots: self.slots.clone(),
        }
    }
}

impl Drop for KeyedPermit {
    fn drop(&mut self) {
        let mut slots = lock(&self.slots);
        self.permit.take();
        // Two references left: the map's and ours. Nobody else holds or awaits it.
        if Arc::strong_count(&self.semaphore) == 2 {
            slots.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mailbox_slots_are_limited_and_freed() {
        let limits = ProbeLimits::new(8);
        let a = limits.acquire("p", Some("A@x")).await;
        let b = limits.acquire("p", Some("a@x")).await;
        // A third probe of the same mailbox must wait.
        let third = limits.acquire("p", Some("a@x"));
        tokio::pin!(third);
        assert!(futures::poll!(third.as_mut()).is_pending());
        drop(a);
        let c = third.await;
        drop((b, c));
        assert_eq!(limits.tracked_keys(), 0);
    }

    #[tokio::test]
    async fn provider_cap_applies_across_mailboxes() {
        let limits = ProbeLimits::new(1);
        let a = limits.acquire("p", Some("a@x")).await;
        let other = limits.acquire("p", Some("b@x"));
        tokio::pin!(other);
        assert!(futures::poll!(other.as_mut()).is_pending());
        // Another provider is not affected.
        let q = limits.acquire("q", None).await;
        drop(a);
        let b = other.await;
        drop((b, q));
        assert_eq!(limits.tracked_keys(), 0);
    }
}
