//! A binding's status, pure: from what its reconcile came to ([`Outcome`]) to the
//! complete status the driver writes (or not, when it says nothing new).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::restart::recorded;
use crate::Error;
use crate::api::conditions::{self, AUTHORIZED, CALENDAR_CONNECTED, Desired, Reason, VERIFIED};
use crate::api::{MailboxBinding, MailboxBindingStatus};
use crate::exchange::MailboxOutcome;
use crate::resolve::Resolution;

/// A verification worth remembering: its outcome (without any token) and when it ran.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The outcome.
    pub outcome: MailboxOutcome,
    /// When Exchange answered.
    pub at: Timestamp,
}

/// What a binding's reconcile came to.
#[derive(Debug)]
pub enum Outcome {
    /// Its provider or service account has no verdict on its current generation yet:
    /// nothing to say until it has (its status write triggers this binding again), so
    /// bindings created before their provider are written once, not twice.
    Pending,
    /// Resolution failed: nothing was sent to Exchange.
    Unresolved(Error),
    /// Resolved, but not verified: the provider or account is not Ready, a Secret is
    /// missing, the endpoints are refused.
    Unverified {
        /// The resolution.
        resolution: Resolution,
        /// Why it was not verified.
        error: Error,
    },
    /// Exchange answered (or a remembered answer).
    Verified {
        /// The resolution.
        resolution: Resolution,
        /// The digest of its inputs but the Secrets' values, recorded with a verdict Exchange
        /// just gave or after our own write-back. `None` when the verdict was known already
        /// (the status keeps what it recorded: a Secret version that moved with its values
        /// unchanged, a label edit, is not worth a status write per binding; a restart
        /// re-verifies those once).
        inputs: Option<u64>,
        /// The answer.
        verified: Verified,
        /// A rotated refresh token could not be written back (it is held, and retried).
        write_back_failed: Option<Error>,
        /// This probe was the first to meet a login pause: the note of its one Event.
        login_paused: Option<String>,
    },
}

/// The failure of a verification outcome, if any.
pub fn outcome_error(o: &MailboxOutcome) -> Option<Error> {
    let f = o
        .mailbox
        .as_ref()
        .err()
        .or(o.calendar.as_ref().and_then(|c| c.as_ref().err()))?;
    Some(f.clone().into())
}

fn reason_of(e: &Error) -> Reason {
    e.reason().unwrap_or(Reason::UnexpectedResponse)
}

/// Pure: the complete status of a binding from what its reconcile came to.
pub fn build_status(b: &MailboxBinding, outcome: &Outcome, now: Timestamp) -> MailboxBindingStatus {
    let old = b.status.as_ref();
    let (parts, resolution, confirmed_at) = match outcome {
        Outcome::Pending => (Vec::new(), None, None),
        Outcome::Unresolved(e) => (unresolved(e), None, None),
        Outcome::Unverified { resolution, error } => {
            (authorized_but(error), Some(resolution), None)
        }
        Outcome::Verified {
            resolution,
            verified,
            ..
        } => {
            // "When Exchange last confirmed the mailbox": a failure leaves it where it was.
            let confirmed = outcome_error(&verified.outcome)
                .is_none()
                .then_some(verified.at);
            (
                verified_conditions(resolution, &verified.outcome),
                Some(resolution),
                confirmed,
            )
        }
    };
    let verified_inputs = match outcome {
        Outcome::Verified {
            inputs, verified, ..
        } if is_verdict(&verified.outcome) => inputs
            .map(recorded)
            .or_else(|| old.and_then(|s| s.verified_inputs.clone())),
        _ => None,
    };
    MailboxBindingStatus {
        observed_generation: b.metadata.generation,
        conditions: conditions::materialize(
            old.map(|s| s.conditions.as_slice()).unwrap_or_default(),
            &parts,
            b.metadata.generation,
            now,
        ),
        provider: resolution.map(|r| r.provider.as_str().into()),
        login: resolution.map(|r| r.login.clone()),
        authenticated_via: resolution.map(|r| r.via),
        service_account: resolution.and_then(|r| r.service_account.as_deref().map(Into::into)),
        endpoint: resolution.map(|r| r.endpoint.as_str().into()),
        last_verified_time: last_verified(
            old.and_then(|s| s.last_verified_time.as_ref()),
            confirmed_at,
        ),
        verified_inputs,
    }
}

