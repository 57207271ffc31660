//! The admission decision, pure: (AdmissionRequest, SubjectAccessReview answer, caches) →
//! AdmissionResponse, for every branch: the `use` verb, in-use deletions, warnings, and
//! requests that are malformed (an answer, never a panic).

mod webhook_support;

use kube::core::admission::AdmissionResponse;
use mailops::webhook::decision::{Access, Options, decide, malformed, parse_review, use_check};
use serde_json::{Value, json};
use webhook_support::*;

fn decided(body: &Value, access: Option<Access>, caches: &Caches) -> AdmissionResponse {
    decide(&request(body), access.as_ref(), &caches.stores, &OPTIONS)
}

fn denied() -> Option<Access> {
    Some(Access::Denied {
        reason: String::new(),
    })
}

fn support_caches() -> Caches {
    let mut c = Caches::new();
    c.provider(provider("contoso", &["contoso.com"]))
        .account(account("corp", "contoso", &["support"]))
        .namespace("support")
        .secret("support", "jane-creds", &["password"]);
    c
}

#[test]
fn creating_a_service_account_binding_asks_for_use_on_that_account_by_that_user() {
    let body = review(
        "CREATE",
        &account_binding("support", "helpdesk", "helpdesk@contoso.com", "corp"),
        None,
        "alice",
    );
    let check = use_check(&request(&body)).unwrap().expect("a use check");
    assert_eq!(check.account, "corp");
    assert_eq!(check.user.username.as_deref(), Some("alice"));
    assert_eq!(check.user.uid.as_deref(), Some("uid-alice"));
    assert_eq!(
        check.user.groups.as_deref(),
        Some(&["dev".to_string(), "system:authenticated".to_string()][..])
    );
    assert_eq!(
        check.user.extra.as_ref().unwrap()["scopes"],
        vec!["mail".to_string()]
    );
}

#[test]
fn a_user_with_use_is_admitted_without_warnings_when_all_resolves() {
    let body = review(
        "CREATE",
        &account_binding("support", "helpdesk", "helpdesk@contoso.com", "corp"),
        None,
        "alice",
    );
    let response = decided(&body, Some(Access::Allowed), &support_caches());
    assert!(response.allowed, "{response:?}");
    assert_eq!(response.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(response.warnings, None);
}

#[test]
fn a_user_without_use_is_refused_with_user_verb_account_and_where_to_read_more() {
    let body = review(
        "CREATE",
        &account_binding("support", "ceo", "ceo@contoso.com", "corp"),
        None,
        "bob",
    );
    let response = decided(&body, denied(), &support_caches());
    assert!(!response.allowed);
    let message = &response.result.message;
    for needle in [
        "\"bob\"",
        "\"use\"",
        "exchangeserviceaccounts.mailops.dev",
        "\"corp\"",
        "README",
    ] {
        assert!(message.contains(needle), "{needle} missing from {message}");
    }
}

#[test]
fn the_authorisers_reason_is_kept_in_the_refusal() {
    let body = review(
        "CREATE",
        &account_binding("support", "ceo", "ceo@contoso.com", "corp"),
        None,
        "bob",
    );
    let access = Some(Access::Denied {
        reason: "no RBAC policy matched".into(),
    });
    let response = decided(&body, access, &support_caches());
    assert!(response.result.message.contains("no RBAC policy matched"));
}

#[test]
fn an_unanswered_access_review_refuses_so_a_failing_api_server_bypasses_nothing() {
    let body = review(
        "CREATE",
        &account_binding("support", "ceo", "ceo@contoso.com", "corp"),
        None,
        "alice",
    );
    let unavailable = Some(Access::Unavailable {
        error: "timed out".into(),
    });
    let response = decided(&body, unavailable, &support_caches());
    assert!(!response.allowed);
    assert!(
        response.result.message.contains("timed out"),
        "{}",
        response.result.message
    );
    let response = decided(&body, None, &support_caches());
    assert!(!response.allowed, "not asked is not allowed");
}

#[test]
fn own_credentials_need_no_use() {
    let body = review(
        "CREATE",
        &own_binding("support", "jane", "jane@contoso.com", "jane-creds"),
        None,
        "bob",
    );
    assert_eq!(use_check(&request(&body)).unwrap(), None);
    let response = decided(&body, None, &support_caches());
    assert!(response.allowed, "{response:?}");
    assert_eq!(response.warnings, None);
}

#[test]
fn toggling_the_switches_of_a_service_account_binding_needs_no_use() {
    let old = attached(
        account_binding("support", "helpdesk", "helpdesk@contoso.com", "corp"),
        "contoso",
        Some("corp"),
    );
    let mut new = old.clone();
    new["spec"]["enableSending"] = json!(true);
    new["spec"]["enableSyncing"] = json!(true);
    new["spec"]["connectCalendar"] = json!(false);
    new["metadata"]["labels"] = json!({"team": "support"});
    let body = review("UPDATE", &new, Some(&old), "bob");
    assert_eq!(use_check(&request(&body)).unwrap(), None);
    assert!(decided(&body, None, &support_caches()).allowed);
}

#[test]
fn changing_what_a_service_account_binding_links_needs_use_again() {
    let old = account_binding("support", "helpdesk", "helpdesk@contoso.com", "corp");
    let changes: [(&str, Value); 4] = [
        ("/spec/emailAddress", json!("ceo@contoso.com")),
        ("/spec/login", json!("CONTOSO\\ceo")),
        ("/spec/providerRef", json!({"name": "contoso"})),
        (
            "/spec/authentication/serviceAccountRef",
            json!({"name": "other"}),
        ),
    ];
    for (field, value) in changes {
        let mut new = old.clone();
        *pointer_mut(&mut new, field) = value;
        let body = review("UPDATE", &new, Some(&old), "bob");
        assert!(use_check(&request(&body)).unwrap().is_some(), "{field}");
        let response = decided(&body, denied(), &support_caches());
        assert!(!response.allowed, "{field}");
    }
}

fn pointer_mut<'a>(v: &'a mut Value, path: &str) -> &'a mut Value {
    let mut at = v;
    for part in path.trim_start_matches('/').split('/') {
        at = at
            .as_object_mut()
            .unwrap()
            .entry(part)
            .or_insert(Value::Null);
    }
    at
}

