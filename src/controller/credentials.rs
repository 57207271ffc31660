//! Building backend [`Credential`]s from Secrets (as cached, or as a reconcile read them).
//! Secret values go straight into `SecretString`; errors name the Secret and key, never a
//! value.

use kube::ResourceExt;
use secrecy::SecretString;

use super::probe_cache::value_digest;
use crate::api::conditions::Reason;
use crate::api::{
    AuthMethod, EmailProvider, ExchangeServiceAccount, PASSWORD_KEY, REFRESH_TOKEN_KEY,
    SecretKeyRef, ServiceType, USERNAME_KEY,
};
use crate::cache::SecretLookup;
use crate::endpoints::ProviderEndpoints;
use crate::exchange::{Credential, OAuthApp, Service, Trust};
use crate::{Error, Result};

/// Credentials and what they were read from, so that a change of a value is seen as a
/// change of input (and a change of a Secret's labels is not).
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The credential for the backend.
    pub credential: Credential,
    /// `namespace/name/key#digest` of every value read ([`value_entry`]).
    pub versions: Vec<String>,
}

/// How a value read from a Secret enters the probe inputs: where it came from and a
/// digest of it (never the value).
pub fn value_entry(namespace: &str, name: &str, key: &str, value: &[u8]) -> String {
    format!("{namespace}/{name}/{key}#{:x}", value_digest(value))
}

fn spec_error(reason: Reason, message: String) -> Error {
    Error::Spec { reason, message }
}

/// One key of a Secret, read from the store.
pub fn secret_key(
    secrets: &impl SecretLookup,
    namespace: &str,
    name: &str,
    key: &str,
    referenced_by: &str,
    versions: &mut Vec<String>,
) -> Result<SecretString> {
    let secret = secrets.secret(namespace, name).ok_or_else(|| {
        spec_error(
            Reason::SecretNotFound,
            format!("Secret {namespace}/{name} referenced by {referenced_by} does not exist"),
        )
    })?;
    let missing = || {
        spec_error(
            Reason::SecretKeyMissing,
            format!(
                "Secret {namespace}/{name} referenced by {referenced_by} has no key {key:?} (or it is not UTF-8)"
            ),
        )
    };
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(missing)?;
    versions.push(value_entry(namespace, name, key, &bytes.0));
    let text = std::str::from_utf8(&bytes.0).map_err(|_| missing())?;
    // Secrets made with `kubectl create secret --from-file` often end in a newline that no
    // server accepts as part of a password or token.
    let text = text.trim_end_matches(['\n', '\r']);
    if text.is_empty() {
        return Err(missing());
    }
    Ok(SecretString::from(text.to_string()))
}

/// The service mailboxes of a provider are verified against, under the provider's trust
/// (as [`super::bundle::read_trust`] read it: a trust, or why there is none).
pub fn service(
    provider: &EmailProvider,
    endpoints: &ProviderEndpoints,
    trust: Result<Trust>,
) -> Result<Service> {
    let trust = trust?;
    Ok(match provider.spec.service_type {
        ServiceType::Exchange => Service::Ews {
            url: endpoints.mailbox_endpoint.clone(),
            trust,
        },
        ServiceType::Microsoft365 => Service::Graph {
            base: endpoints.mailbox_endpoint.clone(),
            trust,
        },
    })
}

/// The provider's own app credentials; `None` for Basic providers.
pub fn provider_app(
    provider: &EmailProvider,
    endpoints: &ProviderEndpoints,
    secrets: &impl SecretLookup,
) -> Result<Option<Resolved>> {
    let Some(oauth2) = provider.spec.authentication.oauth2.as_ref() else {
        return Ok(None);
    };
    if provider.spec.authentication.method != AuthMethod::OAuth2 {
        return Ok(None);
    }
    let field = format!(
        "EmailProvider {} spec.authentication.oauth2.clientSecretRef",
        provider.name_any()
    );
    app_credentials(
        provider,
        endpoints,
        secrets,
        (&oauth2.tenant_id, &oauth2.client_id),
        &oauth2.client_secret_ref,
        &field,
    )
    .map(Some)
}

