//! Keeps the webhook's certificate current: reads the Secret, renews what
//! `certs::renewal` asks for, writes the Secret back (by resourceVersion, so replicas
//! agree on one CA), keeps the `caBundle` of the ValidatingWebhookConfiguration current,
//! and installs the certificate for the next TLS handshake. With cert-manager it only
//! reads the Secret cert-manager writes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use time::OffsetDateTime;

use super::certs::{
    CA_CERT_KEY, CA_KEY_KEY, Material, Renewal, TLS_CERT_KEY, TLS_KEY_KEY, hosts, renew, renewal,
};
use super::tls::CertSlot;
use crate::config::{WebhookCertificates, WebhookConfig};
use crate::{Error, Result};

/// How often the certificate is looked at when all is well.
pub const CHECK_PERIOD: Duration = Duration::from_secs(3600);
/// How soon a failed look is tried again.
pub const RETRY_PERIOD: Duration = Duration::from_secs(20);

/// The certificate Secret's data as [`Material`]; `None` when a key is missing or not
/// text. With cert-manager there is no CA key.
pub fn material_of(secret: &Secret, needs_ca_key: bool) -> Option<Material> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| {
        data.get(key)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
    };
    Some(Material {
        ca_bundle: text(CA_CERT_KEY).unwrap_or_default(),
        ca_key: if needs_ca_key {
            text(CA_KEY_KEY)?
        } else {
            String::new()
        },
        cert: text(TLS_CERT_KEY)?,
        key: text(TLS_KEY_KEY)?,
    })
}

/// The Secret data holding `material`.
pub fn secret_data(material: &Material) -> BTreeMap<String, ByteString> {
    [
        (CA_CERT_KEY, &material.ca_bundle),
        (CA_KEY_KEY, &material.ca_key),
        (TLS_CERT_KEY, &material.cert),
        (TLS_KEY_KEY, &material.key),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
    .collect()
}

/// Reads, renews and publishes the webhook certificate.
pub struct Keeper {
    client: Client,
    config: WebhookConfig,
    hosts: Vec<String>,
}

impl Keeper {
    /// A keeper for the Secret, Service and webhook configuration `config` names.
    pub fn new(client: Client, config: &WebhookConfig) -> Self {
        Keeper {
            client,
            hosts: hosts(&config.service_name, &config.namespace, &config.extra_hosts),
            config: config.clone(),
        }
    }

    /// The certificate to serve now, renewed and published first if due.
    pub async fn refresh(&self, now: OffsetDateTime) -> Result<Material> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.config.namespace);
        let name = &self.config.secret_name;
        let existing = secrets.get_opt(name).await?;
        if self.config.certificates == WebhookCertificates::CertManager {
            return existing
                .as_ref()
                .and_then(|s| material_of(s, false))
                .ok_or_else(|| {
                    Error::Config(format!(
                        "webhook certificate: Secret {}/{name} (cert-manager's) has no tls.crt and tls.key yet",
                        self.config.namespace
                    ))
                });
        }
        let current = existing.as_ref().and_then(|s| material_of(s, true));
        let due = renewal(current.as_ref(), &self.hosts, now);
        let material = match (due, current) {
            (Renewal::Keep, Some(current)) => current,
            (due, current) => {
                let fresh = renew(current.as_ref(), due, &self.hosts, now)?;
                self.store(&secrets, existing, &fresh).await?;
                tracing::info!(secret = %name, renewed = ?due, "webhook certificate renewed");
                fresh
            }
        };
        self.publish_ca_bundle(&material.ca_bundle).await?;
        Ok(material)
    }

    /// Write the Secret: replaced at the resourceVersion read (another replica that
    /// renewed first wins; this one reads theirs at the next look), or created.
    async fn store(
        &self,
        secrets: &Api<Secret>,
        existing: Option<Secret>,
        material: &Material,
    ) -> Result<()> {
        let name = &self.config.secret_name;
        match existing {
            Some(mut secret) => {
                secret.data = Some(secret_data(material));
                secret.string_data = None;
                secrets
                    .replace(name, &PostParams::default(), &secret)
                    .await?;
            }
            None => {
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    data: Some(secret_data(material)),
                    ..Secret::default()
                };
                secrets.create(&PostParams::default(), &secret).await?;
            }
        }
        Ok(())
    }

    /// Set `caBundle` on every webhook of our configuration that does not carry it yet.
    /// A configuration not (yet) installed is no error: it is looked at again later.
    async fn publish_ca_bundle(&self, bundle: &str) -> Result<()> {
        let api: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
        let name = &self.config.configuration_name;
        let Some(mut configuration) = api.get_opt(name).await? else {
            tracing::warn!(configuration = %name, "ValidatingWebhookConfiguration not found; its caBundle is set once it exists");
            return Ok(());
        };
        let bundle = ByteString(bundle.as_bytes().to_vec());
        let mut changed = false;
        for webhook in configuration.webhooks.iter_mut().flatten() {
            if webhook.client_config.ca_bundle.as_ref() != Some(&bundle) {
                webhook.client_config.ca_bundle = Some(bundle.clone());
                changed = true;
            }
        }
        if changed {
            api.replace(name, &PostParams::default(), &configuration)
                .await?;
            tracing::info!(configuration = %name, "webhook caBundle updated");
        }
        Ok(())
    }

    /// Refresh until it succeeds once and install the result.
    pub async fn first_fill(&self, slot: &CertSlot) {
        while let Err(error) = self.fill(slot).await {
            tracing::warn!(%error, "cannot set up the webhook certificate; trying again");
            tokio::time::sleep(RETRY_PERIOD).await;
        }
    }

    async fn fill(&self, slot: &CertSlot) -> Result<()> {
        let material = self.refresh(OffsetDateTime::now_utc()).await?;
        slot.install(&material)
    }

    /// Look again every [`CHECK_PERIOD`] (sooner after a failure), forever.
    pub async fn keep(self, slot: Arc<CertSlot>) {
        loop {
            let wait = match self.fill(&slot).await {
                Ok(()) => CHECK_PERIOD,
                Err(error) => {
                    tracing::warn!(%error, "cannot refresh the webhook certificate");
                    RETRY_PERIOD
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}
