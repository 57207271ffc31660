//! `mailops check`'s input: any bytes as a YAML stream, parsed and validated exactly as
//! the command does. Nothing may panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(documents) = mailops::check::parse_documents("fuzz.yaml", text) {
        let _ = mailops::check::check_documents(&documents, false);
    }
});
