//! Client-side admission for mailops objects, in the API server's order for a custom
//! resource created by `kubectl apply`: kubectl's request body, strict decoding (unknown
//! fields in `metadata`, `spec` and `status` refused), pruning, dropping `null`s that may
//! not be null, defaulting, then validation (metadata, the OpenAPI schema, list types)
//! and, unless a blocking error stopped it, the CEL rules on the defaulted object.

use std::collections::BTreeMap;

use serde_json::Value;

use super::cel::CelEnv;
use super::core::{decode_error, strict};
use super::metadata::{self, NameRule};
use super::objectmeta;
use super::openapi;
use super::patterns::Patterns;
use super::structural::{self, Node};
use super::{kubectl, listtype};
use crate::api::crds;

pub use super::field_error::FieldError;

struct KindSchema {
    /// The CRD's openAPIV3Schema, for value validation.
    raw: Value,
    /// The same as a structural schema with its compiled CEL rules (compiling them per
    /// object cost ~1 ms each, which made a 20,000-binding stream take half a minute).
    node: Node,
    patterns: Patterns,
    /// The versions the CRD serves.
    versions: Vec<String>,
    namespaced: bool,
    /// With a status subresource the API server drops `status` on create.
    status_subresource: bool,
}

/// Compiled schemas of the three kinds.
pub struct Schemas {
    group: String,
    by_kind: BTreeMap<String, KindSchema>,
    cel: CelEnv,
}

/// What a document's `apiVersion` and `kind` name, seen from mailops.
#[derive(Debug, PartialEq, Eq)]
pub enum KindLookup {
    /// Another group's kind (or a core one): not ours to judge.
    Foreign,
    /// One of the mailops kinds, in a served version.
    Known,
    /// Meant as a mailops object, but no such version or kind exists.
    Unknown(FieldError),
}

impl Schemas {
    /// Compile the schemas generated from the Rust types.
    pub fn new() -> crate::Result<Self> {
        let mut by_kind = BTreeMap::new();
        let mut group = String::new();
        for crd in crds() {
            let version = crd.spec.versions.first();
            let raw = version
                .and_then(|v| v.schema.as_ref())
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .map(serde_json::to_value)
                .transpose()
                .map_err(|e| crate::Error::Serialize(e.to_string()))?
                .ok_or_else(|| {
                    crate::Error::Config(format!("CRD {} has no schema", crd.spec.names.kind))
                })?;
            let schema = KindSchema {
                node: Node::build(&raw, kube_cel::compile_schema(&raw)),
                patterns: Patterns::collect(&raw),
                raw,
                versions: crd.spec.versions.iter().map(|v| v.name.clone()).collect(),
                namespaced: crd.spec.scope == "Namespaced",
                status_subresource: version
                    .and_then(|v| v.subresources.as_ref())
                    .is_some_and(|s| s.status.is_some()),
            };
            group.clone_from(&crd.spec.group);
            by_kind.insert(crd.spec.names.kind.clone(), schema);
        }
        Ok(Schemas {
            group,
            by_kind,
            cel: CelEnv::new(),
        })
    }

    /// Whether `kind` is one of the mailops kinds.
    pub fn knows(&self, kind: &str) -> bool {
        self.by_kind.contains_key(kind)
    }

    /// Whether objects of `kind` live in a namespace (false for unknown kinds).
    pub fn is_namespaced(&self, kind: &str) -> bool {
        self.by_kind.get(kind).is_some_and(|s| s.namespaced)
    }

    /// Sort a document by its `apiVersion` and `kind`, as the API server's discovery would:
    /// anything in the mailops group must be a served version and a known kind; other
    /// groups are not ours, even when the kind has a mailops name.
    pub fn lookup(&self, api_version: &str, kind: &str) -> KindLookup {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        if group != self.group {
            if api_version.is_empty() && self.knows(kind) {
                return KindLookup::Unknown(FieldError::new(
                    "apiVersion",
                    format!("Required value: must be {}", self.served_versions()),
                ));
            }
            return KindLookup::Foreign;
        }
        let served = self
            .by_kind
            .values()
            .any(|s| s.versions.iter().any(|v| v == version));
        if !served {
            return KindLookup::Unknown(FieldError::new(
                "apiVersion",
                format!(
                    "no version {version:.63} in {}; known: {}",
                    self.group,
                    self.served_versions()
                ),
            ));
        }
        match self.by_kind.get(kind) {
            Some(s) if s.versions.iter().any(|v| v == version) => KindLookup::Known,
            _ if kind.is_empty() => KindLookup::Unknown(FieldError::new(
                "kind",
                "Required value: kind is not set".into(),
            )),
            _ => KindLookup::Unknown(FieldError::new(
                "kind",
                format!(
                    "no kind {kind:.63} in {api_version:.63}; known: {}",
                    self.kinds_in(version).join(", ")
                ),
            )),
        }
    }

