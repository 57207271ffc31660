//! Kubernetes Events, published from one place at the end of a reconcile: Normal when an
//! object becomes Ready, Warning with the reason when it newly fails, Warning
//! `DeletionBlocked` when a deletion waits for its users. Nothing secret goes in a note.
//!
//! They are sent beside the reconciles, not inside them: measured at 10,000 bindings, an
//! Event awaited in the reconcile held its slot for a whole API round trip, and kube's
//! `Recorder` scans its whole cache (every Event of the last six minutes) under one write
//! lock on each publish. One Event per transition needs no series aggregation, so the
//! sink keeps no cache; at most [`EVENTS_IN_FLIGHT`] are sent at once, and a reconcile
//! waits only when [`EVENTS_QUEUED`] are already waiting (measured: one task per Event
//! held some 30 MiB at 10,000 transitions).

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Client};
use tokio::sync::mpsc;
use tracing::warn;

use super::status_writer::Transition;

/// What a reconcile did that the outside world hears about: the `Ready` transition of
/// the status it wrote, and a deletion it newly found blocked.
#[derive(Debug, Default)]
pub struct Report {
    /// `Ready` before and after, when the status was written.
    pub transition: Option<Transition>,
    /// Deletion newly blocked, with the note counting the users.
    pub deletion_blocked: Option<String>,
    /// A login pause this reconcile was the first to meet, with its note.
    pub login_paused: Option<String>,
}

/// Events sent at once, beside the reconciles.
pub const EVENTS_IN_FLIGHT: usize = 16;
/// Events waiting to be sent; a reconcile waits only when this many are queued, so a
/// wave of transitions cannot pile Events up in memory.
pub const EVENTS_QUEUED: usize = 256;

/// Sends Events for the controllers, without holding up a reconcile.
pub struct EventSink {
    queue: mpsc::Sender<K8sEvent>,
    instance: String,
}

/// Where Events about cluster-scoped objects (providers, accounts) go, as with kube's
/// `Recorder`.
const CLUSTER_EVENTS_NAMESPACE: &str = "default";

/// The reporting controller of every Event mailops sends.
pub const REPORTING_CONTROLLER: &str = "mailops";

impl EventSink {
    /// A sink reporting as this replica (`instance`), with its senders started.
    pub fn new(client: Client, instance: &str) -> Self {
        let (queue, events) = mpsc::channel(EVENTS_QUEUED);
        tokio::spawn(send_all(client, events));
        EventSink {
            queue,
            instance: instance.to_string(),
        }
    }

    /// Queue one Event about `reference`; waits only while the queue is full.
    pub async fn send(&self, event: &Event, reference: &ObjectReference) {
        let body = k8s_event(event, reference, &self.instance, Timestamp::now());
        // A closed queue means the process is stopping: the Event goes with it.
        let _ = self.queue.send(body).await;
    }
}

/// Send queued Events, [`EVENTS_IN_FLIGHT`] at a time, until the sink is dropped.
async fn send_all(client: Client, events: mpsc::Receiver<K8sEvent>) {
    let events = tokio_stream_of(events);
    events
        .for_each_concurrent(EVENTS_IN_FLIGHT, |body| {
            let client = client.clone();
            async move {
                let namespace = body.metadata.namespace.clone().unwrap_or_default();
                let api: Api<K8sEvent> = Api::namespaced(client, &namespace);
                if let Err(e) = api.create(&PostParams::default(), &body).await {
                    let reason = body.reason.as_deref().unwrap_or_default();
                    warn!(%reason, error = %e, "cannot publish Event");
                }
            }
        })
        .await;
}

fn tokio_stream_of<T>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Pure: the `events.k8s.io/v1` Event for `event` about `reference`.
pub fn k8s_event(
    event: &Event,
    reference: &ObjectReference,
    instance: &str,
    now: Timestamp,
) -> K8sEvent {
    let about = reference.name.as_deref().unwrap_or(REPORTING_CONTROLLER);
    K8sEvent {
        action: Some(event.action.clone()),
        reason: Some(event.reason.clone()),
        event_time: Some(MicroTime(now)),
        regarding: Some(reference.clone()),
        note: event.note.clone(),
        metadata: ObjectMeta {
            namespace: Some(
                reference
                    .namespace
                    .clone()
                    .unwrap_or_else(|| CLUSTER_EVENTS_NAMESPACE.into()),
            ),
            name: Some(format!("{about}.{:x}", now.as_nanosecond())),
            ..Default::default()
        },
        reporting_controller: Some(REPORTING_CONTROLLER.into()),
        reporting_instance: Some(instance.to_string()),
        type_: Some(match event.type_ {
            EventType::Normal => "Normal".into(),
            EventType::Warning => "Warning".into(),
        }),
        related: event.secondary.clone(),
        ..Default::default()
    }
}

