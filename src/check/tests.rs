//! Unit tests for the check pipeline on in-memory documents.

use super::*;
use serde_json::Value;

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
fn a_ca_bundle_that_is_not_pem_certificates_is_refused_naming_the_field() {
    let tls =
        |bundle: &str| check(&format!("{PROVIDER}  tls:\n    caBundle: \"{bundle}\"\n")).problems;
    // Not PEM at all: the CRD's CEL rule refuses it, as the API server would.
    let problems = tls("MIIB5jCCAYugAwIBAgIU");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field.as_deref(), Some("spec.tls.caBundle"));
    assert!(
        problems[0].message.contains("PEM CERTIFICATE"),
        "{problems:?}"
    );
    // Shaped like PEM, but not a certificate inside: the controller's own parse refuses it.
    let problems = tls("-----BEGIN CERTIFICATE-----\\naGVsbG8=\\n-----END CERTIFICATE-----\\n");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field.as_deref(), Some("spec.tls.caBundle"));
    assert_eq!(problems[0].reason.as_deref(), Some("InvalidCABundle"));
    assert!(
        problems[0]
            .message
            .contains("not a valid X.509 certificate"),
        "{problems:?}"
    );
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

const BINDING: &str = "apiVersion: mailops.dev/v1alpha1\nkind: MailboxBinding\nmetadata: {name: jane, namespace: sales}\nspec:\n  emailAddress: jane@contoso.com\n  authentication: {credentialsSecretRef: {name: jane}}\n";

#[test]
fn a_misspelled_mailops_kind_is_a_problem_listing_the_known_kinds() {
    let r = check(&format!(
        "{PROVIDER}---\n{}",
        BINDING.replace("MailboxBinding", "MailBoxBinding")
    ));
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(r.problems[0].field.as_deref(), Some("kind"));
    assert_eq!(
        r.problems[0].message,
        "no kind MailBoxBinding in mailops.dev/v1alpha1; known: EmailProvider, ExchangeServiceAccount, MailboxBinding"
    );
    assert_eq!(r.objects, 2);
}

#[test]
fn an_unknown_mailops_version_is_a_problem_even_for_an_unknown_kind() {
    let r = check(
        &BINDING
            .replace("v1alpha1", "v2")
            .replace("MailboxBinding", "Mailbox"),
    );
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(r.problems[0].field.as_deref(), Some("apiVersion"));
    assert!(
        r.problems[0].message.contains("v1alpha1"),
        "{:?}",
        r.problems
    );
}

#[test]
fn mailops_kinds_of_other_groups_are_ignored() {
    let r = check(&format!(
        "{}---\n{}",
        PROVIDER.replace("mailops.dev/v1alpha1", "example.com/v1"),
        BINDING.replace("mailops.dev/v1alpha1", "mail.example.org/v1alpha1")
    ));
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!((r.objects, r.bindings.len()), (0, 0));
}

#[test]
fn list_items_are_checked_as_documents_naming_their_item() {
    let indent = |doc: &str| doc.replace('\n', "\n    ");
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n  - {}\n  - {}\n",
        indent(PROVIDER),
        indent(&BINDING.replace("jane@contoso.com", "not-an-address"))
    );
    let r = check(&format!("{BINDING}---\n{list}"));
    assert_eq!(r.objects, 3, "{:?}", r.problems);
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    let lines: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
    assert!(
        lines.iter().any(|l| l.starts_with(
            "t.yaml: document 2 item 2 (MailboxBinding sales/jane): spec.emailAddress:"
        )),
        "{lines:?}"
    );
    // The first document's binding resolves through the provider found inside the List.
    assert_eq!(r.bindings[0].provider.as_deref(), Some("contoso"));
}

#[test]
fn a_list_whose_items_are_not_a_list_is_a_problem() {
    let r = check("apiVersion: v1\nkind: List\nitems: {a: 1}\n");
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(r.problems[0].field.as_deref(), Some("items"));
}

fn metadata_problems(metadata: &str) -> Vec<Problem> {
    let doc = BINDING.replace("{name: jane, namespace: sales}", metadata);
    check(&format!("{PROVIDER}---\n{doc}")).problems
}

#[test]
fn names_that_are_not_dns_subdomains_are_problems_on_metadata_name() {
    let long = "a".repeat(10_000);
    for name in ["Jane_Doe", "-jane", "jane.", "", long.as_str()] {
        let problems = metadata_problems(&format!("{{name: '{name}', namespace: sales}}"));
        assert_eq!(problems.len(), 1, "{name:.20}: {problems:?}");
        assert_eq!(problems[0].field.as_deref(), Some("metadata.name"));
        assert!(
            problems[0].to_string().len() < 400,
            "the line stays short: {}",
            problems[0]
        );
    }
    let ok = "a".repeat(253);
    assert!(metadata_problems("{name: 'jane.doe-2', namespace: sales}").is_empty());
    assert!(metadata_problems(&format!("{{name: {ok}, namespace: sales}}")).is_empty());
    let problems = metadata_problems(&format!("{{name: a{ok}, namespace: sales}}"));
    assert_eq!(problems[0].field.as_deref(), Some("metadata.name"));
}

#[test]
fn a_missing_or_non_string_name_is_a_problem() {
    for metadata in [
        "{namespace: sales}",
        "{name: 7, namespace: sales}",
        "{name: [a]}",
    ] {
        let problems = metadata_problems(metadata);
        assert_eq!(problems.len(), 1, "{metadata}: {problems:?}");
        assert_eq!(problems[0].field.as_deref(), Some("metadata.name"));
    }
}