#[test]
fn moving_a_binding_from_own_credentials_to_a_service_account_needs_use() {
    let old = own_binding("support", "jane", "jane@contoso.com", "jane-creds");
    let new = account_binding("support", "jane", "jane@contoso.com", "corp");
    let body = review("UPDATE", &new, Some(&old), "bob");
    let check = use_check(&request(&body)).unwrap().expect("a use check");
    assert_eq!(check.account, "corp");
    assert!(!decided(&body, denied(), &support_caches()).allowed);
}

fn in_use_caches(bindings: usize) -> Caches {
    let mut c = support_caches();
    for i in 0..bindings {
        let b = account_binding(
            "support",
            &format!("b{i:02}"),
            &format!("u{i}@contoso.com"),
            "corp",
        );
        c.binding(attached(b, "contoso", Some("corp")));
    }
    c
}

#[test]
fn deleting_a_provider_in_use_is_refused_with_counts_and_no_names() {
    let caches = in_use_caches(12);
    let body = review(
        "DELETE",
        &provider("contoso", &["contoso.com"]),
        None,
        "admin",
    );
    let response = decided(&body, None, &caches);
    assert!(!response.allowed);
    let m = &response.result.message;
    assert!(
        m.starts_with("EmailProvider \"contoso\" is used by 13 object(s) (1 ExchangeServiceAccount(s), 12 MailboxBinding(s)); list them with `kubectl get mbx -A --field-selector status.provider=contoso"),
        "{m}"
    );
    // Anyone who reaches the webhook may send a DELETE review: no other tenant's names.
    assert!(!m.contains("support/") && !m.contains("corp,"), "{m}");
    assert!(m.ends_with("delete or re-point them first"), "{m}");
}

#[test]
fn deleting_a_service_account_in_use_is_refused_and_admitted_once_unused() {
    let body = review(
        "DELETE",
        &account("corp", "contoso", &["support"]),
        None,
        "admin",
    );
    let response = decided(&body, None, &in_use_caches(2));
    assert!(!response.allowed);
    let m = &response.result.message;
    assert!(
        m.contains("is used by 2 object(s) (0 ExchangeServiceAccount(s), 2 MailboxBinding(s)); list them with `kubectl get mbx -A --field-selector status.serviceAccount=corp`"),
        "{m}"
    );
    assert!(!m.contains("support/b00"), "{m}");
    assert!(decided(&body, None, &in_use_caches(0)).allowed);
}

