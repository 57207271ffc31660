//! The `pattern`s of a CRD schema, compiled once with Go's RE2 semantics: Go's `regexp`
//! is RE2, like the `regex` crate, except that Go's `\d`, `\w`, `\s` and `\b` are
//! ASCII-only.

use std::collections::HashMap;

use regex::Regex;
use serde_json::Value;

/// Every `pattern` of a schema, compiled once.
#[derive(Default)]
pub struct Patterns(HashMap<String, Regex>);

impl Patterns {
    /// Compile the patterns found anywhere in `schema`. One that does not compile is left
    /// out: the API server refuses such a CRD, so it cannot be installed anyway.
    pub fn collect(schema: &Value) -> Self {
        let mut patterns = Patterns::default();
        patterns.walk(schema);
        patterns
    }

    /// The compiled form of `pattern`.
    pub fn get(&self, pattern: &str) -> Option<&Regex> {
        self.0.get(pattern)
    }

    fn walk(&mut self, schema: &Value) {
        match schema {
            Value::Object(map) => {
                if let Some(Value::String(pattern)) = map.get("pattern")
                    && let Ok(re) = Regex::new(&go_regex(pattern))
                {
                    self.0.insert(pattern.clone(), re);
                }
                map.values().for_each(|v| self.walk(v));
            }
            Value::Array(items) => items.iter().for_each(|v| self.walk(v)),
            _ => {}
        }
    }
}

/// Go's RE2 classes `\d`, `\w`, `\s` and `\b` are ASCII-only; Rust's are Unicode. Rewrite
/// them so that `\d` does not match `٣`.
pub fn go_regex(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('d' | 'D' | 'w' | 'W' | 's' | 'S' | 'b' | 'B')) if !in_class => {
                    out.push_str(&format!("(?-u:\\{e})"));
                }
                Some('d') => out.push_str("0-9"),
                Some('w') => out.push_str("0-9A-Za-z_"),
                Some('s') => out.push_str("\\t\\n\\f\\r "),
                Some(e) => {
                    out.push('\\');
                    out.push(e);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A `]` right after `[` or `[^` is a literal.
                let rest = chars.as_str();
                let skip = if rest.starts_with("^]") {
                    2
                } else {
                    usize::from(rest.starts_with(']'))
                };
                out.push_str(&rest[..skip]);
                chars = rest[skip..].chars();
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}
