//! The admission webhook on a real API server, served in-process on 127.0.0.1 from the
//! operator's caches with its own CA (the keeper sets the caBundle), registered with
//! `clientConfig.url`:
//!
//! ```sh
//! KUBECONFIG=~/.kube/config cargo test --test e2e_webhook -- --ignored --nocapture
//! ```
//!
//! The kubeconfig's user must be a cluster admin who may impersonate `alice`, `bob` and
//! `carol`. The client-authentication test also needs an API server started with an
//! `AdmissionConfiguration` that gives it a webhook client certificate (see the README,
//! "Client authentication of the API server"), and the CA that signed it:
//! `MAILOPS_E2E_WEBHOOK_CLIENT_CA=/path/ca.crt` (and `MAILOPS_E2E_WEBHOOK_CLIENT_NAME`,
//! the certificate's CN, if it should be checked). The aggregated-roles test renders the
//! chart's ClusterRoles (with the chart tests' Python: `MAILOPS_CHART_PYTHON`, else
//! `target/chart-venv/bin/python`, else `python3`, with helm-python-sdk) and needs the
//! cluster's kube-controller-manager, which aggregates them into the built-in `edit`.
//! The webhook configuration only selects objects labelled for this run (its namespace
//! and its cluster-scoped objects), so other tests on the cluster never reach it, and a
//! guard deletes it, and everything else, even when a step fails. The controllers do not
//! run (they would reconcile other tests' objects): the test writes `status.provider`
//! as the binding controller would once attached.

mod e2e_support;

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use mailops::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
use mailops::cache::Stores;
use mailops::config::{OperatorConfig, WebhookConfig};
use mailops::health::HealthState;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;

const LABEL: &str = "mailops-webhook-e2e";
const API: &str = "mailops.dev/v1alpha1";
// The chart's matchConditions (tests/chart/test_chart.py checks the chart's are these).
const USES_SERVICE_ACCOUNT: &str = "has(object.spec) && has(object.spec.authentication) && has(object.spec.authentication.serviceAccountRef)";

struct Names {
    suffix: String,
    ns: String,
    provider: String,
    account: String,
    domain: String,
    configuration: String,
    use_role: String,
    /// The Helm release name the chart's aggregated ClusterRoles are rendered for.
    release: String,
}

impl Names {
    /// Names for one run; `prefix` tells the tests' leftovers apart.
    fn new(prefix: &str) -> Names {
        let suffix = format!("{:08x}", rand::random::<u32>());
        Names {
            ns: format!("{prefix}-{suffix}"),
            provider: format!("wh-{suffix}"),
            account: format!("wh-svc-{suffix}"),
            domain: format!("wh-{suffix}.example.com"),
            configuration: format!("mailops-wh-e2e-{suffix}"),
            use_role: format!("mailops-wh-use-{suffix}"),
            release: format!("mailops-wh-{suffix}"),
            suffix,
        }
    }

    fn labels(&self) -> Value {
        json!({ LABEL: self.suffix })
    }
}

/// Removes what the test made, the webhook configuration first, even after a failure.
struct Cleanup {
    client: Client,
    names: Names,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(self.remove());
        });
    }
}

impl Cleanup {
    async fn remove(&self) {
        let n = &self.names;
        let dp = DeleteParams::default();
        let c = &self.client;
        let _ = Api::<ValidatingWebhookConfiguration>::all(c.clone())
            .delete(&n.configuration, &dp)
            .await;
        let _ = Api::<ClusterRoleBinding>::all(c.clone())
            .delete(&n.use_role, &dp)
            .await;
        for role in [
            n.use_role.clone(),
            format!("{}-view", n.release),
            format!("{}-edit", n.release),
        ] {
            let _ = Api::<ClusterRole>::all(c.clone()).delete(&role, &dp).await;
        }
        let unblock = Patch::Merge(json!({"metadata": {"finalizers": null}}));
        let accounts = Api::<ExchangeServiceAccount>::all(c.clone());
        let _ = accounts.delete(&n.account, &dp).await;
        let _ = accounts
            .patch(&n.account, &PatchParams::default(), &unblock)
            .await;
        let providers = Api::<EmailProvider>::all(c.clone());
        let _ = providers.delete(&n.provider, &dp).await;
        let _ = providers
            .patch(&n.provider, &PatchParams::default(), &unblock)
            .await;
        let _ = Api::<Namespace>::all(c.clone()).delete(&n.ns, &dp).await;
    }
}

