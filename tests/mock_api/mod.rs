//! The mock API server shared by the reconciler scenario tests (the kube-rs controller-rs
//! `ApiServerVerifier` pattern): every request a reconcile makes is checked for method,
//! path and body, and a request nobody expected fails the test. Each test file uses part.
#![allow(dead_code, unused_imports)]

pub use std::collections::BTreeMap;
pub use std::sync::{Arc, Mutex};
pub use std::time::Duration;

pub use http::{Method, Request, Response};
pub use k8s_openapi::ByteString;
pub use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
pub use kube::client::Body;
pub use kube::core::PartialObjectMetaExt;
pub use kube::runtime::controller::Action;
pub use kube::runtime::reflector::store::Writer;
pub use kube::runtime::watcher::Event;
pub use kube::{Client, Resource};
pub use mailops::api::conditions::{Reason, find};
pub use mailops::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
pub use mailops::cache::{self, Guarded, Stores, Writers};
pub use mailops::config::OperatorConfig;
pub use mailops::controller::{self, Context, fanout};
pub use mailops::exchange::fake::FakeBackend;
pub use mailops::exchange::{Failure, MailBackend};
pub use mailops::metrics::Metrics;
pub use serde_json::{Value, json};

pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// Assertions on one request's query string and JSON body.
pub type Check = Box<dyn FnOnce(&str, &Value) + Send>;

/// One expected request and the answer to give.
pub struct Step {
    pub method: Method,
    pub path: String,
    pub check: Check,
    pub status: u16,
    pub respond: Value,
}

pub fn step(
    method: Method,
    path: &str,
    check: impl FnOnce(&str, &Value) + Send + 'static,
    respond: Value,
) -> Step {
    Step {
        method,
        path: path.to_string(),
        check: Box::new(check),
        status: 200,
        respond,
    }
}

/// Serves the expected steps in order, then records (and fails) any further request.
pub struct Verifier {
    pub expected: usize,
    pub served: tokio::sync::watch::Receiver<usize>,
    pub unexpected: Arc<Mutex<Vec<String>>>,
    pub task: tokio::task::JoinHandle<()>,
}

fn is_event(method: &Method, path: &str) -> bool {
    method == Method::POST && path.contains("/events")
}

async fn serve_step(
    request: Request<Body>,
    send: tower_test::mock::SendResponse<Response<Body>>,
    step: Step,
) {
    assert_eq!(request.method(), step.method, "method of {}", request.uri());
    assert_eq!(request.uri().path(), step.path, "path");
    let query = request.uri().query().unwrap_or_default().to_string();
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (step.check)(&query, &body);
    send.send_response(
        Response::builder()
            .status(step.status)
            .body(Body::from(serde_json::to_vec(&step.respond).unwrap()))
            .unwrap(),
    );
}

impl Verifier {
    /// Serve `steps` in order; Events, which the controllers send beside their
    /// reconciles, are served in their own order among themselves.
    pub fn start(mut handle: Handle, steps: Vec<Step>) -> Self {
        let unexpected = Arc::new(Mutex::new(Vec::new()));
        let seen = unexpected.clone();
        let expected = steps.len();
        let (count, served) = tokio::sync::watch::channel(0usize);
        let (mut events, mut ordered): (
            std::collections::VecDeque<Step>,
            std::collections::VecDeque<Step>,
        ) = steps
            .into_iter()
            .partition(|s| is_event(&s.method, &s.path));
        let task = tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let queue = if is_event(request.method(), request.uri().path()) {
                    &mut events
                } else {
                    &mut ordered
                };
                match queue.pop_front() {
                    Some(step) => {
                        serve_step(request, send, step).await;
                        count.send_modify(|n| *n += 1);
                    }
                    None => {
                        seen.lock().unwrap().push(format!(
                            "{} {}",
                            request.method(),
                            request.uri()
                        ));
                        send.send_response(
                            Response::builder()
                                .status(500)
                                .body(Body::from(b"{}".to_vec()))
                                .unwrap(),
                        );
                    }
                }
            }
        });
        Verifier {
            expected,
            served,
            unexpected,
            task,
        }
    }

    /// All expected steps were served (Events may come just after the reconcile) and
    /// nothing else was asked.
    pub async fn done(mut self) {
        let expected = self.expected;
        let all_served = self.served.wait_for(|n| *n >= expected);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), all_served).await;
        let unexpected = self.unexpected.lock().unwrap().clone();
        assert!(unexpected.is_empty(), "unexpected requests: {unexpected:?}");
        if self.task.is_finished() {
            // The step loop panicked (a failed assertion): surface it.
            self.task.await.unwrap();
        } else {
            self.task.abort();
        }
        let served = *self.served.borrow();
        assert_eq!(served, self.expected, "expected requests that never came");
    }
}

