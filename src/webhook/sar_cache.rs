//! SubjectAccessReviews cached briefly and rate-limited, so that a flood of reviews (forged
//! or not) can make the operator send at most a bounded number of them: a small cache of
//! answers per (user, uid, groups, extra, account), and a token bucket shared by every
//! review that misses it. Over the budget the answer is `Unavailable`, which refuses.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;

use super::decision::{Access, UseCheck};
use super::sar::AccessReviewer;

/// How a [`CachingReviewer`] caches and limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// How long an answer is reused: a grant or revocation of `use` takes effect within it.
    pub ttl: Duration,
    /// Most answers held; past it the expired go first, then the oldest.
    pub capacity: usize,
    /// Reviews sent per second, sustained, across all users.
    pub per_second: f64,
    /// Reviews that may be sent at once after a quiet spell.
    pub burst: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ttl: Duration::from_secs(10),
            capacity: 1024,
            per_second: 10.0,
            burst: 50.0,
        }
    }
}

/// Who asks about what, exactly as the AdmissionReview names them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    user: Option<String>,
    uid: Option<String>,
    groups: Option<Vec<String>>,
    extra: Option<BTreeMap<String, Vec<String>>>,
    account: String,
}

impl Key {
    fn of(check: &UseCheck) -> Key {
        Key {
            user: check.user.username.clone(),
            uid: check.user.uid.clone(),
            groups: check.user.groups.clone(),
            extra: check.user.extra.clone(),
            account: check.account.clone(),
        }
    }
}

#[derive(Debug)]
struct State {
    answers: HashMap<Key, (Instant, Access)>,
    tokens: f64,
    refilled: Instant,
}

/// An [`AccessReviewer`] in front of another, caching and limiting what reaches it.
pub struct CachingReviewer {
    inner: Arc<dyn AccessReviewer>,
    settings: Settings,
    state: Arc<Mutex<State>>,
}

impl CachingReviewer {
    /// Cache and limit the reviews `inner` makes.
    pub fn new(inner: Arc<dyn AccessReviewer>, settings: Settings) -> Self {
        let state = State {
            answers: HashMap::new(),
            tokens: settings.burst,
            refilled: Instant::now(),
        };
        CachingReviewer {
            inner,
            settings,
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// How many answers are held (expired ones included until they are pushed out).
    pub fn cached(&self) -> usize {
        self.lock().answers.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh cached answer, or else whether the budget allows asking.
    fn lookup(&self, key: &Key, now: Instant) -> Result<Access, bool> {
        let mut state = self.lock();
        if let Some((at, access)) = state.answers.get(key)
            && now.duration_since(*at) < self.settings.ttl
        {
            return Ok(access.clone());
        }
        let elapsed = now.duration_since(state.refilled).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.settings.per_second).min(self.settings.burst);
        state.refilled = now;
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            Err(true)
        } else {
            Err(false)
        }
    }
}

impl AccessReviewer for CachingReviewer {
    fn review(&self, check: &UseCheck) -> BoxFuture<'static, Access> {
        let key = Key::of(check);
        let now = Instant::now();
        match self.lookup(&key, now) {
            Ok(cached) => Box::pin(std::future::ready(cached)),
            Err(false) => {
                tracing::debug!("SubjectAccessReview budget spent; refusing");
                Box::pin(std::future::ready(Access::Unavailable {
                    error: "too many access reviews at once".into(),
                }))
            }
            Err(true) => {
                let asked = self.inner.review(check);
                let (state, settings) = (self.state.clone(), self.settings);
                Box::pin(async move {
                    let access = asked.await;
                    if !matches!(access, Access::Unavailable { .. }) {
                        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                        remember(&mut state.answers, key, access.clone(), settings);
                    }
                    access
                })
            }
        }
    }
}

/// Keep `access` for `key`, making room first: expired answers go, then the oldest.
fn remember(
    answers: &mut HashMap<Key, (Instant, Access)>,
    key: Key,
    access: Access,
    settings: Settings,
) {
    let now = Instant::now();
    if answers.len() >= settings.capacity && !answers.contains_key(&key) {
        answers.retain(|_, (at, _)| now.duration_since(*at) < settings.ttl);
        while answers.len() >= settings.capacity.max(1) {
            let oldest = answers.iter().min_by_key(|(_, (at, _))| *at);
            let Some(oldest) = oldest.map(|(k, _)| k.clone()) else {
                break;
            };
            answers.remove(&oldest);
        }
    }
    answers.insert(key, (now, access));
}
