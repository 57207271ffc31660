//! CEL as the API server evaluates it: values, nulls, escaping, messages, and the URL
//! library on Go's parser.

use super::*;
use serde_json::json;

fn node(schema: Value) -> Node {
    Node::build(&schema, kube_cel::compile_schema(&schema))
}

/// A one-field object whose rule is `rule`, evaluated on `{"f": value}`.
fn run(field: Value, rule: &str, value: Value) -> Vec<FieldError> {
    let schema = json!({
        "type": "object",
        "properties": {"f": field, "g": {"type": "string", "nullable": true}},
        "x-kubernetes-validations": [{"rule": rule, "message": "failed"}]
    });
    CelEnv::new().validate(&node(schema), &json!({ "f": value }))
}

fn holds(rule: &str, value: Value) -> bool {
    run(json!({"type": "string", "nullable": true}), rule, value).is_empty()
}

#[test]
fn a_null_field_of_an_object_is_absent_to_has() {
    assert!(holds("!has(self.f)", Value::Null));
    assert!(holds("has(self.f)", json!("x")));
    // A rule on the null field itself never runs.
    let schema = json!({"type": "object", "properties": {"f": {
        "type": "string", "nullable": true,
        "x-kubernetes-validations": [{"rule": "self.size() > 3"}]}}});
    assert!(
        CelEnv::new()
            .validate(&node(schema), &json!({"f": null}))
            .is_empty()
    );
}

#[test]
fn numbers_follow_the_schema_type() {
    // A `number` field holding 1 is the double 1.0 to CEL; an `integer` is an int.
    assert!(run(json!({"type": "number"}), "self.f == 1.0", json!(1)).is_empty());
    assert!(run(json!({"type": "integer"}), "self.f == 1", json!(1)).is_empty());
    assert!(run(json!({"type": "integer"}), "self.f + 1 == 3", json!(2)).is_empty());
}

#[test]
fn property_names_are_escaped_as_kubernetes_escapes_them() {
    assert_eq!(escape("x-y"), Some("x__dash__y".into()));
    assert_eq!(escape("namespace"), Some("__namespace__".into()));
    assert_eq!(escape("a__b"), Some("a__underscores__b".into()));
    assert_eq!(escape("a.b/c"), Some("a__dot__b__slash__c".into()));
    assert_eq!(escape("1st"), None);
    assert_eq!(escape("a b"), None);
    let schema = json!({"type": "object", "properties": {"x-y": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "self.x__dash__y == 'v'"}]});
    assert!(
        CelEnv::new()
            .validate(&node(schema), &json!({"x-y": "v"}))
            .is_empty()
    );
}

#[test]
fn failures_carry_message_reason_and_field_path() {
    let schema = json!({
        "type": "object",
        "properties": {"spec": {"type": "object",
            "properties": {"a": {"type": "string"}},
            "x-kubernetes-validations": [
                {"rule": "has(self.a)", "message": "a is required", "fieldPath": ".a", "reason": "FieldValueRequired"},
                {"rule": "false", "messageExpression": "'dynamic ' + string(size(self))"},
                {"rule": "self.a == 'x'"}
            ]}}
    });
    let errors = CelEnv::new().validate(&node(schema.clone()), &json!({"spec": {}}));
    let lines: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    assert_eq!(lines[0], "spec.a: Required value: a is required");
    assert_eq!(lines[1], "spec: Invalid value: dynamic 0");
    // `self.a` of an object without `a` is an evaluation error, which also refuses.
    assert!(
        lines[2].starts_with("spec: Invalid value: \"object\": "),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].contains("evaluating rule: self.a == 'x'"),
        "{}",
        lines[2]
    );
}

#[test]
fn transition_rules_wait_for_an_update_unless_old_self_is_optional() {
    let schema = |optional: bool| {
        json!({"type": "object", "properties": {"f": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "self.f == oldSelf.f", "optionalOldSelf": optional},
                                     {"rule": "!oldSelf.hasValue()", "optionalOldSelf": true}]})
    };
    assert!(
        CelEnv::new()
            .validate(&node(schema(false)), &json!({"f": "a"}))
            .is_empty()
    );
}

/// The rule the CRDs put on every endpoint URL.
const ENDPOINT_RULE: &str = "isURL(self.f) && url(self.f).getScheme() in ['https', 'http'] && url(self.f).getHostname() != ''";

#[test]
fn is_url_and_url_parse_as_go_does() {
    let field = json!({"type": "string"});
    let ok = |url: &str| run(field.clone(), ENDPOINT_RULE, json!(url)).is_empty();
    for url in [
        "https://login.microsoftonline.us",
        "https://mail.contoso.com:70000/EWS/Exchange.asmx",
        "HTTPS://Mail.Contoso.com/",
        "https://%C3%A9.contoso.com/",
        "https://[2001:db8::1]:8443/ews",
    ] {
        assert!(ok(url), "{url} is accepted");
    }
    for url in [
        // Parsed by Go, but with an empty host.
        "https:///ews",
        "https:mail.contoso.com",
        "https:/mail.contoso.com",
        // Not parsed by Go.
        "https://mail.contoso.com\\ews",
        "https://mail.contoso.com/%zz",
        "https://%6dail.contoso.com/",
        "https://mail.contoso.com/ews\n",
        "https://mail.contoso.com:443:443/",
        "https://[192.0.2.1]/",
        // Parsed, but another scheme.
        "ftp://mail.contoso.com/",
    ] {
        assert!(!ok(url), "{url:?} is refused");
    }
}

#[test]
fn url_accessors_follow_go() {
    let field = json!({"type": "string"});
    for rule in [
        "url(self.f).getHost() == 'Mail.Contoso.com:70000'",
        "url(self.f).getHostname() == 'Mail.Contoso.com'",
        "url(self.f).getPort() == '70000'",
        "url(self.f).getScheme() == 'https'",
        "url(self.f).getEscapedPath() == '/a%2fb'",
        "url(self.f).getQuery()['x'] == ['1', '2']",
    ] {
        let errors = run(
            field.clone(),
            rule,
            json!("HTTPS://Mail.Contoso.com:70000/a%2fb?x=1&x=2#frag"),
        );
        assert!(errors.is_empty(), "{rule}: {errors:?}");
    }
    // `url()` of a string Go refuses is an error, which refuses the object.
    let errors = run(field, "url(self.f).getHost() != ''", json!("not a url"));
    assert!(errors[0].message.contains("URL parse error"), "{errors:?}");
}
