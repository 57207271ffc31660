//! The HTTP clients that talk to Exchange and Entra ID: one per distinct [`Trust`], kept
//! in a bounded cache so that every mailbox of a provider shares one client and one
//! connection pool, all with the same timeouts, redirect policy and proxy settings.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::Failure;
use super::trust::Trust;
use super::verifier::client_config;
use crate::api::conditions::Reason;
use crate::redact::redact_url;

/// How many distinct trusts keep a client. Providers sharing a trust share a client, so
/// this is the number of distinct CA bundles in use; past it, the least recently used
/// client is dropped (its connections close once its requests are done).
pub const MAX_CLIENTS: usize = 64;

/// Where Exchange and Entra ID traffic goes through: the usual `HTTPS_PROXY`, `HTTP_PROXY`
/// and `NO_PROXY`, read once at start-up. Only the Exchange client uses them; the
/// Kubernetes client does not (see `kube_client`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxySettings {
    /// Proxy for `https://` URLs (an HTTP CONNECT tunnel through it).
    pub https: Option<String>,
    /// Proxy for plain `http://` URLs (test set-ups with `--allow-insecure-endpoints`).
    pub http: Option<String>,
    /// Hosts, domains (`.contoso.com`), IP addresses and CIDR ranges reached directly;
    /// `*` for all. Comma-separated, as curl reads it.
    pub no_proxy: Option<String>,
}

fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| std::env::var(n).ok())
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
}

impl ProxySettings {
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, or their lowercase spellings.
    pub fn from_env() -> ProxySettings {
        ProxySettings {
            https: env_first(&["HTTPS_PROXY", "https_proxy"]),
            http: env_first(&["HTTP_PROXY", "http_proxy"]),
            no_proxy: env_first(&["NO_PROXY", "no_proxy"]),
        }
    }

    /// For the start-up log: the proxies without userinfo, and the exceptions.
    pub fn describe(&self) -> String {
        let show = |p: &Option<String>| p.as_deref().map(redact_url).unwrap_or("none".into());
        format!(
            "https: {}, http: {}, no_proxy: {}",
            show(&self.https),
            show(&self.http),
            self.no_proxy.as_deref().unwrap_or("none")
        )
    }

    /// The builder with exactly these proxies, never the ones reqwest would read from the
    /// environment itself (so tests can set them without touching the process's).
    fn apply(&self, builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, String> {
        let mut builder = builder.no_proxy();
        let no_proxy = || {
            self.no_proxy
                .as_deref()
                .and_then(reqwest::NoProxy::from_string)
        };
        if let Some(url) = &self.https {
            let proxy = reqwest::Proxy::https(url.as_str())
                .map_err(|_| format!("HTTPS_PROXY ({}) is not a URL", redact_url(url)))?;
            builder = builder.proxy(proxy.no_proxy(no_proxy()));
        }
        if let Some(url) = &self.http {
            let proxy = reqwest::Proxy::http(url.as_str())
                .map_err(|_| format!("HTTP_PROXY ({}) is not a URL", redact_url(url)))?;
            builder = builder.proxy(proxy.no_proxy(no_proxy()));
        }
        Ok(builder)
    }
}

struct Entry {
    client: reqwest::Client,
    last_used: u64,
}

#[derive(Default)]
struct Cache {
    clients: HashMap<Trust, Entry>,
    ticks: u64,
}

/// Clients by trust.
pub struct HttpClients {
    timeout: Duration,
    proxy: ProxySettings,
    cache: Mutex<Cache>,
}

impl HttpClients {
    /// Clients with this timeout (per request and per connection) and these proxies. The
    /// client of the default trust is built at once, so bad proxy settings stop the start.
    pub fn new(timeout: Duration, proxy: ProxySettings) -> crate::Result<HttpClients> {
        let clients = HttpClients {
            timeout,
            proxy,
            cache: Mutex::default(),
        };
        clients
            .get(&Trust::default())
            .map_err(|f| crate::Error::Config(f.message))?;
        Ok(clients)
    }

    /// The client for `trust`, built on first use.
    pub fn get(&self, trust: &Trust) -> Result<reqwest::Client, Failure> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.ticks += 1;
        let now = cache.ticks;
        if let Some(entry) = cache.clients.get_mut(trust) {
            entry.last_used = now;
            return Ok(entry.client.clone());
        }
        // Built under the lock: rare (once per trust), and two probes of a new provider
        // must not build two clients with two pools.
        let client = self.build(trust).map_err(|e| {
            Failure::new(
                Reason::InvalidCABundle,
                format!("cannot use the provider's TLS settings: {e}"),
            )
        })?;
        if cache.clients.len() >= MAX_CLIENTS
            && let Some(oldest) = cache
                .clients
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(t, _)| t.clone())
        {
            cache.clients.remove(&oldest);
        }
        cache.clients.insert(
            trust.clone(),
            Entry {
                client: client.clone(),
                last_used: now,
            },
        );
        Ok(client)
    }

    /// How many clients are cached (one per distinct trust in use).
    pub fn len(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clients
            .len()
    }

    /// Whether no client is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn build(&self, trust: &Trust) -> Result<reqwest::Client, String> {
        let builder = reqwest::Client::builder()
            .use_preconfigured_tls(client_config(trust)?)
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            // A redirect could carry credentials elsewhere; Exchange and Entra ID do not
            // redirect these calls.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mailops/", env!("CARGO_PKG_VERSION")));
        self.proxy
            .apply(builder)?
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))
    }
}