/// Whether an outcome is a verdict worth trusting after a restart: Exchange confirmed the
/// mailbox, or refused the credentials (not to be sent again). Anything else (the server
/// unreachable, throttling) is asked again.
fn is_verdict(o: &MailboxOutcome) -> bool {
    match outcome_error(o) {
        None => true,
        Some(e) => e.reason() == Some(Reason::InvalidCredentials),
    }
}

/// How often `lastVerifiedTime` may move forward while the mailbox stays verified: a
/// re-verification that changes nothing but the time writes nothing in between.
pub const LAST_VERIFIED_STEP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Pure: `lastVerifiedTime` after a verification confirmed at `confirmed` (if it did):
/// the old time while it is younger than [`LAST_VERIFIED_STEP`], else the new one; a
/// failure leaves it where it was ("when Exchange last confirmed the mailbox").
pub fn last_verified(old: Option<&Time>, confirmed: Option<Timestamp>) -> Option<Time> {
    let Some(at) = confirmed else {
        return old.cloned();
    };
    match old {
        Some(t) if at.duration_since(t.0).unsigned_abs() < LAST_VERIFIED_STEP => Some(t.clone()),
        _ => Some(Time(at)),
    }
}

/// Pure: conditions when resolution failed (nothing was sent to Exchange).
pub fn unresolved(e: &Error) -> Vec<Desired> {
    conditions::with_ready(
        vec![Desired::fail(AUTHORIZED, reason_of(e), e.detail())],
        "",
    )
}

fn authorized() -> Desired {
    Desired::ok(
        AUTHORIZED,
        Reason::Verified,
        conditions::MSG_NAMESPACE_MAY_USE,
    )
}

/// Pure: conditions when the binding is authorized but could not be verified before
/// calling Exchange (provider not ready, Secret missing) or the call failed outright.
pub fn authorized_but(e: &Error) -> Vec<Desired> {
    conditions::with_ready(
        vec![
            authorized(),
            Desired::fail(VERIFIED, reason_of(e), e.detail()),
        ],
        "",
    )
}

/// Pure: conditions from a verification outcome.
pub fn verified_conditions(r: &Resolution, o: &MailboxOutcome) -> Vec<Desired> {
    let verified = match &o.mailbox {
        Ok(()) => Desired::ok(
            VERIFIED,
            Reason::Verified,
            format!("Exchange confirmed {} as {}", r.endpoint, r.login),
        ),
        Err(f) => Desired::fail(VERIFIED, f.reason, f.message.clone()),
    };
    let calendar = match (&o.calendar, r.settings.calendar) {
        (Some(Ok(())), _) => Desired::ok(
            CALENDAR_CONNECTED,
            Reason::Verified,
            conditions::MSG_CALENDAR_CONNECTED,
        ),
        (Some(Err(f)), _) => Desired::fail(CALENDAR_CONNECTED, f.reason, f.message.clone()),
        (None, true) => Desired::fail(
            CALENDAR_CONNECTED,
            Reason::Reconciling,
            conditions::MSG_CALENDAR_NOT_CHECKED,
        ),
        (None, false) => Desired::fail(
            CALENDAR_CONNECTED,
            Reason::NotRequested,
            conditions::MSG_CALENDAR_OFF,
        ),
    };
    let parts = vec![authorized(), verified, calendar];
    // A calendar nobody asked for does not hold Ready back.
    let counted: Vec<Desired> = parts
        .iter()
        .filter(|d| !(d.type_ == CALENDAR_CONNECTED && d.reason == Reason::NotRequested))
        .cloned()
        .collect();
    let mut all = vec![conditions::ready_summary(
        &counted,
        &format!("{}{}", conditions::MSG_MAILBOX_VERIFIED, notes(r)),
    )];
    all.extend(parts);
    all
}

fn notes(r: &Resolution) -> String {
    if r.settings.notes.is_empty() {
        String::new()
    } else {
        format!("; {}", r.settings.notes.join("; "))
    }
}
