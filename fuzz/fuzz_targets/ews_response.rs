//! The EWS response parser and its interpretation for every HTTP status: any body, any
//! status, any `Retry-After`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailops::exchange::ews::{Auth, FolderRequest, interpret, parse};

fuzz_target!(|data: &[u8]| {
    let (status, rest) = match data {
        [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]) % 600, rest),
        _ => return,
    };
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = parse(text);
    }
    let mut headers = http::HeaderMap::new();
    if let Some(v) = rest
        .get(..8)
        .and_then(|b| http::HeaderValue::from_bytes(b).ok())
    {
        headers.insert(http::header::RETRY_AFTER, v);
    }
    let request = FolderRequest {
        url: "https://mail.example.com/EWS/Exchange.asmx",
        folder: "inbox",
        impersonate: Some("jane@example.com"),
        auth: Auth::Bearer(&secrecy::SecretString::from("t")),
        subject: "the inbox of jane@example.com",
    };
    let _ = interpret(status, &headers, rest, &request);
});
