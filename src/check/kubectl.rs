//! What `kubectl apply` sends for an object that does not exist yet, which is what the API
//! server judges. kubectl first refuses a manifest whose `metadata` does not decode into
//! `ObjectMeta` (a label that is a number); it sends numbers after its YAML-to-JSON round
//! trip (`1.0` is `1`), the
//! namespace of its context on a namespaced object that names none, the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation (which counts against the
//! 256 KiB of annotations), no `null` in any mapping, and no `resourceVersion` (which the
//! API server refuses on a create).

use serde_json::{Map, Number, Value};

use super::core::decode_error;
use super::field_error::FieldError;
use super::objectmeta;

/// The annotation client-side apply records the applied manifest in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The namespace kubectl uses when neither the manifest nor the command names one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The request body `kubectl apply` sends to create `manifest`, or why kubectl itself
/// refuses it (`metadata` it cannot decode, a `generateName` without a name).
pub fn apply_body(manifest: &Value, namespaced: bool) -> Result<Value, Vec<FieldError>> {
    let mut object = whole_numbers(manifest);
    let metadata = object.get("metadata");
    objectmeta::decode(metadata)
        .map_err(|e| decode_error(format!("kubectl: unable to decode: {e}")))?;
    let text = |field: &str| {
        metadata
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    if text("name").is_empty() && !text("generateName").is_empty() {
        return Err(vec![FieldError::blocking(
            "metadata.generateName",
            "kubectl apply cannot create an object from metadata.generateName alone: set metadata.name (or use kubectl create)".into(),
        )]);
    }
    if namespaced
        && let Some(Value::Object(metadata)) = object.get_mut("metadata")
        && metadata
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        metadata.insert("namespace".into(), DEFAULT_NAMESPACE.into());
    }
    add_last_applied(&mut object);
    drop_nulls(&mut object);
    // `Helper.Create(modify=true)` clears a resourceVersion it can read as a string.
    if let Some(Value::Object(metadata)) = object.get_mut("metadata")
        && metadata
            .get("resourceVersion")
            .is_some_and(Value::is_string)
    {
        metadata.remove("resourceVersion");
    }
    Ok(object)
}

/// kubectl reads YAML into Go values and re-encodes them as JSON, so a float with no
/// fraction (`1.0`, `1e3`) reaches the API server as an integer.
fn whole_numbers(value: &Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            // Go prints such floats without an exponent below 1e21; they decode as int64
            // when they fit.
            Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => {
                Value::Number(Number::from(f as i64))
            }
            _ => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(whole_numbers).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), whole_numbers(v)))
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// `CreateApplyAnnotation`: kubectl reads the annotations as a map of strings, a `null`
/// value as `""` (apimachinery's `NestedNullCoercingStringMap`, kubectl 1.33 and later;
/// before, a `null` made it read none), anything else as no annotations at all (then
/// replaced), and records the object, as JSON, in `last-applied-configuration`.
fn add_last_applied(object: &mut Value) {
    let Some(fields) = object.as_object_mut() else {
        return;
    };
    let metadata = fields
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(metadata) = metadata else {
        return;
    };
    let mut annotations: Map<String, Value> = match metadata.get("annotations") {
        Some(Value::Object(map)) if map.values().all(|v| v.is_string() || v.is_null()) => map
            .iter()
            .map(|(k, v)| match v {
                Value::Null => (k.clone(), Value::String(String::new())),
                _ => (k.clone(), v.clone()),
            })
            .collect(),
        _ => Map::new(),
    };
    annotations.remove(LAST_APPLIED);
    metadata.insert("annotations".into(), Value::Object(annotations.clone()));
    let mut recorded = go_json(object);
    recorded.push('\n');
    annotations.insert(LAST_APPLIED.into(), Value::String(recorded));
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        metadata.insert("annotations".into(), Value::Object(annotations));
    }
}

/// kubectl drops every `null` of a mapping before it creates an object, at any depth.
fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            fields.retain(|_, v| !v.is_null());
            fields.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// `value` as Go's `encoding/json` writes it: keys sorted, `<`, `>` and `&` escaped, floats
