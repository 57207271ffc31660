//! The committed CRDs are exactly what the Rust types generate, and every CEL rule in them
//! compiles and fits the API server's cost budget.

use kube_cel::{ScopeContext, WarningKind, analyze_rule, compile_schema};
use serde_json::Value;

const COMMITTED: &str = "crds/mailops.dev.yaml";

#[test]
fn committed_crds_match_the_rust_types() {
    let generated = mailops::api::crds_yaml().unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED);
    if std::env::var_os("MAILOPS_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{COMMITTED} is out of date with src/api; regenerate it with `cargo run -- crd > {COMMITTED}` (or MAILOPS_BLESS=1 cargo test --test crds)"
    );
}

fn schemas() -> Vec<(String, Value)> {
    mailops::api::crds()
        .into_iter()
        .map(|crd| {
            let schema = crd.spec.versions[0]
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap();
            (
                crd.spec.names.kind.clone(),
                serde_json::to_value(schema).unwrap(),
            )
        })
        .collect()
}

/// Every `x-kubernetes-validations` rule with the schema node it sits on.
fn rules(node: &Value, out: &mut Vec<(String, Value)>) {
    if let Some(list) = node
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in list {
            out.push((rule["rule"].as_str().unwrap().to_string(), node.clone()));
        }
    }
    for key in ["properties", "additionalProperties", "items"] {
        match node.get(key) {
            Some(Value::Object(map)) if key == "properties" => {
                map.values().for_each(|v| rules(v, out))
            }
            Some(v @ Value::Object(_)) => rules(v, out),
            _ => {}
        }
    }
}

#[test]
fn every_cel_rule_compiles_and_fits_the_cost_budget() {
    let mut total = 0;
    for (kind, schema) in schemas() {
        let compiled = compile_schema(&schema);
        assert!(
            !compiled.has_errors(),
            "{kind}: {:?}",
            compiled.compilation_errors()
        );
        let mut found = Vec::new();
        rules(&schema, &mut found);
        for (rule, node) in &found {
            let node_compiled = compile_schema(node);
            let warnings = analyze_rule(rule, &node_compiled, ScopeContext::CrdValidation);
            let serious: Vec<_> = warnings
                .iter()
                .filter(|w| {
                    matches!(
                        w.kind,
                        WarningKind::CostExceeded
                            | WarningKind::WrongScope
                            | WarningKind::MissingBounds
                    )
                })
                .collect();
            assert!(serious.is_empty(), "{kind}: rule {rule:?}: {serious:?}");
        }
        total += found.len();
    }
    assert!(
        total >= 9,
        "expected the documented CEL rules, found {total}"
    );
}

#[test]
fn every_field_has_a_description() {
    fn walk(path: &str, node: &Value, missing: &mut Vec<String>) {
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (name, child) in props {
                let p = format!("{path}.{name}");
                let skip = path.ends_with(".metadata")
                    || path.contains(".conditions")
                    || p == ".apiVersion"
                    || p == ".kind"
                    || p == ".metadata";
                if !skip
                    && child
                        .get("description")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                {
                    missing.push(p.clone());
                }
                walk(&p, child, missing);
            }
        }
        if let Some(items) = node.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    for (kind, schema) in schemas() {
        let mut missing = Vec::new();
        walk("", &schema, &mut missing);
        assert!(
            missing.is_empty(),
            "{kind}: fields without description (kubectl explain shows nothing): {missing:?}"
        );
    }
}
