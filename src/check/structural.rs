//! A CRD's structural schema as the API server walks it while decoding a custom resource:
//! pruning of unknown fields (reported under strict field validation), dropping of `null`
//! for fields that are neither nullable nor defaulted, then defaulting. Ported from
//! apiextensions-apiserver `pkg/apiserver/schema/{pruning,defaulting}`.

use std::collections::{BTreeMap, HashMap};

use kube_cel::{CompilationError, CompilationResult, CompiledSchema};
use serde_json::{Map, Value};

/// One compiled `x-kubernetes-validations` rule.
pub type CompiledRule = Result<CompilationResult, CompilationError>;

/// One position of the schema.
#[derive(Default)]
pub struct Node {
    /// `type`, when set.
    pub kind: Option<String>,
    /// `nullable: true`.
    pub nullable: bool,
    /// `default`.
    pub default: Option<Value>,
    /// `properties`.
    pub properties: BTreeMap<String, Node>,
    /// `additionalProperties`: `Some(None)` is `true` without a schema.
    pub additional: Option<Option<Box<Node>>>,
    /// `items`.
    pub items: Option<Box<Node>>,
    /// `x-kubernetes-preserve-unknown-fields: true`.
    pub preserve_unknown: bool,
    /// `x-kubernetes-embedded-resource: true`.
    pub embedded: bool,
    /// `x-kubernetes-list-type`.
    pub list_type: Option<String>,
    /// `x-kubernetes-list-map-keys`.
    pub map_keys: Vec<String>,
    /// `format`.
    pub format: Option<String>,
    /// The CEL rules of this node.
    pub rules: Vec<CompiledRule>,
    /// `allOf` branches, for the CEL rules they may hold.
    pub all_of: Vec<Node>,
}

