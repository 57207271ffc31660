//! The CRDs' CEL rules (`x-kubernetes-validations`) run the way the API server runs them
//! (apiextensions-apiserver `pkg/apiserver/schema/cel/validation.go` with the values of
//! `k8s.io/apiserver/pkg/cel/common`): on the defaulted object, never on a `null`, with a
//! `null` field of an object treated as absent (`has()` is false), numbers typed by the
//! schema, field names escaped, and the Kubernetes function library with `isURL`/`url`
//! as Go parses URLs.

use std::collections::HashMap;
use std::sync::Arc;

use kube_cel::cel::objects::{Key, Map};
use kube_cel::cel::{Context, Program, Value as Cel};
use kube_cel::{CompilationResult, KubeCelExt as _};
use serde_json::Value;

use super::field_error::FieldError;
use super::structural::{CompiledRule, Node};
use super::text::{join, quoted_value};

/// The CEL environment: the Kubernetes libraries, compiled once.
pub struct CelEnv {
    ctx: Context<'static>,
    /// `optional.none()`, bound to `oldSelf` for rules with `optionalOldSelf` on create.
    none: Cel,
}

impl Default for CelEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl CelEnv {
    /// kube-cel's Kubernetes libraries, with the URL functions replaced by Go's parser.
    pub fn new() -> Self {
        let mut ctx = Context::default();
        ctx.register_all();
        super::cel_url::register(&mut ctx);
        let none = Program::compile("optional.none()")
            .ok()
            .and_then(|p| p.execute(&ctx).ok())
            .unwrap_or(Cel::Null);
        CelEnv { ctx, none }
    }

    /// Every rule of the schema, on the object as it will be stored.
    pub fn validate(&self, root: &Node, object: &Value) -> Vec<FieldError> {
        let mut errors = Vec::new();
        self.walk(root, object, "", true, &mut errors);
        errors
    }