async fn create<K>(api: &Api<K>, body: Value) -> kube::Result<K>
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(body).expect("a valid object");
    api.create(&PostParams::default(), &object).await
}

/// A client acting as `user` (in group `dev`).
async fn as_user(user: &str) -> Client {
    let mut config = kube::Config::infer().await.expect("a kubeconfig");
    config.auth_info.impersonate = Some(user.to_string());
    config.auth_info.impersonate_groups = Some(vec!["dev".into(), "system:authenticated".into()]);
    Client::try_from(config).expect("an impersonating client")
}

/// Poll `check` until it holds (the watch caches and the API server's webhook cache
/// follow changes asynchronously), failing after `limit`.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn webhook(
    name: &str,
    url: &str,
    policy: &str,
    rule: Value,
    conditions: Value,
    n: &Names,
) -> Value {
    json!({
        "name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None",
        "failurePolicy": policy, "timeoutSeconds": 5,
        "clientConfig": {"url": url},
        "rules": [rule],
        "matchConditions": conditions,
        // Only this run's objects: its namespace, and cluster-scoped objects by label.
        "namespaceSelector": {"matchLabels": n.labels()},
        "objectSelector": {"matchLabels": n.labels()},
    })
}

fn configuration(n: &Names, port: u16) -> Value {
    let url = format!("https://127.0.0.1:{port}/validate");
    let rule = |ops: &[&str], resources: &[&str], scope: &str| {
        json!({
        "apiGroups": ["mailops.dev"], "apiVersions": ["*"], "operations": ops,
        "resources": resources, "scope": scope})
    };
    let not_sent_to_use =
        format!("request.resource.resource != 'mailboxbindings' || !({USES_SERVICE_ACCOUNT})");
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": n.configuration},
        "webhooks": [
            webhook("use.mailops.dev", &url, "Fail", rule(&["CREATE", "UPDATE"], &["mailboxbindings"], "Namespaced"),
                    json!([{"name": "uses-a-service-account", "expression": USES_SERVICE_ACCOUNT}]), n),
            webhook("warnings.mailops.dev", &url, "Ignore",
                    rule(&["CREATE", "UPDATE"], &["emailproviders", "exchangeserviceaccounts", "mailboxbindings"], "*"),
                    json!([{"name": "not-sent-to-use", "expression": not_sent_to_use}]), n),
            webhook("deletion.mailops.dev", &url, "Ignore",
                    rule(&["DELETE"], &["emailproviders", "exchangeserviceaccounts"], "Cluster"), json!([]), n),
        ]
    })
}

fn binding(n: &Names, name: &str, local: &str, auth: Value) -> Value {
    json!({"apiVersion": API, "kind": "MailboxBinding",
           "metadata": {"name": name, "namespace": n.ns, "labels": n.labels()},
           "spec": {"emailAddress": format!("{local}@{}", n.domain), "authentication": auth}})
}

fn via_account(n: &Names) -> Value {
    json!({"serviceAccountRef": {"name": n.account}})
}

fn own_credentials() -> Value {
    json!({"credentialsSecretRef": {"name": "creds"}})
}

async fn setup_rbac(client: &Client, n: &Names) {
    create(
        &Api::<ClusterRole>::all(client.clone()),
        json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": n.use_role},
        "rules": [{"apiGroups": ["mailops.dev"], "resources": ["exchangeserviceaccounts"],
                   "resourceNames": [n.account], "verbs": ["use"]}]}),
    )
    .await
    .unwrap();
    create(&Api::<ClusterRoleBinding>::all(client.clone()), json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": n.use_role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": n.use_role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]})).await.unwrap();
    create(
        &Api::<Role>::namespaced(client.clone(), &n.ns),
        json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "bindings"},
        "rules": [{"apiGroups": ["mailops.dev"], "resources": ["mailboxbindings"],
                   "verbs": ["create", "get", "list", "update", "patch", "delete"]}]}),
    )
    .await
    .unwrap();
    create(
        &Api::<RoleBinding>::namespaced(client.clone(), &n.ns),
        json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "bindings"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "bindings"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"},
                     {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]}),
    )
    .await
    .unwrap();
}

