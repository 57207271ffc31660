//! Microsoft Graph: open a mailbox's inbox or calendar with a bearer token, read Graph's
//! error answers, and read the permissions an app token carries.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};

use super::Failure;
use super::body::{body_failure, read_capped};
use super::errors::{RequestFailure, retry_after, server_text, status_failure, transport_failure};
use crate::api::conditions::Reason;
use crate::redact::redact_url;

/// The Graph resource to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Folder {
    /// `/users/{email}/mailFolders/inbox`.
    Inbox,
    /// `/users/{email}/calendar`.
    Calendar,
}

impl Folder {
    fn segments(self) -> &'static [&'static str] {
        match self {
            Folder::Inbox => &["mailFolders", "inbox"],
            Folder::Calendar => &["calendar"],
        }
    }

    fn label(self) -> &'static str {
        match self {
            Folder::Inbox => "inbox",
            Folder::Calendar => "calendar",
        }
    }
}

/// `{base}/users/{email}/...` with the address percent-encoded as one path segment.
pub fn folder_url(base: &str, email: &str, folder: Folder) -> Result<reqwest::Url, Failure> {
    let mut url = reqwest::Url::parse(base).map_err(|_| {
        Failure::new(
            Reason::UnexpectedResponse,
            format!("the Graph base {} is not a valid URL", redact_url(base)),
        )
    })?;
    {
        let Ok(mut path) = url.path_segments_mut() else {
            return Err(Failure::new(
                Reason::UnexpectedResponse,
                format!("the Graph base {} cannot take a path", redact_url(base)),
            ));
        };
        path.pop_if_empty()
            .push("users")
            .push(email)
            .extend(folder.segments());
    }
    url.set_query(Some("$select=id"));
    Ok(url)
}

/// GET the folder and read the answer.
pub async fn get_folder(
    http: &reqwest::Client,
    base: &str,
    email: &str,
    folder: Folder,
    token: &SecretString,
    timeout: Duration,
) -> Result<(), RequestFailure> {
    let url = folder_url(base, email, folder)?;
    let what = "Microsoft Graph";
    let response = http
        .get(url.clone())
        .bearer_auth(token.expose_secret())
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| transport_failure(what, url.as_str(), &e, timeout))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = read_capped(response)
        .await
        .map_err(|e| body_failure(what, url.as_str(), &e, timeout))?;
    interpret(status, &headers, &body, email, folder, token).map_err(|failure| RequestFailure {
        failure,
        unauthorized: status == 401,
    })
}

/// What a Graph answer means for the folder asked for.
pub fn interpret(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    email: &str,
    folder: Folder,
    token: &SecretString,
) -> Result<(), Failure> {
    let subject = format!("the {} of {email}", folder.label());
    if (200..300).contains(&status) {
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        return match json
            .as_ref()
            .and_then(|v| v.get("id"))
            .and_then(|id| id.as_str())
        {
            Some(_) => Ok(()),
            None => Err(Failure::new(
                Reason::UnexpectedResponse,
                format!(
                    "Microsoft Graph answered HTTP {status} for {subject} with malformed JSON (no folder id)"
                ),
            )),
        };
    }
    let code = error_code(body);
    let code_text = code
        .as_deref()
        .map(|c| format!("{c}: "))
        .unwrap_or_default();
    match (status, code.as_deref()) {
        (_, Some("MailboxNotEnabledForRESTAPI" | "MailboxNotSupportedForRESTAPI")) | (404, _) => {
            Err(Failure::new(
                Reason::MailboxNotFound,
                format!("Microsoft Graph: {code_text}no mailbox for {email} (HTTP {status})"),
            ))
        }
        (401, _) => Err(Failure::new(
            Reason::InvalidCredentials,
            format!("Microsoft Graph: {code_text}the access token was refused (HTTP 401)"),
        )),
        (403, _) => Err(forbidden(&code_text, &subject, token)),
        _ => {
            let mut failure = status_failure("Microsoft Graph", status, retry_after(headers));
            if !code_text.is_empty() {
                failure.message =
                    format!("{} ({})", failure.message, code_text.trim_end_matches(": "));
            }
            Err(failure)
        }
    }
}

