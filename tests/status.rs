//! `mailops status`: the tree built from fixture objects, rendered as text and JSON and
//! compared with the expected output in full; and the list calls it makes, against the
//! mock API server.

mod mock_api;

use mailops::status::{self, Snapshot, cli::Scope, render};
use mock_api::*;

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1})
}

fn provider(name: &str, conditions: Vec<Value>) -> Value {
    json!({"apiVersion": "mailops.dev/v1alpha1", "kind": "EmailProvider",
           "metadata": {"name": name, "generation": 1},
           "spec": {"serviceType": "Microsoft365", "cloud": "Global", "domains": [format!("{name}.example")],
                    "authentication": {"method": "OAuth2", "oauth2": {"clientId": "c", "tenantId": "t",
                        "clientSecretRef": {"namespace": "ops", "name": "app", "key": "k"}}}},
           "status": {"observedGeneration": 1, "conditions": conditions}})
}

fn account(name: &str, provider: &str, conditions: Vec<Value>) -> Value {
    json!({"apiVersion": "mailops.dev/v1alpha1", "kind": "ExchangeServiceAccount",
           "metadata": {"name": name, "generation": 1},
           "spec": {"providerRef": {"name": provider}},
           "status": {"observedGeneration": 1, "conditions": conditions}})
}

fn binding(ns: &str, name: &str, generation: i64, auth: Value, status: Option<Value>) -> Value {
    let mut b = json!({"apiVersion": "mailops.dev/v1alpha1", "kind": "MailboxBinding",
           "metadata": {"name": name, "namespace": ns, "generation": generation},
           "spec": {"emailAddress": format!("{name}@contoso.example"), "authentication": auth}});
    if let Some(status) = status {
        b["status"] = status;
    }
    b
}

fn ready(reason: &str, message: &str) -> Vec<Value> {
    let status = if reason == "Verified" {
        "True"
    } else {
        "False"
    };
    vec![condition("Ready", status, reason, message)]
}

fn via_account(name: &str) -> Value {
    json!({"serviceAccountRef": {"name": name}})
}

fn own() -> Value {
    json!({"credentialsSecretRef": {"name": "pw"}})
}

fn bound_status(provider: &str, reason: &str, message: &str) -> Option<Value> {
    Some(
        json!({"observedGeneration": 1, "provider": provider, "conditions": ready(reason, message)}),
    )
}

/// Two providers (one held in deletion), an account, bindings through it and with their
/// own credentials, one reconciled at an older generation, and two never reconciled
/// that resolve by domain, so nobody can name their provider yet.
fn fixture() -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let mut old = ready("Verified", "");
    old.push(condition(
        "Terminating",
        "True",
        "InUse",
        "deletion waits for 1 object(s) still using it: MailboxBinding legacy/archive",
    ));
    let providers = vec![
        provider("contoso", ready("Verified", "")),
        provider("old", old),
    ];
    let accounts = vec![account("contoso-org", "contoso", ready("Verified", ""))];
    let bindings = vec![
        binding(
            "sales",
            "orders",
            1,
            via_account("contoso-org"),
            bound_status("contoso", "Verified", ""),
        ),
        binding(
            "sales",
            "support",
            1,
            via_account("contoso-org"),
            bound_status(
                "contoso",
                "MailboxNotFound",
                "Exchange does not know support@contoso.example\n(EWS)",
            ),
        ),
        binding(
            "finance",
            "billing",
            2,
            own(),
            bound_status("contoso", "Verified", ""),
        ),
        binding("finance", "payroll", 1, own(), None),
        binding(
            "legacy",
            "archive",
            1,
            own(),
            bound_status("old", "Verified", ""),
        ),
        binding("lost", "stray", 1, own(), None),
    ];
    (providers, accounts, bindings)
}

fn parse<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).unwrap()
}

fn snapshot() -> Snapshot {
    let (p, a, b) = fixture();
    Snapshot {
        providers: p.into_iter().map(parse).collect(),
        accounts: a.into_iter().map(parse).collect(),
        bindings: b.into_iter().map(parse).collect(),
        cluster_scoped_forbidden: false,
    }
}

