//! The connections the plain-HTTP port holds, capped: at the cap the oldest is closed to
//! make room for the new one.
//!
//! Refusing (or not accepting) new connections at the cap would let a few slow clients
//! that hold every slot starve the kubelet's liveness probe, which then restarts a
//! healthy operator. Closing the oldest instead means a slow client holds a slot only
//! until newer connections push it out (and never past the header timeout), while a new
//! connection, the probe's among them, is always served at once. Answers here take
//! microseconds, so the oldest connection is almost always a slow one.

use std::collections::VecDeque;
use std::future::Future;

use tokio::task::{AbortHandle, Id, JoinSet};

/// The connection tasks, oldest first.
pub struct Connections {
    tasks: JoinSet<()>,
    order: VecDeque<(Id, AbortHandle)>,
    max: usize,
}

impl Connections {
    /// Room for `max` connections (at least one).
    pub fn new(max: usize) -> Self {
        Connections {
            tasks: JoinSet::new(),
            order: VecDeque::new(),
            max: max.max(1),
        }
    }

    /// Serve a new connection, closing the oldest ones first if the cap is reached.
    pub fn admit(&mut self, connection: impl Future<Output = ()> + Send + 'static) {
        self.forget_finished();
        while self.order.len() >= self.max {
            if let Some((_, oldest)) = self.order.pop_front() {
                tracing::debug!("HTTP connection cap reached: closing the oldest connection");
                oldest.abort();
            }
        }
        let handle = self.tasks.spawn(connection);
        self.order.push_back((handle.id(), handle));
    }

    /// How many connections are held.
    #[cfg(test)]
    fn len(&mut self) -> usize {
        self.forget_finished();
        self.order.len()
    }

    /// Let the connections finish by themselves when the server stops (they end within
    /// their own timeouts).
    pub fn detach(mut self) {
        self.tasks.detach_all();
    }

    fn forget_finished(&mut self) {
        while let Some(done) = self.tasks.try_join_next_with_id() {
            let id = match done {
                Ok((id, ())) => id,
                Err(error) => error.id(),
            };
            self.order.retain(|(held, _)| *held != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    /// Reports `true` when dropped before it was disarmed: the connection was cut short.
    struct Guard(Option<oneshot::Sender<bool>>);

    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(report) = self.0.take() {
                let _ = report.send(true);
            }
        }
    }

    /// A connection that lasts until its sender is used or dropped, and reports whether it
    /// was cut short (dropped while still waiting, or before it ever ran).
    fn held() -> (
        oneshot::Sender<()>,
        oneshot::Receiver<bool>,
        impl Future<Output = ()> + Send + 'static,
    ) {
        let (release, released) = oneshot::channel::<()>();
        let (report, reported) = oneshot::channel::<bool>();
        let mut guard = Guard(Some(report));
        let connection = async move {
            let _ = released.await;
            if let Some(report) = guard.0.take() {
                let _ = report.send(false);
            }
        };
        (release, reported, connection)
    }

    #[tokio::test]
    async fn at_the_cap_the_oldest_connection_is_closed() {
        let mut connections = Connections::new(2);
        let (_keep_first, first_cut, first) = held();
        let (_keep_second, second_cut, second) = held();
        let (_keep_third, _, third) = held();
        connections.admit(first);
        connections.admit(second);
        connections.admit(third);
        assert!(first_cut.await.unwrap(), "the oldest was closed");
        assert_eq!(connections.len(), 2);
        drop(connections);
        assert!(second_cut.await.unwrap());
    }

    #[tokio::test]
    async fn finished_connections_free_their_slot() {
        let mut connections = Connections::new(2);
        let (release_first, first_cut, first) = held();
        let (_keep_second, mut second_cut, second) = held();
        connections.admit(first);
        connections.admit(second);
        release_first.send(()).unwrap();
        // On this single-threaded runtime the first task has returned once it reported.
        assert!(!first_cut.await.unwrap(), "it finished by itself");
        let (_keep_third, _, third) = held();
        connections.admit(third);
        assert_eq!(connections.len(), 2);
        // One turn of the scheduler runs any task just aborted (as the end shows).
        tokio::task::yield_now().await;
        assert!(
            second_cut.try_recv().is_err(),
            "the second still runs: the finished first made room"
        );
        let (_keep_fourth, _, fourth) = held();
        connections.admit(fourth);
        tokio::task::yield_now().await;
        assert_eq!(
            second_cut.try_recv(),
            Ok(true),
            "now the second was the oldest"
        );
    }
}
