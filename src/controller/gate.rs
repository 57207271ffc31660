//! Triggers into a controller no faster than it reconciles them. kube-runtime's scheduler
//! takes every trigger it is offered at once, and its tables keep the size of the largest
//! wave for the life of the process: 10,000 bindings triggered at start-up cost about
//! 5 MiB, held to the end. The gate holds a wave itself, de-duplicated, lets at most
//! `room` objects be in the controller (queued or reconciling) at a time, and frees its
//! own memory once the wave has passed. The controller's results give the room back.
//!
//! Waiting keys are let through in hash order, not in the order they came: a wave is
//! sorted by namespace, a namespace's mailboxes tend to share a provider, and each
//! provider takes only so many probes at once, so first come first served would verify
//! one provider's mailboxes at a time (kube-runtime's own queue mixes them the same way).
//! They wait in a B-tree ordered by that hash, not in a hash set: taking the first key of
//! a hash set scans the buckets its earlier takes emptied, so a wave of n keys cost
//! O(n²) (100,000 at start-up), where the B-tree takes each in O(log n) and gives its
//! memory back node by node as the wave passes.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashSet};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::Stream;
use tokio::sync::Notify;

use crate::cache::BindingKey as Key;

/// A controller's entrance: see the module documentation.
pub struct Gate {
    room: usize,
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Default)]
struct State {
    /// Waiting to be let through, each key once, by the hash of the key under `order`.
    waiting: BTreeSet<(u64, Key)>,
    /// Let through and not yet reported back by the controller (at most `room`).
    passed: HashSet<Key>,
    /// The process's order of keys (a per-process random hash).
    order: RandomState,
}

impl Gate {
    /// A gate that lets at most `room` objects (at least one) into the controller at once.
    pub fn new(room: usize) -> Arc<Gate> {
        Arc::new(Gate {
            room: room.max(1),
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `key` to be reconciled (again): nothing if it already waits. One already let
    /// through waits for its result, then goes again, seeing whatever changed meanwhile.
    pub fn offer(&self, key: Key) {
        let mut s = self.lock();
        let place = s.order.hash_one(&key);
        if s.waiting.insert((place, key)) {
            drop(s);
            self.changed.notify_one();
        }
    }

    /// The controller reported a result for `key`: its room is free again. A result for
    /// an object the gate did not let through (a retry the controller scheduled itself)
    /// changes nothing.
    pub fn done(&self, key: &Key) {
        if self.lock().passed.remove(key) {
            self.changed.notify_one();
        }
    }

    /// The next key to let through, if there is room and one that is not already inside.
    fn take(&self) -> Option<Key> {
        let mut s = self.lock();
        if s.passed.len() >= self.room {
            return None;
        }
        // At most `room` waiting keys are inside, so this skips at most `room`.
        let entry = s
            .waiting
            .iter()
            .find(|(_, k)| !s.passed.contains(k))?
            .clone();
        s.waiting.remove(&entry);
        s.passed.insert(entry.1.clone());
        Some(entry.1)
    }

    /// Wait for the next key to let through.
    pub async fn next(&self) -> Key {
        loop {
            // Registered before looking, so an offer or a result meanwhile still wakes us.
            let changed = self.changed.notified();
            if let Some(key) = self.take() {
                return key;
            }
            changed.await;
        }
    }

    /// The keys as they are let through, for as long as the stream is polled.
    pub fn stream(self: Arc<Self>) -> impl Stream<Item = Key> + Send + 'static {
        futures::stream::unfold(self, |gate| async move {
            let key = gate.next().await;
            Some((key, gate))
        })
    }

    /// How many keys wait, and how many are inside (for tests).
    pub fn counts(&self) -> (usize, usize) {
        let s = self.lock();
        (s.waiting.len(), s.passed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn key(name: &str) -> Key {
        ("ns".to_string(), name.to_string())
    }

    fn now(gate: &Gate) -> Option<Key> {
        gate.next().now_or_never()
    }

    #[test]
    fn lets_through_at_most_its_room_and_more_as_results_come() {
        let gate = Gate::new(2);
        for name in ["a", "b", "c"] {
            gate.offer(key(name));
        }
        let first = now(&gate).expect("room for one");
        let second = now(&gate).expect("room for two");
        assert_ne!(first, second);
        assert_eq!(now(&gate), None, "no room");
        gate.done(&first);
        let third = now(&gate).expect("room again");
        let mut all = vec![first.0 + &first.1, second.0 + &second.1, third.0 + &third.1];
        all.sort();
        assert_eq!(all, ["nsa", "nsb", "nsc"]);
        assert_eq!(gate.counts(), (0, 2));
    }

    #[test]
    fn a_key_offered_twice_waits_once() {
        let gate = Gate::new(8);
        gate.offer(key("a"));
        gate.offer(key("a"));
        assert_eq!(now(&gate), Some(key("a")));
        assert_eq!(now(&gate), None);
    }

    #[test]
    fn a_key_offered_while_inside_goes_again_after_its_result() {
        let gate = Gate::new(8);
        gate.offer(key("a"));
        assert_eq!(now(&gate), Some(key("a")));
        gate.offer(key("a"));
        assert_eq!(now(&gate), None, "a is still inside");
        gate.offer(key("b"));
        assert_eq!(now(&gate), Some(key("b")));
        gate.done(&key("a"));
        assert_eq!(now(&gate), Some(key("a")));
    }

    #[test]
    fn a_result_for_a_key_not_let_through_frees_nothing() {
        let gate = Gate::new(1);
        gate.offer(key("a"));
        gate.offer(key("b"));
        assert!(now(&gate).is_some());
        gate.done(&key("retry-of-the-controller"));
        assert_eq!(now(&gate), None);
    }

    #[test]
    fn a_whole_wave_goes_through_each_key_once() {
        let gate = Gate::new(100_000);
        for i in 0..50_000 {
            gate.offer(key(&i.to_string()));
            gate.offer(key(&(i / 2).to_string()));
        }
        let mut through = HashSet::new();
        while let Some(k) = now(&gate) {
            assert!(through.insert(k), "a key let through twice");
        }
        assert_eq!(through.len(), 50_000);
        assert_eq!(gate.counts(), (0, 50_000));
    }

    #[test]
    fn a_wave_sorted_by_namespace_goes_through_mixed() {
        let gate = Gate::new(16);
        for ns in 0..10 {
            for i in 0..100 {
                gate.offer((format!("ns-{ns}"), format!("b{i}")));
            }
        }
        let first: HashSet<String> = (0..16).filter_map(|_| now(&gate)).map(|k| k.0).collect();
        assert!(first.len() > 3, "{first:?}");
    }

    #[tokio::test]
    async fn a_waiting_stream_wakes_for_an_offer_and_for_room() {
        use futures::StreamExt;
        let gate = Gate::new(1);
        let mut through = std::pin::pin!(gate.clone().stream());
        assert!(through.next().now_or_never().is_none(), "nothing offered");
        let offered = tokio::spawn({
            let gate = gate.clone();
            async move { gate.offer(key("a")) }
        });
        assert_eq!(through.next().await, Some(key("a")));
        offered.await.unwrap();
        gate.offer(key("b"));
        assert!(through.next().now_or_never().is_none(), "no room");
        let freed = tokio::spawn({
            let gate = gate.clone();
            async move { gate.done(&key("a")) }
        });
        assert_eq!(through.next().await, Some(key("b")));
        freed.await.unwrap();
    }
}