#[test]
fn namespaces_that_are_not_dns_labels_are_problems_on_metadata_namespace() {
    let long = "s".repeat(64);
    for ns in ["Sales", "sales_team", "sales.eu", long.as_str()] {
        let problems = metadata_problems(&format!("{{name: jane, namespace: '{ns}'}}"));
        assert_eq!(problems.len(), 1, "{ns}: {problems:?}");
        assert_eq!(problems[0].field.as_deref(), Some("metadata.namespace"));
    }
    let ok = "s".repeat(63);
    assert!(metadata_problems(&format!("{{name: jane, namespace: {ok}}}")).is_empty());
}

#[test]
fn a_binding_without_namespace_lands_in_default_and_cluster_objects_drop_theirs() {
    let r = check(&format!(
        "{}---\n{}",
        PROVIDER.replace("{name: contoso}", "{name: contoso, namespace: Not_A_Label}"),
        BINDING.replace(
            "{name: jane, namespace: sales}",
            "{name: jane, namespace: ''}"
        )
    ));
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.bindings[0].namespace, "default");
    assert_eq!(r.bindings[0].provider.as_deref(), Some("contoso"));
}

fn secret_problems(values: &str) -> Vec<Problem> {
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: jane, namespace: sales}}\n{values}\n"
    );
    check(&format!("{PROVIDER}---\n{BINDING}---\n{secret}")).problems
}

#[test]
fn an_empty_secret_value_counts_as_missing() {
    for values in [
        "stringData: {password: ''}",
        "data: {password: ''}",
        // base64 of "\n": the controller trims trailing newlines before judging.
        "data: {password: Cg==}",
        // base64 of 0xff: not UTF-8, which the controller refuses too.
        "data: {password: /w==}",
    ] {
        let problems = secret_problems(values);
        assert_eq!(problems.len(), 1, "{values}: {problems:?}");
        assert_eq!(problems[0].reason.as_deref(), Some("SecretKeyMissing"));
        assert!(problems[0].message.contains("empty"), "{}", problems[0]);
    }
    // kubectl apply drops a null before it sends the Secret: the key is not there at all.
    let problems = secret_problems("data: {password: null}");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].message.contains("no key"), "{}", problems[0]);
    for values in [
        "stringData: {password: SENTINEL-1}",
        "data: {password: U0VOVElORUwtMQ==}",
        // stringData wins over data for the same key, as in the API server.
        "data: {password: ''}\nstringData: {password: SENTINEL-1}",
    ] {
        assert!(secret_problems(values).is_empty(), "{values}");
    }
}

#[test]
fn a_secret_value_that_is_not_base64_is_a_problem_without_quoting_it() {
    let problems = secret_problems("data: {password: 'SENTINEL not base64!'}");
    let text = format!("{problems:?}");
    assert!(!text.contains("SENTINEL"), "{text}");
    assert!(
        problems
            .iter()
            .any(|p| p.field.as_deref() == Some("data[password]")),
        "{text}"
    );
}

#[test]
fn a_status_block_is_dropped_on_create_but_its_unknown_fields_are_refused() {
    // Known fields, even ill-typed or incomplete, are dropped with the status.
    let status = "status:\n  provider: elsewhere\n  conditions: [{type: Ready, status: 'True'}]\n  observedGeneration: many\n";
    let r = check(&format!("{BINDING}{status}---\n{PROVIDER}"));
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.bindings[0].provider.as_deref(), Some("contoso"));
    // Strict decoding reads the status before it is dropped.
    let status = "status:\n  conditions: [{type: Ready, bogus: 1}]\n  unknownField: true\n";
    let r = check(&format!("{BINDING}{status}---\n{PROVIDER}"));
    let messages: Vec<&str> = r.problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "strict decoding error: unknown field \"status.conditions[0].bogus\"",
            "strict decoding error: unknown field \"status.unknownField\""
        ]
    );
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

/// Odd values in every field of valid objects: each must end as problems, never a panic.
#[test]
fn odd_values_in_any_field_never_panic() {
    let account = "apiVersion: mailops.dev/v1alpha1\nkind: ExchangeServiceAccount\nmetadata: {name: org}\nspec:\n  providerRef: {name: contoso}\n  credentials: {basic: {secretRef: {namespace: mailops, name: imp}}}\n  allowedNamespaces: {names: [sales]}\n";
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: imp, namespace: mailops}\ndata: {username: dQ==}\n";
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: sales, labels: {a: b}}\n";
    let list = "apiVersion: v1\nkind: List\nitems: [{kind: Secret}]\n";
    let odd = [
        serde_json::json!(null),
        serde_json::json!(-1),
        serde_json::json!(1e308),
        serde_json::json!(""),
        serde_json::json!("x".repeat(5000)),
        serde_json::json!([]),
        serde_json::json!([null, {}]),
        serde_json::json!({}),
        serde_json::json!(true),
    ];
    for doc in [PROVIDER, account, BINDING, secret, ns, list] {
        let value = parse_documents("t.yaml", doc).unwrap()[0].value.clone();
        for pointer in pointers(&value, String::new()) {
            for replacement in &odd {
                let mut changed = value.clone();
                *changed.pointer_mut(&pointer).unwrap() = replacement.clone();
                let docs: Vec<Document> = [PROVIDER, account, BINDING, secret, ns]
                    .iter()
                    .map(|d| parse_documents("t.yaml", d).unwrap().remove(0))
                    .chain(std::iter::once(Document {
                        value: changed,
                        ..parse_documents("t.yaml", doc).unwrap().remove(0)
                    }))
                    .collect();
                check_documents(&docs, false).unwrap();
            }
        }
    }
}

fn pointers(value: &Value, at: String) -> Vec<String> {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => Vec::new(),
    };
    let mut out = vec![at.clone()];
    for (key, child) in children {
        out.extend(pointers(child, format!("{at}/{key}")));
    }
    out
}
