//! Unit tests for the webhook certificates: issuing, reading back, deciding what to renew.

use super::*;

fn names() -> Vec<String> {
    hosts("mailops-webhook", "mailops-system", &["127.0.0.1".into()])
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn fresh() -> Material {
    renew(None, Renewal::All, &names(), now()).unwrap()
}

#[test]
fn nothing_yet_means_a_new_ca_and_certificate_that_then_are_kept() {
    assert_eq!(renewal(None, &names(), now()), Renewal::All);
    let m = fresh();
    assert_eq!(pem_certificates(&m.ca_bundle).len(), 1);
    assert_eq!(renewal(Some(&m), &names(), now()), Renewal::Keep);
    assert_eq!(renew(Some(&m), Renewal::Keep, &names(), now()).unwrap(), m);
}

#[test]
fn the_serving_certificate_carries_the_service_names_and_the_extra_ip() {
    let m = fresh();
    let der = pem_certificates(&m.cert).remove(0);
    let mut got = names_of(&parse(&der).unwrap());
    got.sort();
    let mut want = names();
    want.sort();
    assert_eq!(got, want);
    assert!(want.contains(&"mailops-webhook.mailops-system.svc".to_string()));
}

#[test]
fn a_serving_certificate_is_renewed_a_month_before_expiry_by_the_same_ca() {
    let m = fresh();
    let later = now() + SERVING_LIFETIME - SERVING_RENEW_BEFORE + Duration::hours(2);
    assert_eq!(renewal(Some(&m), &names(), later), Renewal::Serving);
    let renewed = renew(Some(&m), Renewal::Serving, &names(), later).unwrap();
    assert_eq!(renewed.ca_bundle, m.ca_bundle);
    assert_eq!(renewed.ca_key, m.ca_key);
    assert_ne!(renewed.cert, m.cert);
    assert_eq!(renewal(Some(&renewed), &names(), later), Renewal::Keep);
}

#[test]
fn other_names_another_ca_or_a_foreign_key_renew_the_serving_certificate() {
    let m = fresh();
    let other_names = hosts("other", "mailops-system", &[]);
    assert_eq!(renewal(Some(&m), &other_names, now()), Renewal::Serving);
    let foreign = fresh();
    let signed_elsewhere = Material {
        cert: foreign.cert.clone(),
        key: foreign.key.clone(),
        ..m.clone()
    };
    assert_eq!(
        renewal(Some(&signed_elsewhere), &names(), now()),
        Renewal::Serving
    );
    let wrong_key = Material {
        key: foreign.key,
        ..m.clone()
    };
    assert_eq!(renewal(Some(&wrong_key), &names(), now()), Renewal::Serving);
    let garbage = Material {
        cert: "garbage".into(),
        ..m
    };
    assert_eq!(renewal(Some(&garbage), &names(), now()), Renewal::Serving);
}

#[test]
fn an_expiring_ca_is_replaced_and_trusted_beside_its_successor_until_it_expires() {
    let m = fresh();
    let later = now() + CA_LIFETIME - CA_RENEW_BEFORE + Duration::days(1);
    assert_eq!(renewal(Some(&m), &names(), later), Renewal::All);
    let renewed = renew(Some(&m), Renewal::All, &names(), later).unwrap();
    let bundle = pem_certificates(&renewed.ca_bundle);
    assert_eq!(bundle.len(), 2, "new CA first, the old one after it");
    assert_eq!(bundle[1], pem_certificates(&m.ca_bundle)[0]);
    assert_eq!(renewal(Some(&renewed), &names(), later), Renewal::Keep);
    // Once the old CA has expired it leaves the bundle at the next renewal.
    let much_later = now() + CA_LIFETIME + Duration::days(1);
    let again = renew(Some(&renewed), Renewal::Serving, &names(), much_later).unwrap();
    assert_eq!(pem_certificates(&again.ca_bundle).len(), 1);
}

#[test]
fn an_unreadable_ca_or_ca_key_starts_over() {
    let m = fresh();
    let no_ca = Material {
        ca_bundle: String::new(),
        ..m.clone()
    };
    assert_eq!(renewal(Some(&no_ca), &names(), now()), Renewal::All);
    let other = fresh();
    let wrong_ca_key = Material {
        ca_key: other.ca_key,
        ..m
    };
    assert_eq!(renewal(Some(&wrong_ca_key), &names(), now()), Renewal::All);
}

#[test]
fn material_debug_never_shows_a_private_key() {
    let m = fresh();
    let shown = format!("{m:?}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    assert!(m.key.contains("PRIVATE KEY"));
}
