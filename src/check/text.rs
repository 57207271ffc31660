//! Small text helpers shared by the checks: field paths, and values quoted short and
//! escaped, so that nothing a manifest holds reaches a terminal as written.

use serde_json::Value;

/// Longest value quoted back in a message.
const QUOTE_MAX: usize = 63;

/// `parent.key`, or `key` at the root.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// A string quoted with escapes (`"a\nb"`), cut after 63 characters.
pub fn quoted(text: &str) -> String {
    if text.chars().count() <= QUOTE_MAX {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(QUOTE_MAX).collect();
        format!("{head:?}...")
    }
}

/// A value as the API server prints a bad value: strings quoted, numbers and booleans as
/// they are, lists and maps by their type only.
pub fn quoted_value(value: &Value) -> String {
    match value {
        Value::String(text) => quoted(text),
        Value::Null => "null".into(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(_) => "\"array\"".into(),
        Value::Object(_) => "\"object\"".into(),
    }
}

/// `text` with control characters escaped, for a line on a terminal.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_pass_through() {
        assert_eq!(printable("a\u{1b}[31mb\n"), "a\\u{1b}[31mb\\n");
        assert_eq!(printable("plain é"), "plain é");
        assert_eq!(quoted("x\ny"), "\"x\\ny\"");
        assert!(quoted(&"z".repeat(500)).len() < 80);
    }
}
