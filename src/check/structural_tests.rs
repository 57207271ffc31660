//! Pruning, null dropping and defaulting, against small schemas shaped like the CRDs'.

use super::*;
use serde_json::json;

fn node(schema: Value) -> Node {
    Node::build(&schema, kube_cel::compile_schema(&schema))
}

fn root() -> Node {
    node(json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "plain": {"type": "string"},
                    "open": {"type": "string", "nullable": true},
                    "cloud": {"type": "string", "default": "Global"},
                    "ref": {
                        "type": "object", "nullable": true,
                        "properties": {"key": {"type": "string", "default": "client-secret"}, "name": {"type": "string"}}
                    },
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                    "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"known": {"type": "object", "properties": {}}}}
                }
            },
            "status": {"type": "object", "properties": {"count": {"type": "integer", "default": 0}}}
        }
    }))
}

#[test]
fn pruning_reports_unknown_fields_at_any_depth_but_not_the_envelope() {
    let mut object = json!({
        "apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a", "bogus": 1},
        "spec": {"plain": "p", "extra": 1, "list": [{"a": "x", "b": 2}], "labels": {"any-key": "v"},
                 "raw": {"free": {"deep": 1}, "known": {"gone": 1}}},
        "status": {"unknownField": true},
        "top": 1
    });
    let unknown = prune(&mut object, &root());
    assert_eq!(
        unknown,
        [
            "spec.extra",
            "spec.list[0].b",
            "spec.raw.known.gone",
            "status.unknownField",
            "top"
        ]
    );
    assert_eq!(object["spec"]["list"], json!([{"a": "x"}]));
    // The envelope is the API server's: metadata is decoded on its own, not pruned here.
    assert_eq!(object["metadata"]["bogus"], 1);
    // Below x-kubernetes-preserve-unknown-fields only declared fields are pruned.
    assert_eq!(object["spec"]["raw"]["free"], json!({"deep": 1}));
}

#[test]
fn a_scalar_field_holding_a_map_loses_every_key() {
    let mut object = json!({"spec": {"plain": {"a": 1}}});
    assert_eq!(prune(&mut object, &root()), ["spec.plain.a"]);
    assert_eq!(object["spec"]["plain"], json!({}));
}

#[test]
fn nulls_go_unless_nullable_or_defaulted() {
    let schema = root();
    let mut object = json!({"spec": {"plain": null, "open": null, "cloud": null, "ref": null,
                                     "labels": {"k": null}, "list": [null]}});
    drop_nulls(&mut object, Some(&schema));
    // `plain` and the map value are gone, `open` and `ref` may be null, `cloud` waits
    // for its default, and list items stay (validation refuses them).
    assert_eq!(
        object["spec"],
        json!({"open": null, "cloud": null, "ref": null, "labels": {}, "list": [null]})
    );
}

#[test]
fn defaults_fill_absent_and_non_nullable_null_fields_from_the_top_down() {
    let schema = root();
    let mut object = json!({"spec": {"cloud": null, "ref": {"name": "s"}}, "status": {}});
    apply_defaults(&mut object, &schema);
    assert_eq!(object["spec"]["cloud"], "Global");
    assert_eq!(object["spec"]["ref"]["key"], "client-secret");
    assert_eq!(object["status"]["count"], 0);
    // A nullable null is kept as it is: no default for it, nor inside it.
    let mut object = json!({"spec": {"ref": null}});
    apply_defaults(&mut object, &schema);
    assert_eq!(object["spec"]["ref"], Value::Null);
}

fn rules_below(node: &Node) -> usize {
    node.rules.len()
        + node.properties.values().map(rules_below).sum::<usize>()
        + node.items.as_deref().map_or(0, rules_below)
}

#[test]
fn the_crd_schemas_build_with_their_rules_in_place() {
    let mut rules = 0;
    for crd in crate::api::crds() {
        let raw = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap(),
        )
        .unwrap();
        let tree = node(raw);
        assert!(
            tree.properties.contains_key("spec"),
            "{}",
            crd.spec.names.kind
        );
        rules += rules_below(&tree);
    }
    assert!(rules >= 5, "only {rules} rules found in the CRDs");
}
