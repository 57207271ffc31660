//! The API server's own checks on `metadata.name` and `metadata.namespace`, which no CRD
//! schema describes: a name is a DNS-1123 subdomain, a namespace a DNS-1123 label.

use serde_json::Value;

use super::schema::FieldError;

/// Longest DNS-1123 subdomain (an object name).
const SUBDOMAIN_MAX: usize = 253;
/// Longest DNS-1123 label (a namespace name, or one dot-separated part of a subdomain).
const LABEL_MAX: usize = 63;
/// Values longer than this are not quoted back: a 10,000-character name would swamp the line.
const QUOTE_MAX: usize = 63;

/// Problems with the name and namespace of an object, as the API server reports them at
/// create. A namespace on a cluster-scoped object is not judged: the server drops it. A
/// `metadata` that is missing or not a mapping is left to the structural schema check.
pub fn validate(object: &Value, namespaced: bool) -> Vec<FieldError> {
    let Some(metadata) = object.get("metadata").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    match metadata.get("name") {
        None | Some(Value::Null) => errors.push(error(
            "metadata.name",
            "Required value: name is required".into(),
        )),
        Some(Value::String(name)) => {
            errors.extend(dns_subdomain_problem(name).map(|m| error("metadata.name", m)));
        }
        Some(_) => errors.push(error("metadata.name", "must be a string".into())),
    }
    if namespaced {
        match metadata.get("namespace") {
            // Unset or empty: kubectl fills in the context's namespace.
            None | Some(Value::Null) => {}
            Some(Value::String(ns)) if ns.is_empty() => {}
            Some(Value::String(ns)) => {
                errors.extend(dns_label_problem(ns).map(|m| error("metadata.namespace", m)));
            }
            Some(_) => errors.push(error("metadata.namespace", "must be a string".into())),
        }
    }
    errors
}

fn error(field: &str, message: String) -> FieldError {
    FieldError {
        field: field.into(),
        message,
    }
}

/// Why `name` is not a DNS-1123 subdomain (lowercase alphanumeric labels joined by dots,
/// `-` inside labels), or `None` when it is one.
pub fn dns_subdomain_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("Required value: name is required".into());
    }
    if name.len() > SUBDOMAIN_MAX {
        return Some(too_long(name, SUBDOMAIN_MAX));
    }
    // Label length is not judged here: the API server only bounds the whole subdomain.
    if name.split('.').all(is_label_shaped) {
        return None;
    }
    Some(format!(
        "Invalid value: {}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')",
        quoted(name)
    ))
}

/// Why `name` is not a DNS-1123 label, or `None` when it is one.
pub fn dns_label_problem(name: &str) -> Option<String> {
    if name.len() > LABEL_MAX {
        return Some(too_long(name, LABEL_MAX));
    }
    if is_label_shaped(name) {
        return None;
    }
    Some(format!(
        "Invalid value: {}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name')",
        quoted(name)
    ))
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, without a length bound.
fn is_label_shaped(label: &str) -> bool {
    let bytes = label.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && bytes.iter().all(|b| alnum(b) || *b == b'-')
        }
        _ => false,
    }
}

fn too_long(value: &str, max: usize) -> String {
    format!(
        "Too long: must be no more than {max} characters (it has {})",
        value.chars().count()
    )
}

fn quoted(value: &str) -> String {
    if value.chars().count() <= QUOTE_MAX {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(QUOTE_MAX).collect();
        format!("{head:?}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_follow_rfc_1123() {
        for ok in ["a", "jane", "jane.doe", "0-1.b2", &"a".repeat(253)] {
            assert_eq!(dns_subdomain_problem(ok), None, "{ok}");
        }
        for bad in [
            "", "Jane", "jane_doe", "-a", "a-", "a..b", "a.-b", ".a", "a/b", "é",
        ] {
            assert!(dns_subdomain_problem(bad).is_some(), "{bad}");
        }
        assert!(dns_subdomain_problem(&"a".repeat(254)).is_some());
    }

    #[test]
    fn labels_have_no_dots_and_at_most_63_characters() {
        assert_eq!(dns_label_problem(&"s".repeat(63)), None);
        for bad in ["sales.eu", "Sales", &"s".repeat(64), ""] {
            assert!(dns_label_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn long_or_odd_values_are_quoted_short() {
        let long = format!("{}_", "x".repeat(200));
        let message = dns_label_problem(&long).unwrap();
        assert!(message.len() < 100, "{message}");
        let odd = dns_subdomain_problem(&format!("{}_", "y".repeat(100))).unwrap();
        assert!(odd.contains("...") && odd.len() < 400, "{odd}");
    }
}
