//! Unit tests for the check pipeline on in-memory documents.

use super::*;

fn check(yaml: &str) -> Report {
    let docs = parse_documents("t.yaml", yaml).unwrap();
    check_documents(&docs, false).unwrap()
}

const PROVIDER: &str = "apiVersion: mailops.dev/v1alpha1\nkind: EmailProvider\nmetadata: {name: contoso}\nspec:\n  serviceType: Exchange\n  serviceAddress: mail.contoso.com\n  domains: [contoso.com]\n  authentication: {method: Basic}\n";

#[test]
fn a_binding_resolved_by_domain_gets_a_row() {
    let r = check(&format!(
        "{PROVIDER}---\napiVersion: mailops.dev/v1alpha1\nkind: MailboxBinding\nmetadata: {{name: jane, namespace: sales}}\nspec:\n  emailAddress: jane@contoso.com\n  authentication: {{credentialsSecretRef: {{name: jane}}}}\n"
    ));
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.objects, 2);
    assert_eq!(r.bindings[0].provider.as_deref(), Some("contoso"));
    assert_eq!(r.bindings[0].verdict, "Resolved");
}

#[test]
fn schema_errors_name_document_and_field() {
    let r = check(&format!(
        "{PROVIDER}---\napiVersion: mailops.dev/v1alpha1\nkind: MailboxBinding\nmetadata: {{name: jane}}\nspec:\n  emailAddress: not-an-address\n  authentication: {{credentialsSecretRef: {{name: jane}}}}\n"
    ));
    let line = r.problems[0].to_string();
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert!(
        line.starts_with("t.yaml: document 2 (MailboxBinding default/jane): spec.emailAddress:"),
        "{line}"
    );
}

#[test]
fn namespace_labels_from_the_input_admit_by_selector() {
    let account = "apiVersion: mailops.dev/v1alpha1\nkind: ExchangeServiceAccount\nmetadata: {name: org}\nspec:\n  providerRef: {name: contoso}\n  credentials: {basic: {secretRef: {namespace: mailops, name: imp}}}\n  allowedNamespaces: {selector: {matchLabels: {mail: 'on'}}}\n";
    let binding = "apiVersion: mailops.dev/v1alpha1\nkind: MailboxBinding\nmetadata: {name: jane, namespace: sales}\nspec:\n  emailAddress: jane@contoso.com\n  authentication: {serviceAccountRef: {name: org}}\n";
    let without = check(&format!("{PROVIDER}---\n{account}---\n{binding}"));
    assert_eq!(
        without.problems[0].reason.as_deref(),
        Some("NamespaceNotAllowed"),
        "{:?}",
        without.problems
    );
    assert!(
        without.problems[0].message.contains("include it"),
        "{}",
        without.problems[0].message
    );
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: sales, labels: {mail: 'on'}}\n";
    let with = check(&format!("{PROVIDER}---\n{account}---\n{binding}---\n{ns}"));
    assert!(with.problems.is_empty(), "{:?}", with.problems);
    assert_eq!(with.bindings[0].via.as_deref(), Some("ServiceAccount"));
}

#[test]
fn secrets_in_the_input_are_checked_for_keys_without_reading_values() {
    let binding = "apiVersion: mailops.dev/v1alpha1\nkind: MailboxBinding\nmetadata: {name: jane, namespace: sales}\nspec:\n  emailAddress: jane@contoso.com\n  authentication: {credentialsSecretRef: {name: jane}}\n";
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: jane, namespace: sales}\nstringData: {passwd: SENTINEL-123}\n";
    let r = check(&format!("{PROVIDER}---\n{binding}---\n{secret}"));
    assert_eq!(r.problems.len(), 1);
    assert_eq!(r.problems[0].reason.as_deref(), Some("SecretKeyMissing"));
    let text = r.render(OutputFormat::Text).unwrap() + &r.render(OutputFormat::Json).unwrap();
    assert!(!text.contains("SENTINEL"), "{text}");
}

#[test]
fn duplicates_and_wrong_api_versions_are_problems() {
    let r = check(&format!("{PROVIDER}---\n{PROVIDER}"));
    assert!(
        r.problems
            .iter()
            .any(|p| p.message.contains("more than once")),
        "{:?}",
        r.problems
    );
    let r = check(&PROVIDER.replace("mailops.dev/v1alpha1", "mailops.dev/v1"));
    assert_eq!(r.problems[0].field.as_deref(), Some("apiVersion"));
}

#[test]
fn other_kinds_are_ignored() {
    let r = check("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {}\n");
    assert_eq!(r.objects, 0);
    assert!(r.problems.is_empty());
}

#[test]
fn twenty_thousand_bindings_in_one_stream_are_checked() {
    const N: usize = 20_000;
    let mut yaml = PROVIDER.to_string();
    for i in 0..N {
        yaml.push_str(&format!(
            "---\napiVersion: mailops.dev/v1alpha1\nkind: MailboxBinding\nmetadata: {{name: u{i}, namespace: staff}}\nspec:\n  emailAddress: u{i}@contoso.com\n  authentication: {{credentialsSecretRef: {{name: u{i}}}}}\n"
        ));
    }
    let started = std::time::Instant::now();
    let r = check(&yaml);
    eprintln!("{N} bindings checked in {:?}", started.elapsed());
    assert!(r.problems.is_empty(), "{:?}", &r.problems[..1]);
    assert_eq!((r.objects, r.bindings.len()), (N + 1, N));
}
