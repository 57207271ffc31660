//! Decoding `metadata` into Kubernetes' typed `ObjectMeta`, as the API server does for any
//! object before it validates it: under strict field validation an unknown field (also in
//! an owner reference) is an error, and a value of the wrong JSON type fails the decoding
//! outright (`labels: {tier: 1}` never reaches validation).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::text::{join, quoted};

/// The fields of `ObjectMeta` that validation reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    /// `name`.
    pub name: String,
    /// `generateName`.
    pub generate_name: String,
    /// `namespace`.
    pub namespace: String,
    /// `labels`.
    pub labels: BTreeMap<String, String>,
    /// `annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `finalizers`.
    pub finalizers: Vec<String>,
    /// `ownerReferences`.
    pub owner_references: Vec<OwnerReference>,
}

/// One `ownerReferences` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerReference {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `name`.
    pub name: String,
    /// `uid`.
    pub uid: String,
    /// `controller`.
    pub controller: bool,
}

/// A decoded `metadata`, with the paths of the fields `ObjectMeta` does not have.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The typed metadata.
    pub meta: ObjectMeta,
    /// Unknown fields, as `metadata.foo`.
    pub unknown: Vec<String>,
}

/// The JSON types of `ObjectMeta`'s fields.
#[derive(Clone, Copy)]
enum Shape {
    Text,
    Integer,
    Time,
    StringMap,
    StringList,
    OwnerReferences,
    ManagedFields,
}

fn shape_of(field: &str) -> Option<Shape> {
    Some(match field {
        "name" | "generateName" | "namespace" | "selfLink" | "uid" | "resourceVersion" => {
            Shape::Text
        }
        "generation" | "deletionGracePeriodSeconds" => Shape::Integer,
        "creationTimestamp" | "deletionTimestamp" => Shape::Time,
        "labels" | "annotations" => Shape::StringMap,
        "finalizers" => Shape::StringList,
        "ownerReferences" => Shape::OwnerReferences,
        "managedFields" => Shape::ManagedFields,
        _ => return None,
    })
}

/// Decode `metadata` (absent or `null` is an empty one). `Err` is the decoding error the
/// API server answers with.
pub fn decode(metadata: Option<&Value>) -> Result<Decoded, String> {
    let mut decoded = Decoded::default();
    let fields = match metadata {
        None | Some(Value::Null) => return Ok(decoded),
        Some(Value::Object(fields)) => fields,
        Some(other) => return Err(type_error("metadata", other, "v1.ObjectMeta")),
    };
    for (key, value) in fields {
        let path = join("metadata", key);
        let Some(shape) = shape_of(key) else {
            decoded.unknown.push(path);
            continue;
        };
        check_shape(shape, value, &path, &mut decoded.unknown)?;
        store(&mut decoded.meta, key, value);
    }
    Ok(decoded)
}

fn check_shape(
    shape: Shape,
    value: &Value,
    path: &str,
    unknown: &mut Vec<String>,
) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    match shape {
        Shape::Text => expect_string(value, path),
        Shape::Integer => match value {
            Value::Number(n) if n.is_i64() => Ok(()),
            other => Err(type_error(path, other, "int64")),
        },
        Shape::Time => {
            expect_string(value, path)?;
            let text = value.as_str().unwrap_or_default();
            if is_rfc3339(text) {
                Ok(())
            } else {
                Err(format!(
                    "{path}: parsing time {} as \"2006-01-02T15:04:05Z07:00\": cannot parse",
                    quoted(text)
                ))
            }
        }
        Shape::StringMap => match value {
            Value::Object(entries) => entries
                .iter()
                .try_for_each(|(k, v)| null_or(v, |v| expect_string(v, &join(path, k)))),
            other => Err(type_error(path, other, "map[string]string")),
        },
        Shape::StringList => each_item(value, path, "[]string", |item, at| {
            null_or(item, |v| expect_string(v, at))
        }),
        Shape::OwnerReferences => each_item(value, path, "[]v1.OwnerReference", |item, at| {
            struct_fields(item, at, unknown, owner_reference_shape)
        }),
        Shape::ManagedFields => each_item(value, path, "[]v1.ManagedFieldsEntry", |item, at| {
            struct_fields(item, at, unknown, managed_fields_shape)
        }),
    }
}

/// The JSON type of an `ownerReferences` entry's field; `None` for unknown fields.
fn owner_reference_shape(field: &str) -> Option<&'static str> {
    match field {
        "apiVersion" | "kind" | "name" | "uid" => Some("string"),
        "controller" | "blockOwnerDeletion" => Some("bool"),
        _ => None,
    }
}

fn managed_fields_shape(field: &str) -> Option<&'static str> {
    match field {
        "manager" | "operation" | "apiVersion" | "fieldsType" | "subresource" => Some("string"),
        "time" => Some("time"),
        "fieldsV1" => Some("any"),
        _ => None,
    }
}

fn struct_fields(
    item: &Value,
    path: &str,
    unknown: &mut Vec<String>,
    shape: fn(&str) -> Option<&'static str>,
) -> Result<(), String> {
    let fields = match item {
        Value::Null => return Ok(()),
        Value::Object(fields) => fields,
        other => return Err(type_error(path, other, "struct")),
    };
    for (key, value) in fields {
        let at = join(path, key);
        match shape(key) {
            None => unknown.push(at),
            Some(_) if value.is_null() => {}
            Some("string") => expect_string(value, &at)?,
            Some("bool") if !value.is_boolean() => return Err(type_error(&at, value, "bool")),
            Some("time") => check_shape(Shape::Time, value, &at, unknown)?,
            Some(_) => {}
        }
    }
    Ok(())
}

