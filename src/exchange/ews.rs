//! Exchange Web Services: a SOAP `GetFolder` on a distinguished folder (inbox, calendar),
//! optionally impersonating the mailbox, and the reading of what EWS answers.

use std::time::Duration;

use quick_xml::Reader;
use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use secrecy::{ExposeSecret, SecretString};

use super::Failure;
use super::body::{body_failure, read_capped};
use super::errors::{
    RequestFailure, clamp_server_delay, parse_saturating, retry_after, server_text, status_failure,
    transport_failure,
};
use crate::api::conditions::Reason;
use crate::redact::redact_url;

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    /// Basic with user name and password (Exchange Server).
    Basic {
        /// User name.
        username: &'a str,
        /// Password.
        password: &'a SecretString,
    },
    /// An OAuth 2.0 bearer token.
    Bearer(&'a SecretString),
}

/// One `GetFolder` call.
pub struct FolderRequest<'a> {
    /// The EWS URL.
    pub url: &'a str,
    /// `inbox`, `calendar` or `msgfolderroot`.
    pub folder: &'a str,
    /// The mailbox to impersonate (service-account access); also sent as `X-AnchorMailbox`
    /// so Exchange Online routes the request to the mailbox's server.
    pub impersonate: Option<&'a str>,
    /// Credentials.
    pub auth: Auth<'a>,
    /// What the request is about, for messages (`the inbox of a@b`).
    pub subject: &'a str,
}

/// The `SOAPAction` header of a `GetFolder`. SOAP 1.1 section 6.1.1 and WS-I Basic
/// Profile R1109 make its value a quoted string, and strict servers refuse it bare.
const SOAP_ACTION: &str =
    r#""http://schemas.microsoft.com/exchange/services/2006/messages/GetFolder""#;

/// The SOAP envelope of a `GetFolder` on a distinguished folder.
pub fn get_folder_envelope(folder: &str, impersonate: Option<&str>) -> String {
    let impersonation = impersonate
        .map(|smtp| {
            format!(
                "<t:ExchangeImpersonation><t:ConnectingSID><t:SmtpAddress>{}</t:SmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>",
                escape(smtp)
            )
        })
        .unwrap_or_default();
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="utf-8"?>"#,
            r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" "#,
            r#"xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" "#,
            r#"xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">"#,
            r#"<soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/>{impersonation}</soap:Header>"#,
            r#"<soap:Body><m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>"#,
            r#"<m:FolderIds><t:DistinguishedFolderId Id="{folder}"/></m:FolderIds></m:GetFolder></soap:Body>"#,
            r#"</soap:Envelope>"#
        ),
        impersonation = impersonation,
        folder = escape(folder),
    )
}

/// Send one `GetFolder` and read the answer.
pub async fn get_folder(
    http: &reqwest::Client,
    request: &FolderRequest<'_>,
    timeout: Duration,
) -> Result<(), RequestFailure> {
    let mut builder = http
        .post(request.url)
        .header(CONTENT_TYPE, "text/xml; charset=utf-8")
        .header("SOAPAction", SOAP_ACTION)
        .body(get_folder_envelope(request.folder, request.impersonate));
    if let Some(mailbox) = request.impersonate {
        builder = builder.header("X-AnchorMailbox", mailbox);
    }
    builder = match &request.auth {
        Auth::Basic { username, password } => {
            builder.basic_auth(username, Some(password.expose_secret()))
        }
        Auth::Bearer(token) => builder.bearer_auth(token.expose_secret()),
    };
    let what = "EWS";
    let response = builder
        .send()
        .await
        .map_err(|e| transport_failure(what, request.url, &e, timeout))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = read_capped(response)
        .await
        .map_err(|e| body_failure(what, request.url, &e, timeout))?;
    interpret(status, &headers, &body, request).map_err(|failure| RequestFailure {
        failure,
        unauthorized: status == 401,
    })
}

/// What an EWS answer means for the folder asked for.
pub fn interpret(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    request: &FolderRequest<'_>,
) -> Result<(), Failure> {
    let url = redact_url(request.url);
    // EWS sends SOAP faults with HTTP 500; other error statuses carry no SOAP worth reading.
    if !matches!(status, 200..=299 | 500) {
        return Err(status_without_soap(status, headers, request, &url));
    }
    let parsed = match std::str::from_utf8(body)
        .map_err(|e| e.to_string())
        .and_then(parse)
    {
        Ok(parsed) => parsed,
        Err(_) if status == 500 => {
            return Err(status_failure(&format!("EWS at {url}"), 500, None));
        }
        Err(detail) => {
            return Err(Failure::new(
                Reason::UnexpectedResponse,
                format!(
                    "EWS at {url} answered HTTP {status} with malformed XML: {}",
                    server_text(&detail)
                ),
            ));
        }
    };
    classify(&parsed, request.subject, &url, retry_after(headers))
}

