//! Refresh tokens the authority rotated, held in memory until the binding's Secret shows
//! them. Entra ID may hand out a new refresh token on every redemption; writing it back
//! changes the Secret, and a Secret change normally means "verify again". Our own write
//! must not count as a change of input (that was a loop of one redemption, one Secret
//! patch and one status write per second, forever), and a failed write must not lose the
//! rotated token. Pure: the write-back itself is its own step ([`super::write_back`]).

use std::collections::HashMap;
use std::sync::Mutex;

use secrecy::SecretString;

/// A rotated refresh token of one Secret.
#[derive(Clone, Debug)]
struct Held {
    token: SecretString,
    /// The Secret's resourceVersion before we rotated anything: verifications are keyed
    /// on it for as long as the Secret only changes by our own hand.
    base_version: String,
    /// The resourceVersion our write-back produced; `None` while unwritten.
    written_version: Option<String>,
}

/// What the Secret as cached means for a verification.
#[derive(Debug)]
pub enum SecretView {
    /// Nothing rotated, or the user changed the Secret since: use it as it is.
    AsStored,
    /// Only we changed it (or a rotation is not written yet): key the verification on
    /// `base_version`, and use `token` rather than the cached value, which may be older.
    Rotated {
        /// The version verifications are keyed on.
        base_version: String,
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
    /// How the cached Secret at `version` relates to what we rotated. A version we did not
    /// write and did not start from is the user's change: the held token is dropped.
    pub fn view(&self, secret: &str, version: &str) -> SecretView {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let Some(h) = held.get(secret) else {
            return SecretView::AsStored;
        };
        let ours = h.written_version.as_deref() == Some(version);
        let not_yet_seen = version == h.base_version;
        if !(ours || not_yet_seen) {
            held.remove(secret);
            return SecretView::AsStored;
        }
        SecretView::Rotated {
            base_version: h.base_version.clone(),
            token: h.token.clone(),
            unwritten: h.written_version.is_none(),
        }
    }

    /// The authority rotated the token of `secret`, whose verifications are keyed on
    /// `base_version`.
    pub fn rotated(&self, secret: &str, base_version: &str, token: SecretString) {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).insert(
            secret.to_string(),
            Held {
                token,
                base_version: base_version.to_string(),
                written_version: None,
            },
        );
    }

    /// The held token of `secret` is now in the Secret at `version`.
    pub fn written(&self, secret: &str, version: &str) {
        if let Some(h) = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(secret)
        {
            h.written_version = Some(version.to_string());
        }
    }

    /// Forget `secret` (its binding is gone).
    pub fn forget(&self, secret: &str) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(secret);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn token_of(view: SecretView) -> (String, String, bool) {
        match view {
            SecretView::Rotated {
                base_version,
                token,
                unwritten,
            } => (base_version, token.expose_secret().to_string(), unwritten),
            SecretView::AsStored => panic!("expected a rotated view"),
        }
    }

    #[test]
    fn our_own_write_back_keeps_the_base_version() {
        let t = RotatedTokens::default();
        t.rotated("ns/s", "1", SecretString::from("rt-2"));
        t.written("ns/s", "2");
        assert_eq!(
            token_of(t.view("ns/s", "2")),
            ("1".into(), "rt-2".into(), false)
        );
    }

    #[test]
    fn an_unwritten_token_replaces_the_stale_cached_one() {
        let t = RotatedTokens::default();
        t.rotated("ns/s", "1", SecretString::from("rt-2"));
        assert_eq!(
            token_of(t.view("ns/s", "1")),
            ("1".into(), "rt-2".into(), true)
        );
    }

    #[test]
    fn a_change_by_the_user_drops_the_held_token() {
        let t = RotatedTokens::default();
        t.rotated("ns/s", "1", SecretString::from("rt-2"));
        t.written("ns/s", "2");
        assert!(matches!(t.view("ns/s", "7"), SecretView::AsStored));
        // Gone for good: even the version we wrote no longer maps back.
        assert!(matches!(t.view("ns/s", "2"), SecretView::AsStored));
    }

    #[test]
    fn a_secret_never_rotated_is_used_as_stored() {
        assert!(matches!(
            RotatedTokens::default().view("ns/s", "1"),
            SecretView::AsStored
        ));
    }
}
