//! Sorting input documents: mailops objects are admitted through the schemas into the
//! inventory, Namespaces and Secrets are remembered for resolution, the rest is ignored.

use serde_json::Value;

use super::report::{Origin, Problem};
use super::schema::KindLookup;
use super::secrets::read_secret;
use super::{Document, Inventory, Schemas};

/// Longest name quoted in an object's description; longer ones are invalid anyway and
/// would swamp every line that names the object.
const DESCRIBED_NAME_MAX: usize = 63;

/// Take one (already list-expanded) document into the inventory, or into problems.
pub fn admit_document(
    schemas: &Schemas,
    doc: &Document,
    inv: &mut Inventory,
    problems: &mut Vec<Problem>,
) {
    let text = |field: &str| {
        doc.value
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let origin = Origin::of(doc, describe(kind, &doc.value, schemas.is_namespaced(kind)));
    match (api_version, kind) {
        ("v1", "Namespace") => record_namespace(&doc.value, inv),
        ("v1", "Secret") => match read_secret(&doc.value, &origin) {
            Ok((id, keys)) => {
                inv.secret_keys.insert(id, keys);
            }
            Err(secret_problems) => problems.extend(secret_problems),
        },
        _ => match schemas.lookup(api_version, kind) {
            KindLookup::Foreign => {}
            KindLookup::Unknown(error) => {
                inv.objects += 1;
                problems.push(origin.problem(Some(&error.field), None, error.message));
            }
            KindLookup::Known => {
                inv.objects += 1;
                admit_mailops_object(schemas, doc, kind, origin, inv, problems);
            }
        },
    }
}

fn record_namespace(value: &Value, inv: &mut Inventory) {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let labels = value
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_default();
    inv.namespace_labels.insert(
        name.to_string(),
        serde_json::from_value(labels).unwrap_or_default(),
    );
}

fn admit_mailops_object(
    schemas: &Schemas,
    doc: &Document,
    kind: &str,
    origin: Origin,
    inv: &mut Inventory,
    problems: &mut Vec<Problem>,
) {
    let value = match schemas.admit(kind, &doc.value) {
        Ok(value) => value,
        Err(errors) => {
            problems.extend(
                errors
                    .into_iter()
                    .map(|e| origin.problem(Some(&e.field), None, e.message)),
            );
            return;
        }
    };
    let result = match kind {
        "EmailProvider" => typed(value).map(|p| inv.providers.push((p, origin.clone()))),
        "ExchangeServiceAccount" => typed(value).map(|a| inv.accounts.push((a, origin.clone()))),
        _ => typed(value).map(|b| inv.bindings.push((b, origin.clone()))),
    };
    if let Err(e) = result {
        problems.push(origin.problem(None, None, format!("does not match the {kind} type: {e}")));
    }
}

fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// `Kind name`, or `Kind namespace/name` for a namespaced kind (`default` when unset).
fn describe(kind: &str, value: &Value, namespaced: bool) -> String {
    let field = |f: &str| {
        value
            .pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let name = shortened(field("name").unwrap_or("<unnamed>"));
    match field("namespace") {
        _ if !namespaced => format!("{kind:.63} {name}"),
        Some(ns) => format!("{kind:.63} {}/{name}", shortened(ns)),
        None => format!("{kind:.63} default/{name}"),
    }
}

fn shortened(name: &str) -> String {
    if name.chars().count() <= DESCRIBED_NAME_MAX {
        name.to_string()
    } else {
        let head: String = name.chars().take(DESCRIBED_NAME_MAX).collect();
        format!("{head}...")
    }
}
