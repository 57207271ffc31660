//! A status's `verifiedInputs`: the 16 hex digits of a 64-bit digest as mailops writes
//! them, held as the number they spell (8 bytes, no allocation: 100,000 cached bindings
//! each carry one); any other text a writer left there is kept exactly as it was.

use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Digest {
    /// 16 lowercase hex digits.
    Hex(u64),
    /// Any other text (boxed twice: a thin pointer keeps the whole at 16 bytes).
    Other(Box<Box<str>>),
}

impl Digest {
    /// The digest mailops records for `value`.
    pub fn of(value: u64) -> Self {
        Digest::Hex(value)
    }

    /// Read a recorded text.
    pub fn parse(text: &str) -> Self {
        let canonical = text.len() == 16
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        match u64::from_str_radix(text, 16) {
            Ok(value) if canonical => Digest::Hex(value),
            _ => Digest::Other(Box::new(text.into())),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Digest::Hex(value) => write!(f, "{value:016x}"),
            Digest::Other(text) => f.write_str(text),
        }
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(Digest::parse(&text))
    }
}

// The schema of a string, so the CRDs do not change.
impl JsonSchema for Digest {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        String::schema_name()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        String::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailops_digests_are_numbers_and_read_back_exactly() {
        let d = Digest::of(0x00ab_cdef_0123_4567);
        assert_eq!(serde_json::to_string(&d).unwrap(), r#""00abcdef01234567""#);
        let back: Digest = serde_json::from_str(r#""00abcdef01234567""#).unwrap();
        assert_eq!(back, d);
        assert_eq!(std::mem::size_of::<Option<Digest>>(), 16);
    }

    #[test]
    fn any_other_text_is_kept_as_it_was() {
        for text in [
            "",
            "00ABCDEF01234567",
            "+0abcdef01234567",
            "abc",
            "0123456789abcdef0",
            "ünïcode",
        ] {
            let d: Digest = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert!(matches!(d, Digest::Other(_)), "{text}");
            assert_eq!(serde_json::to_value(&d).unwrap(), serde_json::json!(text));
        }
        assert!(serde_json::from_str::<Digest>("42").is_err());
    }
}