pub struct Harness {
    pub ctx: Arc<Context>,
    pub writers: Writers,
    pub backend: Arc<FakeBackend>,
    pub handle: Option<Handle>,
}

pub fn harness() -> Harness {
    harness_with(OperatorConfig {
        identity: "test".into(),
        ..OperatorConfig::default()
    })
}

pub fn harness_with(config: OperatorConfig) -> Harness {
    harness_with_backend(config, FakeBackend::new())
}

pub fn harness_with_backend(config: OperatorConfig, backend: FakeBackend) -> Harness {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    harness_over(client, handle, config, backend)
}

/// A harness whose client puts the operator's deadline on every request but watches,
/// as `mailops run` does.
pub fn harness_with_deadline(deadline: Duration) -> Harness {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::client::ClientBuilder::new(service, "default")
        .with_layer(&mailops::kube_deadline::DeadlineLayer::new(deadline))
        .build();
    let config = OperatorConfig {
        identity: "test".into(),
        ..OperatorConfig::default()
    };
    harness_over(client, handle, config, FakeBackend::new())
}

fn harness_over(
    client: Client,
    handle: Handle,
    config: OperatorConfig,
    backend: FakeBackend,
) -> Harness {
    let backend = Arc::new(backend);
    let (stores, writers) = cache::stores();
    let ctx = Context::new(
        client,
        backend.clone() as Arc<dyn MailBackend>,
        config,
        Arc::new(Metrics::new()),
        stores,
    );
    Harness {
        ctx: Arc::new(ctx),
        writers,
        backend,
        handle: Some(handle),
    }
}

/// Put an object into a reflector store and the indexes, through the same path as a
/// watch event, and hand it to a reconcile.
pub fn stored<K>(writer: &mut Writer<Guarded<K>>, stores: &Stores, v: Value) -> Arc<Guarded<K>>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned,
    Guarded<K>: fanout::Triggered,
{
    let g: Guarded<K> = serde_json::from_value(v).unwrap();
    fanout::observe(writer, stores, &Event::Apply(g.clone()));
    Arc::new(g)
}

impl Harness {
    pub fn verifier(&mut self, steps: Vec<Step>) -> Verifier {
        Verifier::start(self.handle.take().expect("one verifier per harness"), steps)
    }

    pub fn provider(&mut self, v: Value) -> Arc<Guarded<EmailProvider>> {
        stored(&mut self.writers.providers, &self.ctx.stores, v)
    }

    pub fn account(&mut self, v: Value) -> Arc<Guarded<ExchangeServiceAccount>> {
        stored(&mut self.writers.service_accounts, &self.ctx.stores, v)
    }

    pub fn binding(&mut self, v: Value) -> Arc<Guarded<MailboxBinding>> {
        stored(&mut self.writers.bindings, &self.ctx.stores, v)
    }

    pub fn secret(&mut self, ns: &str, name: &str, data: &[(&str, &str)]) {
        self.secret_at(ns, name, data, "1");
    }