/// Reason of the one Event emitted when failed logins of an account reach the budget.
pub const LOGIN_PAUSED: &str = "LoginPaused";

/// Reason of the Event emitted when a deletion waits for the objects still using it.
pub const DELETION_BLOCKED: &str = "DeletionBlocked";

/// The API server refuses an Event whose note is longer (events.k8s.io/v1 `note`, in
/// bytes); such an Event would be lost without a trace.
pub const MAX_NOTE_BYTES: usize = 1024;

/// `note` cut to [`MAX_NOTE_BYTES`] on a character boundary, marked when cut.
pub fn capped_note(note: &str) -> String {
    const MARK: &str = " …";
    if note.len() <= MAX_NOTE_BYTES {
        return note.to_string();
    }
    let mut end = MAX_NOTE_BYTES - MARK.len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &note[..end])
}

/// The Events a report calls for, in order.
pub fn events_for(report: &Report) -> Vec<Event> {
    let mut out = Vec::new();
    if let Some(message) = &report.deletion_blocked {
        out.push(Event {
            type_: EventType::Warning,
            reason: DELETION_BLOCKED.into(),
            note: Some(capped_note(message)),
            action: "Delete".into(),
            secondary: None,
        });
    }
    if let Some(note) = &report.login_paused {
        out.push(Event {
            type_: EventType::Warning,
            reason: LOGIN_PAUSED.into(),
            note: Some(capped_note(note)),
            action: "Verify".into(),
            secondary: None,
        });
    }
    // Every object of a paused identity turns LoginPaused; the pause is one Event above.
    let transition = report
        .transition
        .as_ref()
        .filter(|t| t.after.as_ref().is_none_or(|c| c.reason != LOGIN_PAUSED));
    if let Some(t) = transition {
        if t.became_ready() {
            let after = t.after.as_ref();
            out.push(Event {
                type_: EventType::Normal,
                reason: after.map_or("Ready".into(), |c| c.reason.to_string()),
                note: after.map(|c| capped_note(&c.message)),
                action: "Reconcile".into(),
                secondary: None,
            });
        } else if let Some(failed) = t.new_failure() {
            out.push(Event {
                type_: EventType::Warning,
                reason: failed.reason.to_string(),
                note: Some(capped_note(&failed.message)),
                action: "Reconcile".into(),
                secondary: None,
            });
        }
    }
    out
}

/// Publish the Events of a report, beside the reconcile. A failure is logged, never fatal.
pub async fn publish(sink: &EventSink, reference: ObjectReference, report: &Report) {
    for event in events_for(report) {
        sink.send(&event, &reference).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{Desired, READY, Reason, materialize};

    fn ready(ok: bool, reason: Reason) -> Vec<crate::api::condition::Condition> {
        let d = if ok {
            Desired::ok(READY, reason, "fine")
        } else {
            Desired::fail(READY, reason, "broken")
        };
        materialize(&[], &[d], Some(1), "2026-01-01T00:00:00Z".parse().unwrap())
    }

    #[test]
    fn becoming_ready_is_a_normal_event() {
        let report = Report {
            transition: Some(Transition::between(&[], &ready(true, Reason::Verified))),
            deletion_blocked: None,
            login_paused: None,
        };
        let ev = events_for(&report);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].type_, EventType::Normal);
        assert_eq!(ev[0].reason, "Verified");
    }

    #[test]
    fn a_new_failure_is_a_warning_with_its_reason_and_a_repeat_is_silent() {
        let bad = ready(false, Reason::SecretNotFound);
        let first = events_for(&Report {
            transition: Some(Transition::between(&ready(true, Reason::Verified), &bad)),
            deletion_blocked: None,
            login_paused: None,
        });
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].type_, EventType::Warning);
        assert_eq!(first[0].reason, "SecretNotFound");
        let again = events_for(&Report {
            transition: Some(Transition::between(&bad, &bad)),
            deletion_blocked: None,
            login_paused: None,
        });
        assert!(again.is_empty());
    }

    #[test]
    fn notes_fit_what_the_api_server_accepts() {
        let long = "é".repeat(2000);
        let ev = events_for(&Report {
            transition: Some(Transition::between(&[], &ready(false, Reason::Unreachable))),
            deletion_blocked: Some(long.clone()),
            login_paused: None,
        });
        for e in &ev {
            assert!(e.note.as_ref().unwrap().len() <= MAX_NOTE_BYTES);
        }
        assert!(ev[0].note.as_ref().unwrap().ends_with('…'));
        assert_eq!(capped_note("short"), "short");
    }

    #[test]
    fn blocked_deletion_is_a_warning() {
        let ev = events_for(&Report {
            transition: None,
            deletion_blocked: Some("used by 1".into()),
            login_paused: None,
        });
        assert_eq!(ev[0].reason, DELETION_BLOCKED);
        assert_eq!(ev[0].type_, EventType::Warning);
    }
}