    fn walk(
        &self,
        node: &Node,
        value: &Value,
        path: &str,
        resource: bool,
        errors: &mut Vec<FieldError>,
    ) {
        // Only non-null values are validated; a rule about a null must sit on its parent.
        if value.is_null() {
            return;
        }
        if !node.rules.is_empty() {
            let this = to_cel(value, node, resource);
            for rule in &node.rules {
                errors.extend(self.evaluate(rule, &this, value, path));
            }
        }
        for branch in &node.all_of {
            self.walk(branch, value, path, false, errors);
        }
        match value {
            Value::Object(fields) => {
                for (key, child) in fields {
                    if let Some(schema) = node.properties.get(key) {
                        self.walk(schema, child, &join(path, key), schema.embedded, errors);
                    } else if let Some(Some(schema)) = &node.additional {
                        self.walk(
                            schema,
                            child,
                            &format!("{path}[{key}]"),
                            schema.embedded,
                            errors,
                        );
                    }
                }
            }
            Value::Array(items) => {
                if let Some(schema) = node.items.as_deref() {
                    for (i, item) in items.iter().enumerate() {
                        self.walk(
                            schema,
                            item,
                            &format!("{path}[{i}]"),
                            schema.embedded,
                            errors,
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn evaluate(
        &self,
        rule: &CompiledRule,
        this: &Cel,
        value: &Value,
        path: &str,
    ) -> Option<FieldError> {
        let here = if path.is_empty() { "(root)" } else { path };
        let compiled = match rule {
            Ok(compiled) => compiled,
            Err(e) => {
                return Some(FieldError::new(
                    here,
                    format!("Invalid value: rule compile error: {e}"),
                ));
            }
        };
        let optional_old_self = compiled.rule.optional_old_self == Some(true);
        if compiled.is_transition_rule && !optional_old_self {
            // A transition rule needs the old object; on create there is none.
            return None;
        }
        let mut scope = self.ctx.new_inner_scope();
        scope.add_variable_from_value("self", this.clone());
        if optional_old_self {
            scope.add_variable_from_value("oldSelf", self.none.clone());
        }
        let type_name = type_name(value);
        match compiled.program.execute(&scope) {
            Ok(Cel::Bool(true)) => None,
            Ok(Cel::Bool(false)) => {
                let detail = detail(compiled, &scope);
                let field = match compiled.rule.field_path.as_deref() {
                    Some(extra) if !extra.is_empty() => join(path, extra.trim_start_matches('.')),
                    _ => here.to_string(),
                };
                Some(failure(
                    &field,
                    compiled.rule.reason.as_deref(),
                    value,
                    &detail,
                ))
            }
            Ok(_) => Some(FieldError::new(
                here,
                format!(
                    "Invalid value: {type_name}: rule did not evaluate to a bool: {}",
                    compiled.rule.rule
                ),
            )),
            Err(e) => Some(FieldError::new(
                here,
                format!(
                    "Invalid value: {type_name}: {e} evaluating rule: {}",
                    compiled.rule.rule
                ),
            )),
        }
    }
}

/// Why a rule failed: its `messageExpression` when that yields one line of text, else its
/// `message`, else the rule itself.
fn detail(compiled: &CompilationResult, scope: &Context<'_>) -> String {
    compiled
        .message_program
        .as_ref()
        .and_then(|p| match p.execute(scope) {
            Ok(Cel::String(s)) if !s.trim().is_empty() && !s.contains('\n') => {
                Some(s.trim().to_string())
            }
            _ => None,
        })
        .or_else(|| compiled.rule.message.clone())
        .unwrap_or_else(|| format!("failed rule: {}", compiled.rule.rule))
}

/// `fieldErrorForReason`: the rule's `reason` picks the error type.
fn failure(field: &str, reason: Option<&str>, value: &Value, detail: &str) -> FieldError {
    let message = match reason {
        Some("FieldValueRequired") => format!("Required value: {detail}"),
        Some("FieldValueForbidden") => format!("Forbidden: {detail}"),
        Some("FieldValueDuplicate") => format!("Duplicate value: {}", quoted_value(value)),
        _ if value.is_object() || value.is_array() => format!("Invalid value: {detail}"),
        _ => format!("Invalid value: {}: {detail}", quoted_value(value)),
    };
    FieldError::new(field, message)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "\"object\"",
        Value::Array(_) => "\"array\"",
        Value::String(_) => "\"string\"",
        Value::Number(_) => "\"number\"",
        Value::Bool(_) => "\"boolean\"",
        Value::Null => "\"null\"",
    }
}

fn string(text: &str) -> Cel {
    Cel::String(Arc::new(text.to_string()))
}

fn map(entries: HashMap<Key, Cel>) -> Cel {
    Cel::Map(Map {
        map: Arc::new(entries),
    })
}

/// A JSON value as the API server hands it to CEL under `node`.
fn to_cel(value: &Value, node: &Node, resource: bool) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Number(n) if node.kind.as_deref() == Some("number") => {
            Cel::Float(n.as_f64().unwrap_or(f64::NAN))
        }
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cel::Int(i),
            (None, Some(u)) => Cel::UInt(u),
            _ => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Cel::Int(f as i64),
                f => Cel::Float(f.unwrap_or(f64::NAN)),
            },
        },
        Value::Bool(b) => Cel::Bool(*b),
        Value::String(s) if node.format.as_deref() == Some("byte") => {
            match super::secrets::go_base64(s) {
                Some(bytes) => Cel::Bytes(Arc::new(bytes)),
                None => string(s),
            }
        }
        Value::String(s) => string(s),
        Value::Array(items) => {
            let converted = items
                .iter()
                .map(|item| match node.items.as_deref() {
                    Some(schema) => to_cel(item, schema, schema.embedded),
                    None => generic(item),
                })
                .collect();
            Cel::List(Arc::new(converted))
        }
        Value::Object(fields) => object(fields, node, resource),
    }
}

fn object(fields: &serde_json::Map<String, Value>, node: &Node, resource: bool) -> Cel {
    let resource = resource || node.embedded;
    if !node.properties.is_empty() || resource {
        let mut entries = HashMap::new();
        for (key, child) in fields {
            // A null field of an object is the same as an absent one.
            if child.is_null() {
                continue;
            }
            let converted = match node.properties.get(key) {
                Some(schema) => to_cel(child, schema, schema.embedded),
                None if resource && (key == "apiVersion" || key == "kind") => generic(child),
                None if resource && key == "metadata" => names_only(child),
                None => continue,
            };
            if let Some(escaped) = escape(key) {
                entries.insert(Key::String(Arc::new(escaped)), converted);
            }
        }
        return map(entries);
    }
    match &node.additional {
        Some(Some(schema)) => map(fields
            .iter()
            .map(|(k, v)| {
                (
                    Key::String(Arc::new(k.clone())),
                    to_cel(v, schema, schema.embedded),
                )
            })
            .collect()),
        Some(None) => generic(&Value::Object(fields.clone())),
        None if node.preserve_unknown => generic(&Value::Object(fields.clone())),
        None => map(HashMap::new()),
    }
}

/// CEL sees only `metadata.name` and `metadata.generateName` of a resource.
fn names_only(metadata: &Value) -> Cel {
    let entries = ["name", "generateName"]
        .iter()
        .filter_map(|k| {
            metadata
                .get(*k)
                .and_then(Value::as_str)
                .map(|v| (Key::String(Arc::new((*k).into())), string(v)))
        })
        .collect();
    map(entries)
}

/// A value without a schema below it (`x-kubernetes-preserve-unknown-fields`).
fn generic(value: &Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| Cel::Float(n.as_f64().unwrap_or(f64::NAN)), Cel::Int),
        Value::String(s) => string(s),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(generic).collect())),
        Value::Object(fields) => map(fields
            .iter()
            .map(|(k, v)| (Key::String(Arc::new(k.clone())), generic(v)))
            .collect()),
    }
}

/// CEL reserved words: a property of this name is reached as `__name__`.
const RESERVED: [&str; 21] = [
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// `cel.Escape`: how a property name is spelled in a rule (`x-y` is `x__dash__y`); `None`
/// for names no rule can reach.
fn escape(name: &str) -> Option<String> {
    if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '_' if chars.peek() == Some(&'_') => {
                chars.next();
                out.push_str("__underscores__");
            }
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
#[path = "cel_tests.rs"]
mod tests;
