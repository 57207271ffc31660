//! Coalescing of triggers: each key is let through once its triggers have been quiet for
//! a while, or once it has waited long enough, whichever comes first.
//!
//! kube-runtime's debounce is trailing only: a provider whose bindings change more often
//! than the window (a wave of 10,000 attaching) would wait for the whole wave, its counts
//! frozen, and a steady churn could hold it off for good. The bound on the wait keeps the
//! writes bounded by time (at most one per key per `max_wait`) without starving anyone.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::time::Instant;

use super::timetable::Timetable;

/// Triggers from `input`, each key let through `quiet` after its last trigger, but never
/// later than `max_wait` after the first one it has not yet let through. Keys still
/// pending when `input` ends are let through when due.
pub fn settle<S, T>(input: S, quiet: Duration, max_wait: Duration) -> impl Stream<Item = T>
where
    S: Stream<Item = T> + Unpin,
    T: Clone + Eq + Hash,
{
    let state = Settle {
        input: Some(input),
        first: HashMap::new(),
        due: Timetable::default(),
        quiet,
        max_wait,
    };
    futures::stream::unfold(state, |mut s| async move {
        let item = s.next().await?;
        Some((item, s))
    })
}

struct Settle<S, T> {
    input: Option<S>,
    /// For each pending key: when its first unreleased trigger came.
    first: HashMap<T, Instant>,
    /// Pending keys by when they are due (ties broken by arrival).
    due: Timetable<T>,
    quiet: Duration,
    max_wait: Duration,
}

/// What woke the loop.
enum Woke<T> {
    Trigger(T),
    InputEnded,
    Due,
}

impl<S, T> Settle<S, T>
where
    S: Stream<Item = T> + Unpin,
    T: Clone + Eq + Hash,
{
    async fn next(&mut self) -> Option<T> {
        loop {
            let now = Instant::now();
            if let Some(key) = self.due.pop_due(now) {
                self.first.remove(&key);
                return Some(key);
            }
            let next_due = self.due.next();
            let due = async {
                match next_due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => futures::future::pending().await,
                }
            };
            let woke = match &mut self.input {
                None if next_due.is_none() => return None,
                None => {
                    due.await;
                    Woke::Due
                }
                Some(input) => tokio::select! {
                    t = input.next() => t.map_or(Woke::InputEnded, Woke::Trigger),
                    () = due => Woke::Due,
                },
            };
            match woke {
                Woke::Trigger(key) => self.note(key, Instant::now()),
                Woke::InputEnded => self.input = None,
                Woke::Due => {}
            }
        }
    }

    /// A trigger for `key` at `now`: due `quiet` from now, capped by its first trigger's
    /// `max_wait`.
    fn note(&mut self, key: T, now: Instant) {
        let first = *self.first.entry(key.clone()).or_insert(now);
        self.due
            .set(key, (now + self.quiet).min(first + self.max_wait));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::mpsc::unbounded;
    use tokio::time::sleep;

    const QUIET: Duration = Duration::from_millis(400);
    const MAX: Duration = Duration::from_secs(2);

    /// What comes out, and when, until the input ends and nothing is pending.
    async fn collect(
        out: impl Stream<Item = &'static str>,
        start: Instant,
    ) -> Vec<(&'static str, Duration)> {
        out.map(|k| (k, start.elapsed())).collect().await
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_trigger_goes_after_the_quiet_window() {
        let (tx, rx) = unbounded();
        let start = Instant::now();
        let out = tokio::spawn(collect(settle(rx, QUIET, MAX), start));
        tx.unbounded_send("a").unwrap();
        drop(tx);
        assert_eq!(out.await.unwrap(), vec![("a", QUIET)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_one_key_goes_once_and_other_keys_are_not_held() {
        let (tx, rx) = unbounded();
        let start = Instant::now();
        let out = tokio::spawn(collect(settle(rx, QUIET, MAX), start));
        for _ in 0..5 {
            tx.unbounded_send("a").unwrap();
            sleep(Duration::from_millis(100)).await;
        }
        tx.unbounded_send("b").unwrap();
        drop(tx);
        // "a" last came at 400 ms; "b" at 500 ms.
        let got = out.await.unwrap();
        assert_eq!(
            got,
            vec![
                ("a", Duration::from_millis(800)),
                ("b", Duration::from_millis(900))
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_never_quiet_still_goes_every_max_wait() {
        let (tx, rx) = unbounded();
        let start = Instant::now();
        let out = tokio::spawn(collect(settle(rx, QUIET, MAX), start));
        // A trigger every 300 ms for 6 s: never 400 ms of quiet.
        for _ in 0..20 {
            tx.unbounded_send("a").unwrap();
            sleep(Duration::from_millis(300)).await;
        }
        drop(tx);
        let got = out.await.unwrap();
        let at: Vec<_> = got.iter().map(|(_, t)| t.as_millis()).collect();
        // Released at 2 s and 4.1 s (the first trigger after 2 s came at 2.1 s), then the
        // last trigger (5.7 s) settles at 6.1 s.
        assert_eq!(at, vec![2000, 4100, 6100]);
    }
}
