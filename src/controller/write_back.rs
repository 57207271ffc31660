//! The step after a binding's probe: a refresh token the authority rotated is stored in
//! the binding's own Secret, so the next verification (and the mail client) uses the live
//! one. The write carries the resourceVersion the Secret was read at: a user's change in
//! between wins (the API server answers 409), and is verified as the user's. Before the
//! probe, a token rotated earlier and not yet seen in the Secret is used in place of the
//! stored one ([`adopt_rotated`]).

use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use secrecy::{ExposeSecret, SecretString};

use super::context::Context;
use super::credentials;
use super::probe_cache::value_digest;
use super::rotation::{RotatedTokens, SecretView};
use crate::Result;
use crate::api::REFRESH_TOKEN_KEY;
use crate::exchange::{Credential, RotationSink};

/// The binding's own Secret when it holds a refresh token (the only credential the
/// authority rotates).
#[derive(Clone, Debug)]
pub struct OwnSecret {
    /// `namespace/name`, as in the credential versions and the rotation store.
    pub key: String,
    namespace: String,
    name: String,
    /// The resourceVersion it was read at.
    version: String,
    /// The digest of the stored token.
    stored: u64,
    /// The digest verifications are keyed on: the stored token's, or the one we started
    /// from when the stored token is our own rotation.
    pub base: u64,
}

impl OwnSecret {
    /// The binding's own Secret as read, when its credential is a refresh token.
    pub fn of(secret: &Secret, creds: &credentials::Resolved) -> Option<OwnSecret> {
        if !matches!(creds.credential, Credential::RefreshToken { .. }) {
            return None;
        }
        let namespace = secret.namespace().unwrap_or_default();
        let name = secret.name_any();
        let stored = secret
            .data
            .as_ref()
            .and_then(|d| d.get(REFRESH_TOKEN_KEY))
            .map(|v| value_digest(&v.0))?;
        Some(OwnSecret {
            key: format!("{namespace}/{name}"),
            version: secret.resource_version().unwrap_or_default(),
            stored,
            base: stored,
            namespace,
            name,
        })
    }

    /// Its key in the caches.
    pub fn secret_key(&self) -> crate::cache::SecretKey {
        (self.namespace.clone(), self.name.clone())
    }

    /// The probe-input entry of a stored token with this digest.
    fn entry(&self, digest: u64) -> String {
        format!("{}/{}#{digest:x}", self.key, REFRESH_TOKEN_KEY)
    }
}

/// Use a token the authority rotated instead of the cached Secret's, and key the
/// verification on the Secret as it was before our own write-back. Returns the token
/// when it still has to be written.
pub fn adopt_rotated(
    rotated: &RotatedTokens,
    own: &mut OwnSecret,
    creds: &mut credentials::Resolved,
) -> Option<SecretString> {
    let SecretView::Rotated {
        base,
        token,
        unwritten,
    } = rotated.view(&own.key, &own.version, own.stored)
    else {
        return None;
    };
    let stored = own.entry(own.stored);
    for v in creds.versions.iter_mut().filter(|v| **v == stored) {
        *v = own.entry(base);
    }
    own.base = base;
    if let Credential::RefreshToken { refresh_token, .. } = &mut creds.credential {
        *refresh_token = token.clone();
    }
    unwritten.then_some(token)
}

/// What storing a rotated token needs, apart from the reconcile: the backend calls it
/// (through [`TokenStore::sink`]) the moment a token is rotated, before the access token
/// that came with it is used.
#[derive(Clone)]
pub struct TokenStore {
    client: Client,
    tokens: Arc<RotatedTokens>,
    enabled: bool,
}

/// What a sink made of the token it was handed: `None` until it was called; then the
/// resourceVersion it wrote, if it wrote one.
pub type SinkResult = Arc<Mutex<Option<Result<Option<String>>>>>;

impl TokenStore {
    /// The reconcile's client, rotation memory and write-back setting.
    pub fn of(ctx: &Context) -> Self {
        TokenStore {
            client: ctx.client.clone(),
            tokens: ctx.rotated_tokens.clone(),
            enabled: ctx.config.secret_write_back,
        }
    }

    /// A freshly rotated token: held in memory first (so a failed write loses nothing),
    /// then written back.
    pub async fn rotated(&self, own: &OwnSecret, token: SecretString) -> Result<Option<String>> {
        self.tokens.rotated(&own.key, own.base, token.clone());
        self.write(own, &token).await
    }

    /// A sink for the backend that stores a rotated token of `own` and records how that
    /// went in `result`.
    pub fn sink(&self, own: OwnSecret, result: SinkResult) -> RotationSink {
        let store = self.clone();
        RotationSink(Arc::new(move |token| {
            let (store, own, result) = (store.clone(), own.clone(), result.clone());
            Box::pin(async move {
                let stored = store.rotated(&own, token).await;
                *result.lock().unwrap_or_else(|e| e.into_inner()) = Some(stored);
            })
        }))
    }

    /// Store a refresh token the authority rotated in the binding's Secret, so the next
    /// verification (and the mail client) uses the live one. Until it is written it is
    /// held in memory (and this is tried again at the next reconcile).
    /// Returns the resourceVersion written (`None`: nothing was, by setting or because the
    /// user's change won).
    pub async fn write(&self, own: &OwnSecret, token: &SecretString) -> Result<Option<String>> {
        let (ns, name) = (own.namespace.as_str(), own.name.as_str());
        if !self.enabled {
            // Without write-back the old refresh token keeps working until it expires; say
            // so, so the admin can rotate the Secret before it does.
            tracing::warn!(
                namespace = ns,
                secret = name,
                "the authority rotated this mailbox's refresh token, but write-back is off (--no-secret-write-back): update the Secret's refreshToken before the old one expires"
            );
            return Ok(None);
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        // Guarded by the version the token was read at: a user's change since then wins.
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": own.version },
            "data": { REFRESH_TOKEN_KEY: k8s_openapi::ByteString(token.expose_secret().as_bytes().to_vec()) }
        });
        let written = match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(written) => written,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // The user changed the Secret since we read it: their token wins, and their
                // change (already on its way through the watch) is verified as theirs.
                self.tokens.forget(&own.key);
                tracing::info!(
                    namespace = ns,
                    secret = name,
                    "the Secret changed before a rotated refresh token was stored; keeping the user's"
                );
                return Ok(None);
            }
            Err(e) => {
                tracing::warn!(namespace = ns, secret = name, error = %e,
                    "cannot store a rotated refresh token; holding it and retrying");
                return Err(e.into());
            }
        };
        let version = written.resource_version().unwrap_or_default();
        self.tokens.written(&own.key, &version);
        tracing::info!(
            namespace = ns,
            secret = name,
            "stored a rotated refresh token"
        );
        Ok(Some(version))
    }
}

/// Write back a token rotated earlier and held since (see [`TokenStore::write`]).
pub async fn write_back_refresh_token(
    ctx: &Context,
    own: &OwnSecret,
    token: &SecretString,
) -> Result<Option<String>> {
    TokenStore::of(ctx).write(own, token).await
}
