//! URLs made fit for a status message, an Event or a log: the pure resolver, the endpoint
//! rules and the Exchange client all name URLs a user wrote, and none may repeat a
//! password or a signature someone put in one.

/// A URL fit for a status message: userinfo, query and fragment removed (they may carry
/// credentials or signatures).
pub fn redact_url(raw: &str) -> String {
    match reqwest::Url::parse(raw) {
        Ok(mut url) => {
            // Both only fail for URLs that cannot have credentials, which is fine.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => "(an unparsable URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_and_query_never_reach_a_message() {
        let r = redact_url("https://admin:hunter2@mail.contoso.com/EWS/Exchange.asmx?sig=abc");
        assert_eq!(r, "https://mail.contoso.com/EWS/Exchange.asmx");
        assert_eq!(redact_url("not a url :: x"), "(an unparsable URL)");
    }
}