/// App-only client credentials of an app registration (tenant, client ID) whose secret
/// is at `secret_ref`, for the provider's endpoints.
fn app_credentials(
    provider: &EmailProvider,
    endpoints: &ProviderEndpoints,
    secrets: &impl SecretLookup,
    (tenant_id, client_id): (&str, &str),
    secret_ref: &SecretKeyRef,
    field: &str,
) -> Result<Resolved> {
    let r = secret_ref;
    let mut versions = Vec::new();
    let client_secret = secret_key(secrets, &r.namespace, &r.name, &r.key, field, &mut versions)?;
    Ok(Resolved {
        credential: Credential::ClientCredentials(OAuthApp {
            authority: endpoints.authority.clone(),
            tenant_id: tenant_id.to_string(),
            client_id: client_id.to_string(),
            client_secret,
            scopes: scopes(provider, endpoints),
        }),
        versions,
    })
}

fn scopes(provider: &EmailProvider, endpoints: &ProviderEndpoints) -> Vec<String> {
    provider
        .spec
        .authentication
        .oauth2
        .as_ref()
        .map(|o| o.scopes.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| vec![endpoints.default_scope.clone()])
}

/// The credentials a service account acts with: its own app, its impersonation account,
/// or (neither given) the provider's app.
pub fn service_account(
    account: &ExchangeServiceAccount,
    provider: &EmailProvider,
    endpoints: &ProviderEndpoints,
    secrets: &impl SecretLookup,
) -> Result<Resolved> {
    let name = account.name_any();
    let creds = account.spec.credentials.as_ref();
    if let Some(basic) = creds.and_then(|c| c.basic.as_ref()) {
        let r = &basic.secret_ref;
        let by = format!("ExchangeServiceAccount {name} spec.credentials.basic.secretRef");
        let mut versions = Vec::new();
        let username = secret_key(
            secrets,
            &r.namespace,
            &r.name,
            USERNAME_KEY,
            &by,
            &mut versions,
        )?;
        let password = secret_key(
            secrets,
            &r.namespace,
            &r.name,
            PASSWORD_KEY,
            &by,
            &mut versions,
        )?;
        use secrecy::ExposeSecret;
        // The user name is not secret, but it shares the Secret with the password.
        let username = username.expose_secret().to_string();
        return Ok(Resolved {
            credential: Credential::Basic { username, password },
            versions,
        });
    }
    if let Some(oauth2) = creds.and_then(|c| c.oauth2.as_ref()) {
        return app_credentials(
            provider,
            endpoints,
            secrets,
            (&oauth2.tenant_id, &oauth2.client_id),
            &oauth2.client_secret_ref,
            &format!("ExchangeServiceAccount {name} spec.credentials.oauth2.clientSecretRef"),
        );
    }
    provider_app(provider, endpoints, secrets)?.ok_or_else(|| {
        spec_error(
            Reason::AuthMethodMismatch,
            format!(
                "ExchangeServiceAccount {name} gives no credentials and EmailProvider {} has no OAuth2 app to fall back on",
                provider.name_any()
            ),
        )
    })
}

/// A binding's own credentials from `credentialsSecretRef` in its namespace: `password`
/// for Basic providers, `refreshToken` (redeemed with the provider's app) for OAuth2.
pub fn binding_own(
    namespace: &str,
    secret_name: &str,
    login: &str,
    provider: &EmailProvider,
    endpoints: &ProviderEndpoints,
    secrets: &impl SecretLookup,
) -> Result<Resolved> {
    let by = "spec.authentication.credentialsSecretRef";
    let mut versions = Vec::new();
    match provider.spec.authentication.method {
        AuthMethod::Basic => {
            let password = secret_key(
                secrets,
                namespace,
                secret_name,
                PASSWORD_KEY,
                by,
                &mut versions,
            )?;
            Ok(Resolved {
                credential: Credential::Basic {
                    username: login.to_string(),
                    password,
                },
                versions,
            })
        }
        AuthMethod::OAuth2 => {
            let refresh_token = secret_key(
                secrets,
                namespace,
                secret_name,
                REFRESH_TOKEN_KEY,
                by,
                &mut versions,
            )?;
            let app = provider_app(provider, endpoints, secrets)?.ok_or_else(|| {
                spec_error(
                    Reason::AuthMethodMismatch,
                    format!("EmailProvider {} has no OAuth2 app", provider.name_any()),
                )
            })?;
            versions.extend(app.versions);
            let Credential::ClientCredentials(app) = app.credential else {
                return Err(spec_error(
                    Reason::AuthMethodMismatch,
                    format!("EmailProvider {} has no OAuth2 app", provider.name_any()),
                ));
            };
            Ok(Resolved {
                credential: Credential::RefreshToken { app, refresh_token },
                versions,
            })
        }
    }
}