/// in Go's notation. Used for the size of the last-applied annotation.
pub fn go_json(value: &Value) -> String {
    let mut out = String::new();
    write_go_json(value, &mut out);
    out
}

fn write_go_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) if n.is_f64() => out.push_str(&go_float(n.as_f64().unwrap_or(0.0))),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_go_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(key, out);
                out.push(':');
                write_go_json(&fields[key], out);
            }
            out.push('}');
        }
    }
}

fn write_go_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)))
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's float64 encoding: plain digits from 1e-6 up to 1e21, else an exponent (`1e+21`).
fn go_float(f: f64) -> String {
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        format!("{f}")
    } else {
        let text = format!("{f:e}");
        match text.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_floats_become_integers_and_nulls_in_mappings_go() {
        let body = apply_body(&json!({"kind": "K", "metadata": {"name": "a"}, "spec": {"n": 1.0, "f": 1.5, "x": null, "l": [null, {"y": null}]}}), false).unwrap();
        assert_eq!(body["spec"], json!({"n": 1, "f": 1.5, "l": [null, {}]}));
    }

    #[test]
    fn the_last_applied_annotation_records_the_object_as_go_encodes_it() {
        let body = apply_body(
            &json!({"kind": "K", "metadata": {"name": "a", "annotations": {"b": "<&>"}}}),
            true,
        )
        .unwrap();
        let recorded = body["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .unwrap();
        assert_eq!(
            recorded,
            "{\"kind\":\"K\",\"metadata\":{\"annotations\":{\"b\":\"\\u003c\\u0026\\u003e\"},\"name\":\"a\",\"namespace\":\"default\"}}\n"
        );
        assert_eq!(body["metadata"]["annotations"]["b"], "<&>");
    }

    #[test]
    fn metadata_kubectl_cannot_decode_is_refused_before_anything_is_sent() {
        let refused = apply_body(
            &json!({"metadata": {"name": "a", "annotations": {"n": 3}}}),
            false,
        )
        .unwrap_err();
        assert_eq!(refused[0].field, "metadata.annotations.n");
        assert!(
            refused[0].message.starts_with("kubectl: unable to decode"),
            "{refused:?}"
        );
    }

    #[test]
    fn a_null_annotation_reads_as_empty_and_the_others_stay() {
        let body = apply_body(
            &json!({"metadata": {"name": "a", "annotations": {"n": null, "bad key": "x"}}}),
            false,
        )
        .unwrap();
        let annotations = body["metadata"]["annotations"].as_object().unwrap();
        assert_eq!(annotations["n"], "");
        assert_eq!(annotations["bad key"], "x");
        let recorded = annotations[LAST_APPLIED].as_str().unwrap();
        assert!(recorded.contains("\"n\":\"\""), "{recorded}");
    }

    #[test]
    fn a_resource_version_is_cleared_but_recorded() {
        let body = apply_body(
            &json!({"metadata": {"name": "a", "resourceVersion": "42"}}),
            false,
        )
        .unwrap();
        assert!(body["metadata"].get("resourceVersion").is_none());
        let recorded = body["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .unwrap();
        assert!(
            recorded.contains("\"resourceVersion\":\"42\""),
            "{recorded}"
        );
        // One that is not a string does not even decode.
        assert!(
            apply_body(
                &json!({"metadata": {"name": "a", "resourceVersion": 42}}),
                false
            )
            .is_err()
        );
    }

    #[test]
    fn generate_name_alone_is_refused_by_kubectl_apply() {
        assert!(apply_body(&json!({"metadata": {"generateName": "a-"}}), true).is_err());
        assert!(
            apply_body(
                &json!({"metadata": {"generateName": "a-", "name": "a"}}),
                true
            )
            .is_ok()
        );
    }

    #[test]
    fn floats_are_printed_as_go_prints_them() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1e-7), "1e-7");
        assert_eq!(
            go_json(&json!({"b": "\u{8}\u{1}", "a": 1})),
            "{\"a\":1,\"b\":\"\\b\\u0001\"}"
        );
    }
}
