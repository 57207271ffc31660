//! Secrets in the input, reduced to what the check may know: which keys hold a value the
//! controller would accept. Values are judged here and never kept or printed. `data` is
//! decoded as the API server decodes it, with Go's standard base64.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::report::{Origin, Problem};
use crate::api::conditions::Reason;

/// A Secret's (namespace, name).
pub type SecretId = (String, String);

/// Go's `base64.StdEncoding`: padding required, but bits after the last full byte need not
/// be zero (`YR==` is `a`, like `YQ==`).
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Decode as Go's `base64.StdEncoding.DecodeString` does (and so `encoding/json` for a
/// `[]byte` field): `\r` and `\n` anywhere are skipped, so a value folded over several
/// lines of a YAML block decodes. `None` when Go would fail.
pub fn go_base64(text: &str) -> Option<Vec<u8>> {
    if text.contains(['\r', '\n']) {
        let joined: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
        GO_STD.decode(joined).ok()
    } else {
        GO_STD.decode(text).ok()
    }
}

/// The keys of one Secret, split by whether the controller could use their value.
#[derive(Debug, Default)]
pub struct SecretKeys {
    usable: BTreeSet<String>,
    /// Present, but empty (after trimming trailing newlines) or not UTF-8: the controller
    /// reports these as SecretKeyMissing, like absent keys.
    unusable: BTreeSet<String>,
}

impl SecretKeys {
    /// Sort decoded values (`data` merged with `stringData`) by usability; the values go
    /// out of scope here.
    pub fn judge(values: BTreeMap<String, Vec<u8>>) -> Self {
        let mut keys = SecretKeys::default();
        for (key, bytes) in values {
            if is_usable(&bytes) {
                keys.usable.insert(key);
            } else {
                keys.unusable.insert(key);
            }
        }
        keys
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_decoded_as_go_decodes_it() {
        // Newlines anywhere are skipped (a value folded by a YAML `|` block).
        assert_eq!(go_base64("aGVs\nbG8=\n").as_deref(), Some(&b"hello"[..]));
        assert_eq!(go_base64("aGVsbG8=\r\n").as_deref(), Some(&b"hello"[..]));
        // Non-canonical trailing bits are accepted: `YR==` and `YQ==` are both `a`.
        assert_eq!(go_base64("YR==").as_deref(), Some(&b"a"[..]));
        assert_eq!(go_base64("YWJk").as_deref(), Some(&b"abd"[..]));
        assert_eq!(go_base64("").as_deref(), Some(&b""[..]));
        // Padding is required, and nothing else may be skipped.
        for bad in [
            "YQ", "YQ=", "Y Q==", "YQ==YQ==", "YQ==\tx", "YQ=a", "-_8=", "Y",
        ] {
            assert_eq!(go_base64(bad), None, "{bad:?}");
        }
    }
}
