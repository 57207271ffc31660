//! Addresses and URLs from user input: the email domain, the effective login, endpoint
//! overrides and their redaction. Any string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailops::api::LoginFormat;
use mailops::exchange::errors::ensure_allowed;
use mailops::redact::redact_url;
use mailops::resolve::{effective_login, email_domain};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = email_domain(text);
    for format in [
        LoginFormat::EmailAddress,
        LoginFormat::MailboxName,
        LoginFormat::Manual,
    ] {
        let _ = effective_login(format, text, Some(text));
    }
    let _ = redact_url(text);
    let _ = ensure_allowed(text, false);
    let _ = mailops::endpoints::token_url(text, text);
});
