//! The two core kinds `check` reads, admitted as the API server admits them at create:
//! a Secret (strict decoding into `v1.Secret` with Go's base64 for `data`, then
//! `ValidateSecret`: metadata, keys, the 1 MiB total and the rules of its `type`) and a
//! Namespace (`v1.Namespace`, then `ValidateNamespace`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::field_error::FieldError;
use super::metadata::{self, NameRule, qualified_name_problems};
use super::objectmeta::{self, ObjectMeta};
use super::secrets::go_base64;
use super::text::{join, quoted};

/// Most bytes all values of one Secret may hold.
const SECRET_MAX_BYTES: usize = 1024 * 1024;

/// An admitted Secret: its metadata and its decoded values (`stringData` merged over
/// `data`). The caller keeps only what it needs of the values.
pub struct Secret {
    /// The decoded metadata.
    pub meta: ObjectMeta,
    /// Every key with its bytes.
    pub values: BTreeMap<String, Vec<u8>>,
}

/// Admit a `v1` Secret, or return the API server's errors.
pub fn admit_secret(object: &Value) -> Result<Secret, Vec<FieldError>> {
    let fields = object.as_object().cloned().unwrap_or_default();
    let known = [
        "apiVersion",
        "kind",
        "metadata",
        "data",
        "stringData",
        "type",
        "immutable",
    ];
    let mut decoded = objectmeta::decode(fields.get("metadata")).map_err(decode_error)?;
    decoded.unknown.extend(unknown_fields(&fields, &known, ""));
    let values = secret_values(&fields)?;
    let kind = match fields.get("type") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(kind)) => kind.clone(),
        Some(_) => return Err(decode_error(type_error("type", "v1.SecretType"))),
    };
    if fields
        .get("immutable")
        .is_some_and(|v| !v.is_null() && !v.is_boolean())
    {
        return Err(decode_error(type_error("immutable", "bool")));
    }
    strict(&decoded.unknown)?;
    let mut meta = decoded.meta;
    settle_namespace(&mut meta, true);
    let mut errors = metadata::validate(&meta, true, NameRule::Subdomain);
    errors.extend(secret_data_problems(&values, &kind, &meta));
    if errors.is_empty() {
        Ok(Secret { meta, values })
    } else {
        Err(errors)
    }
}

/// `data` decoded from base64, with `stringData` merged over it, as the conversion from
/// `v1` does.
fn secret_values(
    fields: &Map<String, Value>,
) -> Result<BTreeMap<String, Vec<u8>>, Vec<FieldError>> {
    let mut values = BTreeMap::new();
    if let Some(data) = fields.get("data").filter(|v| !v.is_null()) {
        let entries = data
            .as_object()
            .ok_or_else(|| decode_error(type_error("data", "map[string][]uint8")))?;
        for (key, value) in entries {
            let bytes = match value {
                Value::Null => Vec::new(),
                // The decoder's message could quote the value: it is not shown.
                Value::String(text) => go_base64(text).ok_or_else(|| {
                    vec![FieldError::new(
                        &format!("data[{key}]"),
                        "illegal base64 data (use stringData for plain text)".into(),
                    )]
                })?,
                _ => return Err(decode_error(type_error(&format!("data[{key}]"), "[]uint8"))),
            };
            values.insert(key.clone(), bytes);
        }
    }
    if let Some(data) = fields.get("stringData").filter(|v| !v.is_null()) {
        let entries = data
            .as_object()
            .ok_or_else(|| decode_error(type_error("stringData", "map[string]string")))?;
        for (key, value) in entries {
            match value {
                Value::String(text) => values.insert(key.clone(), text.as_bytes().to_vec()),
                Value::Null => values.insert(key.clone(), Vec::new()),
                _ => {
                    return Err(decode_error(type_error(
                        &format!("stringData[{key}]"),
                        "string",
                    )));
                }
            };
        }
    }
    Ok(values)
}

/// `ValidateSecret` beyond metadata.
fn secret_data_problems(
    values: &BTreeMap<String, Vec<u8>>,
    kind: &str,
    meta: &ObjectMeta,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for key in values.keys() {
        for msg in config_key_problems(key) {
            errors.push(FieldError::new(
                &format!("data[{key}]"),
                format!("Invalid value: {}: {msg}", quoted(key)),
            ));
        }
    }
    if values.values().map(Vec::len).sum::<usize>() > SECRET_MAX_BYTES {
        errors.push(FieldError::blocking(
            "data",
            format!("Too long: may not be more than {SECRET_MAX_BYTES} bytes"),
        ));
    }
    errors.extend(type_problems(values, kind, meta));
    errors
}

/// The keys a Secret of a built-in `type` must hold.
fn type_problems(
    values: &BTreeMap<String, Vec<u8>>,
    kind: &str,
    meta: &ObjectMeta,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let required =
        |key: &str| FieldError::blocking(&format!("data[{key}]"), "Required value".into());
    let has = |key: &str| values.contains_key(key);
    match kind {
        "kubernetes.io/service-account-token"
            if meta
                .annotations
                .get("kubernetes.io/service-account.name")
                .is_none_or(String::is_empty) =>
        {
            errors.push(FieldError::blocking(
                "metadata.annotations[kubernetes.io/service-account.name]",
                "Required value".into(),
            ));
        }
        "kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson" => {
            let key = if kind.ends_with("json") {
                ".dockerconfigjson"
            } else {
                ".dockercfg"
            };
            match values.get(key) {
                None => errors.push(required(key)),
                Some(bytes) if serde_json::from_slice::<Map<String, Value>>(bytes).is_err() => {
                    errors.push(FieldError::new(
                        &format!("data[{key}]"),
                        "Invalid value: \"<secret contents redacted>\": not a JSON object".into(),
                    ))
                }
                Some(_) => {}
            }
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errors.push(required("username"));
            errors.push(required("password"));
        }
        "kubernetes.io/ssh-auth" if values.get("ssh-privatekey").is_none_or(Vec::is_empty) => {
            errors.push(required("ssh-privatekey"));
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    errors.push(required(key));
                }
            }
        }
        _ => {}
    }
    errors
}

