//! Entra ID's OAuth 2.0 error answers turned into condition reasons and messages: the
//! AADSTS codes mailops explains, and the standard `error` values.

use super::Failure;
use super::errors::server_text;
use crate::api::conditions::Reason;

/// The `AADSTS<digits>` code inside an Entra error description.
pub fn aadsts_code(description: &str) -> Option<&str> {
    let start = description.find("AADSTS")?;
    let rest = &description[start..];
    let end = 6 + rest[6..]
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len() - 6);
    (end > 6).then(|| &rest[..end])
}

/// Entra ID error codes mailops explains, with the reason they map to. The code stays in
/// the message: it is what admins search for.
const AADSTS: &[(&str, Reason, &str)] = &[
    (
        "AADSTS7000215",
        Reason::InvalidCredentials,
        "the client secret is wrong or expired",
    ),
    (
        "AADSTS7000222",
        Reason::InvalidCredentials,
        "the client secret has expired",
    ),
    (
        "AADSTS700016",
        Reason::InvalidCredentials,
        "application not found in the tenant",
    ),
    (
        "AADSTS90002",
        Reason::InvalidCredentials,
        "tenant not found",
    ),
    (
        "AADSTS900023",
        Reason::InvalidCredentials,
        "the tenant ID is not valid",
    ),
    (
        "AADSTS90014",
        Reason::InvalidCredentials,
        "a required field (e.g. scope) is missing",
    ),
    (
        "AADSTS7000112",
        Reason::InvalidCredentials,
        "the application is disabled",
    ),
    (
        "AADSTS70011",
        Reason::InvalidCredentials,
        "the requested scope is not valid for this application",
    ),
    (
        "AADSTS700082",
        Reason::InvalidCredentials,
        "the refresh token has expired; sign in again",
    ),
    (
        "AADSTS70008",
        Reason::InvalidCredentials,
        "the refresh token has expired; sign in again",
    ),
    (
        "AADSTS50173",
        Reason::InvalidCredentials,
        "the refresh token was revoked; sign in again",
    ),
    (
        "AADSTS70043",
        Reason::InvalidCredentials,
        "the refresh token has expired; sign in again",
    ),
    (
        "AADSTS50057",
        Reason::InvalidCredentials,
        "the user account is disabled",
    ),
    (
        "AADSTS53003",
        Reason::InvalidCredentials,
        "blocked by a Conditional Access policy",
    ),
    (
        "AADSTS65001",
        Reason::MissingPermission,
        "the application has no consent for the requested permissions",
    ),
];

/// The meaning of a standard OAuth 2.0 `error` value, for codes not in `AADSTS`.
fn oauth_error(error: &str) -> (Reason, &'static str) {
    match error {
        "invalid_client" => (
            Reason::InvalidCredentials,
            "the client credentials were refused",
        ),
        "invalid_grant" => (
            Reason::InvalidCredentials,
            "the grant (refresh token or client credentials) was refused",
        ),
        "unauthorized_client" => (
            Reason::InvalidCredentials,
            "the application may not use this grant",
        ),
        "invalid_scope" => (
            Reason::InvalidCredentials,
            "the requested scope is not valid",
        ),
        "invalid_request" => (Reason::InvalidCredentials, "the token request was refused"),
        "temporarily_unavailable" | "server_error" => {
            (Reason::Unreachable, "Entra ID is temporarily unavailable")
        }
        _ => (Reason::UnexpectedResponse, "the token request failed"),
    }
}

/// An OAuth 2.0 error answer of Entra ID (`error` and `error_description`) as a failure.
/// Only the code is taken from the description: the rest holds trace IDs and timestamps
/// that would change the status on every attempt.
pub fn entra_failure(error: &str, description: Option<&str>) -> Failure {
    let code = description.and_then(aadsts_code);
    let known = code.and_then(|c| AADSTS.iter().find(|(k, _, _)| *k == c));
    let (reason, detail) = match known {
        Some((_, reason, detail)) => (*reason, *detail),
        None => oauth_error(error),
    };
    let error = server_text(error);
    let message = match code.map(server_text) {
        Some(code) => format!("Entra ID: {code}: {detail} ({error})"),
        None => format!("Entra ID: {detail} ({error})"),
    };
    Failure::new(reason, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_entra_error_makes_a_short_message() {
        let error = "e".repeat(100_000);
        let description = format!("AADSTS{}", "7".repeat(100_000));
        let f = entra_failure(&error, Some(&description));
        assert!(f.message.len() < 1000, "{} bytes", f.message.len());
    }

    #[test]
    fn hostile_entra_descriptions_are_read_without_panicking() {
        let cases = [
            ("AADSTS", None),
            ("AADSTS\u{e9}", None),
            ("\u{e9}\u{e9}AADSTS12\u{e9}", Some("AADSTS12")),
            ("xAADSTS7000215", Some("AADSTS7000215")),
            ("AADSTSAADSTS1", None),
            ("", None),
        ];
        for (description, expected) in cases {
            assert_eq!(aadsts_code(description), expected, "{description:?}");
            let _ = entra_failure("invalid_client", Some(description));
        }
    }

    #[test]
    fn aadsts_codes_are_found_and_mapped() {
        assert_eq!(
            aadsts_code("AADSTS7000215: Invalid client secret provided."),
            Some("AADSTS7000215")
        );
        assert_eq!(aadsts_code("no code"), None);
        assert_eq!(aadsts_code("AADSTS"), None);
        let f = entra_failure(
            "invalid_client",
            Some("AADSTS700016: Application with identifier 'x' was not found"),
        );
        assert_eq!(f.reason, Reason::InvalidCredentials);
        assert_eq!(
            f.message,
            "Entra ID: AADSTS700016: application not found in the tenant (invalid_client)"
        );
        let f = entra_failure(
            "invalid_request",
            Some("AADSTS90002: Tenant 'x' not found."),
        );
        assert!(
            f.message.contains("AADSTS90002: tenant not found"),
            "{}",
            f.message
        );
        let f = entra_failure(
            "invalid_grant",
            Some("AADSTS700082: The refresh token has expired"),
        );
        assert!(
            f.message.contains("refresh token has expired"),
            "{}",
            f.message
        );
        assert_eq!(
            entra_failure("temporarily_unavailable", None).reason,
            Reason::Unreachable
        );
    }
}