const EXPECTED_TEXT: &str = "\
EmailProvider contoso: Ready (Verified)
├─ ExchangeServiceAccount contoso-org: Ready (Verified)
│  ├─ MailboxBinding sales/orders: Ready (Verified)
│  └─ MailboxBinding sales/support: Not ready (MailboxNotFound) Exchange does not know support@contoso.example\\n(EWS)
└─ MailboxBinding finance/billing: Unknown (Outdated)
EmailProvider old: Ready (Verified) [deletion blocked]
└─ MailboxBinding legacy/archive: Ready (Verified)
(no provider resolved yet)
├─ MailboxBinding finance/payroll: Unknown (NoStatus)
└─ MailboxBinding lost/stray: Unknown (NoStatus)

9 object(s), 4 not ready
Reasons: MailboxNotFound 1, NoStatus 2, Outdated 1, Verified 5
Deletion of EmailProvider old is blocked: deletion waits for 1 object(s) still using it: MailboxBinding legacy/archive
  - MailboxBinding legacy/archive
";

#[test]
fn text_shows_the_tree_the_reasons_and_blocked_deletions() {
    let tree = status::build(&snapshot());
    let text = render::text(&tree, false);
    assert_eq!(text, EXPECTED_TEXT, "got:\n{text}");
    assert!(!tree.all_ready());
}

#[test]
fn colours_only_when_asked_and_only_around_the_state() {
    let tree = status::build(&snapshot());
    let coloured = render::text(&tree, true);
    assert!(coloured.contains("\x1b[32mReady\x1b[0m"));
    assert!(coloured.contains("\x1b[31mNot ready\x1b[0m"));
    assert!(coloured.contains("\x1b[33mUnknown\x1b[0m"));
    let stripped = coloured
        .replace("\x1b[32m", "")
        .replace("\x1b[31m", "")
        .replace("\x1b[33m", "")
        .replace("\x1b[0m", "");
    assert_eq!(stripped, EXPECTED_TEXT);
    assert!(!render::text(&tree, false).contains('\x1b'));
}

#[test]
fn json_holds_the_same_tree() {
    let tree = status::build(&snapshot());
    let got: Value = serde_json::from_str(&render::json(&tree).unwrap()).unwrap();
    let entry = |ns: Option<&str>, kind: &str, name: &str, ready: &str, reason: &str| {
        let mut e = json!({"kind": kind, "name": name, "ready": ready, "reason": reason});
        if let Some(ns) = ns {
            e["namespace"] = json!(ns);
        }
        e
    };
    let b = |ns, name, ready, reason| entry(Some(ns), "MailboxBinding", name, ready, reason);
    let mut support = b("sales", "support", "False", "MailboxNotFound");
    support["message"] = json!("Exchange does not know support@contoso.example\n(EWS)");
    let mut old = entry(None, "EmailProvider", "old", "True", "Verified");
    old["deletionBlockedBy"] =
        json!("deletion waits for 1 object(s) still using it: MailboxBinding legacy/archive");
    let expected = json!({
        "providers": [
            {"name": "contoso", "provider": entry(None, "EmailProvider", "contoso", "True", "Verified"),
             "serviceAccounts": [{"name": "contoso-org",
                 "account": entry(None, "ExchangeServiceAccount", "contoso-org", "True", "Verified"),
                 "bindings": [b("sales", "orders", "True", "Verified"), support]}],
             "bindings": [b("finance", "billing", "Unknown", "Outdated")]},
            {"name": "old", "provider": old, "serviceAccounts": [],
             "bindings": [b("legacy", "archive", "True", "Verified")]},
            {"name": null, "provider": null, "serviceAccounts": [],
             "bindings": [b("finance", "payroll", "Unknown", "NoStatus"),
                          b("lost", "stray", "Unknown", "NoStatus")]}
        ],
        "total": 9,
        "notReady": 4,
        "reasons": {"MailboxNotFound": 1, "NoStatus": 2, "Outdated": 1, "Verified": 5},
        "blockedDeletions": [{"kind": "EmailProvider", "name": "old",
            "message": "deletion waits for 1 object(s) still using it: MailboxBinding legacy/archive",
            "users": ["MailboxBinding legacy/archive"]}]
    });
    assert_eq!(got, expected, "got:\n{got:#}");
}

