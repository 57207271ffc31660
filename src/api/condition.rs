//! `metav1.Condition` as mailops holds it: the same JSON and the same schema as
//! k8s-openapi's, in less memory. Every cached object carries its conditions (a binding
//! four), and k8s-openapi's type takes 128 bytes each plus four strings allocated; here
//! the words of the vocabulary (types, `True`/`False`, reasons, the fixed messages) are
//! an index into a static table, the time is whole seconds (as `metav1.Time` is written)
//! and the generation a non-zero number, and the struct is 80 bytes (a binding's four fit
//! mimalloc's 320-byte class). Measured with 100,000 cached bindings in one process: see
//! the README ("At scale").

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroI64;
use std::ops::Deref;
use std::sync::OnceLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition as K8sCondition, Time};
use k8s_openapi::jiff::Timestamp;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::reasons::{
    AUTHENTICATED, AUTHORIZED, CALENDAR_CONNECTED, FIXED_MESSAGES, REACHABLE, READY, Reason,
    TERMINATING, VERIFIED,
};

/// One condition of an object's status (`metav1.Condition`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// When `status` last changed.
    pub last_transition_time: Seconds,
    /// Human-readable detail.
    pub message: Word,
    /// The `metadata.generation` the condition was set for.
    /// (Generations start at 1: a `0` another writer put there reads as none.)
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_zero"
    )]
    pub observed_generation: Option<NonZeroI64>,
    /// CamelCase reason.
    pub reason: Word,
    /// `True`, `False` or `Unknown`.
    pub status: Word,
    /// The condition's type.
    #[serde(rename = "type")]
    pub type_: Word,
}

// The schema is k8s-openapi's, so the CRDs do not change by a byte.
impl JsonSchema for Condition {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        K8sCondition::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        K8sCondition::schema_id()
    }

    fn inline_schema() -> bool {
        K8sCondition::inline_schema()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        K8sCondition::json_schema(generator)
    }
}

impl Condition {
    /// `observedGeneration`, if any.
    pub fn generation(&self) -> Option<i64> {
        self.observed_generation.map(NonZeroI64::get)
    }
}

/// A condition's `lastTransitionTime`: whole seconds since the epoch, written as
/// `metav1.Time` (which has no fraction either); 8 bytes where `Time` takes 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(i64);

impl Seconds {
    /// As `metav1.Time`.
    pub fn time(self) -> Time {
        Time(Timestamp::from_second(self.0).unwrap_or(Timestamp::UNIX_EPOCH))
    }
}

impl From<Timestamp> for Seconds {
    fn from(t: Timestamp) -> Self {
        Seconds(t.as_second())
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.time().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Time::deserialize(deserializer).map(|t| t.0.into())
    }
}

/// An `observedGeneration`, `0` read as none.
fn non_zero<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<NonZeroI64>, D::Error> {
    Ok(Option::<i64>::deserialize(deserializer)?.and_then(NonZeroI64::new))
}

/// A string of a condition: a word of mailops' vocabulary costs no allocation, anything
/// else (a message naming a mailbox, a reason another writer put there) is boxed.
#[derive(Clone)]
pub enum Word {
    /// Index into the vocabulary.
    Known(u16),
    /// Any other text.
    Other(Box<str>),
}

fn vocabulary() -> &'static (Vec<&'static str>, HashMap<&'static str, u16>) {
    static WORDS: OnceLock<(Vec<&'static str>, HashMap<&'static str, u16>)> = OnceLock::new();
    WORDS.get_or_init(|| {
        let types = [
            READY,
            AUTHENTICATED,
            REACHABLE,
            TERMINATING,
            AUTHORIZED,
            VERIFIED,
            CALENDAR_CONNECTED,
        ];
        let statuses = ["True", "False", "Unknown"];
        let reasons = Reason::ALL.iter().map(|r| r.as_str());
        let mut words: Vec<&'static str> = Vec::new();
        let all = (types.into_iter().chain(statuses))
            .chain(reasons)
            .chain([""])
            .chain(FIXED_MESSAGES.iter().copied());
        for word in all {
            if !words.contains(&word) {
                words.push(word);
            }
        }
        let index = (words.iter().enumerate())
            .map(|(i, w)| (*w, i as u16))
            .collect();
        (words, index)
    })
}

