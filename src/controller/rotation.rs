//! Refresh tokens the authority rotated, held in memory until the binding's Secret shows
//! them. Entra ID may hand out a new refresh token on every redemption; writing it back
//! changes the Secret, and a Secret change normally means "verify again". Our own write
//! must not count as a change of input (that was a loop of one redemption, one Secret
//! patch and one status write per second, forever), a failed write must not lose the
//! rotated token, and neither must a change of the Secret that leaves its token alone (a
//! label). Pure: the write-back itself is its own step ([`super::write_back`]).
//!
//! What the Secret holds is told by a digest of its stored token ([`value_digest`]), so
//! that a Secret is judged by its value, not by its resourceVersion.
//!
//! [`value_digest`]: super::probe_cache::value_digest

use std::collections::HashMap;
use std::sync::Mutex;

use secrecy::{ExposeSecret, SecretString};

use super::probe_cache::value_digest;

/// A rotated refresh token of one Secret.
#[derive(Clone, Debug)]
struct Held {
    token: SecretString,
    /// The digest of `token`: the stored value is ours when it has this digest.
    token_digest: u64,
    /// The digest of the stored token before we rotated anything: verifications are keyed
    /// on it for as long as the token only changes by our own hand.
    base: u64,
    /// The resourceVersion our write-back produced; `None` while unwritten.
    written_version: Option<String>,
}

/// What the Secret as read means for a verification.
#[derive(Debug)]
pub enum SecretView {
    /// Nothing rotated, or the user changed the token since: use it as it is.
    AsStored,
    /// Only we changed it (or a rotation is not written yet): key the verification on
    /// `base`, and use `token` rather than the stored value, which may be older.
    Rotated {
        /// The digest verifications are keyed on.
        base: u64,
        /// The newest refresh token.
        token: SecretString,
        /// The token still needs writing to the Secret.
        unwritten: bool,
    },
}

/// Rotated tokens by Secret (`namespace/name`).
#[derive(Debug, Default)]
pub struct RotatedTokens {
    held: Mutex<HashMap<String, Held>>,
}

impl RotatedTokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How the Secret, read at `version` with a stored token of digest `stored`, relates
    /// to what we rotated. A token that is neither ours nor the one we started from is
    /// the user's change: the held token is dropped.
    pub fn view(&self, secret: &str, version: &str, stored: u64) -> SecretView {
        let mut held = self.lock();
        let Some(h) = held.get(secret) else {
            return SecretView::AsStored;
        };
        let ours = stored == h.token_digest || h.written_version.as_deref() == Some(version);
        let not_yet_seen = stored == h.base;
        if !(ours || not_yet_seen) {
            held.remove(secret);
            return SecretView::AsStored;
        }
        SecretView::Rotated {
            base: h.base,
            token: h.token.clone(),
            unwritten: h.written_version.is_none() && stored != h.token_digest,
        }
    }

    /// The authority rotated the token of `secret`, whose verifications are keyed on
    /// `base`.
    pub fn rotated(&self, secret: &str, base: u64, token: SecretString) {
        let token_digest = value_digest(token.expose_secret().as_bytes());
        self.lock().insert(
            secret.to_string(),
            Held {
                token,
                token_digest,
                base,
                written_version: None,
            },
        );
    }

    /// The held token of `secret` is now in the Secret at `version`.
    pub fn written(&self, secret: &str, version: &str) {
        if let Some(h) = self.lock().get_mut(secret) {
            h.written_version = Some(version.to_string());
        }
    }

    /// Whether a token rotated for `secret` still waits to be written.
    pub fn unwritten(&self, secret: &str) -> bool {
        self.lock()
            .get(secret)
            .is_some_and(|h| h.written_version.is_none())
    }

    /// Forget `secret` (nobody reads it any more, or the user's change won).
    pub fn forget(&self, secret: &str) {
        self.lock().remove(secret);
    }

    /// How many Secrets have a held token.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_of(view: SecretView) -> (u64, String, bool) {
        match view {
            SecretView::Rotated {
                base,
                token,
                unwritten,
            } => (base, token.expose_secret().to_string(), unwritten),
            SecretView::AsStored => panic!("expected a rotated view"),
        }
    }

    fn digest(token: &str) -> u64 {
        value_digest(token.as_bytes())
    }

    #[test]
    fn our_own_write_back_keeps_the_base() {
        let t = RotatedTokens::default();
        t.rotated("ns/s", digest("rt-1"), SecretString::from("rt-2"));
        t.written("ns/s", "2");
        assert_eq!(
            token_of(t.view("ns/s", "2", digest("rt-2"))),
            (digest("rt-1"), "rt-2".into(), false)
        );
    }

    #[test]
    fn an_unwritten_token_replaces_the_stale_stored_one() {
        let t = RotatedTokens::default();
        t.rotated("ns/s", digest("rt-1"), SecretString::from("rt-2"));
        assert_eq!(
            token_of(t.view("ns/s", "1", digest("rt-1"))),
            (digest("rt-1"), "rt-2".into(), true)
        );
    }

    #[test]
    fn a_label_edit_before_the_write_back_keeps_the_held_token() {
        let t = RotatedTokens::default();
        t.rotated("ns/s", digest("rt-1"), SecretString::from("rt-2"));
        // A new version, the same stored token: still ours to write.
        assert_eq!(
            token_of(t.view("ns/s", "5", digest("rt-1"))),
            (digest("rt-1"), "rt-2".into(), true)
        );
        // Our token stored at a version we did not see written: ours all the same.
        t.written("ns/s", "6");
        assert_eq!(
            token_of(t.view("ns/s", "7", digest("rt-2"))),
            (digest("rt-1"), "rt-2".into(), false)
        );
    }

    #[test]
    fn a_change_by_the_user_drops_the_held_token() {
        let t = RotatedTokens::default();
        t.rotated("ns/s", digest("rt-1"), SecretString::from("rt-2"));
        t.written("ns/s", "2");
        assert!(matches!(
            t.view("ns/s", "7", digest("users-own")),
            SecretView::AsStored
        ));
        // Gone for good: even the version we wrote no longer maps back.
        assert!(matches!(
            t.view("ns/s", "2", digest("rt-2")),
            SecretView::AsStored
        ));
        assert!(t.is_empty());
    }

    #[test]
    fn a_secret_never_rotated_is_used_as_stored() {
        assert!(matches!(
            RotatedTokens::default().view("ns/s", "1", digest("rt-1")),
            SecretView::AsStored
        ));
    }
}
