//! The webhook's body bound, derived from the CRDs: the largest object each generated
//! schema admits is built (every string at its maxLength, every list at maxItems, every
//! map at maxProperties) with the `managedFields` entry that describes it, measured
//! against the constants `MAX_BODY` is made of, and a full review of the largest one is
//! posted to the webhook and answered.

mod webhook_support;

use mailops::webhook::server::{
    ENVELOPE_BYTES, FIELD_MANAGER_BYTES, FIELD_MANAGERS, MAX_BODY, METADATA_BYTES, SPEC_BYTES,
    STATUS_BYTES,
};
use mailops::webhook::tls::ClientAuth;
use serde_json::{Map, Value, json};
use webhook_support::https::*;

/// Strings the schemas leave unbounded, and what the test assumes for them: a selector's
/// `matchLabels` keys and values, which are label keys (at most 317 characters) and
/// values (63) wherever Kubernetes evaluates them.
const ASSUMED: [(&str, usize); 2] = [("matchLabels{key}", 317), ("matchLabels{value}", 63)];

/// What the walk found: the largest instance, its field set, and unbounded paths.
struct Largest {
    unbounded: Vec<String>,
    /// The character every string is made of: 'a' (one byte in JSON) or a control
    /// character (six: `\u0001`).
    fill: char,
}

impl Largest {
    fn assumed(&mut self, path: &str) -> usize {
        self.unbounded.push(path.to_string());
        ASSUMED
            .iter()
            .find(|(suffix, _)| path.ends_with(suffix))
            .map_or(1, |(_, n)| *n)
    }

    fn string(&self, n: usize, index: usize) -> String {
        // Distinct items, so a set-list's field set has one key per item.
        let tag = format!("{index}");
        let mut s: String = std::iter::repeat_n(self.fill, n.saturating_sub(tag.len())).collect();
        if n >= tag.len() {
            s.push_str(&tag);
        }
        s
    }

    /// The largest instance of `schema` and its `fieldsV1` (as server-side apply tracks it).
    fn walk(&mut self, schema: &Value, path: &str, index: usize) -> (Value, Value) {
        let leaf = json!({});
        if let Some(values) = schema["enum"].as_array() {
            let longest = values
                .iter()
                .max_by_key(|v| v.to_string().len())
                .cloned()
                .unwrap_or(Value::Null);
            return (longest, leaf);
        }
        if schema.get("x-kubernetes-preserve-unknown-fields").is_some()
            || schema.get("x-kubernetes-int-or-string").is_some()
        {
            self.unbounded.push(path.to_string());
            return (Value::Null, leaf);
        }
        match schema["type"].as_str() {
            Some("string") => {
                let n = match schema["maxLength"].as_u64() {
                    Some(n) => n as usize,
                    None => self.assumed(path),
                };
                (Value::String(self.string(n, index)), leaf)
            }
            Some("integer") | Some("number") => (json!(i64::MIN), leaf),
            Some("boolean") => (json!(false), leaf),
            Some("array") => self.array(schema, path),
            _ => self.object(schema, path),
        }
    }

    fn array(&mut self, schema: &Value, path: &str) -> (Value, Value) {
        let n = match schema["maxItems"].as_u64() {
            Some(n) => n as usize,
            None => self.assumed(&format!("{path}[]")),
        };
        let items: Vec<(Value, Value)> = (0..n)
            .map(|i| self.walk(&schema["items"], &format!("{path}[]"), i))
            .collect();
        let fields = match schema["x-kubernetes-list-type"].as_str() {
            Some("set") => Value::Object(
                items
                    .iter()
                    .map(|(item, _)| (format!("v:{item}"), json!({})))
                    .collect(),
            ),
            // Atomic lists are one field.
            _ => json!({}),
        };
        (
            Value::Array(items.into_iter().map(|(v, _)| v).collect()),
            fields,
        )
    }

    fn object(&mut self, schema: &Value, path: &str) -> (Value, Value) {
        let (mut instance, mut fields) = (Map::new(), Map::new());
        if let Some(properties) = schema["properties"].as_object() {
            for (key, child) in properties {
                let (value, child_fields) = self.walk(child, &format!("{path}.{key}"), 0);
                instance.insert(key.clone(), value);
                fields.insert(format!("f:{key}"), child_fields);
            }
        }
        if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
            let n = match schema["maxProperties"].as_u64() {
                Some(n) => n as usize,
                None => self.assumed(&format!("{path}{{}}")),
            };
            let key_length = self.assumed(&format!("{path}{{key}}"));
            for i in 0..n {
                let key = self.string(key_length, i);
                let (value, child_fields) = self.walk(values, &format!("{path}{{value}}"), i);
                instance.insert(key.clone(), value);
                fields.insert(format!("f:{key}"), child_fields);
            }
        }
        (Value::Object(instance), Value::Object(fields))
    }
}

