//! Pure: which login, Graph and EWS URLs a provider uses, from its cloud, service address
//! and overrides, and whether insecure (plain http) endpoints are allowed. How their
//! certificates are verified (`spec.tls`) is `exchange::trust`'s.

use crate::api::conditions::Reason;
use crate::api::{Cloud, EmailProviderSpec, EndpointOverrides, ServiceType};
use crate::{Error, Result};

/// The hosts of one Microsoft cloud instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloudHosts {
    /// Entra ID login host (the OAuth 2.0 authority).
    pub login: &'static str,
    /// Microsoft Graph host.
    pub graph: &'static str,
    /// Exchange Online host (EWS and the Exchange token audience).
    pub exchange: &'static str,
}

/// The hosts of a cloud, from Microsoft's national-cloud deployment tables.
pub fn cloud_hosts(cloud: Cloud) -> CloudHosts {
    match cloud {
        Cloud::Global => CloudHosts {
            login: "login.microsoftonline.com",
            graph: "graph.microsoft.com",
            exchange: "outlook.office365.com",
        },
        Cloud::UsGovGccHigh => CloudHosts {
            login: "login.microsoftonline.us",
            graph: "graph.microsoft.us",
            exchange: "outlook.office365.us",
        },
        Cloud::UsGovDod => CloudHosts {
            login: "login.microsoftonline.us",
            graph: "dod-graph.microsoft.us",
            exchange: "webmail.apps.mil",
        },
        Cloud::China => CloudHosts {
            login: "login.chinacloudapi.cn",
            graph: "microsoftgraph.chinacloudapi.cn",
            exchange: "partner.outlook.cn",
        },
    }
}

/// The effective URLs of a provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderEndpoints {
    /// Effective `host[:port]` (what `status.serviceAddress` shows).
    pub service_address: String,
    /// OAuth 2.0 authority base, without tenant, e.g. `https://login.microsoftonline.com`.
    pub authority: String,
    /// The service mailboxes are verified against: the EWS URL for `Exchange`, the Graph
    /// base (with version) for `Microsoft365`.
    pub mailbox_endpoint: String,
    /// Default OAuth 2.0 scope for app-only tokens: `https://<audience host>/.default`.
    pub default_scope: String,
}

/// Token endpoint of an authority for a tenant, Entra ID style.
pub fn token_url(authority: &str, tenant: &str) -> String {
    format!(
        "{}/{}/oauth2/v2.0/token",
        authority.trim_end_matches('/'),
        tenant
    )
}

/// Compute a provider's endpoints. Fails with `InsecureEndpoint` when an override uses
/// plain http and `allow_insecure` is off.
pub fn provider_endpoints(
    spec: &EmailProviderSpec,
    allow_insecure: bool,
) -> Result<ProviderEndpoints> {
    let hosts = cloud_hosts(spec.cloud);
    let overrides = spec.endpoints.clone().unwrap_or_default();
    refuse_plain_http(&overrides, allow_insecure)?;
    let authority = overrides
        .authority
        .clone()
        .unwrap_or_else(|| format!("https://{}", hosts.login))
        .trim_end_matches('/')
        .to_string();
    Ok(match spec.service_type {
        ServiceType::Exchange => ews_endpoints(spec, &hosts, &overrides, authority),
        ServiceType::Microsoft365 => graph_endpoints(spec, &hosts, &overrides, authority),
    })
}

/// Plain `http://` overrides are refused unless the operator allows them.
fn refuse_plain_http(overrides: &EndpointOverrides, allow_insecure: bool) -> Result<()> {
    for (field, url) in [
        ("authority", &overrides.authority),
        ("graph", &overrides.graph),
        ("ews", &overrides.ews),
    ] {
        if let Some(url) = url
            && url.to_ascii_lowercase().starts_with("http://")
            && !allow_insecure
        {
            return Err(Error::Spec {
                reason: Reason::InsecureEndpoint,
                message: format!(
                    "spec.endpoints.{field} uses plain http ({}); use https, or run the operator with --allow-insecure-endpoints",
                    crate::redact::redact_url(url)
                ),
            });
        }
    }
    Ok(())
}

/// Exchange Server: EWS at the service address, unless overridden.
fn ews_endpoints(
    spec: &EmailProviderSpec,
    hosts: &CloudHosts,
    overrides: &EndpointOverrides,
    authority: String,
) -> ProviderEndpoints {
    // CEL guarantees serviceAddress for Exchange; offline input may skip CEL, so fall
    // back to the cloud's Exchange host rather than panicking.
    let address = spec
        .service_address
        .clone()
        .unwrap_or_else(|| hosts.exchange.to_string());
    let ews = overrides
        .ews
        .clone()
        .unwrap_or_else(|| format!("https://{address}/EWS/Exchange.asmx"));
    let audience = host_of(&address);
    ProviderEndpoints {
        default_scope: format!("https://{audience}/.default"),
        service_address: address,
        authority,
        mailbox_endpoint: ews,
    }
}