#[test]
fn missing_referents_and_an_empty_cluster() {
    let snapshot = Snapshot {
        providers: vec![],
        accounts: vec![parse(account(
            "orphan",
            "gone",
            ready("ProviderNotFound", "no provider gone"),
        ))],
        bindings: vec![parse(binding("a", "x", 1, via_account("nobody"), None))],
        cluster_scoped_forbidden: false,
    };
    let text = render::text(&status::build(&snapshot), false);
    assert!(text.starts_with("EmailProvider gone: not found\n└─ ExchangeServiceAccount orphan: Not ready (ProviderNotFound) no provider gone\n"), "{text}");
    assert!(text.contains("(no provider resolved yet)\n└─ ExchangeServiceAccount nobody: not found\n   └─ MailboxBinding a/x: Unknown (NoStatus)\n"), "{text}");
    let empty = status::build(&Snapshot::default());
    assert!(empty.all_ready());
    assert_eq!(
        render::text(&empty, false),
        "No mailops objects found.\n\n0 object(s), 0 not ready\n"
    );
}

#[test]
fn everything_ready_is_all_ready() {
    let snapshot = Snapshot {
        providers: vec![parse(provider("contoso", ready("Verified", "")))],
        accounts: vec![],
        bindings: vec![parse(binding(
            "a",
            "x",
            1,
            own(),
            bound_status("contoso", "Verified", ""),
        ))],
        cluster_scoped_forbidden: false,
    };
    assert!(status::build(&snapshot).all_ready());
}

/// What a tenant controls and `status -A` prints: a provider name (no pattern in the
/// CRD), the reason and message a status carries. ESC and CSI start terminal sequences
/// (`\e[2J` clears the screen), CR and LF forge lines, U+202E reverses what follows.
fn hostile_snapshot() -> Snapshot {
    let evil = "x\u{1b}[2J\u{9b}31m\r\u{202e}";
    let mut b = binding(
        "t\u{1b}]0;pwned\u{7}",
        "b",
        1,
        own(),
        bound_status(
            evil,
            "Verified\u{1b}[8m",
            "fine\n\u{1b}[1A\u{1b}[2KEmailProvider ok: Ready",
        ),
    );
    b["spec"]["providerRef"] = json!({"name": evil});
    b["status"]["conditions"][0]["status"] = json!("False");
    Snapshot {
        providers: vec![],
        accounts: vec![parse(account(evil, evil, ready("Verified", "")))],
        bindings: vec![parse(b)],
        cluster_scoped_forbidden: false,
    }
}

/// Whether `s` holds a character a terminal would act on rather than show (line ends
/// aside), or one that reorders the text.
fn raw_control(s: &str) -> Option<char> {
    s.chars()
        .find(|&c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c))
}

#[test]
fn escape_sequences_from_the_cluster_are_printed_escaped() {
    let tree = status::build(&hostile_snapshot());
    let text = render::text(&tree, false);
    assert_eq!(raw_control(&text), None, "{text:?}");
    for shown in [
        "EmailProvider x\\u{1b}[2J\\u{9b}31m\\r\\u{202e}: not found",
        "ExchangeServiceAccount x\\u{1b}[2J",
        "MailboxBinding t\\u{1b}]0;pwned\\u{7}/b: Not ready (Verified\\u{1b}[8m) fine\\n\\u{1b}[1A\\u{1b}[2KEmailProvider ok: Ready",
    ] {
        assert!(text.contains(shown), "{shown:?} not in\n{text}");
    }
    // Colours are the only sequences printed, around the state alone.
    let coloured = render::text(&tree, true);
    let stripped = ["\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[0m"]
        .iter()
        .fold(coloured, |t, c| t.replace(c, ""));
    assert_eq!(stripped, text);
}

#[test]
fn json_escapes_them_too_and_keeps_their_meaning() {
    let tree = status::build(&hostile_snapshot());
    let printed = render::json(&tree).unwrap();
    assert_eq!(raw_control(&printed), None, "{printed:?}");
    assert!(
        printed.contains(r"x\u001b[2J\u009b31m\r\u202e"),
        "{printed}"
    );
    // A script reads back exactly what the cluster holds.
    let back: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(
        back["providers"][0]["name"],
        json!("x\u{1b}[2J\u{9b}31m\r\u{202e}")
    );
    assert_eq!(back, serde_json::to_value(&tree).unwrap());
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "mailops.dev/v1alpha1", "kind": format!("{kind}List"),
           "metadata": {"resourceVersion": "1"}, "items": items})
}