async fn setup_objects(client: &Client, n: &Names) {
    create(
        &Api::<EmailProvider>::all(client.clone()),
        json!({
        "apiVersion": API, "kind": "EmailProvider",
        "metadata": {"name": n.provider, "labels": n.labels()},
        "spec": {"serviceType": "Exchange", "serviceAddress": "mail.example.com",
                 "domains": [n.domain], "authentication": {"method": "Basic"}}}),
    )
    .await
    .unwrap();
    create(&Api::<ExchangeServiceAccount>::all(client.clone()), json!({
        "apiVersion": API, "kind": "ExchangeServiceAccount",
        "metadata": {"name": n.account, "labels": n.labels()},
        "spec": {"providerRef": {"name": n.provider},
                 "credentials": {"basic": {"secretRef": {"namespace": n.ns, "name": "impersonation"}}},
                 "allowedNamespaces": {"names": [n.ns]}}})).await.unwrap();
}

fn refusal(result: kube::Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(kube::Error::Api(status)) => status.message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster"]
async fn the_webhook_guards_use_and_deletion_and_warns_on_a_real_api_server() {
    let (client, cleanup) = prepare("mailops-wh").await;
    let n = &cleanup.names;
    let webhook = start_webhook(&client, n, None).await;
    use_is_needed_only_to_link_through_the_account(n).await;
    unresolvable_bindings_are_admitted_with_a_warning(n).await;
    deletion_is_refused_while_in_use(&client, n, &webhook.stores).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster whose API server presents a webhook client certificate"]
async fn with_client_authentication_the_webhook_still_answers_the_api_server() {
    let Some(ca) = std::env::var_os("MAILOPS_E2E_WEBHOOK_CLIENT_CA").map(PathBuf::from) else {
        // Only an API server configured for it presents a webhook client certificate.
        println!(
            "SKIPPED: set MAILOPS_E2E_WEBHOOK_CLIENT_CA to the CA that signs the API server's webhook client certificate"
        );
        return;
    };
    let names: Vec<String> = std::env::var("MAILOPS_E2E_WEBHOOK_CLIENT_NAME")
        .into_iter()
        .collect();
    println!("client CA {}, names {names:?}", ca.display());
    let (client, cleanup) = prepare("mailops-whtls").await;
    let n = &cleanup.names;
    // start_webhook returns once the API server's own requests are answered: through
    // TLS that required its client certificate.
    let webhook = start_webhook(&client, n, Some((ca, names))).await;
    assert!(
        webhook.health.ready(),
        "Ready once the certificate is loaded"
    );
    use_is_needed_only_to_link_through_the_account(n).await;
    // Anyone else is refused at the handshake, before any AdmissionReview is read.
    let direct = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .post(format!("https://127.0.0.1:{}/validate", webhook.port))
        .body("{}")
        .send()
        .await;
    println!("a client without a certificate: {direct:?}");
    assert!(direct.is_err(), "{direct:?}");
}

/// The CRDs, a labelled namespace, RBAC and a provider and account, with a guard that
/// removes them all.
async fn prepare(prefix: &str) -> (Client, Cleanup) {
    let client = Client::try_default()
        .await
        .expect("a cluster in KUBECONFIG");
    e2e_support::install_crds(&client).await;
    let cleanup = Cleanup {
        client: client.clone(),
        names: Names::new(prefix),
    };
    let n = &cleanup.names;
    create(
        &Api::<Namespace>::all(client.clone()),
        json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": n.ns, "labels": n.labels()}}),
    )
    .await
    .unwrap();
    setup_rbac(&client, n).await;
    setup_objects(&client, n).await;
    (client, cleanup)
}

/// The webhook served in-process.
struct Webhook {
    stores: Stores,
    health: Arc<HealthState>,
    port: u16,
}

/// Serve the webhook on 127.0.0.1 (requiring client certificates from `client_ca`, with
/// one of its names, if given) and register it; returns once the API server calls it.
async fn start_webhook(
    client: &Client,
    n: &Names,
    client_ca: Option<(PathBuf, Vec<String>)>,
) -> Webhook {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let configurations = Api::<ValidatingWebhookConfiguration>::all(client.clone());
    create(&configurations, configuration(n, port))
        .await
        .unwrap();
    let caches = mailops::controller::runner::start_caches(client);
    let stores = caches.stores.clone();
    let (client_ca_file, client_names) = client_ca.unzip();
    let config = OperatorConfig {
        webhook: WebhookConfig {
            namespace: n.ns.clone(),
            secret_name: "webhook-tls".into(),
            configuration_name: n.configuration.clone(),
            extra_hosts: vec!["127.0.0.1".into()],
            client_ca_file,
            client_names: client_names.unwrap_or_default(),
            ..WebhookConfig::default()
        },
        ..OperatorConfig::default()
    };
    let health = Arc::new(HealthState::with_webhook());
    health.set_caches_synced();
    let (served_client, served_stores, served_health) =
        (client.clone(), stores.clone(), health.clone());
    tokio::spawn(async move {
        let _caches = caches;
        let served = mailops::webhook::serve_on(
            listener,
            &config,
            served_client,
            served_stores,
            served_health,
        );
        served.await
    });
    // The keeper sets the caBundle; the API server then calls us (after its own cache of
    // webhook configurations follows).
    eventually("the caBundle", Duration::from_secs(60), || async {
        let c = configurations.get(&n.configuration).await.unwrap();
        c.webhooks
            .unwrap_or_default()
            .iter()
            .all(|w| w.client_config.ca_bundle.is_some())
    })
    .await;
    let bob = Api::<MailboxBinding>::namespaced(as_user("bob").await, &n.ns);
    let probe: MailboxBinding =
        serde_json::from_value(binding(n, "probe", "probe", via_account(n))).unwrap();
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    eventually("the webhook to answer", Duration::from_secs(60), || async {
        matches!(bob.create(&dry_run, &probe).await,
                 Err(kube::Error::Api(s)) if s.message.contains("may not use"))
    })
    .await;
    Webhook {
        stores,
        health,
        port,
    }
}

async fn use_is_needed_only_to_link_through_the_account(n: &Names) {
    let alice = Api::<MailboxBinding>::namespaced(as_user("alice").await, &n.ns);
    let bob = Api::<MailboxBinding>::namespaced(as_user("bob").await, &n.ns);
    let message = refusal(create(&bob, binding(n, "ceo", "ceo", via_account(n))).await);
    println!("bob, through the account: {message}");
    for needle in [
        "user \"bob\" may not use ExchangeServiceAccount",
        &format!("\"{}\"", n.account),
        "\"use\"",
        "README",
    ] {
        assert!(message.contains(needle), "{needle:?} not in {message}");
    }
    create(&alice, binding(n, "helpdesk", "helpdesk", via_account(n)))
        .await
        .expect("alice has use");
    create(&bob, binding(n, "bob-own", "bob", own_credentials()))
        .await
        .expect("own credentials need no use");
    // Toggling a switch of a service-account binding needs no use; relinking it does.
    let toggle = Patch::Merge(json!({"spec": {"enableSending": true}}));
    bob.patch("helpdesk", &PatchParams::default(), &toggle)
        .await
        .expect("a switch needs no use");
    let relink = Patch::Merge(json!({"spec": {"emailAddress": format!("ceo@{}", n.domain)}}));
    let message = refusal(
        bob.patch("helpdesk", &PatchParams::default(), &relink)
            .await,
    );
    assert!(message.contains("may not use"), "{message}");
    alice
        .patch("helpdesk", &PatchParams::default(), &relink)
        .await
        .expect("alice may relink");
}

async fn unresolvable_bindings_are_admitted_with_a_warning(n: &Names) {
    let bob = as_user("bob").await;
    let mut stray = binding(n, "stray", "stray", own_credentials());
    stray["spec"]["emailAddress"] = json!(format!("x@nowhere-{}.example.org", n.suffix));
    let request = http::Request::post(format!(
        "/apis/mailops.dev/v1alpha1/namespaces/{}/mailboxbindings",
        n.ns
    ))
    .header("content-type", "application/json")
    .body(kube::client::Body::from(
        serde_json::to_vec(&stray).unwrap(),
    ))
    .unwrap();
    let response = bob.send(request).await.expect("an answer");
    let warnings: Vec<String> = response
        .headers()
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect();
    println!("warnings: {warnings:?}");
    assert_eq!(response.status().as_u16(), 201, "admitted");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("ProviderNotFound: no EmailProvider lists domain nowhere-")),
        "{warnings:?}"
    );
}

