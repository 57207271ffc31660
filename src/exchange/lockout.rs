//! Lockout-safe logins: failed logins are counted per account identity, cluster-wide (every
//! binding, service account and provider that logs in as that identity shares one
//! budget), and past the budget nothing is sent for that identity until the window
//! passes. Active Directory locks an account after a handful of failures in half an
//! hour; a tenant with ten bindings naming `ceo@contoso.com` and junk passwords must not
//! be able to make mailops do it.
//!
//! Attempts in flight count against the budget until they are settled, so concurrent
//! probes of one identity can never send more than the budget allows; a successful login
//! costs nothing (only failures stay in the window).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::failure::Failure;
use super::{Credential, OAuthApp};
use crate::api::conditions::Reason;

/// Failed logins allowed per identity and window, by default.
pub const DEFAULT_FAILURES: usize = 3;
/// The window failed logins are counted in, by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 60);

/// Whom a login counts against: the account the server checks the password of (Basic:
/// the user name), the app registration (client credentials), or the mailbox whose
/// refresh token is redeemed. Lower-cased: servers compare these without case.
pub fn login_identity(credential: &Credential, login: &str) -> String {
    let app = |a: &OAuthApp| format!("{}/{}", a.tenant_id, a.client_id).to_lowercase();
    match credential {
        Credential::Basic { username, .. } => format!("user:{}", username.to_lowercase()),
        Credential::ClientCredentials(a) => format!("app:{}", app(a)),
        Credential::RefreshToken { app: a, .. } => {
            format!("delegated:{}:{}", app(a), login.to_lowercase())
        }
    }
}

/// Logins for an identity are paused until `until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paused {
    /// When the oldest counted failure leaves the window.
    pub until: Instant,
    /// Failed logins in the window.
    pub failures: usize,
}

impl Paused {
    /// The failure a probe reports instead of logging in (`LoginPaused`, with the server
    /// delay set to the pause's end, so the object is tried again then and not before).
    pub fn failure(&self, window: Duration) -> Failure {
        let left = self.until.saturating_duration_since(Instant::now());
        let seconds = i64::try_from(left.as_secs()).unwrap_or(i64::MAX / 2);
        let until = Timestamp::from_second(Timestamp::now().as_second().saturating_add(seconds))
            .map_or_else(|_| "the window passes".to_string(), |t| t.to_string());
        Failure {
            reason: Reason::LoginPaused,
            message: format!(
                "verification paused until {until} to protect the account from lockout: {} failed logins for it in the last {} min, which is all mailops tries",
                self.failures,
                window.as_secs() / 60
            ),
            retry_after: Some(left.max(Duration::from_secs(1))),
        }
    }
}

#[derive(Default)]
struct Identity {
    failures: VecDeque<Instant>,
    in_flight: usize,
    /// The end of the pause already announced (one Event per pause).
    announced: Option<Instant>,
}

/// Failed logins per identity; see the module documentation.
pub struct LoginBudget {
    failures: usize,
    window: Duration,
    identities: Mutex<HashMap<String, Identity>>,
    settled: Notify,
}

impl LoginBudget {
    /// At most `failures` failed logins per identity in any `window` (at least one).
    pub fn new(failures: usize, window: Duration) -> Self {
        LoginBudget {
            failures: failures.max(1),
            window,
            identities: Mutex::default(),
            settled: Notify::new(),
        }
    }

    /// The window failures are counted in.
    pub fn window(&self) -> Duration {
        self.window
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Identity>> {
        self.identities.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn prune(state: &mut Identity, window: Duration, now: Instant) {
        while state
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            state.failures.pop_front();
        }
    }

    /// Start a login for `identity`: refused while its failures fill the budget; waits
    /// while attempts in flight could fill it.
    pub async fn attempt(&self, identity: &str) -> Result<Attempt<'_>, Paused> {
        loop {
            // Registered before looking, so a settle in between still wakes this waiter.
            let settled = self.settled.notified();
            {
                let now = Instant::now();
                let mut all = self.lock();
                let state = all.entry(identity.to_string()).or_default();
                Self::prune(state, self.window, now);
                if let Some(paused) = self.paused(state) {
                    return Err(paused);
                }
                if state.failures.len() + state.in_flight < self.failures {
                    state.in_flight += 1;
                    return Ok(Attempt {
                        budget: self,
                        identity: identity.to_string(),
                        settled: false,
                    });
                }
            }
            settled.await;
        }
    }

    fn paused(&self, state: &Identity) -> Option<Paused> {
        (state.failures.len() >= self.failures).then(|| Paused {
            until: state.failures[state.failures.len() - self.failures] + self.window,
            failures: state.failures.len(),
        })
    }