impl Node {
    /// Build from the CRD's JSON schema and its compiled CEL rules (one tree, same shape).
    pub fn build(raw: &Value, compiled: CompiledSchema) -> Node {
        let mut compiled = compiled;
        let text = |key: &str| raw.get(key).and_then(Value::as_str).map(str::to_string);
        let flag = |key: &str| raw.get(key).and_then(Value::as_bool) == Some(true);
        let properties = build_properties(raw, std::mem::take(&mut compiled.properties));
        let additional = match (
            raw.get("additionalProperties"),
            compiled.additional_properties,
        ) {
            (Some(schema @ Value::Object(_)), Some(child)) => {
                Some(Some(Box::new(Node::build(schema, *child))))
            }
            (Some(Value::Bool(true)), _) => Some(None),
            _ => None,
        };
        let items = match (raw.get("items"), compiled.items) {
            (Some(schema), Some(child)) => Some(Box::new(Node::build(schema, *child))),
            _ => None,
        };
        let all_of = raw
            .get("allOf")
            .and_then(Value::as_array)
            .map(|branches| {
                branches
                    .iter()
                    .zip(compiled.all_of)
                    .map(|(schema, child)| Node::build(schema, child))
                    .collect()
            })
            .unwrap_or_default();
        Node {
            kind: text("type"),
            nullable: flag("nullable"),
            default: raw.get("default").cloned(),
            properties,
            additional,
            items,
            preserve_unknown: flag("x-kubernetes-preserve-unknown-fields"),
            embedded: flag("x-kubernetes-embedded-resource"),
            list_type: text("x-kubernetes-list-type"),
            map_keys: raw
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|keys| {
                    keys.iter()
                        .filter_map(|k| k.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            format: text("format"),
            rules: compiled.validations,
            all_of,
        }
    }

    /// The schema of the field `key` of an object here: a property, else the
    /// `additionalProperties` schema.
    pub fn field(&self, key: &str) -> Option<&Node> {
        match &self.additional {
            Some(Some(schema)) => self.properties.get(key).or(Some(schema)),
            _ => self.properties.get(key),
        }
    }
}

/// The `properties` of `raw`, each with its compiled rules.
fn build_properties(
    raw: &Value,
    mut compiled: HashMap<String, CompiledSchema>,
) -> BTreeMap<String, Node> {
    raw.get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .filter_map(|(name, schema)| {
                    let child = compiled.remove(name)?;
                    Some((name.clone(), Node::build(schema, child)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `apiVersion`, `kind` and `metadata` are never pruned at the root or in an embedded
/// resource: the API server handles them itself.
const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Remove the fields the schema does not know, returning their paths (sorted, as
/// `spec.foo` / `spec.list[0].bar`), which strict field validation turns into errors.
pub fn prune(object: &mut Value, root: &Node) -> Vec<String> {
    let mut unknown = Vec::new();
    prune_node(object, Some(root), true, "", &mut unknown);
    unknown.sort();
    unknown
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn prune_node(
    value: &mut Value,
    node: Option<&Node>,
    resource: bool,
    path: &str,
    unknown: &mut Vec<String>,
) {
    if let Some(node) = node
        && node.preserve_unknown
    {
        return skip_prune(value, node, path, unknown);
    }
    match value {
        Value::Object(fields) => prune_object(fields, node, resource, path, unknown),
        Value::Array(items) => {
            let item_schema = node.and_then(|n| n.items.as_deref());
            for (i, item) in items.iter_mut().enumerate() {
                let embedded = item_schema.is_some_and(|s| s.embedded);
                prune_node(
                    item,
                    item_schema,
                    embedded,
                    &format!("{path}[{i}]"),
                    unknown,
                );
            }
        }
        _ => {}
    }
}

fn prune_object(
    fields: &mut Map<String, Value>,
    node: Option<&Node>,
    resource: bool,
    path: &str,
    unknown: &mut Vec<String>,
) {
    let Some(node) = node else {
        // No schema at all (an item list without `items`): everything here is unknown.
        unknown.extend(fields.keys().map(|k| child_path(path, k)));
        fields.clear();
        return;
    };
    let resource = resource || node.embedded;
    let mut drop = Vec::new();
    for (key, child) in fields.iter_mut() {
        if resource && META_FIELDS.contains(&key.as_str()) {
            continue;
        }
        let child_path = child_path(path, key);
        if let Some(schema) = node.properties.get(key) {
            prune_node(child, Some(schema), schema.embedded, &child_path, unknown);
        } else if let Some(additional) = &node.additional {
            let schema = additional.as_deref();
            prune_node(
                child,
                schema,
                schema.is_some_and(|s| s.embedded),
                &child_path,
                unknown,
            );
        } else {
            // Meta fields below the root are pruned silently when not in the schema.
            if !META_FIELDS.contains(&key.as_str()) || !path.is_empty() {
                unknown.push(child_path);
            }
            drop.push(key.clone());
        }
    }
    for key in drop {
        fields.remove(&key);
    }
}

/// Below `x-kubernetes-preserve-unknown-fields` only the declared fields are pruned.
fn skip_prune(value: &mut Value, node: &Node, path: &str, unknown: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (key, child) in fields.iter_mut() {
                if node.embedded && META_FIELDS.contains(&key.as_str()) {
                    continue;
                }
                let child_path = child_path(path, key);
                if let Some(schema) = node.properties.get(key) {
                    prune_node(child, Some(schema), schema.embedded, &child_path, unknown);
                } else if let Some(additional) = &node.additional {
                    let schema = additional.as_deref();
                    prune_node(child, schema, false, &child_path, unknown);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node.items.as_deref() {
                for (i, item) in items.iter_mut().enumerate() {
                    skip_prune(item, item_schema, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Drop `null` object fields whose schema is neither nullable nor defaulted: for the API
/// server, `field: null` then means the field is absent (a default still applies to it
/// later, CEL never sees it). Nulls in lists stay, and fail validation.
pub fn drop_nulls(value: &mut Value, node: Option<&Node>) {
    match value {
        Value::Object(fields) => {
            fields.retain(|key, child| {
                let schema = node.and_then(|n| n.field(key));
                !(child.is_null() && schema.is_some_and(|s| !s.nullable && s.default.is_none()))
            });
            for (key, child) in fields.iter_mut() {
                drop_nulls(child, node.and_then(|n| n.field(key)));
            }
        }
        Value::Array(items) => {
            let item_schema = node.and_then(|n| n.items.as_deref());
            for item in items {
                drop_nulls(item, item_schema);
            }
        }
        _ => {}
    }
}

fn is_non_nullable_null(value: &Value, schema: &Node) -> bool {
    value.is_null() && !schema.nullable
}

/// Apply `default`s: an absent field, or a `null` one that may not be null, takes its
/// schema's default; defaults are applied from the top down, so a defaulted object gets
/// the defaults of its own fields too.
pub fn apply_defaults(value: &mut Value, node: &Node) {
    match value {
        Value::Object(fields) => {
            for (key, schema) in &node.properties {
                let Some(default) = &schema.default else {
                    continue;
                };
                if fields
                    .get(key)
                    .is_none_or(|v| is_non_nullable_null(v, schema))
                {
                    fields.insert(key.clone(), default.clone());
                }
            }
            for (key, child) in fields.iter_mut() {
                if let Some(schema) = node.properties.get(key) {
                    apply_defaults(child, schema);
                } else if let Some(Some(schema)) = &node.additional {
                    if is_non_nullable_null(child, schema) {
                        *child = schema.default.clone().unwrap_or(Value::Null);
                    }
                    apply_defaults(child, schema);
                }
            }
        }
        Value::Array(items) => {
            let Some(schema) = node.items.as_deref() else {
                return;
            };
            for item in items {
                if is_non_nullable_null(item, schema) {
                    *item = schema.default.clone().unwrap_or(Value::Null);
                }
                apply_defaults(item, schema);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[path = "structural_tests.rs"]
mod tests;