/// What the binding controller writes once a binding is attached.
async fn attach_as_the_controller_would(client: &Client, n: &Names) {
    let bindings = Api::<MailboxBinding>::namespaced(client.clone(), &n.ns);
    for (name, via) in [
        (
            "helpdesk",
            json!({"authenticatedVia": "ServiceAccount", "serviceAccount": n.account}),
        ),
        ("bob-own", json!({"authenticatedVia": "Credentials"})),
    ] {
        let mut status = via;
        status["provider"] = json!(n.provider);
        bindings
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .unwrap();
    }
}

async fn deletion_is_refused_while_in_use(client: &Client, n: &Names, stores: &Stores) {
    use mailops::cache::usage::{of_account, of_provider};
    attach_as_the_controller_would(client, n).await;
    let bindings = Api::<MailboxBinding>::namespaced(client.clone(), &n.ns);
    eventually(
        "the caches to see both attached",
        Duration::from_secs(30),
        || async { of_provider(stores, &n.provider).total() == 3 },
    )
    .await;
    let providers = Api::<EmailProvider>::all(client.clone());
    let accounts = Api::<ExchangeServiceAccount>::all(client.clone());
    let dp = DeleteParams::default();
    let message = refusal(providers.delete(&n.provider, &dp).await);
    println!("delete provider: {message}");
    // Counts only: the refusal may reach anyone who can call the webhook.
    let expected = format!(
        "EmailProvider \"{p}\" is used by 3 object(s) (1 ExchangeServiceAccount(s), 2 MailboxBinding(s)); list them with `kubectl get mbx -A --field-selector status.provider={p}; kubectl get esa --field-selector spec.providerRef.name={p}`",
        p = n.provider,
    );
    assert!(message.contains(&expected), "{message}");
    assert!(!message.contains("helpdesk"), "{message}");
    // The listing the refusal shows works: the CRD's selectable fields on a real server.
    let by_provider = ListParams::default().fields(&format!("status.provider={}", n.provider));
    let mut listed: Vec<String> = Api::<MailboxBinding>::all(client.clone())
        .list(&by_provider)
        .await
        .unwrap()
        .items
        .iter()
        .map(|b| b.name_any())
        .collect();
    listed.sort();
    assert_eq!(listed, ["bob-own", "helpdesk"]);
    let message = refusal(accounts.delete(&n.account, &dp).await);
    assert!(
        message
            .contains("is used by 1 object(s) (0 ExchangeServiceAccount(s), 1 MailboxBinding(s))"),
        "{message}"
    );
    for name in ["helpdesk", "bob-own", "stray"] {
        bindings.delete(name, &dp).await.unwrap();
    }
    eventually(
        "the caches to see the bindings gone",
        Duration::from_secs(30),
        || async {
            of_account(stores, &n.account).is_empty()
                && of_provider(stores, &n.provider).total() == 1
        },
    )
    .await;
    accounts
        .delete(&n.account, &dp)
        .await
        .expect("an unused account may go");
    eventually(
        "the caches to see the account gone",
        Duration::from_secs(30),
        || async { of_provider(stores, &n.provider).is_empty() },
    )
    .await;
    providers
        .delete(&n.provider, &dp)
        .await
        .expect("an unused provider may go");
}