    /// The pause of `identity`, the first time it is asked for this pause: what one
    /// Event announces.
    pub fn announce(&self, identity: &str) -> Option<Paused> {
        let mut all = self.lock();
        let state = all.get_mut(identity)?;
        Self::prune(state, self.window, Instant::now());
        let paused = self.paused(state)?;
        if state.announced == Some(paused.until) {
            return None;
        }
        state.announced = Some(paused.until);
        Some(paused)
    }

    fn settle(&self, identity: &str, refused: bool) {
        let mut all = self.lock();
        if let Some(state) = all.get_mut(identity) {
            state.in_flight = state.in_flight.saturating_sub(1);
            if refused {
                state.failures.push_back(Instant::now());
            }
            if state.in_flight == 0 && state.failures.is_empty() && state.announced.is_none() {
                all.remove(identity);
            }
        }
        drop(all);
        self.settled.notify_waiters();
    }

    /// How many identities are tracked (for tests: memory follows failing identities).
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }
}

/// One login in flight. Settled as refused with [`Attempt::refused`]; dropped otherwise
/// (a success, or a failure that is not about the credentials) it costs nothing.
pub struct Attempt<'a> {
    budget: &'a LoginBudget,
    identity: String,
    settled: bool,
}

impl Attempt<'_> {
    /// The server refused the credentials: the failure counts.
    pub fn refused(mut self) {
        self.settled = true;
        self.budget.settle(&self.identity, true);
    }

    /// Settle by what a login came to: refused credentials count, anything else not.
    pub fn settle<T>(self, result: &Result<T, Failure>) {
        match result {
            Err(f) if f.reason == Reason::InvalidCredentials => self.refused(),
            _ => drop(self),
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.budget.settle(&self.identity, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const WINDOW: Duration = Duration::from_secs(1800);

    #[tokio::test(start_paused = true)]
    async fn three_failures_pause_an_identity_until_the_first_leaves_the_window() {
        let budget = LoginBudget::new(3, WINDOW);
        for _ in 0..3 {
            budget.attempt("user:ceo").await.unwrap().refused();
            tokio::time::advance(Duration::from_secs(60)).await;
        }
        let paused = budget.attempt("user:ceo").await.err().expect("paused");
        assert_eq!(paused.failures, 3);
        assert!(budget.attempt("user:cfo").await.is_ok(), "another identity");
        // The first failure leaves the window 30 minutes after it happened.
        tokio::time::advance(WINDOW - Duration::from_secs(181)).await;
        assert!(budget.attempt("user:ceo").await.is_err());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(budget.attempt("user:ceo").await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn successes_cost_nothing_and_leave_no_memory() {
        let budget = LoginBudget::new(3, WINDOW);
        for _ in 0..100 {
            drop(budget.attempt("app:t/c").await.unwrap());
        }
        assert_eq!(budget.tracked(), 0);
        let failure = Failure::new(Reason::Unreachable, "down");
        budget
            .attempt("app:t/c")
            .await
            .unwrap()
            .settle(&Err::<(), _>(failure));
        assert_eq!(budget.tracked(), 0, "only refused credentials count");
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_in_flight_never_outnumber_the_budget() {
        let budget = Arc::new(LoginBudget::new(3, WINDOW));
        let held: Vec<_> = futures::future::join_all((0..3).map(|_| budget.attempt("user:x")))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let fourth = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.attempt("user:x").await.map(drop) })
        };
        tokio::task::yield_now().await;
        assert!(!fourth.is_finished(), "waits while three are in flight");
        for attempt in held {
            attempt.refused();
        }
        assert!(
            fourth.await.unwrap().is_err(),
            "then finds the budget spent"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_is_announced_once() {
        let budget = LoginBudget::new(1, WINDOW);
        assert!(budget.announce("user:x").is_none());
        budget.attempt("user:x").await.unwrap().refused();
        assert!(budget.announce("user:x").is_some());
        assert!(budget.announce("user:x").is_none());
        tokio::time::advance(WINDOW).await;
        budget.attempt("user:x").await.unwrap().refused();
        assert!(budget.announce("user:x").is_some(), "a new pause");
    }

    #[test]
    fn identities_are_the_account_the_server_checks() {
        let app = OAuthApp {
            authority: "https://login.example".into(),
            tenant_id: "Contoso".into(),
            client_id: "App".into(),
            client_secret: "s".to_string().into(),
            scopes: vec![],
        };
        let basic = Credential::Basic {
            username: "CEO@contoso.com".into(),
            password: "x".to_string().into(),
        };
        assert_eq!(login_identity(&basic, "anyone"), "user:ceo@contoso.com");
        let cc = Credential::ClientCredentials(app.clone());
        assert_eq!(login_identity(&cc, "anyone"), "app:contoso/app");
        let rt = Credential::RefreshToken {
            app,
            refresh_token: "r".to_string().into(),
        };
        assert_eq!(
            login_identity(&rt, "Jane@contoso.com"),
            "delegated:contoso/app:jane@contoso.com"
        );
    }
}
