//! Keys by the instant they are due: set or move one, remove one, take the earliest due.
//! Each is O(log n), and a key is in the table at most once (the settle window and the
//! re-verification queue both keep one).

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use tokio::time::Instant;

/// See the module documentation.
pub struct Timetable<T> {
    /// Each key's place in `order`.
    places: HashMap<T, (Instant, u64)>,
    /// Keys by when they are due, ties broken by when they were set.
    order: BTreeMap<(Instant, u64), T>,
    seq: u64,
}

impl<T> Default for Timetable<T> {
    fn default() -> Self {
        Timetable {
            places: HashMap::new(),
            order: BTreeMap::new(),
            seq: 0,
        }
    }
}

impl<T: Clone + Eq + Hash> Timetable<T> {
    /// Make `key` due at `at`, wherever it was before.
    pub fn set(&mut self, key: T, at: Instant) {
        self.remove(&key);
        self.seq += 1;
        let place = (at, self.seq);
        self.order.insert(place, key.clone());
        self.places.insert(key, place);
    }

    /// Take `key` out, if it is in.
    pub fn remove<Q>(&mut self, key: &Q)
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(place) = self.places.remove(key) {
            self.order.remove(&place);
        }
    }

    /// When the earliest key is due.
    pub fn next(&self) -> Option<Instant> {
        self.order.keys().next().map(|(at, _)| *at)
    }

    /// Take out the earliest key if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        let (&place, _) = self.order.iter().next().filter(|((at, _), _)| *at <= now)?;
        let key = self.order.remove(&place)?;
        self.places.remove(&key);
        Some(key)
    }

    /// How many keys are in.
    pub fn len(&self) -> usize {
        self.places.len()
    }

    /// Whether no key is in.
    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keys_come_out_by_due_time_once_each_and_a_moved_key_at_its_new_time() {
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let mut t = Timetable::default();
        t.set("a", at(3));
        t.set("b", at(1));
        t.set("c", at(2));
        t.set("a", at(1));
        t.remove("c");
        assert_eq!(t.len(), 2);
        assert_eq!(t.next(), Some(at(1)));
        assert_eq!(t.pop_due(at(0)), None, "nothing due yet");
        assert_eq!(t.pop_due(at(5)), Some("b"), "ties go in the order set");
        assert_eq!(t.pop_due(at(5)), Some("a"));
        assert_eq!(t.pop_due(at(5)), None);
        assert!(t.is_empty());
    }
}
