//! A binding's verification, after its pure validation ([`super::binding::Checked`]):
//! what is already known is not asked again. A verdict remembered for the same inputs, or
//! (after a restart or a change of leader) the verdict the status records for them, is
//! restated without reading a Secret's data or calling Exchange. Otherwise the Secrets are
//! read, the credentials built, and a verdict remembered for the same values (a new
//! Secret version with the same values) is restated; only then is the backend asked, and
//! a refresh token it rotates stored as it arrives ([`super::write_back`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use secrecy::SecretString;

use super::binding_status::{Outcome, Verified};
use super::context::Context;
use super::probe_cache::{Confirmed, Inputs, ProbeCache, probe_inputs_digest};
use super::refusals;
use super::restart::{self, stable_digest};
use super::write_back::{
    OwnSecret, SinkResult, TokenStore, adopt_rotated, write_back_refresh_token,
};
use super::{bundle, credentials};
use crate::api::conditions::Reason;
use crate::api::{AuthenticatedVia, EmailProvider, ExchangeServiceAccount, MailboxBinding};
use crate::cache::index::secret_of_binding;
use crate::cache::{Guarded, SecretKey, object_key};
use crate::endpoints::ProviderEndpoints;
use crate::exchange::lockout::login_identity;
use crate::exchange::{Failure, MailboxOutcome, MailboxProbe, Service, Trust};
use crate::resolve::Resolution;
use crate::{Error, Result};

/// What a binding's verification starts from: everything but the Secrets' data.
pub struct Checked {
    /// The resolution.
    pub resolution: Resolution,
    /// The provider it resolved to (Ready).
    pub provider: Arc<Guarded<EmailProvider>>,
    /// The service account, when it authenticates through one (Ready).
    pub account: Option<Arc<Guarded<ExchangeServiceAccount>>>,
    /// The provider's endpoints.
    pub endpoints: ProviderEndpoints,
    /// The Secrets to read, with the versions the cache knows (`None`: absent).
    pub secrets: Vec<(SecretKey, Option<String>)>,
    /// The digest of the binding's uid and generation, the resolution and the specs.
    pub base: u64,
    /// The digest of what a verification depends on but the Secrets' values: `base` and
    /// the Secrets' versions ([`stable_digest`]). Recorded in the status, so a restarted
    /// operator can trust it.
    pub stable: u64,
}

impl Checked {
    /// Our own write-back moved `secret` to `version`: that is no change of input, so
    /// what was verified is now known under the new versions (in the status, and in the
    /// probe cache, so the watch event of our write finds it there).
    fn wrote(
        &mut self,
        secret: &SecretKey,
        version: String,
        remembered: (&str, u64),
        ctx: &Context,
    ) {
        for (_, v) in self.secrets.iter_mut().filter(|(k, _)| k == secret) {
            *v = Some(version.clone());
        }
        self.stable = stable_digest(self.base, &self.secrets);
        let (key, values) = remembered;
        ctx.mailbox_probes.get(key, self.stable, Some(values));
    }
}

/// Verify a checked binding: restate what is known, else read, build and probe. `Err`
/// only when its Secrets cannot be read (nothing is said then).
pub async fn verify(b: &MailboxBinding, c: Checked, ctx: &Context) -> Result<Outcome> {
    let key = object_key(b);
    let cache = &ctx.mailbox_probes;
    // A rotated token still to be written needs the Secret read: no shortcut then.
    let held = secret_of_binding(b)
        .is_some_and(|(ns, name)| ctx.rotated_tokens.unwritten(&format!("{ns}/{name}")));
    let known = (!held)
        .then(|| {
            remembered(cache, &key, c.stable, None)
                .or_else(|| restart::trust_binding(b, c.stable, cache).map(restated))
        })
        .flatten();
    if let Some(verified) = known {
        return Ok(verified_outcome(c.resolution, verified));
    }
    let keys: Vec<SecretKey> = c.secrets.iter().map(|(k, _)| k.clone()).collect();
    let secrets = ctx.stores.read_secrets(&ctx.client, keys).await?;
    let provider = c.provider.0.as_ref().ok();
    let trust = bundle::read_trust(&ctx.stores, &ctx.client, provider).await?;
    let mut prepared = match prepare(b, &c, &secrets, trust) {
        Ok(prepared) => prepared,
        Err(error) => {
            return Ok(Outcome::Unverified {
                resolution: c.resolution,
                error,
            });
        }
    };
    let unwritten = prepared
        .own
        .as_mut()
        .and_then(|own| adopt_rotated(&ctx.rotated_tokens, own, &mut prepared.creds))
        .filter(|_| ctx.config.secret_write_back);
    let values = values_digest(&prepared);
    let verified = match remembered(cache, &key, c.stable, Some(values)) {
        Some(verified) => Probed::known(verified),
        None => {
            probe(
                b,
                &c,
                &prepared,
                Inputs {
                    stable: c.stable,
                    values: Some(values),
                },
                ctx,
            )
            .await
        }
    };
    let held = (prepared.own, unwritten);
    Ok(write_back(c, held, verified, (&key, values), ctx).await)
}

