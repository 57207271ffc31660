//! `kubectl mailops status` through kubectl's own plugin mechanism: the binary is put on
//! PATH as `kubectl-mailops`, kubectl is run with kubectl's flags after the plugin's name
//! (which kubectl hands to the plugin), and a fake API server on 127.0.0.1 records what
//! the plugin asks for. Skipped when kubectl is not installed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

const API: &str = "/apis/mailops.dev/v1alpha1";

fn kubectl_found() -> bool {
    let found = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("kubectl is missing: skipped");
    }
    found
}

fn ready() -> Value {
    json!({"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True",
        "reason": "Verified", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": 1}]})
}

fn binding(ns: &str, name: &str, provider: &str) -> Value {
    let mut status = ready();
    status["provider"] = json!(provider);
    json!({"apiVersion": "mailops.dev/v1alpha1", "kind": "MailboxBinding",
           "metadata": {"name": name, "namespace": ns, "generation": 1},
           "spec": {"emailAddress": format!("{name}@contoso.example"),
                    "authentication": {"credentialsSecretRef": {"name": "pw"}}},
           "status": status})
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "mailops.dev/v1alpha1", "kind": format!("{kind}List"),
           "metadata": {"resourceVersion": "1"}, "items": items})
}

/// The cluster's answer to a list call: one provider, bindings in `sales` and
/// `finance` (one naming a provider whose name carries an escape sequence).
fn answer(path: &str) -> Option<Value> {
    let provider = json!({"apiVersion": "mailops.dev/v1alpha1", "kind": "EmailProvider",
        "metadata": {"name": "contoso", "generation": 1},
        "spec": {"serviceType": "Exchange", "serviceAddress": "mail.contoso.example",
                 "domains": ["contoso.example"], "authentication": {"method": "Basic"}},
        "status": ready()});
    let sales = vec![binding("sales", "orders", "contoso")];
    let finance = vec![binding("finance", "payroll", "evil\u{1b}[2J")];
    let bindings = |items| Some(list("MailboxBinding", items));
    match path.strip_prefix(API)? {
        "/emailproviders" => Some(list("EmailProvider", vec![provider])),
        "/exchangeserviceaccounts" => Some(list("ExchangeServiceAccount", vec![])),
        "/mailboxbindings" => bindings([sales, finance].concat()),
        "/namespaces/sales/mailboxbindings" => bindings(sales),
        "/namespaces/finance/mailboxbindings" => bindings(finance),
        _ => None,
    }
}

/// A fake API server answering the three list calls; records every path asked for.
async fn fake_api_server() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let record = record.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let path = request.uri().path().to_string();
                record.lock().unwrap().push(path.clone());
                let (status, body) = match answer(&path) {
                    Some(body) => (200, body),
                    None => (
                        404,
                        json!({"kind": "Status", "apiVersion": "v1",
                        "status": "Failure", "reason": "NotFound", "code": 404}),
                    ),
                };
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body.to_string())))
                    .unwrap();
                async move { Ok::<_, Infallible>(response) }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (addr, seen)
}

/// A scratch directory, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "mailops-kubectl-plugin-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A kubeconfig whose current context points at nothing (a refused port), and whose
/// context `prod` points at the fake server with namespace `sales`.
fn kubeconfig(dir: &Path, server: SocketAddr) -> PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {{server: \"https://127.0.0.1:1\"}}
- name: prod
  cluster: {{server: \"http://{server}\"}}
users:
- name: admin
  user: {{token: not-a-secret}}
contexts:
- name: nowhere
  context: {{cluster: nowhere, user: admin}}
- name: prod
  context: {{cluster: prod, user: admin, namespace: sales}}
current-context: nowhere
"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `kubectl ARGS` with the plugin on PATH and `KUBECONFIG` as given.
async fn kubectl(scratch: &Path, kubeconfig_env: &Path, args: &[&str]) -> Output {
    let plugin = scratch.join("bin").join("kubectl-mailops");
    if !plugin.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_mailops"), &plugin).unwrap();
    }
    let path = format!(
        "{}:{}",
        scratch.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("kubectl");
    command
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig_env)
        .env("HOME", scratch)
        .env_remove("NO_COLOR");
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A fake cluster, a kubeconfig naming it as context `prod`, and a scratch PATH.
struct Setup {
    scratch: Scratch,
    seen: Arc<Mutex<Vec<String>>>,
    config: PathBuf,
}

impl Setup {
    /// `None` (the test is skipped) without kubectl.
    async fn start() -> Option<Setup> {
        if !kubectl_found() {
            return None;
        }
        let scratch = Scratch::new();
        let (server, seen) = fake_api_server().await;
        let config = kubeconfig(&scratch.0, server);
        Some(Setup {
            scratch,
            seen,
            config,
        })
    }

    /// `kubectl ARGS` with `KUBECONFIG` naming the kubeconfig.
    async fn kubectl(&self, args: &[&str]) -> Output {
        kubectl(&self.scratch.0, &self.config, args).await
    }

    /// The paths the fake server was asked for since the last call.
    fn asked(&self) -> Vec<String> {
        self.seen.lock().unwrap().split_off(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_mailops_status_lists_every_namespace_of_the_named_context() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    // The README's command.
    let all = setup
        .kubectl(&["mailops", "status", "-A", "--context", "prod"])
        .await;
    let text = stdout(&all);
    let stderr = String::from_utf8_lossy(&all.stderr);
    assert_eq!(all.status.code(), Some(0), "{text}{stderr}");
    for shown in [
        "EmailProvider contoso: Ready (Verified)",
        "MailboxBinding sales/orders: Ready (Verified)",
        "EmailProvider evil\\u{1b}[2J: not found",
        "MailboxBinding finance/payroll: Ready (Verified)",
    ] {
        assert!(text.contains(shown), "{shown:?} not in\n{text}");
    }
    assert!(
        !text.contains('\u{1b}'),
        "a raw escape reached the terminal: {text:?}"
    );
    assert_eq!(
        setup.asked(),
        [
            format!("{API}/emailproviders"),
            format!("{API}/exchangeserviceaccounts"),
            format!("{API}/mailboxbindings"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_n_the_plugin_shows_the_contexts_namespace() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let own = setup
        .kubectl(&["mailops", "status", "--context", "prod"])
        .await;
    assert_eq!(own.status.code(), Some(0), "{}", stdout(&own));
    assert!(!stdout(&own).contains("finance/"), "{}", stdout(&own));
    assert_eq!(
        setup.asked().last().unwrap(),
        &format!("{API}/namespaces/sales/mailboxbindings")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubeconfig_flag_wins_over_the_environment() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let elsewhere = setup.scratch.0.join("missing");
    let config = setup.config.to_str().unwrap();
    let args = [
        "mailops",
        "status",
        "-n",
        "finance",
        "--kubeconfig",
        config,
        "--context",
        "prod",
    ];
    let named = kubectl(&setup.scratch.0, &elsewhere, &args).await;
    let stderr = String::from_utf8_lossy(&named.stderr);
    assert_eq!(named.status.code(), Some(0), "{stderr}");
    assert_eq!(
        setup.asked().last().unwrap(),
        &format!("{API}/namespaces/finance/mailboxbindings")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_context_the_plugin_uses_the_current_one() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    // The current context points at a port nothing listens on: exit code 2, and the fake
    // cluster of `prod` is never asked.
    let current = setup.kubectl(&["mailops", "status", "-A"]).await;
    assert_eq!(current.status.code(), Some(2), "{}", stdout(&current));
    assert!(setup.asked().is_empty());
}