/// (kind, largest spec, its managedFields entry, unbounded paths) per CRD.
fn largest_specs(fill: char) -> Vec<(String, Value, Value, Vec<String>)> {
    mailops::api::crds()
        .into_iter()
        .map(|crd| {
            let crd = serde_json::to_value(&crd).unwrap();
            let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
            let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
            let mut walk = Largest {
                unbounded: Vec::new(),
                fill,
            };
            let (spec, fields) = walk.walk(&schema["properties"]["spec"], "spec", 0);
            let entry = json!({
                "manager": "m".repeat(128), "operation": "Update",
                "apiVersion": "mailops.dev/v1alpha1", "time": "2026-12-04T18:00:00Z",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": fields},
                "subresource": "status"
            });
            (kind, spec, entry, walk.unbounded)
        })
        .collect()
}

fn size(v: &Value) -> usize {
    serde_json::to_vec(v).unwrap().len()
}

#[test]
fn every_spec_the_schemas_admit_fits_the_spec_and_field_manager_allowances() {
    for (kind, spec, entry, unbounded) in largest_specs('a') {
        println!(
            "{kind}: spec {} bytes, one managedFields entry {} bytes",
            size(&spec),
            size(&entry)
        );
        assert!(
            size(&spec) <= SPEC_BYTES,
            "{kind}: {} > {SPEC_BYTES}",
            size(&spec)
        );
        assert!(
            size(&entry) <= FIELD_MANAGER_BYTES,
            "{kind}: {}",
            size(&entry)
        );
        for path in &unbounded {
            assert!(
                ASSUMED.iter().any(|(suffix, _)| path.ends_with(suffix)),
                "{kind}: {path} has no bound in the schema; give it one, or account for it here"
            );
        }
    }
}

#[test]
fn a_binding_fits_many_times_over_even_in_six_byte_characters() {
    let specs = largest_specs('\u{1}');
    let (_, spec, entry, _) = specs.iter().find(|(k, ..)| k == "MailboxBinding").unwrap();
    assert!(size(spec) * 10 <= SPEC_BYTES, "{}", size(spec));
    assert!(size(entry) * 10 <= FIELD_MANAGER_BYTES, "{}", size(entry));
}

/// An UPDATE review of the largest EmailProvider: full spec, annotations at the API
/// server's limit, three field managers, a status and a user in many groups.
fn largest_review() -> Value {
    let (_, spec, entry, _) = largest_specs('a').into_iter().next().unwrap();
    let object = json!({
        "apiVersion": "mailops.dev/v1alpha1", "kind": "EmailProvider",
        "metadata": {
            "name": "n".repeat(253), "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "resourceVersion": "123456789", "generation": 42,
            "creationTimestamp": "2026-12-04T18:00:00Z",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x".repeat(256 * 1024 - 64)},
            "labels": {"app.kubernetes.io/name": "mailops"},
            "finalizers": ["mailops.dev/in-use"],
            "managedFields": vec![entry; FIELD_MANAGERS],
        },
        "spec": spec,
        "status": {"conditions": (0..4).map(|i| json!({
            "type": format!("T{i}"), "status": "False", "reason": "ProviderNotFound",
            "message": "m".repeat(2048), "lastTransitionTime": "2026-12-04T18:00:00Z",
            "observedGeneration": 42})).collect::<Vec<_>>()},
    });
    let gvk = json!({"group": "mailops.dev", "version": "v1alpha1", "kind": "EmailProvider"});
    let gvr = json!({"group": "mailops.dev", "version": "v1alpha1", "resource": "emailproviders"});
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": "n".repeat(253), "operation": "UPDATE",
            "userInfo": {"username": "admin", "uid": "u",
                         "groups": (0..200).map(|i| format!("{i:0>100}")).collect::<Vec<_>>()},
            "object": object, "oldObject": object.clone(), "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"}
        }
    })
}

#[test]
fn the_allowances_add_up_to_the_bound() {
    let review = largest_review();
    let object = &review["request"]["object"];
    let metadata_rest = {
        let mut m = object["metadata"].clone();
        m["managedFields"] = json!([]);
        size(&m)
    };
    assert!(metadata_rest <= METADATA_BYTES, "{metadata_rest}");
    assert!(size(&object["status"]) <= STATUS_BYTES);
    let envelope = size(&review) - 2 * size(object);
    assert!(envelope <= ENVELOPE_BYTES, "{envelope}");
    println!("largest review: {} of {MAX_BODY} bytes", size(&review));
    assert!(size(&review) <= MAX_BODY);
}

#[tokio::test]
async fn the_largest_review_is_read_and_answered() {
    let m = material();
    let served = serve(&m, &ClientAuth::Anyone).await;
    let body = serde_json::to_vec(&largest_review()).unwrap();
    let (status, answer) = post(&client_trusting(&m.ca_bundle), &served.url, body).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
}