/// What a verification acts with, built from the Secrets read.
struct Prepared {
    service: Service,
    creds: credentials::Resolved,
    own: Option<OwnSecret>,
}

fn prepare(
    b: &MailboxBinding,
    c: &Checked,
    secrets: &BTreeMap<SecretKey, Arc<Secret>>,
    trust: Result<Trust>,
) -> Result<Prepared> {
    let Ok(provider) = &c.provider.0 else {
        return Err(Error::Spec {
            reason: Reason::ProviderNotFound,
            message: format!("EmailProvider {:?} cannot be read", c.resolution.provider),
        });
    };
    let account = c.account.as_ref().and_then(|a| a.0.as_ref().ok());
    let creds = match (&c.resolution.service_account, account) {
        (Some(_), Some(account)) => {
            credentials::service_account(account, provider, &c.endpoints, secrets)?
        }
        (Some(name), None) => {
            return Err(Error::Spec {
                reason: Reason::ServiceAccountNotFound,
                message: format!("ExchangeServiceAccount {name:?} does not exist"),
            });
        }
        (None, _) => own_credentials(b, &c.resolution, provider, &c.endpoints, secrets)?,
    };
    let own = secret_of_binding(b)
        .and_then(|key| secrets.get(&key))
        .and_then(|secret| OwnSecret::of(secret, &creds));
    Ok(Prepared {
        service: credentials::service(provider, &c.endpoints, trust)?,
        creds,
        own,
    })
}

fn own_credentials(
    b: &MailboxBinding,
    r: &Resolution,
    provider: &EmailProvider,
    endpoints: &crate::endpoints::ProviderEndpoints,
    secrets: &BTreeMap<SecretKey, Arc<Secret>>,
) -> Result<credentials::Resolved> {
    let Some(secret) = &b.spec.authentication.credentials_secret_ref else {
        return Err(Error::Spec {
            reason: Reason::SecretNotFound,
            message: "spec.authentication names neither serviceAccountRef nor credentialsSecretRef"
                .into(),
        });
    };
    let ns = b.namespace().unwrap_or_default();
    credentials::binding_own(&ns, &secret.name, &r.login, provider, endpoints, secrets)
}

/// The digest of the values a verification acts with (never written out) and the trust
/// its endpoints are verified under.
fn values_digest(p: &Prepared) -> u64 {
    probe_inputs_digest(&[&p.creds.versions.join(","), &p.service.trust().digest()])
}

/// What the probe came to, and how a token rotated meanwhile was stored.
struct Probed {
    verified: Verified,
    /// A rotated token was stored as it arrived, and how that went.
    stored: Option<Result<Option<String>>>,
    login_paused: Option<String>,
    /// Exchange was asked now (not a verdict remembered).
    fresh: bool,
}

impl Probed {
    fn known(verified: Verified) -> Self {
        Probed {
            verified,
            stored: None,
            login_paused: None,
            fresh: false,
        }
    }
}

