//! The API server's validation of `metadata` for any object at create (apimachinery
//! `pkg/api/validation/objectmeta.go`): name and `generateName`, namespace, label keys and
//! values, annotation keys and their 256 KiB total, finalizers and owner references.

use super::field_error::FieldError;
use super::objectmeta::ObjectMeta;
use super::text::quoted;

/// Longest DNS-1123 subdomain (an object name).
const SUBDOMAIN_MAX: usize = 253;
/// Longest DNS-1123 label (a namespace name).
const LABEL_MAX: usize = 63;
/// Longest label value, and the name part of a qualified name.
const QUALIFIED_NAME_MAX: usize = 63;
/// Most bytes all annotations (keys and values) of one object may hold.
pub const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// How an object's name must look: custom resources and Secrets use DNS subdomains,
/// Namespaces DNS labels.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// `NameIsDNSSubdomain`.
    Subdomain,
    /// `NameIsDNSLabel`.
    Label,
}

impl NameRule {
    /// The problems of `name`; `prefix` for a `generateName`.
    fn problems(self, name: &str, prefix: bool) -> Vec<String> {
        let name = if prefix {
            mask_trailing_dash(name)
        } else {
            name.to_string()
        };
        match self {
            NameRule::Subdomain => subdomain_problems(&name),
            NameRule::Label => label_problems(&name),
        }
    }
}

/// apimachinery's `maskTrailingDash`, quirk included: a trailing `-` and the character
/// before it become one `a`, since random characters will follow.
fn mask_trailing_dash(name: &str) -> String {
    let cut = name.len().saturating_sub(2);
    if name.len() > 1 && name.ends_with('-') && name.is_char_boundary(cut) {
        format!("{}a", &name[..cut])
    } else {
        // Cut inside a character, Go's result is not UTF-8 and so not a DNS name either;
        // the unmasked name is not one.
        name.to_string()
    }
}

/// Validate decoded metadata as `ValidateObjectMetaAccessor` does at create, after the
/// API server has settled the namespace (`namespaced` objects must have one).
pub fn validate(meta: &ObjectMeta, namespaced: bool, rule: NameRule) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let invalid = |field: &str, value: &str, msg: String| {
        FieldError::new(field, format!("Invalid value: {}: {msg}", quoted(value)))
    };
    if !meta.generate_name.is_empty() {
        for msg in rule.problems(&meta.generate_name, true) {
            errors.push(invalid("metadata.generateName", &meta.generate_name, msg));
        }
    }
    if meta.name.is_empty() {
        errors.push(FieldError::blocking(
            "metadata.name",
            "Required value: name or generateName is required".into(),
        ));
    } else {
        for msg in rule.problems(&meta.name, false) {
            errors.push(invalid("metadata.name", &meta.name, msg));
        }
    }
    if namespaced {
        for msg in label_problems(&meta.namespace) {
            errors.push(invalid("metadata.namespace", &meta.namespace, msg));
        }
    }
    for (key, value) in &meta.labels {
        for msg in qualified_name_problems(key) {
            errors.push(invalid("metadata.labels", key, msg));
        }
        for msg in label_value_problems(value) {
            errors.push(invalid("metadata.labels", value, msg));
        }
    }
    errors.extend(annotation_problems(meta));
    errors.extend(finalizer_problems(&meta.finalizers));
    errors.extend(owner_reference_problems(meta));
    if errors.is_empty() {
        // The API server's second, generic pass: names are also URL path segments.
        errors.extend(path_segment_problems(meta));
    }
    errors
}

fn annotation_problems(meta: &ObjectMeta) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut total = 0usize;
    for (key, value) in &meta.annotations {
        // Annotation keys are qualified names, case aside.
        for msg in qualified_name_problems(&key.to_lowercase()) {
            errors.push(FieldError::new(
                "metadata.annotations",
                format!("Invalid value: {}: {msg}", quoted(key)),
            ));
        }
        total += key.len() + value.len();
    }
    if total > ANNOTATIONS_MAX_BYTES {
        errors.push(FieldError::blocking(
            "metadata.annotations",
            format!("Too long: may not be more than {ANNOTATIONS_MAX_BYTES} bytes"),
        ));
    }
    errors
}

fn finalizer_problems(finalizers: &[String]) -> Vec<FieldError> {
    let mut errors: Vec<FieldError> = finalizers
        .iter()
        .flat_map(|f| {
            qualified_name_problems(f).into_iter().map(move |msg| {
                FieldError::new(
                    "metadata.finalizers",
                    format!("Invalid value: {}: {msg}", quoted(f)),
                )
            })
        })
        .collect();
    let has = |name: &str| finalizers.iter().any(|f| f == name);
    if has("orphan") && has("foregroundDeletion") {
        errors.push(FieldError::new(
            "metadata.finalizers",
            "Invalid value: finalizer orphan and foregroundDeletion cannot be both set".into(),
        ));
    }
    errors
}

