//! kube-openapi's value validation, case by case.

use super::*;
use crate::check::patterns::go_regex;
use serde_json::json;

fn errors(schema: Value, value: Value) -> Vec<FieldError> {
    let patterns = Patterns::collect(&schema);
    let wrapped = json!({"type": "object", "properties": {"f": schema}});
    validate(&wrapped, &json!({ "f": value }), &patterns)
}

fn ok(schema: Value, value: Value) -> bool {
    errors(schema, value).is_empty()
}

#[test]
fn integers_accept_whole_floats_but_not_fractions() {
    assert!(ok(json!({"type": "integer"}), json!(3)));
    assert!(ok(json!({"type": "integer"}), json!(3.0)));
    assert!(!ok(json!({"type": "integer"}), json!(3.5)));
    assert!(ok(json!({"type": "number"}), json!(3)));
    assert!(!ok(json!({"type": "integer"}), json!("3")));
    let found = errors(json!({"type": "boolean"}), json!("yes"));
    assert_eq!(found[0].field, "f");
    assert!(found[0].blocking, "a type error stops the CEL rules");
    assert_eq!(
        found[0].message,
        "Invalid value: \"yes\": f in body must be of type boolean: \"string\""
    );
}

#[test]
fn null_is_a_type_error_unless_nullable_and_never_an_enum_member() {
    assert!(!ok(json!({"type": "string"}), Value::Null));
    assert!(ok(json!({"type": "string", "nullable": true}), Value::Null));
    // kube-openapi checks the enum of a null too, and null is never in it.
    let found = errors(
        json!({"type": "string", "nullable": true, "enum": ["A"]}),
        Value::Null,
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].message.starts_with("Unsupported value: null"),
        "{}",
        found[0].message
    );
}

#[test]
fn enums_report_the_supported_values() {
    let found = errors(
        json!({"type": "string", "enum": ["Basic", "OAuth2"]}),
        json!("basic"),
    );
    assert_eq!(
        found[0].message,
        "Unsupported value: \"basic\": supported values: \"Basic\", \"OAuth2\""
    );
    assert!(ok(json!({"type": "integer", "enum": [1.0, 2]}), json!(1)));
}

#[test]
fn string_lengths_count_characters_not_bytes() {
    let schema = json!({"type": "string", "maxLength": 3, "minLength": 2});
    assert!(ok(schema.clone(), json!("été")));
    let found = errors(schema.clone(), json!("étés"));
    assert_eq!(found[0].message, "Too long: may not be more than 3 bytes");
    assert!(found[0].blocking);
    let found = errors(schema, json!("é"));
    assert!(!found[0].blocking, "minLength does not stop the CEL rules");
}

#[test]
fn patterns_are_re2_with_ascii_classes() {
    let schema = json!({"type": "string", "pattern": "^\\d+$"});
    assert!(ok(schema.clone(), json!("123")));
    // `\d` is ASCII in Go: an Arabic-Indic digit does not match.
    assert!(!ok(schema.clone(), json!("١٢٣")));
    // `$` is the end of the text, not before a final newline.
    assert!(!ok(schema, json!("123\n")));
    let tenant = json!({"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9.-]*$"});
    assert!(ok(tenant.clone(), json!("contoso.onmicrosoft.com")));
    assert!(!ok(tenant, json!("-contoso")));
    assert_eq!(go_regex("[\\d\\w]x\\s"), "[0-90-9A-Za-z_]x(?-u:\\s)");
    assert_eq!(go_regex("[]a]\\."), "[]a]\\.");
}

#[test]
fn required_is_satisfied_by_a_null_and_lists_and_maps_are_bounded() {
    let schema = json!({"type": "object", "required": ["a"], "properties": {"a": {"type": "string", "nullable": true}}});
    assert!(ok(schema.clone(), json!({"a": null})));
    let found = errors(schema, json!({}));
    assert_eq!(
        (found[0].field.as_str(), found[0].message.as_str()),
        ("f.a", "Required value")
    );
    let found = errors(
        json!({"type": "array", "maxItems": 1, "items": {"type": "string"}}),
        json!(["a", "b"]),
    );
    assert_eq!(found[0].message, "Too many: 2: must have at most 1 item");
    let found = errors(
        json!({"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}}),
        json!({"a": "1", "b": 2}),
    );
    let messages: Vec<&str> = found.iter().map(|e| e.message.as_str()).collect();
    assert!(
        messages.contains(&"Too many: 2: must have at most 1 item"),
        "{messages:?}"
    );
    assert!(
        found.iter().any(|e| e.field == "f.b"),
        "map values are validated: {found:?}"
    );
}

#[test]
fn numbers_respect_bounds_and_int32() {
    let schema = json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 65535});
    assert!(ok(schema.clone(), json!(443)));
    assert!(!ok(schema.clone(), json!(0)));
    assert!(!ok(schema.clone(), json!(70000)));
    assert!(!ok(
        json!({"type": "integer", "format": "int32"}),
        json!(4_294_967_296_i64)
    ));
    assert!(ok(
        json!({"type": "integer", "format": "int64"}),
        json!(4_294_967_296_i64)
    ));
    assert!(!ok(
        json!({"type": "number", "multipleOf": 0.5}),
        json!(1.25)
    ));
    assert!(!ok(
        json!({"type": "number", "maximum": 1, "exclusiveMaximum": true}),
        json!(1)
    ));
}

#[test]
fn compositions_need_their_branches() {
    let any = json!({"type": "string", "anyOf": [{"pattern": "^a"}, {"pattern": "^b"}]});
    assert!(ok(any.clone(), json!("bz")) && !ok(any, json!("cz")));
    let one = json!({"type": "string", "oneOf": [{"pattern": "^a"}, {"pattern": "z$"}]});
    assert!(ok(one.clone(), json!("ab")) && !ok(one, json!("az")));
    let not = json!({"type": "string", "not": {"enum": ["x"]}});
    assert!(ok(not.clone(), json!("y")) && !ok(not, json!("x")));
    let all = json!({"type": "string", "allOf": [{"minLength": 1}, {"maxLength": 2}]});
    assert!(ok(all.clone(), json!("ab")) && !ok(all, json!("abc")));
}
