//! Property tests, cheap enough for every CI run: what must hold for any input, not only
//! the ones the example tests thought of. The deeper, open-ended search is the fuzz
//! targets in `fuzz/` (see the README).

use std::time::Duration;

use http::HeaderMap;
use kube::runtime::watcher::Event;
use mailops::api::MailboxBinding;
use mailops::cache::Guarded;
use mailops::controller::backoff::{MAX_SERVER_DELAY, with_server_delay};
use mailops::controller::fanout;
use mailops::exchange::errors::{
    MAX_SERVER_DELAY as CLIENT_MAX, MIN_SERVER_DELAY, clamp_server_delay, retry_after,
};
use mailops::redact::redact_url;
use proptest::prelude::*;
use serde_json::json;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn server_delays_are_clamped_whatever_the_server_says(secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
        let d = clamp_server_delay(Duration::new(secs, nanos));
        prop_assert!(d >= MIN_SERVER_DELAY && d <= CLIENT_MAX);
    }

    #[test]
    fn a_retry_after_header_never_panics_and_is_clamped(value in "\\PC{0,40}") {
        let mut headers = HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            headers.insert(http::header::RETRY_AFTER, v);
        }
        if let Some(d) = retry_after(&headers) {
            prop_assert!(d >= MIN_SERVER_DELAY && d <= CLIENT_MAX);
        }
    }

    #[test]
    fn the_next_attempt_is_never_sooner_than_the_backoff_nor_later_than_the_cap(
        own_ms in 0u64..600_000, server in proptest::option::of(any::<u64>())
    ) {
        let own = Duration::from_millis(own_ms);
        let d = with_server_delay(own, server.map(Duration::from_secs));
        prop_assert!(d >= own);
        prop_assert!(d <= own.max(MAX_SERVER_DELAY.mul_f64(1.1)));
    }

    #[test]
    fn a_redacted_url_keeps_no_credentials_or_query(
        user in "[a-z]{1,8}", password in "[0-9][A-Za-z0-9]{5,11}", host in "[a-z]{1,10}\\.example",
        path in "(/[a-z]{1,6}){0,3}", key in "[a-z]{1,6}", value in "[0-9][A-Za-z0-9]{5,11}",
    ) {
        let url = format!("https://{user}:{password}@{host}{path}?{key}={value}#{value}");
        let shown = redact_url(&url);
        prop_assert!(!shown.contains(&password), "{shown}");
        prop_assert!(!shown.contains(&value), "{shown}");
        prop_assert!(shown.contains(&host), "{shown}");
    }

    #[test]
    fn the_domain_of_an_address_is_its_part_after_the_last_at_lowercased(
        local in "[A-Za-z0-9.+_-]{1,20}", domain in "[A-Za-z0-9-]{1,20}(\\.[A-Za-z]{2,6}){1,2}"
    ) {
        let address = format!("{local}@{domain}");
        prop_assert_eq!(mailops::resolve::email_domain(&address), Some(domain.to_ascii_lowercase()));
        prop_assert_eq!(mailops::resolve::email_domain(&local.replace('@', "")), None);
    }

    #[test]
    fn a_ca_bundle_of_any_text_is_read_or_refused_without_being_quoted(
        body in "[A-Za-z0-9+/=\\n-]{0,200}",
        wrapped in any::<bool>(),
    ) {
        let text = if wrapped {
            format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
        } else {
            body.clone()
        };
        if let Err(e) = mailops::exchange::trust::parse_bundle(&text) {
            prop_assert!(body.len() < 12 || !e.contains(&body), "{e}");
        }
    }

    #[test]
    fn check_never_panics_on_any_text(text in "\\PC{0,300}") {
        if let Ok(docs) = mailops::check::parse_documents("prop.yaml", &text) {
            let _ = mailops::check::check_documents(&docs, false);
        }
    }

    #[test]
    fn check_never_panics_on_any_mailops_shaped_document(
        kind in prop::sample::select(vec!["EmailProvider", "ExchangeServiceAccount", "MailboxBinding"]),
        name in "\\PC{0,20}", field in "[a-zA-Z]{1,12}", value in "\\PC{0,20}",
    ) {
        let doc = json!({"apiVersion": "mailops.dev/v1alpha1", "kind": kind,
            "metadata": {"name": name, "namespace": "n"}, "spec": {field: value}});
        let text = serde_json::to_string(&doc).unwrap();
        let docs = mailops::check::parse_documents("prop.yaml", &text).unwrap();
        let _ = mailops::check::check_documents(&docs, false);
    }
}

/// One step of a random history of bindings: apply (attached to provider `p`) or delete.
#[derive(Clone, Debug)]
enum Change {
    Attach { binding: u8, provider: u8 },
    Delete { binding: u8 },
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0u8..12, 0u8..3).prop_map(|(binding, provider)| Change::Attach { binding, provider }),
        (0u8..12).prop_map(|binding| Change::Delete { binding }),
    ]
}

fn binding(i: u8, provider: u8) -> Guarded<MailboxBinding> {
    serde_json::from_value(json!({
        "apiVersion": "mailops.dev/v1alpha1", "kind": "MailboxBinding",
        "metadata": {"name": format!("b{i}"), "namespace": "ns", "generation": 1},
        "spec": {"emailAddress": "x@contoso.com", "authentication": {"credentialsSecretRef": {"name": "s"}}},
        "status": {"provider": format!("p{provider}"), "authenticatedVia": "Credentials"},
    }))
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_index_agrees_with_a_scan_of_the_cache_after_any_history(history in prop::collection::vec(change(), 0..60)) {
        let (stores, mut w) = mailops::cache::stores();
        for c in history {
            let event = match c {
                Change::Attach { binding: b, provider } => Event::Apply(binding(b, provider)),
                Change::Delete { binding: b } => Event::Delete(binding(b, 0)),
            };
            fanout::observe(&mut w.bindings, &stores, &event);
        }
        for p in 0..3u8 {
            let provider = format!("p{p}");
            let mut scanned: Vec<(String, String)> = stores
                .bindings
                .state()
                .iter()
                .filter_map(|g| g.0.as_ref().ok())
                .filter(|b| b.status.as_ref().and_then(|s| s.provider.as_deref()) == Some(provider.as_str()))
                .map(|b| ("ns".to_string(), b.metadata.name.clone().unwrap_or_default()))
                .collect();
            scanned.sort();
            prop_assert_eq!(stores.index.attached_to_provider(&provider), scanned);
        }
    }
}