#[test]
fn a_binding_counts_only_once_attached_as_the_controller_records_it() {
    let mut caches = support_caches();
    caches.binding(account_binding("support", "new", "new@contoso.com", "corp"));
    let body = review(
        "DELETE",
        &account("corp", "contoso", &["support"]),
        None,
        "admin",
    );
    assert!(decided(&body, None, &caches).allowed);
}

#[test]
fn refusing_in_use_deletion_can_be_switched_off() {
    let body = review(
        "DELETE",
        &provider("contoso", &["contoso.com"]),
        None,
        "admin",
    );
    let options = Options {
        refuse_in_use_deletion: false,
        ..OPTIONS
    };
    let response = decide(&request(&body), None, &in_use_caches(3).stores, &options);
    assert!(response.allowed);
}

#[test]
fn a_binding_whose_domain_no_provider_serves_is_admitted_with_a_warning() {
    let body = review(
        "CREATE",
        &own_binding("support", "x", "x@fabrikam.com", "jane-creds"),
        None,
        "bob",
    );
    let response = decided(&body, None, &support_caches());
    assert!(response.allowed);
    let warnings = response.warnings.expect("a warning");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("ProviderNotFound: no EmailProvider lists domain fabrikam.com"),
        "{warnings:?}"
    );
}

fn only_warning(body: &Value, access: Option<Access>, caches: &Caches) -> String {
    let response = decided(body, access, caches);
    assert!(response.allowed, "{response:?}");
    let warnings = response.warnings.expect("a warning");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    warnings[0].clone()
}

#[test]
fn what_check_would_report_comes_back_as_warnings() {
    let mut caches = support_caches();
    caches
        .provider(provider("contoso-too", &["contoso.com"]))
        .provider(manual_provider("manual", &["manual.com"]))
        .provider(oauth2_provider("cloud", &["cloud.com"]))
        .namespace("sales");
    let ambiguous = own_binding("support", "a", "a@contoso.com", "jane-creds");
    let w = only_warning(&review("CREATE", &ambiguous, None, "bob"), None, &caches);
    assert!(w.starts_with("AmbiguousProvider:"), "{w}");
    let login = own_binding("support", "m", "m@manual.com", "jane-creds");
    let w = only_warning(&review("CREATE", &login, None, "bob"), None, &caches);
    assert!(w.starts_with("LoginRequired:"), "{w}");
    let mut sales = account_binding("sales", "s", "s@contoso.com", "corp");
    sales["spec"]["providerRef"] = json!({"name": "contoso"});
    let w = only_warning(
        &review("CREATE", &sales, None, "alice"),
        Some(Access::Allowed),
        &caches,
    );
    assert!(w.starts_with("NamespaceNotAllowed:"), "{w}");
}

#[test]
fn a_create_claiming_another_namespace_learns_nothing_of_its_secrets() {
    // Any pod that reaches the webhook can forge a review claiming namespace "support":
    // the answers for an existing Secret without the key, an existing one with it, and a
    // missing one must be the same.
    let mut caches = support_caches();
    caches.provider(oauth2_provider("cloud", &["cloud.com"]));
    let answers: Vec<String> = ["jane-creds", "nowhere"]
        .iter()
        .map(|secret| {
            let binding = own_binding("support", "c", "c@cloud.com", secret);
            let response = decided(&review("CREATE", &binding, None, "mallory"), None, &caches);
            assert!(response.allowed);
            format!("{:?}", response.warnings)
        })
        .collect();
    assert_eq!(answers[0], answers[1]);
    assert!(!answers[0].contains("Secret"), "{}", answers[0]);
}