    /// Delete a binding, as the watch would.
    pub fn delete_binding(&mut self, b: &Guarded<MailboxBinding>) {
        fanout::observe(
            &mut self.writers.bindings,
            &self.ctx.stores,
            &Event::Delete(b.clone()),
        );
    }

    /// A Secret at a given resourceVersion: its metadata as the watch delivers a change,
    /// and its data held as the GET of the next reconcile that reads it would return it.
    pub fn secret_at(&mut self, ns: &str, name: &str, data: &[(&str, &str)], version: &str) {
        let s = secret_object(ns, name, data, version);
        self.secret_meta_at(ns, name, version);
        self.ctx.stores.secret_data.hold(s);
    }

    /// Only the metadata of a Secret, as the watch delivers it (its data is read with a
    /// GET when a reconcile needs it).
    pub fn secret_meta_at(&mut self, ns: &str, name: &str, version: &str) {
        let meta = secret_object(ns, name, &[], version)
            .metadata
            .into_response_partial::<Secret>();
        fanout::observe(
            &mut self.writers.secrets,
            &self.ctx.stores,
            &Event::Apply(meta),
        );
    }

    /// Only the metadata of a ConfigMap, as the watch delivers it (its data is read with a
    /// GET when a reconcile needs it); the triggers that change causes.
    pub fn config_map_meta_at(&mut self, ns: &str, name: &str, version: &str) -> fanout::Triggers {
        let meta = config_map_object(ns, name, &[], version)
            .metadata
            .into_response_partial::<ConfigMap>();
        fanout::observe(
            &mut self.writers.config_maps,
            &self.ctx.stores,
            &Event::Apply(meta),
        )
    }

    pub fn namespace(&mut self, name: &str, labels: &[(&str, &str)]) {
        let mut n = Namespace::default();
        n.metadata.name = Some(name.into());
        n.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        );
        fanout::observe(
            &mut self.writers.namespaces,
            &self.ctx.stores,
            &Event::Apply(n),
        );
    }
}

/// A consistent LIST of `resource` (`mailboxbindings`, `exchangeserviceaccounts`) by the
/// field selector `field=value`, answered with the metadata of `found` (`(namespace,
/// name)`, namespace empty for a cluster-scoped kind).
pub fn quorum_list(resource: &str, field: &str, value: &str, found: &[(&str, &str)]) -> Step {
    let selector = format!(
        "fieldSelector={}",
        format!("{field}={value}").replace('=', "%3D")
    );
    let items: Vec<Value> = found
        .iter()
        .map(|(ns, name)| {
            let mut meta = json!({"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"});
            if !ns.is_empty() {
                meta["namespace"] = json!(ns);
            }
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": meta})
        })
        .collect();
    step(
        Method::GET,
        &format!("/apis/mailops.dev/v1alpha1/{resource}"),
        move |query, _| {
            assert!(query.contains(&selector), "{query} lacks {selector}");
            assert!(
                !query.contains("resourceVersion"),
                "a consistent read: {query}"
            );
        },
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
               "metadata": {"resourceVersion": "7"}, "items": items}),
    )
}

/// A Secret as the API server returns it.
pub fn secret_object(ns: &str, name: &str, data: &[(&str, &str)], version: &str) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.metadata.namespace = Some(ns.into());
    s.metadata.resource_version = Some(version.into());
    s.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect(),
    );
    s
}

/// A ConfigMap as the API server returns it.
pub fn config_map_object(ns: &str, name: &str, data: &[(&str, &str)], version: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    c.metadata.namespace = Some(ns.into());
    c.metadata.resource_version = Some(version.into());
    c.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    c
}

pub const API: &str = "mailops.dev/v1alpha1";

pub fn ready_status() -> Value {
    json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Verified", "message": "ok",
        "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"}]})
}

pub fn basic_provider(name: &str, domains: &[&str]) -> Value {
    json!({
        "apiVersion": API, "kind": "EmailProvider",
        "metadata": {"name": name, "generation": 1, "finalizers": ["mailops.dev/in-use"]},
        "spec": {"serviceType": "Exchange", "serviceAddress": "mail.contoso.com",
                 "domains": domains, "authentication": {"method": "Basic"}},
        "status": ready_status(),
    })
}

