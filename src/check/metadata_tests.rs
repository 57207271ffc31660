//! Metadata rules, from apimachinery's own validation code and its quirks.

use super::*;
use crate::check::objectmeta::OwnerReference;

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: name.into(),
        namespace: "sales".into(),
        ..ObjectMeta::default()
    }
}

/// The fields with errors, each once (a value may break several rules).
fn fields(meta: &ObjectMeta) -> Vec<String> {
    let mut fields: Vec<String> = validate(meta, true, NameRule::Subdomain)
        .into_iter()
        .map(|e| e.field)
        .collect();
    fields.dedup();
    fields
}

#[test]
fn subdomains_follow_rfc_1123() {
    for ok in ["a", "jane", "jane.doe", "0-1.b2", &"a".repeat(253)] {
        assert!(subdomain_problems(ok).is_empty(), "{ok}");
    }
    for bad in [
        "",
        "Jane",
        "jane_doe",
        "-a",
        "a-",
        "a..b",
        "a.-b",
        ".a",
        "a/b",
        "é",
        &"a".repeat(254),
    ] {
        assert!(!subdomain_problems(bad).is_empty(), "{bad}");
    }
    // Labels within a subdomain are not bounded on their own.
    assert!(subdomain_problems(&format!("{}.b", "a".repeat(100))).is_empty());
}

#[test]
fn labels_have_no_dots_and_at_most_63_characters() {
    assert!(label_problems(&"s".repeat(63)).is_empty());
    assert_eq!(label_problems("sales.eu"), ["must not contain dots"]);
    for bad in ["Sales", &"s".repeat(64), ""] {
        assert!(!label_problems(bad).is_empty(), "{bad}");
    }
}

#[test]
fn generate_name_is_a_prefix_with_apimachinerys_trailing_dash_mask() {
    let with = |generate_name: &str| ObjectMeta {
        generate_name: generate_name.into(),
        ..meta("jane")
    };
    assert!(fields(&with("jane-")).is_empty());
    assert!(fields(&with("team.jane-")).is_empty());
    assert_eq!(fields(&with("Jane-")), ["metadata.generateName"]);
    assert_eq!(fields(&with("-")), ["metadata.generateName"]);
    // maskTrailingDash replaces the last two characters by one `a`: `x_-` passes as `xa`.
    assert!(fields(&with("x_-")).is_empty());
    assert_eq!(fields(&with("x_y-")), ["metadata.generateName"]);
    // ... but the second, path-segment pass still refuses `/` and `%`.
    assert_eq!(fields(&with("x/-")), ["metadata.generateName"]);
}

#[test]
fn label_keys_are_qualified_names_and_values_short_names() {
    let labelled = |key: &str, value: &str| ObjectMeta {
        labels: [(key.to_string(), value.to_string())].into(),
        ..meta("jane")
    };
    for (key, value) in [
        ("app", "web"),
        ("app.kubernetes.io/name", "mailops"),
        ("A_b-c.d", ""),
        ("mailops.dev/exchange", "allowed"),
        (&"k".repeat(63), &"v".repeat(63)),
        (&format!("{}/x", "p".repeat(253)), "v"),
    ] {
        assert!(
            fields(&labelled(key, value)).is_empty(),
            "{key:.20}={value:.20}"
        );
    }
    for (key, value) in [
        ("", "v"),
        ("/x", "v"),
        ("a/b/c", "v"),
        ("Mailops.dev/x", "v"),
        ("-app", "v"),
        (&"k".repeat(64), "v"),
        ("app", "-web"),
        ("app", "web site"),
        ("app", &"v".repeat(64)),
        ("app", "a/b"),
    ] {
        assert_eq!(
            fields(&labelled(key, value)),
            ["metadata.labels"],
            "{key:.20}={value:.20}"
        );
    }
}

#[test]
fn annotation_keys_ignore_case_and_all_annotations_share_256_kib() {
    let annotated = |entries: &[(&str, String)]| ObjectMeta {
        annotations: entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..meta("jane")
    };
    // Upper case is fine in an annotation key's prefix, unlike in a label key's.
    assert!(fields(&annotated(&[("Example.COM/Note", "x".into())])).is_empty());
    assert_eq!(
        fields(&annotated(&[("a b", "x".into())])),
        ["metadata.annotations"]
    );
    // Keys and values count, in bytes: exactly 256 KiB passes, one byte more does not.
    let at_limit = "v".repeat(ANNOTATIONS_MAX_BYTES - 2);
    assert!(fields(&annotated(&[("ab", at_limit.clone())])).is_empty());
    assert_eq!(
        fields(&annotated(&[("abc", at_limit)])),
        ["metadata.annotations"]
    );
    let split = "é".repeat(ANNOTATIONS_MAX_BYTES / 4);
    assert_eq!(
        fields(&annotated(&[("a", split.clone()), ("b", split)])),
        ["metadata.annotations"],
        "é is two bytes"
    );
}

#[test]
fn finalizers_and_owner_references_follow_their_rules() {
    let finalized = |f: &[&str]| ObjectMeta {
        finalizers: f.iter().map(|s| s.to_string()).collect(),
        ..meta("jane")
    };
    assert!(fields(&finalized(&["mailops.dev/in-use", "kubernetes"])).is_empty());
    assert_eq!(
        fields(&finalized(&["mailops.dev/in use"])),
        ["metadata.finalizers"]
    );
    assert_eq!(
        fields(&finalized(&["orphan", "foregroundDeletion"])),
        ["metadata.finalizers"]
    );
    let owned = |refs: Vec<OwnerReference>| ObjectMeta {
        owner_references: refs,
        ..meta("jane")
    };
    let owner = OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: "web".into(),
        uid: "1".into(),
        controller: true,
    };
    assert!(fields(&owned(vec![owner.clone()])).is_empty());
    assert_eq!(
        fields(&owned(vec![owner.clone(), owner.clone()])),
        ["metadata.ownerReferences"]
    );
    let bad_version = OwnerReference {
        api_version: "a/b/c".into(),
        ..owner.clone()
    };
    assert_eq!(
        fields(&owned(vec![bad_version])),
        ["metadata.ownerReferences[0].apiVersion"]
    );
    let event = OwnerReference {
        api_version: "v1".into(),
        kind: "Event".into(),
        ..owner
    };
    assert_eq!(fields(&owned(vec![event])), ["metadata.ownerReferences[0]"]);
}

#[test]
fn a_namespace_must_be_a_dns_label_and_a_name_is_required() {
    assert_eq!(
        fields(&ObjectMeta {
            namespace: "Sales".into(),
            ..meta("jane")
        }),
        ["metadata.namespace"]
    );
    assert_eq!(fields(&meta("")), ["metadata.name"]);
    assert!(validate(&meta(""), true, NameRule::Subdomain)[0].blocking);
    assert_eq!(validate(&meta("a.b"), false, NameRule::Label).len(), 1);
}