fn status_without_soap(
    status: u16,
    headers: &HeaderMap,
    request: &FolderRequest<'_>,
    url: &str,
) -> Failure {
    match status {
        401 => {
            let what = match request.auth {
                Auth::Basic { .. } => "the user name or password",
                Auth::Bearer(_) => "the access token",
            };
            Failure::new(
                Reason::InvalidCredentials,
                format!("EWS at {url} refused {what} (HTTP 401)"),
            )
        }
        403 => Failure::new(
            Reason::OutOfScope,
            format!(
                "EWS at {url} denied access to {} (HTTP 403)",
                request.subject
            ),
        ),
        _ => status_failure(&format!("EWS at {url}"), status, retry_after(headers)),
    }
}

/// The parts of an EWS answer that decide success.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// `ResponseClass` attributes of response messages (`Success`, `Warning`, `Error`).
    pub classes: Vec<String>,
    /// `ResponseCode` texts, from response messages and SOAP fault details.
    pub codes: Vec<String>,
    /// The first `MessageText` or `faultstring`.
    pub text: Option<String>,
    /// `BackOffMilliseconds` of an `ErrorServerBusy`.
    pub back_off_ms: Option<u64>,
    /// Whether the document was a SOAP envelope at all.
    pub is_soap: bool,
}