impl Word {
    /// The text.
    pub fn as_str(&self) -> &str {
        match self {
            Word::Known(i) => vocabulary().0[usize::from(*i)],
            Word::Other(s) => s,
        }
    }
}

impl From<&str> for Word {
    fn from(s: &str) -> Self {
        match vocabulary().1.get(s) {
            Some(i) => Word::Known(*i),
            None => Word::Other(s.into()),
        }
    }
}

impl From<String> for Word {
    fn from(s: String) -> Self {
        match vocabulary().1.get(s.as_str()) {
            Some(i) => Word::Known(*i),
            None => Word::Other(s.into_boxed_str()),
        }
    }
}

impl From<&String> for Word {
    fn from(s: &String) -> Self {
        Word::from(s.as_str())
    }
}

impl Default for Word {
    fn default() -> Self {
        Word::from("")
    }
}

impl Deref for Word {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Word {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Word {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Word {
    fn eq(&self, other: &Word) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Word {}

impl std::hash::Hash for Word {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for Word {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Word {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Word {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Word> for &str {
    fn eq(&self, other: &Word) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Word> for String {
    fn eq(&self, other: &Word) -> bool {
        self == other.as_str()
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Word {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Word {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Word;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Word, E> {
                Ok(Word::from(s))
            }

            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Word, E> {
                Ok(Word::from(s))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_condition_is_smaller_than_k8s_openapis_and_reads_and_writes_the_same_json() {
        assert_eq!(std::mem::size_of::<Word>(), 16);
        assert_eq!(std::mem::size_of::<Condition>(), 80);
        for value in [
            json!({"type": "Ready", "status": "True", "reason": "Verified",
                   "message": "mailbox verified", "observedGeneration": 3,
                   "lastTransitionTime": "2026-12-05T10:00:00Z"}),
            json!({"type": "Custom", "status": "Maybe", "reason": "SomeoneElses",
                   "message": "Exchange confirmed https://x as jane@contoso.com",
                   "lastTransitionTime": "2026-12-05T10:00:00Z"}),
        ] {
            let ours: Condition = serde_json::from_value(value.clone()).unwrap();
            let theirs: K8sCondition = serde_json::from_value(value.clone()).unwrap();
            assert_eq!(serde_json::to_value(&ours).unwrap(), value);
            assert_eq!(
                serde_json::to_string(&ours).unwrap(),
                serde_json::to_string(&theirs).unwrap()
            );
        }
    }

    #[test]
    fn words_of_the_vocabulary_are_not_allocated_and_others_are_kept_exactly() {
        assert!(matches!(Word::from("Ready"), Word::Known(_)));
        assert!(matches!(Word::from("InvalidCredentials"), Word::Known(_)));
        assert!(matches!(
            Word::from("the calendar is connected"),
            Word::Known(_)
        ));
        let other = Word::from("ready");
        assert!(matches!(other, Word::Other(_)));
        assert_eq!(other, "ready");
        assert_ne!(Word::from("Ready"), other);
        assert_eq!(Word::from(String::from("False")), "False");
        let missing = serde_json::from_value::<Condition>(json!({"type": "Ready"}));
        assert!(missing.is_err(), "required fields stay required");
    }

    #[test]
    fn a_zero_generation_reads_as_none_and_times_keep_their_seconds() {
        let c: Condition = serde_json::from_value(json!({"type": "Ready", "status": "True",
            "reason": "Verified", "message": "", "observedGeneration": 0,
            "lastTransitionTime": "2026-12-05T10:00:07Z"}))
        .unwrap();
        assert_eq!(c.observed_generation, None);
        let written = serde_json::to_value(&c).unwrap();
        assert_eq!(written.get("observedGeneration"), None);
        assert_eq!(written["lastTransitionTime"], "2026-12-05T10:00:07Z");
        let t: Timestamp = "2026-12-05T10:00:07.999Z".parse().unwrap();
        assert_eq!(Seconds::from(t), c.last_transition_time);
    }
}
