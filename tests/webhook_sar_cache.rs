//! SubjectAccessReviews cached briefly per (user, uid, groups, extra, account) and sent
//! within a budget, on tokio's paused clock: what reaches the API server is counted.

mod webhook_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::UserInfo;
use mailops::webhook::decision::{Access, UseCheck};
use mailops::webhook::sar::AccessReviewer;
use mailops::webhook::sar_cache::{CachingReviewer, Settings};
use mailops::webhook::server::Handler;
use webhook_support::*;

/// Answers from a script (then `Allowed`), counting what it was asked.
#[derive(Default)]
struct Scripted {
    answers: Mutex<Vec<Access>>,
    asked: Mutex<Vec<UseCheck>>,
}

impl Scripted {
    fn new(answers: Vec<Access>) -> Arc<Self> {
        Arc::new(Scripted {
            answers: Mutex::new(answers.into_iter().rev().collect()),
            ..Scripted::default()
        })
    }

    fn asked(&self) -> usize {
        self.asked.lock().unwrap().len()
    }
}

impl AccessReviewer for Scripted {
    fn review(&self, check: &UseCheck) -> BoxFuture<'static, Access> {
        self.asked.lock().unwrap().push(check.clone());
        let answer = self
            .answers
            .lock()
            .unwrap()
            .pop()
            .unwrap_or(Access::Allowed);
        Box::pin(async move { answer })
    }
}

const SETTINGS: Settings = Settings {
    ttl: Duration::from_secs(10),
    capacity: 100,
    per_second: 1.0,
    burst: 3.0,
};

fn check(user: &str, account: &str) -> UseCheck {
    UseCheck {
        user: UserInfo {
            username: Some(user.into()),
            uid: Some(format!("uid-{user}")),
            groups: Some(vec!["dev".into(), "system:authenticated".into()]),
            extra: Some(BTreeMap::from([("scopes".into(), vec!["mail".into()])])),
        },
        account: account.into(),
    }
}

#[tokio::test(start_paused = true)]
async fn two_identical_checks_send_one_review_until_the_answer_expires() {
    let inner = Scripted::new(vec![Access::Allowed, Access::Allowed]);
    let cached = CachingReviewer::new(inner.clone(), SETTINGS);
    assert_eq!(
        cached.review(&check("alice", "corp")).await,
        Access::Allowed
    );
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(
        cached.review(&check("alice", "corp")).await,
        Access::Allowed
    );
    assert_eq!(inner.asked(), 1, "the second check came from the cache");
    tokio::time::advance(Duration::from_secs(1)).await;
    cached.review(&check("alice", "corp")).await;
    assert_eq!(
        inner.asked(),
        2,
        "after the TTL the API server is asked again"
    );
}

#[tokio::test(start_paused = true)]
async fn every_part_of_who_asks_and_for_what_is_part_of_the_key() {
    let inner = Scripted::new(Vec::new());
    let cached = CachingReviewer::new(
        inner.clone(),
        Settings {
            burst: 10.0,
            ..SETTINGS
        },
    );
    let base = check("alice", "corp");
    let mut variants = vec![base.clone()];
    let mut other_uid = base.clone();
    other_uid.user.uid = Some("uid-other".into());
    let mut other_groups = base.clone();
    other_groups.user.groups = Some(vec!["system:masters".into()]);
    let mut other_extra = base.clone();
    other_extra.user.extra = None;
    variants.extend([
        other_uid,
        other_groups,
        other_extra,
        check("bob", "corp"),
        check("alice", "other"),
    ]);
    for v in &variants {
        cached.review(v).await;
    }
    assert_eq!(inner.asked(), variants.len());
    for v in &variants {
        cached.review(v).await;
    }
    assert_eq!(
        inner.asked(),
        variants.len(),
        "each answered from the cache"
    );
}

#[tokio::test(start_paused = true)]
async fn denials_are_cached_and_failures_are_not() {
    let denied = Access::Denied {
        reason: "no".into(),
    };
    let failed = Access::Unavailable {
        error: "timeout".into(),
    };
    let inner = Scripted::new(vec![denied.clone(), failed.clone(), Access::Allowed]);
    let cached = CachingReviewer::new(inner.clone(), SETTINGS);
    assert_eq!(cached.review(&check("bob", "corp")).await, denied);
    assert_eq!(cached.review(&check("bob", "corp")).await, denied);
    assert_eq!(cached.review(&check("carol", "corp")).await, failed);
    assert_eq!(
        cached.review(&check("carol", "corp")).await,
        Access::Allowed
    );
    assert_eq!(inner.asked(), 3);
}

#[tokio::test(start_paused = true)]
async fn over_the_budget_checks_are_refused_without_a_review() {
    let inner = Scripted::new(Vec::new());
    let cached = CachingReviewer::new(inner.clone(), SETTINGS);
    for user in ["u1", "u2", "u3"] {
        assert_eq!(cached.review(&check(user, "corp")).await, Access::Allowed);
    }
    let over = cached.review(&check("u4", "corp")).await;
    assert!(matches!(over, Access::Unavailable { .. }), "{over:?}");
    assert_eq!(inner.asked(), 3, "no review sent past the burst");
    assert_eq!(
        cached.review(&check("u1", "corp")).await,
        Access::Allowed,
        "a cached answer needs no budget"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(cached.review(&check("u4", "corp")).await, Access::Allowed);
    assert_eq!(inner.asked(), 4, "one more per second");
    let over = cached.review(&check("u5", "corp")).await;
    assert!(matches!(over, Access::Unavailable { .. }));
}

#[tokio::test(start_paused = true)]
async fn the_cache_holds_at_most_its_capacity_dropping_the_oldest() {
    let inner = Scripted::new(Vec::new());
    let settings = Settings {
        capacity: 2,
        burst: 10.0,
        ..SETTINGS
    };
    let cached = CachingReviewer::new(inner.clone(), settings);
    for user in ["u1", "u2", "u3"] {
        cached.review(&check(user, "corp")).await;
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    assert_eq!(cached.cached(), 2);
    cached.review(&check("u3", "corp")).await;
    assert_eq!(inner.asked(), 3, "the newest is kept");
    cached.review(&check("u1", "corp")).await;
    assert_eq!(inner.asked(), 4, "the oldest was dropped");
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_forged_users_through_the_webhook_is_refused_past_the_budget() {
    let inner = Scripted::new(Vec::new());
    let cached = Arc::new(CachingReviewer::new(inner.clone(), SETTINGS));
    let mut caches = Caches::new();
    caches
        .provider(provider("contoso", &["contoso.com"]))
        .account(account("corp", "contoso", &["support"]))
        .namespace("support");
    let handler = Handler::new(caches.stores.clone(), cached, OPTIONS);
    let binding = account_binding("support", "ceo", "ceo@contoso.com", "corp");
    let mut refused = Vec::new();
    for n in 0..10 {
        let body = review("CREATE", &binding, None, &format!("forged-{n}"));
        let answer = handler.answer(&serde_json::to_vec(&body).unwrap()).await;
        let response = answer.response.unwrap();
        if !response.allowed {
            refused.push(response.result.message);
        }
    }
    assert_eq!(
        inner.asked(),
        3,
        "SubjectAccessReviews sent: the burst, no more"
    );
    assert_eq!(refused.len(), 7);
    assert!(refused[0].contains("try again"), "{}", refused[0]);
}
