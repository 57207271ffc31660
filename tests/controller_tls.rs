//! A private-CA provider through the whole path: the provider controller reads its
//! `caBundleFrom` ConfigMap from the (mock) API server and the real Exchange client
//! verifies the fake's HTTPS certificate against it. A bundle without the fake's CA is
//! `CertificateUntrusted`; the ConfigMap's new version, holding it, makes the provider
//! Ready. Nothing else trusts that CA, so only the bundle read from the ConfigMap can.

mod exchange_fake;
mod mock_api;

use exchange_fake::tls::TestCa;
use exchange_fake::{Behaviour, FakeExchange};
use mailops::exchange::client::ExchangeClient;
use mock_api::*;

const PROVIDER_STATUS: &str = "/apis/mailops.dev/v1alpha1/emailproviders/onprem/status";
const KEY: &str = "trust-bundle.pem";

/// A Basic Exchange provider at the fake, trusting the bundle of `certs/roots` (and the
/// public roots, which do not hold the fake's CA).
fn onprem(fake: &FakeExchange) -> Value {
    let base = fake.base();
    json!({
        "apiVersion": API, "kind": "EmailProvider",
        "metadata": {"name": "onprem", "generation": 1, "finalizers": ["mailops.dev/in-use"]},
        "spec": {
            "serviceType": "Exchange", "serviceAddress": "127.0.0.1",
            "endpoints": {"authority": base, "graph": base, "ews": format!("{base}/EWS/Exchange.asmx")},
            "authentication": {"method": "Basic"},
            "tls": {"caBundleFrom": {"configMapKeyRef":
                {"namespace": "certs", "name": "roots", "key": KEY}}},
        },
        "status": {},
    })
}

fn get_roots(version: &str, pem: &str) -> Step {
    let map = config_map_object("certs", "roots", &[(KEY, pem)], version);
    step(
        Method::GET,
        "/api/v1/namespaces/certs/configmaps/roots",
        |_, _| {},
        serde_json::to_value(map).unwrap(),
    )
}

fn status(ready: &'static str, reason: &'static str, written: Arc<Mutex<Value>>, p: Value) -> Step {
    step(
        Method::PATCH,
        PROVIDER_STATUS,
        move |_, body| {
            assert_eq!(condition(body, "Ready")["status"], ready, "{body}");
            assert_eq!(condition(body, "Reachable")["reason"], reason, "{body}");
            *written.lock().unwrap() = body["status"].clone();
        },
        p,
    )
}

/// A controller context over the mock API server with the real Exchange client (HTTPS
/// only, as in production), its caches' writers, and the mock's handle.
fn context() -> (Arc<Context>, Writers, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let config = OperatorConfig {
        identity: "test".into(),
        ..exchange_fake::harness::config(Duration::from_secs(10), 8)
    };
    let metrics = Arc::new(Metrics::new());
    let exchange = ExchangeClient::new(&config, metrics.clone()).unwrap();
    let (stores, writers) = cache::stores();
    let ctx = Context::new(client, Arc::new(exchange), config, metrics, stores);
    (Arc::new(ctx), writers, handle)
}

fn bundle_at(ctx: &Context, writers: &mut Writers, version: &str) {
    let meta = config_map_object("certs", "roots", &[], version)
        .metadata
        .into_response_partial::<ConfigMap>();
    fanout::observe(&mut writers.config_maps, &ctx.stores, &Event::Apply(meta));
}

#[tokio::test]
async fn a_private_ca_provider_is_verified_only_with_the_bundle_from_its_config_map() {
    let fake = FakeExchange::start(Behaviour::default().user("svc", "pw")).await;
    let (ctx, mut writers, handle) = context();
    let p = onprem(&fake);
    let obj = stored(&mut writers.providers, &ctx.stores, p.clone());
    bundle_at(&ctx, &mut writers, "1");
    let other = TestCa::new("Some Other Root CA");
    let written = Arc::new(Mutex::new(Value::Null));
    let v = Verifier::start(
        handle,
        vec![
            get_roots("1", &other.pem),
            status("False", "CertificateUntrusted", written.clone(), p.clone()),
            event_step("default", "Warning", "CertificateUntrusted"),
            get_roots("2", fake.ca_pem()),
            status("True", "Verified", Arc::default(), p.clone()),
            event_step("default", "Normal", "Verified"),
        ],
    );
    let err = run(controller::reconcile_provider(obj, ctx.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some(Reason::CertificateUntrusted));
    let message = err.to_string();
    assert!(
        message.contains("Fake Exchange Test Root CA"),
        "the issuer is named: {message}"
    );

    // trust-manager adds the fake's CA to the bundle: a new version of the ConfigMap.
    bundle_at(&ctx, &mut writers, "2");
    let mut current = p;
    current["status"] = written.lock().unwrap().clone();
    let obj = stored(&mut writers.providers, &ctx.stores, current);
    run(controller::reconcile_provider(obj, ctx.clone()))
        .await
        .unwrap();
    assert!(
        !fake.requests_to("/EWS/").is_empty(),
        "EWS answered over TLS"
    );
    v.done().await;
}
