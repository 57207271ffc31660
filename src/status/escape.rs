//! Strings from the cluster as `status` prints them: control characters and the
//! invisible characters that reorder or hide text are escaped, never sent to the
//! terminal raw. Names, reasons and messages are written by tenants (a provider name a
//! binding refers to has no pattern), and `"x\e[2J"` would otherwise clear an admin's
//! screen or forge lines of `status -A`.

use std::borrow::Cow;
use std::io;

/// Whether `c` must not reach a terminal as it is: C0 and C1 controls and DEL (ESC and
/// CSI start terminal sequences, CR and LF forge lines), and the zero-width and
/// bidirectional formatting characters that hide or reorder what is shown.
fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// `s` for a terminal: each character [`must_escape`] finds as `\n`, `\r`, `\t` or
/// `\u{1b}` (Rust's notation); everything else as it is.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(must_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if must_escape(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `serde_json`'s pretty printer, writing every character [`must_escape`] finds as a
/// JSON `\uXXXX` escape. serde_json escapes C0 controls itself but writes DEL, C1
/// controls and the formatting characters raw; escaped, the JSON means the same to a
/// parser and is safe to print.
pub struct Formatter(serde_json::ser::PrettyFormatter<'static>);

impl Formatter {
    /// Two-space indentation, as `serde_json::to_string_pretty`.
    pub fn new() -> Self {
        Formatter(serde_json::ser::PrettyFormatter::new())
    }
}

impl Default for Formatter {
    fn default() -> Self {
        Formatter::new()
    }
}

impl serde_json::ser::Formatter for Formatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some(at) = rest.find(must_escape) {
            writer.write_all(&rest.as_bytes()[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            // Every such character is in the Basic Multilingual Plane: one `\uXXXX`.
            write!(writer, "\\u{:04x}", u32::from(c))?;
            rest = &rest[at + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_untouched() {
        let s = "MailboxBinding sales/orders: Ready (Verified) — é 日本 CONTOSO\\jane";
        assert!(matches!(text(s), Cow::Borrowed(_)));
        assert_eq!(text(s), s);
    }

    #[test]
    fn terminal_sequences_and_line_breaks_are_escaped() {
        assert_eq!(text("x\u{1b}[2Jy"), "x\\u{1b}[2Jy");
        assert_eq!(text("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(text("\u{9b}31m\u{7f}\u{0}"), "\\u{9b}31m\\u{7f}\\u{0}");
        assert_eq!(text("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(text("zero\u{200b}width"), "zero\\u{200b}width");
    }

    #[test]
    fn json_escapes_what_serde_json_leaves_raw_and_means_the_same() {
        let value = serde_json::json!({"name": "x\u{1b}[2J\u{9b}1m\u{7f}\u{202e}é", "n": [1, 2]});
        let mut out = Vec::new();
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, Formatter::new());
        serde::Serialize::serialize(&value, &mut serializer).unwrap();
        let printed = String::from_utf8(out).unwrap();
        assert!(
            !printed.chars().any(|c| must_escape(c) && c != '\n'),
            "{printed:?}"
        );
        assert!(
            printed.contains(r"x\u001b[2J\u009b1m\u007f\u202eé"),
            "{printed}"
        );
        let back: serde_json::Value = serde_json::from_str(&printed).unwrap();
        assert_eq!(back, value);
        // The same layout as serde_json's own pretty printer.
        let plain = serde_json::json!({"a": [1, {"b": "c"}]});
        let mut out = Vec::new();
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, Formatter::new());
        serde::Serialize::serialize(&plain, &mut serializer).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string_pretty(&plain).unwrap()
        );
    }
}