/// A 403 with a token that worked for authentication: either the app lacks mail
/// permissions altogether, or an application access policy / RBAC for Applications
/// scope leaves this mailbox out.
fn forbidden(code_text: &str, subject: &str, token: &SecretString) -> Failure {
    const READ: &[&str] = &[
        "Mail.Read",
        "Mail.ReadWrite",
        "Mail.ReadBasic",
        "Mail.ReadBasic.All",
    ];
    if let Ok(permissions) = token_permissions(token)
        && !permissions.iter().any(|p| READ.contains(&p.as_str()))
    {
        return Failure::new(
            Reason::MissingPermission,
            format!(
                "Microsoft Graph: {code_text}the app token has no mail read permission (Mail.Read or Mail.ReadBasic.All); grant it and consent"
            ),
        );
    }
    Failure::new(
        Reason::OutOfScope,
        format!(
            "Microsoft Graph: {code_text}access denied to {subject} although the token is valid; an application access policy or RBAC for Applications scope excludes this mailbox"
        ),
    )
}

/// `error.code` of a Graph error body.
fn error_code(body: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = json.get("error")?.get("code")?.as_str()?;
    Some(server_text(code).into_owned())
}

/// The permissions in a JWT access token: application `roles` and delegated `scp`.
/// The token is not verified: Entra ID just issued it to us over TLS, and we only read
/// it to explain failures, never to grant anything.
pub fn token_permissions(token: &SecretString) -> Result<Vec<String>, String> {
    let payload = token
        .expose_secret()
        .split('.')
        .nth(1)
        .ok_or("the access token is not a JWT")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the access token payload is not base64url")?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| "the access token payload is not JSON")?;
    let mut permissions: Vec<String> = claims
        .get("roles")
        .and_then(|r| r.as_array())
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(scp) = claims.get("scp").and_then(|s| s.as_str()) {
        permissions.extend(scp.split_whitespace().map(str::to_string));
    }
    Ok(permissions)
}

