//! `HTTPS_PROXY` is for Exchange and Entra ID: the operator's Kubernetes client ignores it
//! (kube would take it from the environment when a kubeconfig is used), and goes through
//! a proxy only when the kubeconfig's cluster names one (`proxy-url`).
//!
//! Environment variables belong to the whole process, so this binary holds one test, which
//! sets them on a single-threaded runtime: nothing else reads them meanwhile.

mod exchange_fake;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use exchange_fake::connect_proxy::ConnectProxy;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use mailops::metrics::Metrics;

/// A stand-in API server on plain http answering `/version`, counting requests.
async fn api_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let body = r#"{"major":"1","minor":"36","gitVersion":"v1.36.0","gitCommit":"x","gitTreeState":"clean","buildDate":"2026-01-01T00:00:00Z","goVersion":"go1","compiler":"gc","platform":"linux/amd64"}"#;
                    let response = hyper::Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body)))
                        .unwrap();
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), requests)
}

fn kubeconfig(server: &str, proxy_url: Option<&str>) -> tempfile_path::Path {
    let proxy = proxy_url
        .map(|p| format!("    proxy-url: {p}\n"))
        .unwrap_or_default();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {server}\n{proxy}contexts:\n- name: fake\n  context: {{cluster: fake, user: me}}\nusers:\n- name: me\n  user: {{token: abc}}\ncurrent-context: fake\n"
    );
    tempfile_path::Path::with(&text)
}

/// A file in the temporary directory, removed when dropped.
mod tempfile_path {
    pub struct Path(pub std::path::PathBuf);

    impl Path {
        pub fn with(text: &str) -> Path {
            let name = format!(
                "mailops-kubeconfig-{}-{}",
                std::process::id(),
                rand::random::<u32>()
            );
            let path = std::env::temp_dir().join(name);
            std::fs::write(&path, text).unwrap();
            Path(path)
        }
    }

    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn the_kubernetes_api_ignores_https_proxy_and_follows_the_kubeconfigs_proxy_url() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (api, requests, proxy) = runtime.block_on(async {
        let (api, requests) = api_server().await;
        (api, requests, ConnectProxy::start().await)
    });
    // SAFETY: single-threaded: this binary's only test, on a current-thread runtime.
    unsafe { std::env::set_var("HTTPS_PROXY", proxy.url()) };

    let plain = kubeconfig(&api, None);
    unsafe { std::env::set_var("KUBECONFIG", &plain.0) };
    runtime.block_on(async {
        let client = mailops::kube_client::build(
            &Default::default(),
            Arc::new(Metrics::new()),
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
        let version = client.apiserver_version().await.unwrap();
        assert_eq!(version.git_version, "v1.36.0");
    });
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    assert_eq!(
        proxy.tunnels(),
        Vec::<String>::new(),
        "HTTPS_PROXY was used"
    );

    let proxied = kubeconfig(&api, Some(&proxy.url()));
    unsafe { std::env::set_var("KUBECONFIG", &proxied.0) };
    runtime.block_on(async {
        let client = mailops::kube_client::build(
            &Default::default(),
            Arc::new(Metrics::new()),
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
        client.apiserver_version().await.unwrap();
    });
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    let server = api.trim_start_matches("http://").to_string();
    assert_eq!(proxy.tunnels(), vec![server], "the kubeconfig's proxy-url");
}
