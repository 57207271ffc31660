//! Secrets in the input, reduced to what the check may know: which keys hold a value the
//! controller would accept. Values are judged here and never kept or printed.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde_json::{Map, Value};

use super::report::{Origin, Problem};
use crate::api::conditions::Reason;

/// A Secret's (namespace, name).
pub type SecretId = (String, String);

/// The keys of one Secret, split by whether the controller could use their value.
#[derive(Debug, Default)]
pub struct SecretKeys {
    usable: BTreeSet<String>,
    /// Present, but empty (after trimming trailing newlines) or not UTF-8: the controller
    /// reports these as SecretKeyMissing, like absent keys.
    unusable: BTreeSet<String>,
}

/// Read a Secret document into its id and key states. Shapes the API server refuses (a
/// value that is not a string, `data` that is not base64) are problems instead, and the
/// Secret is left out, as it would never reach the cluster.
pub fn read_secret(value: &Value, origin: &Origin) -> Result<(SecretId, SecretKeys), Vec<Problem>> {
    let meta = |f: &str| {
        value
            .pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let id = (
        meta("namespace").unwrap_or_else(|| "default".into()),
        meta("name").unwrap_or_default(),
    );
    let mut usable: BTreeMap<String, bool> = BTreeMap::new();
    let mut problems = Vec::new();
    // `stringData` is merged over `data` by the API server, so it is read second.
    for (field, decode) in [("data", true), ("stringData", false)] {
        let Some(entries) = value.get(field).and_then(Value::as_object) else {
            continue;
        };
        judge_values(entries, field, decode, origin, &mut usable, &mut problems);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let (usable, unusable) = usable.into_iter().partition::<Vec<_>, _>(|(_, ok)| *ok);
    let keys = SecretKeys {
        usable: usable.into_iter().map(|(k, _)| k).collect(),
        unusable: unusable.into_iter().map(|(k, _)| k).collect(),
    };
    Ok((id, keys))
}

/// Record for each key of `data` (base64, `decode`) or `stringData` whether its value is
/// usable; the decoded bytes go out of scope at once.
fn judge_values(
    entries: &Map<String, Value>,
    field: &str,
    decode: bool,
    origin: &Origin,
    usable: &mut BTreeMap<String, bool>,
    problems: &mut Vec<Problem>,
) {
    for (key, entry) in entries {
        let path = format!("{field}.{key}");
        let bytes = match entry {
            Value::Null => Vec::new(),
            Value::String(text) if decode => {
                match base64::engine::general_purpose::STANDARD.decode(text) {
                    Ok(bytes) => bytes,
                    Err(_) => {
                        // The decoder's message can quote input bytes: it is not shown.
                        problems.push(origin.problem(
                            Some(&path),
                            None,
                            "Invalid value: not base64 (use stringData for plain text)",
                        ));
                        continue;
                    }
                }
            }
            Value::String(text) => text.as_bytes().to_vec(),
            _ => {
                problems.push(origin.problem(
                    Some(&path),
                    None,
                    "must be a string (quote numbers and booleans)",
                ));
                continue;
            }
        };
        usable.insert(key.clone(), is_usable(&bytes));
    }
}

/// The controller's rule (`controller::credentials::secret_key`): UTF-8 text that is not
/// empty once trailing newlines are trimmed.
fn is_usable(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|text| !text.trim_end_matches(['\n', '\r']).is_empty())
}

/// Problems for `keys` a Secret in the input lacks or holds unusable. A Secret absent from
/// the input may exist in the cluster, so it is not a problem here.
pub fn missing_keys(
    secrets: &BTreeMap<SecretId, SecretKeys>,
    secret: &SecretId,
    keys: &[&str],
    origin: &Origin,
    field: &str,
) -> Vec<Problem> {
    let Some(present) = secrets.get(secret) else {
        return Vec::new();
    };
    let (namespace, name) = secret;
    keys.iter()
        .filter(|k| !present.usable.contains(**k))
        .map(|k| {
            let message = if present.unusable.contains(*k) {
                format!("Secret {namespace}/{name} key {k:?} is empty (or not UTF-8), which the controller treats as missing")
            } else {
                format!("Secret {namespace}/{name} has no key {k:?}")
            };
            origin.problem(Some(field), Some(Reason::SecretKeyMissing), message)
        })
        .collect()
}