/// The chart tests' venv (`target/chart-venv`, as `.ci/run` makes it), made and filled
/// from `tests/chart/requirements.txt` when it is missing or lacks Helm's SDK.
fn chart_venv(root: &std::path::Path) -> PathBuf {
    let python = root.join("target/chart-venv/bin/python");
    let run = |program: &std::path::Path, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .current_dir(root)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !python.exists() {
        assert!(
            run("python3".as_ref(), &["-m", "venv", "target/chart-venv"]),
            "python3 -m venv"
        );
    }
    if !run(&python, &["-c", "import helm_python"]) {
        let install = [
            "-m",
            "pip",
            "install",
            "--quiet",
            "-r",
            "tests/chart/requirements.txt",
        ];
        assert!(
            run(&python, &install),
            "pip install -r tests/chart/requirements.txt"
        );
    }
    python
}

/// The chart's aggregated ClusterRoles for `release`, rendered by Helm's own SDK.
fn render_aggregated_roles(release: &str) -> Vec<Value> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("MAILOPS_CHART_PYTHON")
        .unwrap_or_else(|_| chart_venv(root).display().to_string());
    let out = std::process::Command::new(&python)
        .arg(root.join("tests/chart/render.py"))
        .args(["--release", release, "aggregated-rbac.yaml"])
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e}"));
    assert!(
        out.status.success(),
        "rendering the chart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Whether the built-in `edit` ClusterRole lets its holders create MailboxBindings (the
/// aggregation controller copies the rules over shortly after the roles appear).
async fn edit_aggregates_bindings(client: &Client) -> bool {
    let Ok(edit) = Api::<ClusterRole>::all(client.clone()).get("edit").await else {
        return false;
    };
    edit.rules.unwrap_or_default().iter().any(|r| {
        r.api_groups.iter().flatten().any(|g| g == "mailops.dev")
            && r.resources.iter().flatten().any(|x| x == "mailboxbindings")
            && r.verbs.iter().any(|v| v == "create")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster"]
async fn a_namespace_editor_links_mailboxes_with_own_credentials_through_the_chart_roles() {
    let client = Client::try_default()
        .await
        .expect("a cluster in KUBECONFIG");
    e2e_support::install_crds(&client).await;
    let cleanup = Cleanup {
        client: client.clone(),
        names: Names::new("wh-rbac"),
    };
    let n = &cleanup.names;
    create(
        &Api::<Namespace>::all(client.clone()),
        json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": n.ns, "labels": n.labels()}}),
    )
    .await
    .unwrap();
    // carol holds nothing but the built-in `edit`, in this namespace only.
    create(
        &Api::<RoleBinding>::namespaced(client.clone(), &n.ns),
        json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "carol-edits"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "carol"}]}),
    )
    .await
    .unwrap();
    setup_rbac(&client, n).await;
    setup_objects(&client, n).await;
    let carol = as_user("carol").await;
    editing_bindings_needs_the_chart_roles(&client, n, &carol).await;
    // Nothing cluster-scoped: a namespace editor creates no provider.
    let provider = json!({"apiVersion": API, "kind": "EmailProvider",
        "metadata": {"name": format!("{}-carol", n.provider)},
        "spec": {"serviceType": "Exchange", "serviceAddress": "mail.example.com",
                 "domains": [format!("carol.{}", n.domain)], "authentication": {"method": "Basic"}}});
    let message = refusal(create(&Api::<EmailProvider>::all(carol.clone()), provider).await);
    assert!(message.contains("forbidden"), "{message}");
    // Through the service account, the webhook refuses what RBAC now allows.
    let _webhook = start_webhook(&client, n, None).await;
    let bindings = Api::<MailboxBinding>::namespaced(carol, &n.ns);
    let message = refusal(create(&bindings, binding(n, "carol-ceo", "ceo", via_account(n))).await);
    println!("carol, through the account: {message}");
    assert!(
        message.contains("user \"carol\" may not use ExchangeServiceAccount"),
        "{message}"
    );
}