fn each_item(
    value: &Value,
    path: &str,
    go_type: &str,
    mut check: impl FnMut(&Value, &str) -> Result<(), String>,
) -> Result<(), String> {
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check(item, &format!("{path}[{i}]"))),
        other => Err(type_error(path, other, go_type)),
    }
}

fn null_or(value: &Value, check: impl FnOnce(&Value) -> Result<(), String>) -> Result<(), String> {
    if value.is_null() {
        Ok(())
    } else {
        check(value)
    }
}

fn expect_string(value: &Value, path: &str) -> Result<(), String> {
    if value.is_string() {
        Ok(())
    } else {
        Err(type_error(path, value, "string"))
    }
}

/// Go's `json: cannot unmarshal <kind> into Go struct field <path> of type <type>`.
fn type_error(path: &str, value: &Value, go_type: &str) -> String {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    format!("json: cannot unmarshal {kind} into Go struct field {path} of type {go_type}")
}

/// Copy the decoded value of `key` into `meta`; `null` leaves the zero value, as Go does.
fn store(meta: &mut ObjectMeta, key: &str, value: &Value) {
    let text = || value.as_str().unwrap_or_default().to_string();
    let map = || -> BTreeMap<String, String> {
        value
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().into()))
                    .collect()
            })
            .unwrap_or_default()
    };
    match key {
        "name" => meta.name = text(),
        "generateName" => meta.generate_name = text(),
        "namespace" => meta.namespace = text(),
        "labels" => meta.labels = map(),
        "annotations" => meta.annotations = map(),
        "finalizers" => {
            meta.finalizers = value
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().unwrap_or_default().into())
                        .collect()
                })
                .unwrap_or_default();
        }
        "ownerReferences" => {
            meta.owner_references = value
                .as_array()
                .map(|a| a.iter().map(owner_reference).collect())
                .unwrap_or_default();
        }
        _ => {}
    }
}

fn owner_reference(value: &Value) -> OwnerReference {
    let fields = value.as_object().cloned().unwrap_or_default();
    let text = |key: &str| {
        fields
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    OwnerReference {
        api_version: text("apiVersion"),
        kind: text("kind"),
        name: text("name"),
        uid: text("uid"),
        controller: fields.get("controller").and_then(Value::as_bool) == Some(true),
    }
}

/// `metadata` as the API server writes it back after decoding: the typed fields only,
/// without unknown fields and `null`s.
pub fn normalized(metadata: &Map<String, Value>) -> Map<String, Value> {
    metadata
        .iter()
        .filter(|(k, v)| shape_of(k).is_some() && !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Go's `time.Parse(time.RFC3339, s)`: `2006-01-02T15:04:05[.frac](Z|±07:00)`.
fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |from: usize, n: usize| {
        b.get(from..from + n)
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    let number = |from: usize, n: usize| {
        text.get(from..from + n)
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(99)
    };
    let date_ok = b.len() >= 20
        && digits(0, 4)
        && b[4] == b'-'
        && digits(5, 2)
        && b[7] == b'-'
        && digits(8, 2)
        && b[10] == b'T'
        && digits(11, 2)
        && b[13] == b':'
        && digits(14, 2)
        && b[16] == b':'
        && digits(17, 2);
    if !date_ok || !(1..=12).contains(&number(5, 2)) || !(1..=31).contains(&number(8, 2)) {
        return false;
    }
    if number(11, 2) > 23 || number(14, 2) > 59 || number(17, 2) > 59 {
        return false;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &fraction[n..];
    }
    match rest.as_bytes() {
        [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_collected_and_wrong_types_fail_the_decoding() {
        let decoded = decode(Some(&json!({
            "name": "a", "labels": {"x": "y"}, "clusterName": "old", "Name": "case matters",
            "ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "n", "uid": "u", "bogus": 1}]
        })))
        .unwrap();
        assert_eq!(
            decoded.unknown,
            [
                "metadata.Name",
                "metadata.clusterName",
                "metadata.ownerReferences[0].bogus"
            ]
        );
        assert_eq!(decoded.meta.labels["x"], "y");
        for bad in [
            json!({"name": 7}),
            json!({"labels": {"tier": 1}}),
            json!({"labels": ["a"]}),
            json!({"annotations": {"on": true}}),
            json!({"finalizers": "a/b"}),
            json!({"generation": 1.5}),
            json!({"creationTimestamp": "yesterday"}),
            json!("just a string"),
        ] {
            assert!(decode(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn nulls_decode_to_zero_values() {
        let decoded = decode(Some(
            &json!({"name": null, "labels": {"a": null}, "creationTimestamp": null}),
        ))
        .unwrap();
        assert_eq!(decoded.meta.name, "");
        assert_eq!(decoded.meta.labels["a"], "");
        assert!(decode(None).unwrap().unknown.is_empty());
    }

    #[test]
    fn times_follow_go_rfc3339() {
        for ok in ["2024-01-02T03:04:05Z", "2024-01-02T03:04:05.123+02:00"] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "2024-01-02",
            "2024-01-02t03:04:05Z",
            "2024-13-02T03:04:05Z",
            "2024-01-02T24:00:00Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }
}
