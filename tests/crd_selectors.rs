//! `allowedNamespaces.selector` as Kubernetes reads a `LabelSelector`, except that a
//! selector without requirements is refused rather than read as "every namespace". Each
//! form is judged twice: by the CRD's schema and CEL rules (as the API server would, with
//! kube-cel) and by `mailops check`, which must agree; and the resolver, for an object
//! stored before the rules, matches nothing with a malformed selector.

use std::collections::BTreeMap;

use mailops::api::{NamespaceSelector, SelectorOperator, SelectorRequirement};
use mailops::check::{Schemas, check_documents, parse_documents};
use mailops::resolve::selector_matches;
use serde_json::{Value, json};

/// An ExchangeServiceAccount whose `allowedNamespaces` is `policy`.
fn account(policy: Value) -> Value {
    json!({
        "apiVersion": "mailops.dev/v1alpha1", "kind": "ExchangeServiceAccount",
        "metadata": {"name": "org"},
        "spec": {"providerRef": {"name": "contoso"}, "allowedNamespaces": policy},
    })
}

/// The schema's verdict, and check's admission verdict on the same object as a manifest
/// (its problems without a condition reason: resolution's, such as the provider it names
/// being absent from the input, are not admission's).
fn verdicts(policy: Value) -> (bool, bool) {
    let object = account(policy);
    let schema = Schemas::new()
        .unwrap()
        .admit("ExchangeServiceAccount", &object);
    let yaml = serde_json::to_string(&object).unwrap();
    let docs = parse_documents("selector.yaml", &yaml).unwrap();
    let report = check_documents(&docs, false).unwrap();
    let admitted = report.problems.iter().all(|p| p.reason.is_some());
    (schema.is_ok(), admitted)
}

fn refused(policy: Value, field_words: &str) {
    let object = account(policy.clone());
    let errors = Schemas::new()
        .unwrap()
        .admit("ExchangeServiceAccount", &object)
        .expect_err(&format!("{policy} must be refused"));
    assert!(
        errors
            .iter()
            .any(|e| e.field.starts_with("spec.allowedNamespaces.selector")
                && (e.message.contains(field_words) || e.field.contains(field_words))),
        "{policy}: {errors:?}"
    );
    assert_eq!(verdicts(policy.clone()), (false, false), "{policy}");
}

#[test]
fn a_selector_without_requirements_is_refused() {
    refused(json!({"selector": {}}), "at least one requirement");
    refused(
        json!({"selector": {"matchLabels": {}}}),
        "at least one requirement",
    );
    refused(
        json!({"selector": {"matchExpressions": []}}),
        "at least one requirement",
    );
    refused(
        json!({"names": ["team-a"], "selector": {}}),
        "at least one requirement",
    );
}

#[test]
fn a_pruned_null_selector_is_refused_too() {
    // The API server drops `matchLabels: null` before validation, which leaves `{}`.
    let (schema, check) = verdicts(json!({"selector": {"matchLabels": null}}));
    assert!(!schema && !check, "schema {schema}, check {check}");
}

#[test]
fn in_and_not_in_need_values_and_exists_takes_none() {
    for (operator, values) in [
        ("In", json!([])),
        ("NotIn", json!([])),
        ("Exists", json!(["x"])),
        ("DoesNotExist", json!(["x"])),
    ] {
        let requirement = json!({"key": "team", "operator": operator, "values": values});
        refused(
            json!({"selector": {"matchExpressions": [requirement]}}),
            "values",
        );
    }
    for operator in ["In", "NotIn"] {
        let requirement = json!({"key": "team", "operator": operator});
        refused(
            json!({"selector": {"matchExpressions": [requirement]}}),
            "values",
        );
    }
}

#[test]
fn well_formed_selectors_are_admitted() {
    for policy in [
        json!({"selector": {"matchLabels": {"team": "a"}}}),
        json!({"selector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]}}),
        json!({"selector": {"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["c"]}]}}),
        json!({"selector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]}}),
        json!({"selector": {"matchExpressions": [{"key": "team", "operator": "DoesNotExist", "values": []}]}}),
        // The explicit admit-all the README shows.
        json!({"selector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "Exists"}]}}),
        json!({"names": ["team-a"]}),
        json!({}),
    ] {
        assert_eq!(verdicts(policy.clone()), (true, true), "{policy}");
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn requirement(operator: SelectorOperator, values: &[&str]) -> SelectorRequirement {
    SelectorRequirement {
        key: "team".into(),
        operator,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

#[test]
fn a_malformed_selector_stored_before_the_rules_matches_nothing() {
    let ns = labels(&[("team", "a"), ("kubernetes.io/metadata.name", "team-a")]);
    assert!(!selector_matches(&NamespaceSelector::default(), &ns));
    let only = |r| NamespaceSelector {
        match_expressions: vec![r],
        ..NamespaceSelector::default()
    };
    assert!(!selector_matches(
        &only(requirement(SelectorOperator::NotIn, &[])),
        &ns
    ));
    assert!(!selector_matches(
        &only(requirement(SelectorOperator::In, &[])),
        &ns
    ));
    assert!(!selector_matches(
        &only(requirement(SelectorOperator::Exists, &["a"])),
        &ns
    ));
    // Kubernetes' meaning for the well-formed ones.
    assert!(selector_matches(
        &only(requirement(SelectorOperator::NotIn, &["b"])),
        &ns
    ));
    assert!(!selector_matches(
        &only(requirement(SelectorOperator::NotIn, &["a"])),
        &ns
    ));
    assert!(selector_matches(
        &only(requirement(SelectorOperator::Exists, &[])),
        &ns
    ));
    assert!(!selector_matches(
        &only(requirement(SelectorOperator::DoesNotExist, &[])),
        &ns
    ));
}