fn owner_reference_problems(meta: &ObjectMeta) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut controllers = 0;
    for (i, owner) in meta.owner_references.iter().enumerate() {
        let at = |f: &str| format!("metadata.ownerReferences[{i}].{f}");
        let version_ok = match owner.api_version.matches('/').count() {
            0 => !owner.api_version.is_empty(),
            1 => !owner.api_version.ends_with('/'),
            _ => false,
        };
        if owner.api_version.is_empty() {
            errors.push(FieldError::blocking(
                &at("apiVersion"),
                "Required value: must not be empty".into(),
            ));
        } else if !version_ok {
            errors.push(FieldError::new(
                &at("apiVersion"),
                format!(
                    "Invalid value: {}: must be <group>/<version> or <version>",
                    quoted(&owner.api_version)
                ),
            ));
        }
        for (field, value) in [
            ("kind", &owner.kind),
            ("name", &owner.name),
            ("uid", &owner.uid),
        ] {
            if value.is_empty() {
                errors.push(FieldError::blocking(
                    &at(field),
                    "Required value: must not be empty".into(),
                ));
            }
        }
        if owner.api_version == "v1" && owner.kind == "Event" {
            errors.push(FieldError::new(
                &format!("metadata.ownerReferences[{i}]"),
                "Invalid value: /v1, Kind=Event is disallowed from being an owner".into(),
            ));
        }
        controllers += usize::from(owner.controller);
    }
    if controllers > 1 {
        errors.push(FieldError::new(
            "metadata.ownerReferences",
            "Invalid value: Only one reference can have Controller set to true".into(),
        ));
    }
    errors
}

/// `validatePathSegment`: a name may not be `.` or `..` nor hold `/` or `%`.
fn path_segment_problems(meta: &ObjectMeta) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let bad = |s: &str| s.contains('/') || s.contains('%');
    if bad(&meta.generate_name) {
        errors.push(FieldError::new(
            "metadata.generateName",
            format!(
                "Invalid value: {}: may not contain '/' or '%'",
                quoted(&meta.generate_name)
            ),
        ));
    }
    if bad(&meta.name) || meta.name == "." || meta.name == ".." {
        errors.push(FieldError::new(
            "metadata.name",
            format!(
                "Invalid value: {}: may not be '.' or '..' or contain '/' or '%'",
                quoted(&meta.name)
            ),
        ));
    }
    errors
}

/// `IsDNS1123Subdomain`.
pub fn subdomain_problems(name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if name.len() > SUBDOMAIN_MAX {
        problems.push(format!("must be no more than {SUBDOMAIN_MAX} characters"));
    }
    if !is_subdomain_shaped(name) {
        problems.push("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')".into());
    }
    problems
}

/// `IsDNS1123Label`.
pub fn label_problems(name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if name.len() > LABEL_MAX {
        problems.push(format!("must be no more than {LABEL_MAX} characters"));
    }
    if !is_label_shaped(name) {
        problems.push(if is_subdomain_shaped(name) {
            "must not contain dots".into()
        } else {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name')".into()
        });
    }
    problems
}

/// A DNS label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns_label(name: &str) -> bool {
    name.len() <= LABEL_MAX && is_label_shaped(name)
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, without a length bound.
fn is_label_shaped(label: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (label.as_bytes().first(), label.as_bytes().last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && label.bytes().all(|b| alnum(&b) || b == b'-')
        }
        _ => false,
    }
}

/// Labels joined by dots, without a length bound.
pub fn is_subdomain_shaped(name: &str) -> bool {
    name.split('.').all(is_label_shaped)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn is_qualified_name_part(name: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    match (name.as_bytes().first(), name.as_bytes().last()) {
        (Some(first), Some(last)) => {
            alnum(first)
                && alnum(last)
                && name
                    .bytes()
                    .all(|b| alnum(&b) || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `IsQualifiedName`: an optional DNS subdomain prefix and `/`, then a name of at most 63
/// characters. Label keys, annotation keys and finalizers are qualified names.
pub fn qualified_name_problems(value: &str) -> Vec<String> {
    let parts: Vec<&str> = value.split('/').collect();
    let mut problems = Vec::new();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                problems.push("prefix part must be non-empty".into());
            } else {
                problems.extend(
                    subdomain_problems(prefix)
                        .into_iter()
                        .map(|p| format!("prefix part {p}")),
                );
            }
            *name
        }
        _ => {
            return vec!["a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".into()];
        }
    };
    if name.is_empty() {
        problems.push("name part must be non-empty".into());
    } else if name.len() > QUALIFIED_NAME_MAX {
        problems.push(format!(
            "name part must be no more than {QUALIFIED_NAME_MAX} characters"
        ));
    }
    if !is_qualified_name_part(name) {
        problems.push("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc')".into());
    }
    problems
}

/// `IsValidLabelValue`: empty, or a qualified name part of at most 63 characters.
pub fn label_value_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > QUALIFIED_NAME_MAX {
        problems.push(format!(
            "must be no more than {QUALIFIED_NAME_MAX} characters"
        ));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        problems.push("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345')".into());
    }
    problems
}

#[cfg(test)]
#[path = "metadata_tests.rs"]
mod tests;