/// Read an EWS answer, ignoring namespaces prefixes. Fails on malformed XML.
pub fn parse(xml: &str) -> Result<Answer, String> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut answer = Answer::default();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        match event {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                note_attributes(&e, &name, &mut answer);
                path.push(name);
                text.clear();
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                note_attributes(&e, &name, &mut answer);
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::CData(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => {
                if let Some(c) = r.resolve_char_ref().map_err(|e| e.to_string())? {
                    text.push(c);
                } else {
                    let name = r.decode().map_err(|e| e.to_string())?;
                    text.push_str(resolve_predefined_entity(&name).unwrap_or_default());
                }
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                note_text(&name, text.trim(), &mut answer);
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err(format!("the document ends inside <{}>", path.join("><")));
    }
    if !answer.is_soap {
        return Err("the document is not a SOAP envelope".to_string());
    }
    Ok(answer)
}

fn note_attributes(e: &quick_xml::events::BytesStart<'_>, name: &str, answer: &mut Answer) {
    if name == "Envelope" {
        answer.is_soap = true;
    }
    if let Ok(Some(class)) = e.try_get_attribute("ResponseClass")
        && let Ok(value) = class.unescape_value()
    {
        answer.classes.push(value.into_owned());
    }
}

fn note_text(name: &str, text: &str, answer: &mut Answer) {
    match name {
        "ResponseCode" if !text.is_empty() => answer.codes.push(server_text(text).into_owned()),
        "MessageText" | "faultstring" if answer.text.is_none() && !text.is_empty() => {
            answer.text = Some(server_text(text).into_owned());
        }
        "Value" | "BackOffMilliseconds" => {
            if let Some(ms) = parse_saturating(text) {
                answer.back_off_ms.get_or_insert(ms);
            }
        }
        _ => {}
    }
}

/// Decide from the codes: the first error code wins.
fn classify(
    answer: &Answer,
    subject: &str,
    url: &str,
    retry_after: Option<Duration>,
) -> Result<(), Failure> {
    let error = answer.codes.iter().find(|c| c.as_str() != "NoError");
    let Some(code) = error else {
        if answer.codes.is_empty() && !answer.classes.iter().any(|c| c == "Success") {
            let detail = answer.text.as_deref().unwrap_or("no response code");
            return Err(Failure::new(
                Reason::UnexpectedResponse,
                format!("EWS at {url} answered without a response code: {detail}"),
            ));
        }
        return Ok(());
    };
    let (reason, detail) = match code.as_str() {
        "ErrorNonExistentMailbox" | "ErrorMailboxNotFound" | "ErrorInvalidSmtpAddress" => {
            (Reason::MailboxNotFound, format!("no mailbox for {subject}"))
        }
        "ErrorFolderNotFound" | "ErrorItemNotFound" => {
            (Reason::MailboxNotFound, format!("{subject} does not exist"))
        }
        "ErrorImpersonateUserDenied"
        | "ErrorImpersonationDenied"
        | "ErrorAccessDenied"
        | "ErrorNoApplicationImpersonationRole" => (
            Reason::OutOfScope,
            format!(
                "access denied to {subject}; the account may not impersonate or open this mailbox"
            ),
        ),
        "ErrorServerBusy" => {
            let delay = answer
                .back_off_ms
                .map(|ms| clamp_server_delay(Duration::from_millis(ms)))
                .or(retry_after);
            return Err(Failure {
                reason: Reason::Throttled,
                message: format!("EWS at {url} answered ErrorServerBusy"),
                retry_after: delay,
            });
        }
        "ErrorMailboxStoreUnavailable"
        | "ErrorMailboxMoveInProgress"
        | "ErrorInternalServerError"
        | "ErrorConnectionFailed" => (Reason::Unreachable, format!("{subject} is unavailable")),
        "ErrorInvalidCredentials" | "ErrorAuthenticationFailed" => (
            Reason::InvalidCredentials,
            "the credentials were refused".to_string(),
        ),
        _ => (
            Reason::UnexpectedResponse,
            format!("{subject} could not be opened"),
        ),
    };
    Err(Failure::new(reason, format!("EWS: {code}: {detail}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><m:GetFolderResponse xmlns:m="m"><m:ResponseMessages><m:GetFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode></m:GetFolderResponseMessage></m:ResponseMessages></m:GetFolderResponse></s:Body></s:Envelope>"#;

    fn req() -> FolderRequest<'static> {
        static PW: std::sync::OnceLock<SecretString> = std::sync::OnceLock::new();
        FolderRequest {
            url: "https://u:p@mail.contoso.com/EWS/Exchange.asmx",
            folder: "inbox",
            impersonate: Some("a@contoso.com"),
            auth: Auth::Basic {
                username: "svc",
                password: PW.get_or_init(|| SecretString::from("pw")),
            },
            subject: "the inbox of a@contoso.com",
        }
    }

    #[test]
    fn envelope_escapes_and_impersonates() {
        let xml = get_folder_envelope("calendar", Some("o'neil&co@x.com"));
        assert!(
            xml.contains("<t:SmtpAddress>o&apos;neil&amp;co@x.com</t:SmtpAddress>"),
            "{xml}"
        );
        assert!(xml.contains(r#"DistinguishedFolderId Id="calendar""#));
        assert!(parse(&xml).is_ok());
        assert!(!get_folder_envelope("inbox", None).contains("Impersonation"));
    }

    #[test]
    fn success_and_fault_codes_are_read() {
        assert_eq!(
            interpret(200, &HeaderMap::new(), OK.as_bytes(), &req()),
            Ok(())
        );
        let fault = r#"<s:Envelope xmlns:s="x"><s:Body><s:Fault><faultcode>a:ErrorImpersonateUserDenied</faultcode><faultstring xml:lang="en-US">The account does not have permission to impersonate the requested user.</faultstring><detail><e:ResponseCode xmlns:e="e">ErrorImpersonateUserDenied</e:ResponseCode></detail></s:Fault></s:Body></s:Envelope>"#;
        let f = interpret(500, &HeaderMap::new(), fault.as_bytes(), &req()).unwrap_err();
        assert_eq!(f.reason, Reason::OutOfScope);
        assert!(
            f.message.starts_with("EWS: ErrorImpersonateUserDenied:"),
            "{}",
            f.message
        );
    }

    #[test]
    fn malformed_xml_is_an_unexpected_response_without_userinfo() {
        let f = interpret(
            200,
            &HeaderMap::new(),
            b"<s:Envelope><s:Body></s:Envelope>",
            &req(),
        )
        .unwrap_err();
        assert_eq!(f.reason, Reason::UnexpectedResponse);
        assert!(f.message.contains("malformed XML"), "{}", f.message);
        assert!(!f.message.contains("u:p"), "{}", f.message);
        let f = interpret(200, &HeaderMap::new(), b"<s:Envelope><s:Body>", &req()).unwrap_err();
        assert!(f.message.contains("malformed XML"), "{}", f.message);
        let f = interpret(200, &HeaderMap::new(), b"<html>hello</html>", &req()).unwrap_err();
        assert!(f.message.contains("not a SOAP envelope"), "{}", f.message);
    }

    #[test]
    fn server_busy_carries_the_back_off() {
        let busy = r#"<s:Envelope xmlns:s="x"><s:Body><s:Fault><faultstring>busy</faultstring><detail><ResponseCode>ErrorServerBusy</ResponseCode><MessageXml><Value Name="BackOffMilliseconds">2500</Value></MessageXml></detail></s:Fault></s:Body></s:Envelope>"#;
        let f = interpret(500, &HeaderMap::new(), busy.as_bytes(), &req()).unwrap_err();
        assert_eq!(f.reason, Reason::Throttled);
        assert_eq!(f.retry_after, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn hostile_xml_is_a_failure_not_a_panic() {
        let deep = format!("{}{}", "<a>".repeat(50_000), "</a>".repeat(50_000));
        let long_name = format!("<s:Envelope><{}>", "n".repeat(100_000));
        let docs: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\xEF\xBB\xBF<s:Envelope/>".to_vec(),
            vec![0xff, 0xfe, 0x00, b'<'],
            b"<s:Envelope><ResponseCode>&#0;</ResponseCode></s:Envelope>".to_vec(),
            b"<s:Envelope><ResponseCode>&#xFFFFFFFF;</ResponseCode></s:Envelope>".to_vec(),
            b"<s:Envelope><ResponseCode>&#99999999999999999999999;</ResponseCode></s:Envelope>"
                .to_vec(),
            b"<s:Envelope><ResponseCode>&lol9;</ResponseCode></s:Envelope>".to_vec(),
            b"<!DOCTYPE x [<!ENTITY a \"&a;&a;\">]><s:Envelope>&a;</s:Envelope>".to_vec(),
            b"<s:Envelope><![CDATA[</s:Envelope>".to_vec(),
            b"<s:Envelope ResponseClass=\"&#xD800;\"/>".to_vec(),
            b"</s:Envelope>".to_vec(),
            b"<?xml version=\"1.0\"?>".to_vec(),
            deep.into_bytes(),
            long_name.into_bytes(),
        ];
        for status in [200, 401, 500, 503] {
            for doc in &docs {
                let _ = interpret(status, &HeaderMap::new(), doc, &req());
            }
        }
    }

    #[test]
    fn huge_server_text_makes_a_short_message() {
        let huge = "E".repeat(100_000);
        let code = format!(
            r#"<s:Envelope xmlns:s="x"><s:Body><ResponseCode>{huge}</ResponseCode></s:Body></s:Envelope>"#
        );
        let text = format!(
            r#"<s:Envelope xmlns:s="x"><s:Body><MessageText>{huge}</MessageText></s:Body></s:Envelope>"#
        );
        let unclosed = format!("<s:Envelope><{huge}>");
        let mismatched = format!("<s:Envelope><{huge}></x{huge}></s:Envelope>");
        for doc in [code, text, unclosed, mismatched] {
            let f = interpret(200, &HeaderMap::new(), doc.as_bytes(), &req()).unwrap_err();
            assert!(f.message.len() < 1000, "{} bytes", f.message.len());
        }
    }

    fn busy_with(back_off: &str, headers: &HeaderMap) -> Option<Duration> {
        let busy = format!(
            r#"<s:Envelope xmlns:s="x"><s:Body><s:Fault><faultstring>busy</faultstring><detail><ResponseCode>ErrorServerBusy</ResponseCode><MessageXml><Value Name="BackOffMilliseconds">{back_off}</Value></MessageXml></detail></s:Fault></s:Body></s:Envelope>"#
        );
        let f = interpret(500, headers, busy.as_bytes(), &req()).unwrap_err();
        assert_eq!(f.reason, Reason::Throttled);
        f.retry_after
    }

    #[test]
    fn server_busy_back_off_is_clamped_between_one_second_and_fifteen_minutes() {
        use crate::exchange::errors::{MAX_SERVER_DELAY, MIN_SERVER_DELAY};
        let none = HeaderMap::new();
        let cases: &[(&str, Option<Duration>)] = &[
            ("0", Some(MIN_SERVER_DELAY)),
            ("1", Some(MIN_SERVER_DELAY)),
            ("1000", Some(Duration::from_secs(1))),
            ("900000", Some(MAX_SERVER_DELAY)),
            ("900001", Some(MAX_SERVER_DELAY)),
            ("18446744073709551615", Some(MAX_SERVER_DELAY)),
            ("99999999999999999999999999", Some(MAX_SERVER_DELAY)),
            ("-5", None),
            ("soon", None),
            ("", None),
        ];
        for (back_off, expected) in cases {
            assert_eq!(busy_with(back_off, &none), *expected, "{back_off:?}");
        }
        // Without a usable back-off the Retry-After header speaks, clamped too.
        let mut header = HeaderMap::new();
        header.insert(reqwest::header::RETRY_AFTER, "0".parse().unwrap());
        assert_eq!(busy_with("garbage", &header), Some(MIN_SERVER_DELAY));
    }
}
