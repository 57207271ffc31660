//! The step after a binding's probe: a refresh token the authority rotated is stored in
//! the binding's own Secret, so the next verification (and the mail client) uses the live
//! one. Before the probe, a token rotated earlier and not yet seen in the cached Secret
//! is used in place of the cached one ([`adopt_rotated`]).

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use secrecy::{ExposeSecret, SecretString};

use super::context::Context;
use super::credentials;
use super::rotation::{RotatedTokens, SecretView};
use crate::Result;
use crate::exchange::Credential;

/// The binding's own Secret when it holds a refresh token (the only credential the
/// authority rotates).
#[derive(Clone, Debug)]
pub struct OwnSecret {
    /// `namespace/name`, as in the credential versions and the rotation store.
    pub key: String,
    namespace: String,
    name: String,
    /// The cached resourceVersion.
    version: String,
    /// The version verifications are keyed on.
    pub base_version: String,
}

impl OwnSecret {
    /// The binding's own Secret as read, when its credential is a refresh token.
    pub fn of(secret: &Secret, creds: &credentials::Resolved) -> Option<OwnSecret> {
        if !matches!(creds.credential, Credential::RefreshToken { .. }) {
            return None;
        }
        let namespace = secret.namespace().unwrap_or_default();
        let name = secret.name_any();
        let version = secret.resource_version().unwrap_or_default();
        Some(OwnSecret {
            key: format!("{namespace}/{name}"),
            base_version: version.clone(),
            namespace,
            name,
            version,
        })
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
        base_version,
        token,
        unwritten,
    } = rotated.view(&own.key, &own.version)
    else {
        return None;
    };
    let cached = format!("{}@{}", own.key, own.version);
    for v in creds.versions.iter_mut().filter(|v| **v == cached) {
        *v = format!("{}@{base_version}", own.key);
    }
    own.base_version = base_version;
    if let Credential::RefreshToken { refresh_token, .. } = &mut creds.credential {
        *refresh_token = token.clone();
    }
    unwritten.then_some(token)
}

/// Store a refresh token the authority rotated in the binding's Secret, so the next
/// verification (and the mail client) uses the live one. Until it is written it is held
/// in memory (and this is tried again at the next reconcile).
pub async fn write_back_refresh_token(
    ctx: &Context,
    own: &OwnSecret,
    token: &SecretString,
) -> Result<()> {
    let (ns, name) = (own.namespace.as_str(), own.name.as_str());
    if !ctx.config.secret_write_back {
        // Without write-back the old refresh token keeps working until it expires; say
        // so, so the admin can rotate the Secret before it does.
        tracing::warn!(
            namespace = ns,
            secret = name,
            "the authority rotated this mailbox's refresh token, but write-back is off (--no-secret-write-back): update the Secret's refreshToken before the old one expires"
        );
        return Ok(());
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({
        "data": { crate::api::REFRESH_TOKEN_KEY: k8s_openapi::ByteString(token.expose_secret().as_bytes().to_vec()) }
    });
    let written = api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .inspect_err(|e| {
            tracing::warn!(namespace = ns, secret = name, error = %e,
                "cannot store a rotated refresh token; holding it and retrying");
        })?;
    ctx.rotated_tokens
        .written(&own.key, &written.resource_version().unwrap_or_default());
    tracing::info!(
        namespace = ns,
        secret = name,
        "stored a rotated refresh token"
    );
    Ok(())
}