    fn served_versions(&self) -> String {
        let mut versions: Vec<String> = self
            .by_kind
            .values()
            .flat_map(|s| s.versions.iter().map(|v| format!("{}/{v}", self.group)))
            .collect();
        versions.sort();
        versions.dedup();
        versions.join(", ")
    }

    fn kinds_in(&self, version: &str) -> Vec<&str> {
        self.by_kind
            .iter()
            .filter(|(_, s)| s.versions.iter().any(|v| v == version))
            .map(|(kind, _)| kind.as_str())
            .collect()
    }

    /// Admit a manifest of `kind` as `kubectl apply` would create it: on success return
    /// the object as it would be stored (defaults applied, `status` dropped when the kind
    /// has a status subresource, the namespace settled by scope).
    pub fn admit(&self, kind: &str, manifest: &Value) -> Result<Value, Vec<FieldError>> {
        let body = kubectl::apply_body(manifest, self.is_namespaced(kind))?;
        self.admit_request(kind, &body)
    }

    /// The API server's half of [`Schemas::admit`]: judge `body`, a create request.
    pub fn admit_request(&self, kind: &str, body: &Value) -> Result<Value, Vec<FieldError>> {
        let Some(schema) = self.by_kind.get(kind) else {
            return Err(vec![FieldError::new(
                "kind",
                format!("unknown kind {kind:?}"),
            )]);
        };
        let object = decode(schema, body)?;
        let object = prepare_for_create(schema, object);
        let mut errors = validate(schema, &object);
        // After a blocking error the API server skips the CEL rules (and says so in one
        // more line, which adds nothing here).
        if !errors.iter().any(|e| e.blocking) {
            errors.extend(self.cel.validate(&schema.node, &object));
        }
        if errors.is_empty() {
            Ok(object)
        } else {
            Err(errors)
        }
    }
}

/// The request decoder: typed `metadata`, pruning (unknown fields are errors under strict
/// field validation), non-nullable `null`s dropped, then defaults.
fn decode(schema: &KindSchema, body: &Value) -> Result<Value, Vec<FieldError>> {
    let decoded = objectmeta::decode(body.get("metadata")).map_err(decode_error)?;
    let mut object = body.clone();
    let mut unknown = decoded.unknown;
    unknown.extend(structural::prune(&mut object, &schema.node));
    structural::drop_nulls(&mut object, Some(&schema.node));
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        *metadata = objectmeta::normalized(metadata);
    }
    strict(&unknown)?;
    structural::apply_defaults(&mut object, &schema.node);
    Ok(object)
}

/// `PrepareForCreate` and the namespace checks of `BeforeCreate`.
fn prepare_for_create(schema: &KindSchema, mut object: Value) -> Value {
    let Some(fields) = object.as_object_mut() else {
        return object;
    };
    if schema.status_subresource {
        fields.remove("status");
    }
    if let Some(Value::Object(metadata)) = fields.get_mut("metadata") {
        if !schema.namespaced {
            metadata.remove("namespace");
        } else if metadata
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            metadata.insert("namespace".into(), kubectl::DEFAULT_NAMESPACE.into());
        }
    }
    object
}

/// `customResourceStrategy.Validate` before CEL: metadata, schema, list types.
fn validate(schema: &KindSchema, object: &Value) -> Vec<FieldError> {
    let mut errors = match objectmeta::decode(object.get("metadata")) {
        Ok(decoded) => metadata::validate(&decoded.meta, schema.namespaced, NameRule::Subdomain),
        Err(message) => decode_error(message),
    };
    errors.extend(openapi::validate(&schema.raw, object, &schema.patterns));
    errors.extend(listtype::validate(&schema.node, object));
    errors
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