pub fn own_credentials_binding(ns: &str, name: &str, email: &str, secret: &str) -> Value {
    json!({
        "apiVersion": API, "kind": "MailboxBinding",
        "metadata": {"name": name, "namespace": ns, "generation": 1},
        "spec": {"emailAddress": email, "authentication": {"credentialsSecretRef": {"name": secret}}},
    })
}

pub fn condition<'a>(body: &'a Value, type_: &str) -> &'a Value {
    body["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {body}"))
}

pub fn is_status_apply(query: &str) {
    assert!(query.contains("fieldManager=mailops"), "{query}");
    assert!(query.contains("force=true"), "{query}");
}

pub fn event_step(ns: &str, type_: &'static str, reason: &'static str) -> Step {
    Step {
        method: Method::POST,
        path: format!("/apis/events.k8s.io/v1/namespaces/{ns}/events"),
        check: Box::new(move |_, body| {
            assert_eq!(body["type"], type_, "{body}");
            assert_eq!(body["reason"], reason, "{body}");
            assert_eq!(body["reportingController"], "mailops");
        }),
        status: 201,
        respond: json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": ns}, "eventTime": "2026-01-01T00:00:00.000000Z"}),
    }
}

/// Requests an API server received, as `(path, body)`.
pub type Writes = Arc<Mutex<Vec<(String, Value)>>>;

/// An API server that accepts every write, answering a status write with `object` and an
/// Event with itself, and records each as `(path, body)`; for scenarios of many writes.
pub fn accepting_api(handle: Handle, object: Value) -> Writes {
    accepting_api_with(handle, move |_| object.clone())
}

/// [`accepting_api`] answering a write to an object with `object_at(path)`.
pub fn accepting_api_with(
    mut handle: Handle,
    object_at: impl Fn(&str) -> Value + Send + 'static,
) -> Writes {
    let writes = Arc::new(Mutex::new(Vec::new()));
    let seen = writes.clone();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let path = request.uri().path().to_string();
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let answer = if path.ends_with("/events") {
                bytes.to_vec()
            } else {
                serde_json::to_vec(&object_at(&path)).unwrap()
            };
            seen.lock().unwrap().push((path, body));
            send.send_response(Response::builder().body(Body::from(answer)).unwrap());
        }
    });
    writes
}

/// `Action` keeps its delay private; its Debug form is `Action { requeue_after: Some(1.5s) }`.
pub fn requeue_seconds(action: &Action) -> f64 {
    let text = format!("{action:?}");
    let start = text.find("Some(").expect("a requeue") + 5;
    let end = start + text[start..].find("s)").expect("seconds");
    text[start..end].parse().expect("a number of seconds")
}

pub async fn run<F, T>(fut: F) -> T
where
    F: std::future::Future<Output = T>,
{
    // A reconcile waiting on a request no step answers would hang: fail instead.
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("reconcile finished")
}

/// A Ready Microsoft 365 provider with its app secret, and `team-a/jane`'s refresh token.
pub fn oauth2_provider_and_jane_with_a_refresh_token(h: &mut Harness) {
    let p = json!({
        "apiVersion": API, "kind": "EmailProvider",
        "metadata": {"name": "m365", "generation": 1, "finalizers": ["mailops.dev/in-use"]},
        "spec": {"serviceType": "Microsoft365", "domains": ["contoso.com"],
                 "authentication": {"method": "OAuth2", "oauth2": {"clientId": "app", "tenantId": "contoso.com",
                    "clientSecretRef": {"namespace": "mailops-system", "name": "app"}}}},
        "status": ready_status(),
    });
    h.provider(p);
    h.secret("mailops-system", "app", &[("client-secret", "app-secret")]);
    h.secret("team-a", "jane", &[("refreshToken", "old-token")]);
}
