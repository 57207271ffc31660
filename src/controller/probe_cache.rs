//! Successful probes, remembered until the re-verification period or a change of input
//! (the digest of what a probe depends on), and the due-time queue that re-verifies them:
//! one small entry per healthy object here instead of a requeue timer per object in
//! kube-runtime's scheduler (about 0.7 KiB each, 7 MiB at 10,000 mailboxes).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::backoff;
use crate::exchange::{Failure, MailboxOutcome};

/// A stable digest of the inputs of a probe: specs, resolution, Secret versions.
pub fn probe_inputs_digest(parts: &[&str]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

/// A digest of a secret value, for probe inputs: keyed with a random key drawn once per
/// process, so that it tells a changed value from an unchanged one here and means nothing
/// anywhere else (it is never written out, and a restart draws another key).
pub fn value_digest(bytes: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    KEY.get_or_init(std::collections::hash_map::RandomState::new)
        .hash_one(bytes)
}

/// A digest of a spec, for probe inputs in place of the generation: the API server also
/// bumps the generation when a deletion begins, which changes nothing a probe depends on
/// (and would re-verify every mailbox of a provider being deleted).
pub fn spec_digest(spec: &impl std::fmt::Debug) -> String {
    probe_inputs_digest(&[&format!("{spec:?}")]).to_string()
}

/// What is remembered of a mailbox verification that succeeded: that it did, whether the
/// calendar was part of it, and when. A success needs no more to be stated again, and
/// 10,000 of these are held.
#[derive(Clone, Copy, Debug)]
pub struct Confirmed {
    calendar: bool,
    /// When Exchange answered.
    pub at: Timestamp,
}

impl Confirmed {
    /// A confirmation at `at`, with the calendar or without.
    pub fn new(calendar: bool, at: Timestamp) -> Self {
        Confirmed { calendar, at }
    }

    /// What to remember of an outcome: nothing unless Exchange confirmed the mailbox (and
    /// its calendar, when that was checked).
    pub fn of(outcome: &MailboxOutcome, at: Timestamp) -> Option<Confirmed> {
        let calendar_failed = outcome.calendar.as_ref().is_some_and(|c| c.is_err());
        (outcome.mailbox.is_ok() && !calendar_failed).then(|| Confirmed {
            calendar: outcome.calendar.is_some(),
            at,
        })
    }

    /// The outcome it stands for (without any token).
    pub fn outcome(self) -> MailboxOutcome {
        MailboxOutcome {
            mailbox: Ok(()),
            calendar: self.calendar.then_some(Ok(())),
            rotated_refresh_token: None,
        }
    }
}

/// Successful probes, so that re-reconciles caused by unrelated changes (a count, another
/// object's status) do not call Exchange again before the re-verification period or a
/// change of input; and when each is due to be verified again.
pub struct ProbeCache<T> {
    ttl: Duration,
    remembered: Mutex<Remembered<T>>,
    /// Woken when an entry becomes due earlier than anything before it.
    sooner: Notify,
}

/// What a probe depended on, digested twice: `stable`, over the specs, the resolution and
/// the resourceVersions of the Secrets read (what a restarted operator recomputes without
/// reading any Secret's data, and finds in the status it wrote); and `values`, over the
/// values read from those Secrets (this process only), which tells a new version of a
/// Secret with the same values (a label edit, our own write-back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inputs {
    /// The digest a status records.
    pub stable: u64,
    /// The digest of the values read, when they were.
    pub values: Option<u64>,
}

impl From<u64> for Inputs {
    fn from(stable: u64) -> Self {
        Inputs {
            stable,
            values: None,
        }
    }
}

struct Remembered<T> {
    by_key: HashMap<Arc<str>, Entry<T>>,
    /// Credentials the server refused, by the inputs they were refused with: not tried
    /// again until those change (a retry on a timer is how accounts get locked out).
    refused: HashMap<Arc<str>, (Inputs, Failure)>,
    /// The keys by when they are due to be verified again (ties by when they were set:
    /// the entry's `seq`); a key leaves it when it comes due (its entry stays, stale, until
    /// probed again) or is forgotten. The entry knows its own place, so this is the only
    /// table of due times (a `Timetable` keeps a second map of places: about 50 bytes per
    /// mailbox, 5 MiB at 100,000).
    due: BTreeMap<(Instant, u64), Arc<str>>,
    seq: u64,
}

