//! Secrets and Namespaces as the API server admits them.

use super::*;
use serde_json::json;

fn secret(extra: Value) -> Value {
    let mut object = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "sales"}});
    object
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    object
}

fn fields(result: Result<Secret, Vec<FieldError>>) -> Vec<String> {
    result
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.field)
        .collect()
}

#[test]
fn data_is_decoded_with_go_base64() {
    let admitted = admit_secret(&secret(
        json!({"data": {"password": "aGVs\nbG8=", "odd": "YR=="}}),
    ))
    .unwrap();
    assert_eq!(admitted.values["password"], b"hello");
    assert_eq!(admitted.values["odd"], b"a");
    let refused = admit_secret(&secret(json!({"data": {"password": "SENTINEL!"}})))
        .err()
        .unwrap();
    assert_eq!(refused[0].field, "data[password]");
    assert!(!refused[0].message.contains("SENTINEL"));
}

#[test]
fn string_data_merges_over_data_and_keys_are_config_keys() {
    let admitted = admit_secret(&secret(
        json!({"data": {"k": "YQ=="}, "stringData": {"k": "b"}}),
    ))
    .unwrap();
    assert_eq!(admitted.values["k"], b"b");
    for key in ["a b", "..x", ".", "ä"] {
        assert_eq!(
            fields(admit_secret(&secret(json!({"stringData": {key: "v"}})))),
            [format!("data[{key}]")],
            "{key}"
        );
    }
    for key in ["a.b", "A_B-c", ".hidden", &"k".repeat(253)] {
        assert!(
            admit_secret(&secret(json!({"stringData": {key: "v"}}))).is_ok(),
            "{key}"
        );
    }
}

#[test]
fn secret_types_require_their_keys_and_sizes_are_bounded() {
    assert_eq!(
        fields(admit_secret(&secret(
            json!({"type": "kubernetes.io/tls", "stringData": {"tls.crt": "x"}})
        ))),
        ["data[tls.key]"]
    );
    assert!(
        admit_secret(&secret(
            json!({"type": "kubernetes.io/basic-auth", "stringData": {"password": ""}})
        ))
        .is_ok()
    );
    assert_eq!(
        fields(admit_secret(&secret(
            json!({"type": "kubernetes.io/basic-auth", "stringData": {"token": "x"}})
        )))
        .len(),
        2
    );
    assert!(admit_secret(&secret(json!({"type": "example.com/custom"}))).is_ok());
    let big = "x".repeat(512 * 1024);
    assert!(
        admit_secret(&secret(
            json!({"stringData": {"a": big.clone(), "b": big.clone()}})
        ))
        .is_ok()
    );
    assert_eq!(
        fields(admit_secret(&secret(
            json!({"stringData": {"a": big.clone(), "b": format!("{big}x")}})
        ))),
        ["data"]
    );
}

#[test]
fn unknown_and_ill_typed_secret_fields_are_refused() {
    let refused = admit_secret(&secret(json!({"strngData": {"a": "b"}})))
        .err()
        .unwrap();
    assert_eq!(
        refused[0].message,
        "strict decoding error: unknown field \"strngData\""
    );
    assert_eq!(
        fields(admit_secret(&secret(json!({"immutable": "yes"})))),
        ["immutable"]
    );
    assert!(admit_secret(&secret(json!({"data": {"n": 5}}))).is_err());
    assert!(admit_secret(&secret(json!({"stringData": {"n": 5}}))).is_err());
    let mut bad_meta = secret(json!({}));
    bad_meta["metadata"]["labels"] = json!({"tier": 1});
    assert!(admit_secret(&bad_meta).is_err());
}

#[test]
fn namespaces_are_labels_with_finalizers_of_their_own() {
    let ns = |extra: Value| {
        let mut object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sales", "labels": {"mail": "on"}}});
        object
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        object
    };
    assert_eq!(
        admit_namespace(&ns(json!({}))).unwrap().labels["mail"],
        "on"
    );
    assert!(
        admit_namespace(&ns(
            json!({"spec": {"finalizers": ["kubernetes", "example.com/x"]}})
        ))
        .is_ok()
    );
    let refused = admit_namespace(&ns(json!({"spec": {"finalizers": ["custom"]}})))
        .err()
        .unwrap();
    assert_eq!(refused[0].field, "spec.finalizers");
    assert!(admit_namespace(&ns(json!({"spec": {"finalizer": []}}))).is_err());
    assert!(admit_namespace(&ns(json!({"status": {"phase": "Active", "extra": 1}}))).is_err());
    let mut dotted = ns(json!({}));
    dotted["metadata"]["name"] = json!("sales.eu");
    assert_eq!(
        admit_namespace(&dotted).err().unwrap()[0].field,
        "metadata.name"
    );
}
