//! Sorting input documents: mailops objects are admitted through the schemas into the
//! inventory; Namespaces and Secrets are admitted as the API server admits them and
//! remembered for resolution; the rest is ignored.

use serde_json::Value;

use super::report::{Origin, Problem};
use super::schema::{FieldError, KindLookup};
use super::secrets::SecretKeys;
use super::{Document, Inventory, Schemas, core, kubectl};

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
    let namespaced = (api_version, kind) == ("v1", "Secret") || schemas.is_namespaced(kind);
    let origin = Origin::of(doc, describe(kind, &doc.value, namespaced));
    match (api_version, kind) {
        ("v1", "Namespace") => match admit_core(&doc.value, false, core::admit_namespace) {
            Ok(meta) => {
                inv.namespace_labels.insert(meta.name, meta.labels);
            }
            Err(errors) => problems.extend(field_problems(&origin, errors)),
        },
        ("v1", "Secret") => match admit_core(&doc.value, true, core::admit_secret) {
            Ok(secret) => {
                let id = (secret.meta.namespace, secret.meta.name);
                inv.secret_keys.insert(id, SecretKeys::judge(secret.values));
            }
            Err(errors) => problems.extend(field_problems(&origin, errors)),
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

/// A core object as `kubectl apply` sends it, then through the API server's admission.
fn admit_core<T>(
    manifest: &Value,
    namespaced: bool,
    admit: fn(&Value) -> Result<T, Vec<FieldError>>,
) -> Result<T, Vec<FieldError>> {
    let body = kubectl::apply_body(manifest, namespaced)?;
    admit(&body)
}

fn field_problems(origin: &Origin, errors: Vec<FieldError>) -> impl Iterator<Item = Problem> + '_ {
    errors
        .into_iter()
        .map(move |e| origin.problem(Some(&e.field), None, e.message))
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
            problems.extend(field_problems(&origin, errors));
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
