//! The fake EWS and Microsoft Graph mailbox endpoints: who the caller is, and what it may
//! open.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{Behaviour, Recorded, Reply, State, json, misbehave, reply};

/// The user name of a Basic `Authorization` header, whatever its password.
pub(super) fn basic_user(r: &Recorded) -> Option<String> {
    let basic = r.headers.get("authorization")?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(basic).ok()?).ok()?;
    Some(decoded.split_once(':')?.0.to_string())
}

/// Who the request authenticates as: `Some(name)` for a Basic user or a token.
fn authenticate(state: &State, b: &Behaviour, r: &Recorded) -> Option<String> {
    let header = r.headers.get("authorization")?;
    if let Some(basic) = header.strip_prefix("Basic ") {
        let decoded = String::from_utf8(STANDARD.decode(basic).ok()?).ok()?;
        let (user, password) = decoded.split_once(':')?;
        return (b.basic_users.get(user).map(String::as_str) == Some(password))
            .then(|| user.to_string());
    }
    let token = header.strip_prefix("Bearer ")?;
    if b.refuse_tokens || state.revoked.lock().unwrap().contains(token) {
        return None;
    }
    state
        .issued
        .lock()
        .unwrap()
        .get(token)
        .map(|identity| format!("{identity:?}"))
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

fn soap_fault(code: &str, text: &str) -> Reply {
    reply(
        500,
        "text/xml; charset=utf-8",
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:{code}</faultcode><faultstring xml:lang="en-US">{text}</faultstring><detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{code}</e:ResponseCode><e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{text}</e:Message></detail></s:Fault></s:Body></s:Envelope>"#
        ),
    )
}

fn get_folder_response(class: &str, code: &str) -> Reply {
    reply(
        200,
        "text/xml; charset=utf-8",
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="20" xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types"/></s:Header><s:Body><m:GetFolderResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages><m:GetFolderResponseMessage ResponseClass="{class}"><m:ResponseCode>{code}</m:ResponseCode><m:Folders><t:Folder><t:FolderId Id="AAMkAD" ChangeKey="AQAAAA=="/></t:Folder></m:Folders></m:GetFolderResponseMessage></m:ResponseMessages></m:GetFolderResponse></s:Body></s:Envelope>"#
        ),
    )
}

/// SOAP 1.1 section 6.1.1 and WS-I Basic Profile R1109: `SOAPAction` is a quoted string.
fn soap_action_is_quoted(r: &Recorded) -> bool {
    r.headers
        .get("soapaction")
        .is_some_and(|v| v.len() >= 2 && v.starts_with('"') && v.ends_with('"'))
}

pub(super) async fn ews(state: &State, b: &Behaviour, r: &Recorded) -> Reply {
    if !soap_action_is_quoted(r) {
        return reply(
            400,
            "text/plain",
            "SOAPAction must be a quoted string (SOAP 1.1 section 6.1.1)",
        );
    }
    if let Some(answer) = misbehave(
        &b.ews_mode,
        r#"<s:Envelope xmlns:s="x"><s:Body><m:GetFolderResponse></s:Body>"#,
    )
    .await
    {
        return answer;
    }
    let Some(caller) = authenticate(state, b, r) else {
        return reply(401, "text/plain", "");
    };
    let target = between(&r.body, "<t:SmtpAddress>", "</t:SmtpAddress>")
        .map(str::to_string)
        .unwrap_or(caller);
    let target = target.to_ascii_lowercase();
    let impersonating = r.body.contains("ExchangeImpersonation");
    if impersonating && b.denied.contains(&target) {
        return soap_fault(
            "ErrorImpersonateUserDenied",
            "The account does not have permission to impersonate the requested user.",
        );
    }
    if !b.mailboxes.contains(&target) {
        return if impersonating {
            soap_fault(
                "ErrorNonExistentMailbox",
                "The SMTP address has no mailbox associated with it.",
            )
        } else {
            get_folder_response("Error", "ErrorNonExistentMailbox")
        };
    }
    if b.denied.contains(&target) {
        return get_folder_response("Error", "ErrorAccessDenied");
    }
    get_folder_response("Success", "NoError")
}

pub(super) async fn graph(state: &State, b: &Behaviour, r: &Recorded) -> Reply {
    if let Some(answer) = misbehave(&b.graph_mode, r#"{"id": "AAMk"#).await {
        return answer;
    }
    if authenticate(state, b, r).is_none() {
        return json(
            401,
            serde_json::json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token validation failure."}}),
        );
    }
    let path = r.path.split('?').next().unwrap_or("");
    let segments: Vec<&str> = path.split('/').collect();
    // ["", "v1.0", "users", email, ...]
    let email = url::form_urlencoded::parse(segments.get(3).unwrap_or(&"").as_bytes())
        .map(|(k, _)| k.into_owned())
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if b.rest_disabled.contains(&email) {
        return json(
            404,
            serde_json::json!({"error": {"code": "MailboxNotEnabledForRESTAPI", "message": "The mailbox is either inactive, soft-deleted, or is hosted on-premise."}}),
        );
    }
    if !b.mailboxes.contains(&email) {
        return json(
            404,
            serde_json::json!({"error": {"code": "ErrorInvalidUser", "message": format!("The requested user '{email}' is invalid.")}}),
        );
    }
    if b.denied.contains(&email) {
        return json(
            403,
            serde_json::json!({"error": {"code": "ErrorAccessDenied", "message": "Access is denied. Check credentials and try again."}}),
        );
    }
    json(
        200,
        serde_json::json!({"@odata.context": "x", "id": "AAMkAGI2TG93AAA="}),
    )
}
