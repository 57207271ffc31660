//! The real Exchange client against the fake Exchange and Entra ID over HTTPS, counting
//! what reaches them: failed logins per account identity stop at the budget, whatever
//! the number of probes and however concurrent; another identity is never held back.

mod exchange_fake;

use exchange_fake::Behaviour;
use exchange_fake::harness::*;
use mailops::api::conditions::Reason;

const CEO: &str = "ceo@contoso.com";
const CFO: &str = "cfo@contoso.com";

fn logins_at_ews(h: &Harness) -> usize {
    h.fake.requests_to("/EWS").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_probes_with_wrong_passwords_for_one_account_send_three_logins() {
    let h = harness(
        Behaviour::default()
            .user(CEO, "right")
            .user(CFO, "also-right")
            .mailboxes(&[CEO, CFO]),
        "Exchange",
    )
    .await;
    // Ten bindings, in any namespaces, naming the same account with junk passwords, all
    // verified at once.
    let probes: Vec<_> = (0..10)
        .map(|i| h.probe(CEO, basic(CEO, &format!("junk-{i}")), false))
        .collect();
    let outcomes = futures::future::join_all(probes.iter().map(|p| h.verify(p))).await;
    let reasons: Vec<Reason> = outcomes.iter().map(|o| failure(o).reason).collect();
    let refused = reasons
        .iter()
        .filter(|r| **r == Reason::InvalidCredentials)
        .count();
    let paused = reasons
        .iter()
        .filter(|r| **r == Reason::LoginPaused)
        .count();
    assert_eq!((refused, paused), (3, 7), "{reasons:?}");
    assert_eq!(logins_at_ews(&h), 3, "only three logins reached Exchange");
    let message = &outcomes
        .iter()
        .map(failure)
        .find(|f| f.reason == Reason::LoginPaused)
        .unwrap()
        .message;
    assert!(
        message.contains("paused until") && message.contains("lockout"),
        "{message}"
    );
    assert!(!message.contains("junk"), "{message}");

    // Another account is not held back by this one's budget.
    let cfo = h
        .verify(&h.probe(CFO, basic(CFO, "also-right"), false))
        .await;
    assert!(cfo.mailbox.is_ok(), "{:?}", cfo.mailbox);
    // The paused account is: even its right password is not sent until the window passes.
    let ceo = h.verify(&h.probe(CEO, basic(CEO, "right"), false)).await;
    assert_eq!(failure(&ceo).reason, Reason::LoginPaused);
    assert_eq!(logins_at_ews(&h), 4, "the CFO's login only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_logins_are_never_limited() {
    let h = harness(
        Behaviour::default().user(CEO, "right").mailboxes(&[CEO]),
        "Exchange",
    )
    .await;
    for _ in 0..12 {
        let ok = h.verify(&h.probe(CEO, basic(CEO, "right"), false)).await;
        assert!(ok.mailbox.is_ok(), "{:?}", ok.mailbox);
    }
    assert_eq!(logins_at_ews(&h), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_app_secret_is_budgeted_as_the_app() {
    let h = harness(graph_behaviour(&["Mail.Read"]), "Microsoft365").await;
    for i in 0..5 {
        let probe = h.probe(ALICE, h.app(APP, &format!("wrong-{i}")), true);
        let outcome = h.verify(&probe).await;
        let expected = if i < 3 {
            Reason::InvalidCredentials
        } else {
            Reason::LoginPaused
        };
        assert_eq!(failure(&outcome).reason, expected, "attempt {i}");
    }
    assert_eq!(h.fake.token_requests(), 3);
}