/// Sending needs `Mail.Send` (application role, or delegated scope).
pub fn require_mail_send(token: &SecretString) -> Result<(), Failure> {
    match token_permissions(token) {
        Ok(permissions) if permissions.iter().any(|p| p == "Mail.Send") => Ok(()),
        Ok(permissions) => {
            let held = if permissions.is_empty() {
                "none".to_string()
            } else {
                server_text(&permissions.join(", ")).into_owned()
            };
            Err(Failure::new(
                Reason::MissingPermission,
                format!(
                    "sending is enabled but the access token lacks the Mail.Send permission (it has: {held}); grant Mail.Send to the app and consent"
                ),
            ))
        }
        Err(detail) => Err(Failure::new(
            Reason::UnexpectedResponse,
            format!("cannot check the Mail.Send permission: {detail}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> SecretString {
        let p = URL_SAFE_NO_PAD.encode(claims);
        SecretString::from(format!("eyJhbGciOiJub25lIn0.{p}.sig"))
    }

    #[test]
    fn the_address_is_one_encoded_segment() {
        let url = folder_url(
            "https://graph.microsoft.com/v1.0/",
            "a/b@x.com",
            Folder::Inbox,
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://graph.microsoft.com/v1.0/users/a%2Fb@x.com/mailFolders/inbox?$select=id"
        );
        let url = folder_url("https://g/v1.0", "a@x.com", Folder::Calendar).unwrap();
        assert_eq!(url.path(), "/v1.0/users/a@x.com/calendar");
    }

    #[test]
    fn roles_and_scopes_are_read() {
        let t = jwt(r#"{"roles":["Mail.Read","Mail.Send"]}"#);
        assert_eq!(
            token_permissions(&t).unwrap(),
            vec!["Mail.Read", "Mail.Send"]
        );
        assert!(require_mail_send(&t).is_ok());
        let t = jwt(r#"{"scp":"Mail.Read User.Read"}"#);
        let f = require_mail_send(&t).unwrap_err();
        assert_eq!(f.reason, Reason::MissingPermission);
        assert!(
            f.message.contains("it has: Mail.Read, User.Read"),
            "{}",
            f.message
        );
        let f = require_mail_send(&SecretString::from("opaque")).unwrap_err();
        assert_eq!(f.reason, Reason::UnexpectedResponse);
    }

    #[test]
    fn hostile_json_and_tokens_are_failures_not_panics() {
        let t = jwt(r#"{"roles":["Mail.Read"]}"#);
        let deep = "[".repeat(100_000);
        let bodies: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            vec![0xff, 0xfe],
            deep.into_bytes(),
            br#"{"id": 1e999999}"#.to_vec(),
            br#"{"error": {"code": 12}}"#.to_vec(),
            br#"{"error": "x"}"#.to_vec(),
            br#"{"id": "\ud800"}"#.to_vec(),
        ];
        for status in [0, 200, 299, 401, 403, 404, 429, 503, 999] {
            for body in &bodies {
                let _ = interpret(status, &HeaderMap::new(), body, "a@x", Folder::Inbox, &t);
            }
        }
        let tokens = [
            "",
            ".",
            "..",
            "a.\u{e9}\u{e9}\u{e9}.c",
            "a.=====.c",
            "a.e30.c",
            "a.bnVsbA.c",
            "a.WzFd.c",
        ];
        for token in tokens {
            let token = SecretString::from(token);
            let _ = token_permissions(&token);
            let _ = require_mail_send(&token);
            let denied = br#"{"error":{"code":"ErrorAccessDenied"}}"#;
            let _ = interpret(403, &HeaderMap::new(), denied, "a@x", Folder::Inbox, &token);
        }
    }

    #[test]
    fn huge_server_text_makes_a_short_message() {
        let huge = "E".repeat(100_000);
        let t = jwt(r#"{"roles":["Mail.Read"]}"#);
        let body = format!(r#"{{"error":{{"code":"{huge}"}}}}"#);
        for status in [400, 401, 403, 429, 503] {
            let f = interpret(
                status,
                &HeaderMap::new(),
                body.as_bytes(),
                "a@x",
                Folder::Inbox,
                &t,
            )
            .unwrap_err();
            assert!(f.message.len() < 1000, "{} bytes", f.message.len());
        }
        let roles: Vec<String> = (0..10_000).map(|i| format!("Role.{i}")).collect();
        let many = jwt(&serde_json::json!({ "roles": roles }).to_string());
        let f = require_mail_send(&many).unwrap_err();
        assert!(f.message.len() < 1000, "{} bytes", f.message.len());
    }

    #[test]
    fn errors_map_to_reasons() {
        let t = jwt(r#"{"roles":["Mail.Read"]}"#);
        let h = HeaderMap::new();
        let nf = br#"{"error":{"code":"MailboxNotEnabledForRESTAPI","message":"x"}}"#;
        let f = interpret(400, &h, nf, "a@x", Folder::Inbox, &t).unwrap_err();
        assert_eq!(f.reason, Reason::MailboxNotFound);
        assert!(
            f.message.contains("MailboxNotEnabledForRESTAPI"),
            "{}",
            f.message
        );
        let denied = br#"{"error":{"code":"ErrorAccessDenied","message":"Access is denied."}}"#;
        let f = interpret(403, &h, denied, "a@x", Folder::Inbox, &t).unwrap_err();
        assert_eq!(f.reason, Reason::OutOfScope);
        let no_read = jwt(r#"{"roles":["User.Read.All"]}"#);
        let f = interpret(403, &h, denied, "a@x", Folder::Inbox, &no_read).unwrap_err();
        assert_eq!(f.reason, Reason::MissingPermission);
        let f = interpret(200, &h, b"{not json", "a@x", Folder::Inbox, &t).unwrap_err();
        assert_eq!(f.reason, Reason::UnexpectedResponse);
        assert!(f.message.contains("malformed JSON"), "{}", f.message);
        assert_eq!(
            interpret(200, &h, br#"{"id":"AAMk"}"#, "a@x", Folder::Inbox, &t),
            Ok(())
        );
    }
}