/// `IsConfigMapKey`: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.`, `..` or `..x`.
fn config_key_problems(key: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if key.len() > 253 {
        problems.push("must be no more than 253 characters".into());
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        problems.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name')".into());
    }
    if key == "." {
        problems.push("must not be '.'".into());
    } else if key == ".." {
        problems.push("must not be '..'".into());
    } else if key.starts_with("..") {
        problems.push("must not start with '..'".into());
    }
    problems
}

/// Admit a `v1` Namespace, returning its labels, or the API server's errors.
pub fn admit_namespace(object: &Value) -> Result<ObjectMeta, Vec<FieldError>> {
    let fields = object.as_object().cloned().unwrap_or_default();
    let mut decoded = objectmeta::decode(fields.get("metadata")).map_err(decode_error)?;
    decoded.unknown.extend(unknown_fields(
        &fields,
        &["apiVersion", "kind", "metadata", "spec", "status"],
        "",
    ));
    let finalizers = namespace_spec(fields.get("spec"), &mut decoded.unknown)?;
    namespace_status(fields.get("status"), &mut decoded.unknown)?;
    strict(&decoded.unknown)?;
    let mut meta = decoded.meta;
    settle_namespace(&mut meta, false);
    let mut errors = metadata::validate(&meta, false, NameRule::Label);
    for finalizer in &finalizers {
        let mut problems = qualified_name_problems(finalizer);
        if !finalizer.contains('/') && finalizer != "kubernetes" {
            problems
                .push("name is neither a standard finalizer name nor is it fully qualified".into());
        }
        for msg in problems {
            errors.push(FieldError::new(
                "spec.finalizers",
                format!("Invalid value: {}: {msg}", quoted(finalizer)),
            ));
        }
    }
    if errors.is_empty() {
        Ok(meta)
    } else {
        Err(errors)
    }
}

fn namespace_spec(
    spec: Option<&Value>,
    unknown: &mut Vec<String>,
) -> Result<Vec<String>, Vec<FieldError>> {
    let Some(spec) = spec.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let fields = spec
        .as_object()
        .ok_or_else(|| decode_error(type_error("spec", "v1.NamespaceSpec")))?;
    unknown.extend(unknown_fields(fields, &["finalizers"], "spec"));
    match fields.get("finalizers") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                Value::Null => Ok(String::new()),
                _ => Err(decode_error(type_error(
                    "spec.finalizers",
                    "v1.FinalizerName",
                ))),
            })
            .collect(),
        Some(_) => Err(decode_error(type_error(
            "spec.finalizers",
            "[]v1.FinalizerName",
        ))),
    }
}

/// A Namespace's status is replaced at create, but it is still decoded first.
fn namespace_status(
    status: Option<&Value>,
    unknown: &mut Vec<String>,
) -> Result<(), Vec<FieldError>> {
    let Some(status) = status.filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let fields = status
        .as_object()
        .ok_or_else(|| decode_error(type_error("status", "v1.NamespaceStatus")))?;
    unknown.extend(unknown_fields(fields, &["phase", "conditions"], "status"));
    if let Some(Value::Array(conditions)) = fields.get("conditions") {
        let known = ["type", "status", "lastTransitionTime", "reason", "message"];
        for (i, condition) in conditions.iter().enumerate() {
            if let Some(condition) = condition.as_object() {
                unknown.extend(unknown_fields(
                    condition,
                    &known,
                    &format!("status.conditions[{i}]"),
                ));
            }
        }
    }
    Ok(())
}

/// A namespaced object without a namespace lands in kubectl's (`default`); a cluster-scoped
/// one loses the namespace it names.
pub fn settle_namespace(meta: &mut ObjectMeta, namespaced: bool) {
    if !namespaced {
        meta.namespace.clear();
    } else if meta.namespace.is_empty() {
        meta.namespace = "default".into();
    }
}

fn unknown_fields(fields: &Map<String, Value>, known: &[&str], parent: &str) -> Vec<String> {
    fields
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| join(parent, k))
        .collect()
}

/// Strict field validation: any unknown field fails the request, listing all of them.
pub fn strict(unknown: &[String]) -> Result<(), Vec<FieldError>> {
    if unknown.is_empty() {
        return Ok(());
    }
    Err(unknown.iter().map(|path| unknown_field(path)).collect())
}

/// `strict decoding error: unknown field "spec.foo"`, reported on the parent of the field.
pub fn unknown_field(path: &str) -> FieldError {
    let parent = match path.rfind(['.', '[']) {
        Some(i) => &path[..i],
        None => "(root)",
    };
    FieldError::blocking(
        parent,
        format!("strict decoding error: unknown field {}", quoted(path)),
    )
}

fn type_error(path: &str, go_type: &str) -> String {
    format!("json: cannot unmarshal into Go struct field {path} of type {go_type}")
}

/// A decoding error fails the whole request; it is reported on the field it names.
pub fn decode_error(message: String) -> Vec<FieldError> {
    let field = message
        .split("Go struct field ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or("(root)")
        .to_string();
    vec![FieldError::blocking(&field, message)]
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
