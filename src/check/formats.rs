//! The string `format`s the API server checks in a CRD schema (kube-openapi's registry,
//! as far as Kubernetes 1.36 keeps them). Formats Kubernetes does not support are not
//! checked by it either; of the supported ones, those no mailops CRD uses and whose rules
//! are Go library internals (email, hostname, ip, cidr, mac, isbn, credit card, ssn,
//! colours, date-time, duration) pass here unchecked.

use super::gourl;
use super::metadata::{is_dns_label, is_subdomain_shaped};

/// Whether `text` is valid for `format`.
pub fn valid(format: &str, text: &str) -> bool {
    // go-openapi matches format names without their dashes (`date-time` is `datetime`).
    match format.replace('-', "").as_str() {
        "uuid" => uuid(text, None),
        "uuid3" => uuid(text, Some(b'3')),
        "uuid4" => uuid(text, Some(b'4')),
        "uuid5" => uuid(text, Some(b'5')),
        "k8sshortname" => is_dns_label(text),
        "k8slongname" => text.len() <= 253 && is_subdomain_shaped(text),
        "date" => full_date(text),
        "uri" => gourl::parse_request_uri(text).is_ok(),
        _ => true,
    }
}

/// `(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?V[0-9a-f]{3}-?[89ab]?[0-9a-f]{3}-?[0-9a-f]{12}$`, the
/// dashes each optional, the version digit (and variant) fixed for uuid3/4/5.
fn uuid(text: &str, version: Option<u8>) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut bytes = text.bytes().peekable();
    for (i, len) in GROUPS.iter().enumerate() {
        for _ in 0..*len {
            if !bytes.next().is_some_and(|b| b.is_ascii_hexdigit()) {
                return false;
            }
        }
        // A dash may sit between groups, nowhere else.
        if i < GROUPS.len() - 1 && bytes.peek() == Some(&b'-') {
            bytes.next();
        }
    }
    if bytes.next().is_some() {
        return false;
    }
    let hex: Vec<u8> = text.bytes().filter(|&b| b != b'-').collect();
    match version {
        None => true,
        Some(v) => {
            hex[12] == v
                && (v == b'3' || matches!(hex[16].to_ascii_lowercase(), b'8' | b'9' | b'a' | b'b'))
        }
    }
}

/// Go's `time.Parse("2006-01-02", s)`: four-digit year, two-digit month and day, a day
/// that exists in that month.
fn full_date(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !digits(0..4)
        || !digits(5..7)
        || !digits(8..10)
    {
        return false;
    }
    let number = |r: std::ops::Range<usize>| text[r].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_formats_are_checked_as_kube_openapi_checks_them() {
        assert!(valid("uuid", "123e4567-e89b-12d3-a456-426614174000"));
        assert!(valid("uuid", "123E4567E89B12D3A456426614174000"));
        assert!(!valid("uuid", "123e4567-e89b-12d3-a456-42661417400"));
        assert!(valid("uuid4", "123e4567-e89b-42d3-a456-426614174000"));
        assert!(!valid("uuid4", "123e4567-e89b-12d3-a456-426614174000"));
        assert!(valid("k8s-short-name", "my-name") && !valid("k8s-short-name", "My-name"));
        assert!(valid("k8s-long-name", "a.b-c") && !valid("k8s-long-name", "a..b"));
        assert!(valid("date", "2024-02-29") && !valid("date", "2023-02-29"));
        assert!(!valid("date", "2024-1-01"));
        assert!(valid("uri", "https:///x") && !valid("uri", "mail.contoso.com"));
        assert!(valid("email", "anything at all"), "unchecked formats pass");
    }
}