/// Microsoft 365: Graph v1.0 of the cloud, unless overridden.
fn graph_endpoints(
    spec: &EmailProviderSpec,
    hosts: &CloudHosts,
    overrides: &EndpointOverrides,
    authority: String,
) -> ProviderEndpoints {
    let graph = overrides
        .graph
        .clone()
        .unwrap_or_else(|| format!("https://{}", hosts.graph))
        .trim_end_matches('/')
        .to_string();
    let address = spec
        .service_address
        .clone()
        .unwrap_or_else(|| hosts.graph.to_string());
    let graph_host = graph
        .split("://")
        .nth(1)
        .unwrap_or(&graph)
        .split('/')
        .next()
        .unwrap_or_default();
    ProviderEndpoints {
        default_scope: format!("https://{}/.default", host_of(graph_host)),
        service_address: address,
        authority,
        mailbox_endpoint: format!("{graph}/v1.0"),
    }
}

/// `host` of a `host[:port]`.
fn host_of(address: &str) -> &str {
    address.split(':').next().unwrap_or(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::EmailProvider;

    fn spec(yaml: &str) -> EmailProviderSpec {
        serde_saphyr::from_str::<EmailProvider>(yaml).unwrap().spec
    }

    const M365: &str = "apiVersion: mailops.dev/v1alpha1\nkind: EmailProvider\nmetadata: {name: m}\nspec:\n  serviceType: Microsoft365\n  authentication: {method: OAuth2, oauth2: {clientId: a, tenantId: t, clientSecretRef: {namespace: n, name: s}}}\n";

    #[test]
    fn microsoft365_defaults_follow_the_cloud() {
        let e = provider_endpoints(&spec(M365), false).unwrap();
        assert_eq!(e.authority, "https://login.microsoftonline.com");
        assert_eq!(e.mailbox_endpoint, "https://graph.microsoft.com/v1.0");
        assert_eq!(e.default_scope, "https://graph.microsoft.com/.default");
        assert_eq!(e.service_address, "graph.microsoft.com");

        let e = provider_endpoints(&spec(&format!("{M365}  cloud: USGovDoD\n")), false).unwrap();
        assert_eq!(e.authority, "https://login.microsoftonline.us");
        assert_eq!(e.mailbox_endpoint, "https://dod-graph.microsoft.us/v1.0");
        let e = provider_endpoints(&spec(&format!("{M365}  cloud: China\n")), false).unwrap();
        assert_eq!(
            e.default_scope,
            "https://microsoftgraph.chinacloudapi.cn/.default"
        );
    }

    #[test]
    fn exchange_uses_service_address_for_ews_and_scope() {
        let y = "apiVersion: mailops.dev/v1alpha1\nkind: EmailProvider\nmetadata: {name: x}\nspec:\n  serviceType: Exchange\n  serviceAddress: mail.contoso.com:8443\n  authentication: {method: Basic}\n";
        let e = provider_endpoints(&spec(y), false).unwrap();
        assert_eq!(
            e.mailbox_endpoint,
            "https://mail.contoso.com:8443/EWS/Exchange.asmx"
        );
        assert_eq!(e.default_scope, "https://mail.contoso.com/.default");
    }

    #[test]
    fn plain_http_overrides_need_the_flag() {
        let y = format!(
            "{M365}  endpoints: {{graph: 'http://127.0.0.1:9/', authority: 'http://127.0.0.1:9'}}\n"
        );
        let err = provider_endpoints(&spec(&y), false).unwrap_err();
        assert_eq!(err.reason(), Some(Reason::InsecureEndpoint));
        assert!(
            err.to_string().contains("spec.endpoints.authority"),
            "{err}"
        );
        let e = provider_endpoints(&spec(&y), true).unwrap();
        assert_eq!(e.mailbox_endpoint, "http://127.0.0.1:9/v1.0");
        assert_eq!(e.authority, "http://127.0.0.1:9");
        assert_eq!(e.default_scope, "https://127.0.0.1/.default");
        assert_eq!(
            token_url(&e.authority, "t1"),
            "http://127.0.0.1:9/t1/oauth2/v2.0/token"
        );
    }
}