/// Ask the backend, and remember what it said (a success or a refusal of the credentials)
/// for these inputs.
async fn probe(
    b: &MailboxBinding,
    c: &Checked,
    p: &Prepared,
    inputs: Inputs,
    ctx: &Context,
) -> Probed {
    let r = &c.resolution;
    let sunk: SinkResult = Arc::default();
    let store = TokenStore::of(ctx);
    let probe = MailboxProbe {
        provider: r.provider.clone(),
        email: b.spec.email_address.clone(),
        login: r.login.clone(),
        service: p.service.clone(),
        credential: p.creds.credential.clone(),
        via_service_account: r.via == AuthenticatedVia::ServiceAccount,
        check_calendar: r.settings.calendar,
        check_send: r.settings.sending,
        store_rotated: p.own.clone().map(|own| store.sink(own, sunk.clone())),
    };
    let mut outcome = ctx.backend.verify_mailbox(&probe).await;
    outcome.rotated_refresh_token = None;
    let stored = sunk.lock().unwrap_or_else(|e| e.into_inner()).take();
    let at = super::clock::now();
    let key = object_key(b);
    let failure = failure_of(&outcome);
    let cache = &ctx.mailbox_probes;
    let confirmed = Confirmed::of(&outcome, at);
    if confirmed.is_some() {
        ctx.metrics.verified("MailboxBinding", at.as_second());
    }
    refusals::remember(cache, &key, inputs, confirmed, failure);
    let identity = login_identity(&p.creds.credential, &r.login);
    let login_paused = refusals::pause_notice(ctx.backend.as_ref(), &identity, failure);
    Probed {
        verified: Verified { outcome, at },
        stored,
        login_paused,
        fresh: true,
    }
}

/// A success or a refusal remembered for these inputs: nothing is sent.
fn remembered(
    cache: &ProbeCache<Confirmed>,
    key: &str,
    stable: u64,
    values: Option<u64>,
) -> Option<Verified> {
    if let Some(confirmed) = cache.get(key, stable, values) {
        return Some(Verified {
            outcome: confirmed.outcome(),
            at: confirmed.at,
        });
    }
    cache
        .refusal(key, stable, values)
        .map(|refused| restated(Err(refused)))
}

/// A verdict restated without asking: a confirmation, or a refusal.
fn restated(verdict: std::result::Result<Confirmed, Failure>) -> Verified {
    match verdict {
        Ok(confirmed) => Verified {
            outcome: confirmed.outcome(),
            at: confirmed.at,
        },
        Err(refused) => Verified {
            outcome: MailboxOutcome {
                mailbox: Err(refused),
                calendar: None,
                rotated_refresh_token: None,
            },
            at: super::clock::now(),
        },
    }
}

fn verified_outcome(resolution: Resolution, verified: Verified) -> Outcome {
    Outcome::Verified {
        resolution,
        inputs: None,
        verified,
        write_back_failed: None,
        login_paused: None,
    }
}

/// The failure of a verification: its mailbox's, else its calendar's.
fn failure_of(o: &MailboxOutcome) -> Option<&Failure> {
    o.mailbox
        .as_ref()
        .err()
        .or(o.calendar.as_ref().and_then(|c| c.as_ref().err()))
}

/// Store a token rotated earlier and held since (one rotated now was stored as it
/// arrived); a failure is reported (the token stays held and this is tried again).
async fn write_back(
    mut c: Checked,
    (own, unwritten): (Option<OwnSecret>, Option<SecretString>),
    p: Probed,
    remembered: (&str, u64),
    ctx: &Context,
) -> Outcome {
    let stored = match (p.stored, &own, unwritten) {
        (Some(stored), _, _) => stored,
        (None, Some(own), Some(token)) => write_back_refresh_token(ctx, own, &token).await,
        _ => Ok(None),
    };
    let mut record = p.fresh;
    let write_back_failed = match (stored, &own) {
        (Ok(Some(version)), Some(own)) => {
            c.wrote(&own.secret_key(), version, remembered, ctx);
            record = true;
            None
        }
        (Ok(_), _) => None,
        (Err(e), _) => Some(e),
    };
    Outcome::Verified {
        resolution: c.resolution,
        inputs: record.then_some(c.stable),
        verified: p.verified,
        write_back_failed,
        login_paused: p.login_paused,
    }
}