async fn collect_with(scope: Scope, bindings_path: &str) -> Snapshot {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let (providers, accounts, bindings) = fixture();
    let steps = vec![
        step(
            Method::GET,
            "/apis/mailops.dev/v1alpha1/emailproviders",
            |_, _| {},
            list("EmailProvider", providers),
        ),
        step(
            Method::GET,
            "/apis/mailops.dev/v1alpha1/exchangeserviceaccounts",
            |_, _| {},
            list("ExchangeServiceAccount", accounts),
        ),
        step(
            Method::GET,
            bindings_path,
            |_, _| {},
            list("MailboxBinding", bindings),
        ),
    ];
    let verifier = Verifier::start(handle, steps);
    let snapshot = status::cli::collect(&client, &scope).await.unwrap();
    verifier.done().await;
    snapshot
}

#[tokio::test]
async fn all_namespaces_lists_each_kind_once_and_writes_nothing() {
    let snapshot = collect_with(Scope::All, "/apis/mailops.dev/v1alpha1/mailboxbindings").await;
    assert_eq!(
        (
            snapshot.providers.len(),
            snapshot.accounts.len(),
            snapshot.bindings.len()
        ),
        (2, 1, 6)
    );
    let text = render::text(&status::build(&snapshot), false);
    assert_eq!(text, EXPECTED_TEXT);
}

#[tokio::test]
async fn one_namespace_lists_only_its_bindings() {
    let snapshot = collect_with(
        Scope::Namespace("sales".into()),
        "/apis/mailops.dev/v1alpha1/namespaces/sales/mailboxbindings",
    )
    .await;
    assert_eq!(
        snapshot.bindings.len(),
        6,
        "the mock answers what it is given"
    );
}

fn refused(path: &str, code: u16, reason: &str) -> Step {
    let mut step = step(
        Method::GET,
        path,
        |_, _| {},
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
               "message": format!("{path} is {reason}"), "code": code}),
    );
    step.status = code;
    step
}

#[tokio::test]
async fn an_api_error_is_an_error_not_an_empty_tree() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let providers = "/apis/mailops.dev/v1alpha1/emailproviders";
    let accounts = "/apis/mailops.dev/v1alpha1/exchangeserviceaccounts";
    let verifier = Verifier::start(
        handle,
        vec![
            refused(providers, 401, "Unauthorized"),
            refused(accounts, 401, "Unauthorized"),
        ],
    );
    let error = status::cli::collect(&client, &Scope::All)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("Unauthorized"), "{error}");
    verifier.done().await;
}

#[tokio::test]
async fn a_namespace_editor_sees_the_bindings_and_is_told_what_is_hidden() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let (_, _, bindings) = fixture();
    let sales: Vec<Value> = bindings
        .into_iter()
        .filter(|b| b["metadata"]["namespace"] == "sales")
        .collect();
    let path = "/apis/mailops.dev/v1alpha1/namespaces/sales/mailboxbindings";
    let verifier = Verifier::start(
        handle,
        vec![
            refused(
                "/apis/mailops.dev/v1alpha1/emailproviders",
                403,
                "Forbidden",
            ),
            refused(
                "/apis/mailops.dev/v1alpha1/exchangeserviceaccounts",
                403,
                "Forbidden",
            ),
            step(Method::GET, path, |_, _| {}, list("MailboxBinding", sales)),
        ],
    );
    let snapshot = status::cli::collect(&client, &Scope::Namespace("sales".into()))
        .await
        .unwrap();
    verifier.done().await;
    assert!(snapshot.cluster_scoped_forbidden);
    let tree = status::build(&snapshot);
    assert_eq!(
        render::text(&tree, false),
        "\
EmailProvider contoso: not readable
└─ ExchangeServiceAccount contoso-org: not readable
   ├─ MailboxBinding sales/orders: Ready (Verified)
   └─ MailboxBinding sales/support: Not ready (MailboxNotFound) Exchange does not know support@contoso.example\\n(EWS)

2 object(s), 1 not ready
Reasons: MailboxNotFound 1, Verified 1
EmailProviders and ExchangeServiceAccounts are cluster-scoped, and these credentials may not list them: only MailboxBindings are shown.
"
    );
    let json: Value = serde_json::from_str(&render::json(&tree).unwrap()).unwrap();
    assert_eq!(json["clusterScopedForbidden"], json!(true));
}