/// carol, with `edit` alone, is refused a binding by RBAC until the chart's aggregated
/// roles are applied; then she may create one with her own credentials and list them.
async fn editing_bindings_needs_the_chart_roles(client: &Client, n: &Names, carol: &Client) {
    let bindings = Api::<MailboxBinding>::namespaced(carol.clone(), &n.ns);
    let own = binding(n, "carol-own", "carol", own_credentials());
    let message = refusal(create(&bindings, own.clone()).await);
    assert!(message.contains("forbidden"), "{message}");
    let roles = render_aggregated_roles(&n.release);
    assert_eq!(roles.len(), 2, "{roles:?}");
    for role in roles {
        create(&Api::<ClusterRole>::all(client.clone()), role)
            .await
            .unwrap();
    }
    eventually(
        "edit to aggregate the chart's roles",
        Duration::from_secs(60),
        || edit_aggregates_bindings(client),
    )
    .await;
    create(&bindings, own)
        .await
        .expect("an editor may link a mailbox with its own credentials");
    assert_eq!(
        bindings
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .len(),
        1,
        "and read the namespace's bindings"
    );
    // `mailops status -n` shows her those, saying providers are hidden from her.
    let scope = mailops::status::cli::Scope::Namespace(n.ns.clone());
    let snapshot = mailops::status::cli::collect(carol, &scope).await.unwrap();
    assert!(snapshot.cluster_scoped_forbidden);
    assert_eq!(snapshot.bindings.len(), 1);
}
