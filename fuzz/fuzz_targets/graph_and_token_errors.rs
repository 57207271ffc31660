//! Graph answers and Entra ID's token errors: any status, body, token and description.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailops::exchange::entra::{aadsts_code, entra_failure};
use mailops::exchange::graph::{Folder, interpret, token_permissions};

fuzz_target!(|data: &[u8]| {
    let (status, rest) = match data {
        [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]) % 600, rest),
        _ => return,
    };
    let text = String::from_utf8_lossy(rest);
    let token = secrecy::SecretString::from(text.to_string());
    let headers = http::HeaderMap::new();
    let _ = interpret(
        status,
        &headers,
        rest,
        "jane@example.com",
        Folder::Inbox,
        &token,
    );
    let _ = token_permissions(&token);
    let (error, description) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = aadsts_code(description);
    let _ = entra_failure(error, Some(description));
});
