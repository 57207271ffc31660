//! The admission pipeline's order, on a small schema and on the real CRDs.

use super::*;
use serde_json::json;

/// A kind whose rules show where in the pipeline they run.
fn widget() -> Schemas {
    let raw = json!({
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "mode": {"type": "string", "enum": ["auto", "manual"], "default": "auto"},
                    "note": {"type": "string", "minLength": 2},
                    "extra": {"type": "string"},
                    "count": {"type": "integer"},
                    "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}
                },
                "x-kubernetes-validations": [
                    {"rule": "self.mode == 'auto' || has(self.extra)", "message": "manual needs extra"},
                    {"rule": "!has(self.extra) || self.extra != 'no'", "message": "extra may not be no"}
                ]
            },
            "status": {"type": "object", "properties": {"seen": {"type": "integer"}}}
        }
    });
    let schema = KindSchema {
        node: Node::build(&raw, kube_cel::compile_schema(&raw)),
        patterns: Patterns::collect(&raw),
        raw,
        versions: vec!["v1".into()],
        namespaced: true,
        status_subresource: true,
    };
    Schemas {
        group: "example.com".into(),
        by_kind: [("Widget".to_string(), schema)].into(),
        cel: CelEnv::new(),
    }
}

fn widget_with(spec: Value) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "ns"}, "spec": spec})
}

fn messages(result: Result<Value, Vec<FieldError>>) -> Vec<String> {
    result
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect()
}

#[test]
fn defaults_are_applied_before_the_rules_run() {
    let admitted = widget()
        .admit_request("Widget", &widget_with(json!({})))
        .unwrap();
    assert_eq!(admitted["spec"]["mode"], "auto");
    // A null that may not be null takes the default too, and the rule sees the default.
    let admitted = widget()
        .admit_request("Widget", &widget_with(json!({"mode": null})))
        .unwrap();
    assert_eq!(admitted["spec"]["mode"], "auto");
}

#[test]
fn a_null_without_default_is_dropped_so_rules_see_it_absent() {
    let admitted = widget()
        .admit_request("Widget", &widget_with(json!({"extra": null, "note": null})))
        .unwrap();
    assert_eq!(admitted["spec"], json!({"mode": "auto"}));
    // Had `extra: null` reached the rules, `has(self.extra)` would be true here.
    let refused = messages(widget().admit_request(
        "Widget",
        &widget_with(json!({"mode": "manual", "extra": null})),
    ));
    assert_eq!(refused, ["spec: Invalid value: manual needs extra"]);
}

#[test]
fn unknown_fields_stop_the_request_before_validation() {
    let refused = messages(widget().admit_request(
        "Widget",
        &widget_with(json!({"mode": "bogus", "extra": "no", "colour": "red"})),
    ));
    assert_eq!(
        refused,
        ["spec: strict decoding error: unknown field \"spec.colour\""]
    );
}

#[test]
fn blocking_errors_skip_the_rules_and_others_do_not() {
    let refused = messages(
        widget().admit_request("Widget", &widget_with(json!({"count": "x", "extra": "no"}))),
    );
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with("spec.count: Invalid value"),
        "{refused:?}"
    );
    let refused = messages(
        widget().admit_request("Widget", &widget_with(json!({"note": "x", "extra": "no"}))),
    );
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[1], "spec: Invalid value: extra may not be no");
    let refused = messages(widget().admit_request(
        "Widget",
        &widget_with(json!({"tags": ["a", "a"], "extra": "no"})),
    ));
    assert_eq!(
        refused,
        [
            "spec.tags[1]: Duplicate value: \"a\"",
            "spec: Invalid value: extra may not be no"
        ]
    );
}

#[test]
fn status_is_read_strictly_then_dropped() {
    let mut object = widget_with(json!({}));
    object["status"] = json!({"seen": "not a number"});
    let admitted = widget().admit_request("Widget", &object).unwrap();
    assert!(admitted.get("status").is_none());
    object["status"] = json!({"seen": 1, "other": 2});
    assert_eq!(
        messages(widget().admit_request("Widget", &object)),
        ["status: strict decoding error: unknown field \"status.other\""]
    );
}

#[test]
fn metadata_is_decoded_strictly_and_validated_before_the_schema() {
    let mut object = widget_with(json!({}));
    object["metadata"]["labels"] = json!({"tier": 1});
    let refused = messages(widget().admit_request("Widget", &object));
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].contains("cannot unmarshal number"),
        "{refused:?}"
    );
    let mut object = widget_with(json!({}));
    object["metadata"]["clusterName"] = json!("old");
    assert_eq!(
        messages(widget().admit_request("Widget", &object)),
        ["metadata: strict decoding error: unknown field \"metadata.clusterName\""]
    );
}

#[test]
fn kubectl_adds_its_annotation_which_counts_against_the_limit() {
    let schemas = widget();
    let mut object = widget_with(json!({}));
    object["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    let admitted = schemas.admit("Widget", &object).unwrap();
    assert_eq!(admitted["metadata"]["namespace"], "default");
    assert!(admitted["metadata"]["annotations"][kubectl::LAST_APPLIED].is_string());
    // 150 KiB of annotation passes on its own, but kubectl records it a second time.
    object["metadata"]["annotations"] = json!({"note": "x".repeat(150 * 1024)});
    assert!(schemas.admit_request("Widget", &object).is_ok());
    let refused = messages(schemas.admit("Widget", &object));
    assert_eq!(
        refused,
        ["metadata.annotations: Too long: may not be more than 262144 bytes"]
    );
}

const PROVIDER: &str = r#"{"apiVersion": "mailops.dev/v1alpha1", "kind": "EmailProvider",
    "metadata": {"name": "p"},
    "spec": {"serviceType": "Exchange", "serviceAddress": "mail.contoso.com", "authentication": {"method": "Basic"}}}"#;

#[test]
fn the_real_crds_treat_nulls_as_the_api_server_does() {
    let schemas = Schemas::new().unwrap();
    let mut provider: Value = serde_json::from_str(PROVIDER).unwrap();
    provider["spec"]["cloud"] = Value::Null;
    provider["spec"]["receiveEmails"] = Value::Null;
    provider["spec"]["authentication"]["oauth2"] = Value::Null;
    let admitted = schemas.admit_request("EmailProvider", &provider).unwrap();
    assert_eq!(admitted["spec"]["cloud"], "Global");
    assert_eq!(admitted["spec"]["receiveEmails"], true);
    provider["spec"]["serviceType"] = Value::Null;
    let refused = messages(schemas.admit_request("EmailProvider", &provider));
    assert_eq!(refused, ["spec.serviceType: Required value"]);
}

#[test]
fn admit_applies_defaults_and_reports_set_duplicates() {
    let schemas = Schemas::new().unwrap();
    let provider: Value = serde_json::from_str(PROVIDER).unwrap();
    let admitted = schemas.admit("EmailProvider", &provider).unwrap();
    assert_eq!(admitted["spec"]["loginFormat"], "EmailAddress");
    assert_eq!(admitted["spec"]["receiveEmails"], true);
    let mut dup = provider.clone();
    dup["spec"]["domains"] = json!(["contoso.com", "contoso.com"]);
    let errors = schemas.admit("EmailProvider", &dup).unwrap_err();
    assert_eq!(errors[0].field, "spec.domains[1]");
}