struct Entry<T> {
    inputs: Inputs,
    /// Fresh until then; also when it is due to be verified again.
    due: Instant,
    /// Its place in `due` (with `due`), while it is there.
    seq: u64,
    value: T,
}

/// The entry of `key` whose inputs are `stable`, or whose values are `values` (then
/// re-keyed on `stable`: a new version with the same values); `None` when stale.
fn lookup<'a, V>(
    map: &'a mut HashMap<Arc<str>, V>,
    key: &str,
    stable: u64,
    values: Option<u64>,
    inputs: impl Fn(&mut V) -> &mut Inputs,
) -> Option<&'a mut V> {
    let entry = map.get_mut(key)?;
    let found = inputs(entry);
    if found.stable == stable {
        return Some(entry);
    }
    if values.is_some() && found.values == values {
        found.stable = stable;
        return Some(entry);
    }
    None
}

impl<T: Clone> ProbeCache<T> {
    /// An empty cache whose probes hold for `ttl`, each re-verified within 10 % after it.
    pub fn new(ttl: Duration) -> Self {
        ProbeCache {
            ttl,
            remembered: Mutex::new(Remembered {
                by_key: HashMap::new(),
                refused: HashMap::new(),
                due: BTreeMap::new(),
                seq: 0,
            }),
            sooner: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered<T>> {
        self.remembered.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The remembered value for `key` if its inputs are unchanged (by `stable`, or by
    /// `values` when they were read) and it is not due yet.
    pub fn get(&self, key: &str, stable: u64, values: Option<u64>) -> Option<T> {
        let now = Instant::now();
        let mut r = self.lock();
        lookup(&mut r.by_key, key, stable, values, |e| &mut e.inputs)
            .filter(|e| now < e.due)
            .map(|e| e.value.clone())
    }

    /// Remember a successful probe and when to verify it again, or forget a failed one:
    /// only success is worth reusing (a failure has its own back-off).
    pub fn record(&self, key: &str, inputs: impl Into<Inputs>, value: Option<T>) {
        // Never earlier than the period, so the probe is stale by the time it comes up.
        let due = Instant::now() + backoff::reverify_after(self.ttl);
        self.remember(key, inputs.into(), value, due);
    }

    /// Whether anything is remembered of `key`, fresh or due: a status is trusted only for
    /// a key this process has not verified yet (once its own verification comes due, it
    /// is verified again, whatever the status says).
    pub fn knows(&self, key: &str) -> bool {
        let r = self.lock();
        r.by_key.contains_key(key) || r.refused.contains_key(key)
    }

    /// Take what a status says as verified at `verified` (a restart, a new leader): it is
    /// due a period after that, or, when that has passed, at a random moment of the next
    /// period, so that a restart spreads its re-verifications as they were spread before.
    pub fn trust(&self, key: &str, stable: u64, value: T, verified: Instant) {
        let now = Instant::now();
        let mut due = verified + backoff::reverify_after(self.ttl);
        if due <= now {
            let spread = rand::Rng::random_range(&mut rand::rng(), 0.0..1.0);
            due = now + self.ttl.mul_f64(spread);
        }
        self.remember(key, stable.into(), Some(value), due);
    }

    fn remember(&self, key: &str, inputs: Inputs, value: Option<T>, due: Instant) {
        let mut r = self.lock();
        r.refused.remove(key);
        let old = r.by_key.remove_entry(key);
        if let Some((_, old)) = &old {
            r.due.remove(&(old.due, old.seq));
        }
        let Some(value) = value else { return };
        let key = old.map_or_else(|| Arc::from(key), |(k, _)| k);
        r.seq += 1;
        let seq = r.seq;
        r.due.insert((due, seq), key.clone());
        let entry = Entry {
            inputs,
            due,
            seq,
            value,
        };
        r.by_key.insert(key, entry);
        let sooner = r.due.keys().next() == Some(&(due, seq));
        drop(r);
        if sooner {
            self.sooner.notify_one();
        }
    }

    /// The server refused the credentials of `key` at these inputs: remember it, so that
    /// the same credentials are not sent again.
    pub fn refuse(&self, key: &str, inputs: impl Into<Inputs>, failure: Failure) {
        let inputs = inputs.into();
        self.remember(key, inputs, None, Instant::now());
        self.lock()
            .refused
            .insert(Arc::from(key), (inputs, failure));
    }

    /// The refusal remembered for `key`, if its inputs are still those refused (by
    /// `stable`, or by `values` when they were read).
    pub fn refusal(&self, key: &str, stable: u64, values: Option<u64>) -> Option<Failure> {
        let mut r = self.lock();
        lookup(&mut r.refused, key, stable, values, |e| &mut e.0).map(|e| e.1.clone())
    }

    /// Forget `key` (the object is gone, or its probe no longer holds).
    pub fn forget(&self, key: &str) {
        self.remember(key, 0.into(), None, Instant::now());
    }

    /// The next key due at or before `now`; else when the next one is due, if any.
    fn pop_due(&self, now: Instant) -> Result<Arc<str>, Option<Instant>> {
        let mut r = self.lock();
        let first = r.due.first_key_value().map(|(&(at, _), _)| at);
        match first {
            Some(at) if at <= now => r.due.pop_first().map(|(_, key)| key).ok_or(None),
            _ => Err(first),
        }
    }

    /// Wait for the next key whose probe is due to be verified again.
    pub async fn next_due(&self) -> Arc<str> {
        loop {
            // Registered before looking, so a sooner entry recorded meanwhile still wakes us.
            let sooner = self.sooner.notified();
            match self.pop_due(Instant::now()) {
                Ok(key) => return key,
                Err(Some(due)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(due) => {}
                        () = sooner => {}
                    }
                }
                Err(None) => sooner.await,
            }
        }
    }

    /// How many objects are remembered (for tests).
    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The keys of `cache` (picked out of `owner`) as they come due, for as long as the
/// stream is polled.
pub fn due_keys<C, T>(
    owner: Arc<C>,
    cache: fn(&C) -> &ProbeCache<T>,
) -> impl Stream<Item = Arc<str>>
where
    C: Send + Sync + 'static,
    T: Clone + Send + 'static,
{
    futures::stream::unfold(owner, move |owner| async move {
        let key = cache(&owner).next_due().await;
        Some((key, owner))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    const HOUR: Duration = Duration::from_secs(3600);

    async fn nothing_more_due(cache: &ProbeCache<()>) {
        let more = tokio::time::timeout(10 * HOUR, cache.next_due()).await;
        assert!(more.is_err(), "{more:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_holds_for_the_period_and_comes_due_just_after_it() {
        let cache = Arc::new(ProbeCache::new(HOUR));
        cache.record("MailboxBinding/ns/a", 7, Some(()));
        assert_eq!(cache.get("MailboxBinding/ns/a", 7, None), Some(()));
        assert_eq!(
            cache.get("MailboxBinding/ns/a", 8, None),
            None,
            "inputs changed"
        );
        let start = Instant::now();
        let key = cache.next_due().await;
        assert_eq!(&*key, "MailboxBinding/ns/a");
        let waited = start.elapsed();
        assert!(waited >= HOUR && waited <= HOUR.mul_f64(1.1), "{waited:?}");
        assert_eq!(
            cache.get("MailboxBinding/ns/a", 7, None),
            None,
            "stale when due"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn keys_come_due_in_order_once_each() {
        let cache = Arc::new(ProbeCache::new(HOUR));
        cache.record("a", 1, Some(()));
        tokio::time::advance(Duration::from_secs(600)).await;
        cache.record("b", 1, Some(()));
        let mut due = std::pin::pin!(due_keys(cache.clone(), |c| c));
        assert_eq!(due.next().await.as_deref(), Some("a"));
        assert_eq!(due.next().await.as_deref(), Some("b"));
        let more = tokio::time::timeout(10 * HOUR, due.next()).await;
        assert!(more.is_err(), "nothing is due twice: {more:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_forgotten_or_failed_key_never_comes_due() {
        let cache = Arc::new(ProbeCache::new(HOUR));
        cache.record("gone", 1, Some(()));
        cache.record("failed", 1, Some(()));
        cache.record("kept", 1, Some(()));
        cache.forget("gone");
        cache.record("failed", 1, None);
        assert_eq!(cache.len(), 1);
        assert_eq!(&*cache.next_due().await, "kept");
        nothing_more_due(&cache).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_probed_again_comes_due_after_its_latest_probe_only() {
        let cache = Arc::new(ProbeCache::new(HOUR));
        cache.record("a", 1, Some(()));
        tokio::time::advance(Duration::from_secs(1800)).await;
        cache.record("a", 2, Some(()));
        let start = Instant::now();
        assert_eq!(&*cache.next_due().await, "a");
        assert!(start.elapsed() >= HOUR, "{:?}", start.elapsed());
        nothing_more_due(&cache).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_wakes_for_a_sooner_entry() {
        let cache = Arc::new(ProbeCache::new(HOUR));
        let waiter = tokio::spawn({
            let cache = cache.clone();
            async move { cache.next_due().await }
        });
        // Let the waiter find the cache empty and wait.
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        cache.record("late", 1, Some(()));
        let start = Instant::now();
        let key = tokio::time::timeout(10 * HOUR, waiter)
            .await
            .expect("woken by the record")
            .expect("the waiter ends");
        assert_eq!(&*key, "late");
        assert!(start.elapsed() >= HOUR);
    }

    #[test]
    fn a_refusal_holds_until_the_inputs_change_or_a_success_replaces_it() {
        use crate::api::conditions::Reason;
        let cache: ProbeCache<()> = ProbeCache::new(HOUR);
        let refused = Failure::new(Reason::InvalidCredentials, "401");
        cache.refuse("b", 7, refused.clone());
        assert_eq!(cache.refusal("b", 7, None), Some(refused));
        assert_eq!(
            cache.refusal("b", 8, None),
            None,
            "new credentials are tried"
        );
        cache.record("b", 8, Some(()));
        assert_eq!(cache.refusal("b", 7, None), None);
        cache.refuse("b", 9, Failure::new(Reason::InvalidCredentials, "401"));
        cache.forget("b");
        assert_eq!(cache.refusal("b", 9, None), None);
    }

    #[test]
    fn a_new_version_with_the_same_values_is_the_same_input() {
        let cache: ProbeCache<()> = ProbeCache::new(HOUR);
        let first = Inputs {
            stable: 1,
            values: Some(10),
        };
        cache.record("b", first, Some(()));
        assert_eq!(
            cache.get("b", 2, None),
            None,
            "a new version, values unread"
        );
        assert_eq!(cache.get("b", 2, Some(11)), None, "new values");
        assert_eq!(cache.get("b", 2, Some(10)), Some(()), "the same values");
        assert_eq!(
            cache.get("b", 2, None),
            Some(()),
            "re-keyed on the new version"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_trusted_status_is_due_a_period_after_it_or_spread_over_the_next() {
        let cache: ProbeCache<()> = ProbeCache::new(HOUR);
        tokio::time::advance(3 * HOUR).await;
        let now = Instant::now();
        cache.trust("recent", 1, (), now - Duration::from_secs(600));
        cache.trust("old", 2, (), now - 2 * HOUR);
        assert_eq!(cache.get("recent", 1, None), Some(()));
        assert_eq!(cache.get("old", 2, None), Some(()), "not due at once");
        let mut due = std::pin::pin!(due_keys(Arc::new(cache), |c| c));
        let first = due.next().await.unwrap();
        let at = Instant::now() - now;
        // Within the next period either way: "old" at a random moment of it, "recent" 50
        // to 56 minutes from now.
        assert!(at <= HOUR, "{first} due after {at:?}");
        let second = due.next().await.unwrap();
        assert!(Instant::now() - now <= HOUR, "{second}");
        assert_ne!(first, second);
    }

    #[test]
    fn a_key_is_queued_once_however_often_it_is_probed() {
        let cache = ProbeCache::new(HOUR);
        for i in 0..10_000 {
            cache.record("a", i, Some(()));
        }
        let r = cache.lock();
        assert_eq!((r.by_key.len(), r.due.len()), (1, 1));
    }
}