#[test]
fn accounts_and_providers_get_warnings_too() {
    let mut caches = support_caches();
    caches.provider(oauth2_provider("cloud", &["cloud.com"]));
    let basic_on_oauth2 = account("imp", "cloud", &["support"]);
    let w = only_warning(
        &review("CREATE", &basic_on_oauth2, None, "admin"),
        None,
        &caches,
    );
    assert!(w.starts_with("AuthMethodMismatch:"), "{w}");
    let orphan = account("orphan", "nowhere", &["support"]);
    let w = only_warning(&review("CREATE", &orphan, None, "admin"), None, &caches);
    assert!(w.starts_with("ProviderNotFound:"), "{w}");
    let overlapping = provider("contoso-too", &["contoso.com"]);
    let w = only_warning(
        &review("CREATE", &overlapping, None, "admin"),
        None,
        &caches,
    );
    assert!(
        w.starts_with("AmbiguousProvider: domain contoso.com"),
        "{w}"
    );
    let mut insecure = provider("lab", &["lab.com"]);
    insecure["spec"]["endpoints"] = json!({"ews": "http://lab.local/EWS/Exchange.asmx"});
    let w = only_warning(&review("CREATE", &insecure, None, "admin"), None, &caches);
    assert!(w.starts_with("InsecureEndpoint:"), "{w}");
}

#[test]
fn an_update_that_leaves_the_spec_alone_carries_no_warnings() {
    let old = own_binding("support", "x", "x@fabrikam.com", "jane-creds");
    let mut new = old.clone();
    new["metadata"]["finalizers"] = json!(["example.com/keep"]);
    let response = decided(
        &review("UPDATE", &new, Some(&old), "bob"),
        None,
        &support_caches(),
    );
    assert!(response.allowed);
    assert_eq!(response.warnings, None);
}

#[test]
fn other_kinds_and_subresources_are_admitted_untouched() {
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "support"}});
    let mut body = review("CREATE", &pod, None, "bob");
    body["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Pod"});
    assert!(decided(&body, None, &support_caches()).allowed);
    pod = account_binding("support", "ceo", "ceo@contoso.com", "corp");
    let mut status = review("UPDATE", &pod, Some(&pod), "bob");
    status["request"]["subResource"] = json!("status");
    assert_eq!(use_check(&request(&status)).unwrap(), None);
    assert!(decided(&status, None, &support_caches()).allowed);
}

#[test]
fn a_service_account_reference_without_a_name_is_refused_not_a_panic() {
    let mut b = account_binding("support", "ceo", "ceo@contoso.com", "corp");
    b["spec"]["authentication"]["serviceAccountRef"] = json!({});
    let body = review("CREATE", &b, None, "bob");
    assert!(use_check(&request(&body)).is_err());
    let response = decided(&body, Some(Access::Allowed), &support_caches());
    assert!(!response.allowed);
    assert!(response.result.message.contains("serviceAccountRef.name"));
}

#[test]
fn malformed_reviews_get_an_answer() {
    let bodies: [&[u8]; 5] = [
        b"",
        b"not json",
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
        br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u1"}}"#,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u2","operation":"EXPLODE"}}"#,
    ];
    for body in bodies {
        let problem = parse_review(body).expect_err("malformed");
        let answer = malformed(body, &problem);
        let response = answer.response.expect("a response");
        assert!(!response.allowed);
        assert_eq!(answer.types.api_version, "admission.k8s.io/v1");
        assert!(!response.result.message.is_empty());
    }
    let answer = malformed(bodies[4], &parse_review(bodies[4]).unwrap_err());
    assert_eq!(
        answer.response.unwrap().uid,
        "u2",
        "the uid is kept when readable"
    );
}

#[test]
fn every_truncation_and_mangling_of_a_review_is_answered_without_a_panic() {
    let caches = in_use_caches(1);
    let full = serde_json::to_vec(&review(
        "CREATE",
        &account_binding("support", "ceo", "ceo@contoso.com", "corp"),
        None,
        "bob",
    ))
    .unwrap();
    let mut admitted = 0;
    for cut in 0..full.len() {
        for body in [full[..cut].to_vec(), mangle(&full, cut)] {
            if let Ok(request) = parse_review(&body) {
                let _ = use_check(&request);
                admitted += usize::from(
                    decide(&request, denied().as_ref(), &caches.stores, &OPTIONS).allowed,
                );
            }
        }
    }
    // Mangling one byte may leave a readable review that no longer names an account.
    assert!(
        admitted < full.len(),
        "a refused user slipped through {admitted} times"
    );
}

fn mangle(full: &[u8], at: usize) -> Vec<u8> {
    let mut body = full.to_vec();
    body[at] = b"{}[]\":,0x"[at % 9];
    body
}
