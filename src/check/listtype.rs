//! `x-kubernetes-list-type: set` and `map` invariants, as apiextensions-apiserver
//! `pkg/apiserver/schema/listtype` checks them: no duplicate item of a set, no two items
//! of a map list with the same keys.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::field_error::FieldError;
use super::structural::Node;
use super::text::quoted_value;

/// Every duplicate in the object's set and map lists.
pub fn validate(root: &Node, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Value::Object(fields) = object {
        object_lists(root, fields, "", &mut errors);
    }
    errors
}

fn object_lists(
    node: &Node,
    fields: &Map<String, Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    for (key, value) in fields {
        if let Some(Some(schema)) = &node.additional {
            value_lists(schema, value, &format!("{path}[{key}]"), errors);
        }
        if let Some(schema) = node.properties.get(key) {
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            value_lists(schema, value, &child, errors);
        }
    }
}

fn value_lists(node: &Node, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    match value {
        Value::Object(fields) => object_lists(node, fields, path, errors),
        Value::Array(items) => {
            match node.list_type.as_deref() {
                Some("set") => {
                    for i in second_occurrences(items.iter().map(identity)) {
                        errors.push(duplicate(path, i, quoted_value(&items[i])));
                    }
                }
                Some("map") => map_list(node, items, path, errors),
                _ => {}
            }
            if let Some(schema) = node.items.as_deref() {
                for (i, item) in items.iter().enumerate() {
                    value_lists(schema, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}

fn map_list(node: &Node, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    if let Some(i) = items.iter().position(|x| !x.is_null() && !x.is_object()) {
        errors.push(FieldError::new(
            &format!("{path}[{i}]"),
            "Invalid value: must be an object for an array of list-type map".into(),
        ));
        return;
    }
    // An item's key: the values of its map keys (an absent key is a key too).
    let keys: Vec<String> = items
        .iter()
        .map(|item| {
            let values: Vec<String> = node
                .map_keys
                .iter()
                .map(|k| item.get(k).map_or_else(|| "<unspecified>".into(), identity))
                .collect();
            values.join("\u{0}")
        })
        .collect();
    for i in second_occurrences(keys.into_iter()) {
        errors.push(duplicate(path, i, "map list item".into()));
    }
}

/// The indices at which a value is seen for the second time (not the third), as
/// `validateListSet` reports them.
fn second_occurrences(values: impl Iterator<Item = String>) -> Vec<usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut indices = Vec::new();
    for (i, value) in values.enumerate() {
        let times = seen.entry(value).or_insert(0);
        *times += 1;
        if *times == 2 {
            indices.push(i);
        }
    }
    indices
}

/// A comparable form of a value, by its serialization (type included, so `1` and `"1"`
/// differ); the linear scan keeps a list far over its `maxItems` cheap.
fn identity(value: &Value) -> String {
    value.to_string()
}

fn duplicate(path: &str, index: usize, value: String) -> FieldError {
    FieldError::new(
        &format!("{path}[{index}]"),
        format!("Duplicate value: {value}"),
    )
}
