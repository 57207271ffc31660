//! Building the Kubernetes client the operator uses, with a tower layer that counts every
//! request by verb into `mailops_kube_requests_total`.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request};
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::config::ClusterArgs;
use crate::kube_deadline::wants_watch;
use crate::metrics::Metrics;

/// The client configuration `cluster` names: with neither flag, kube's own inference
/// (`KUBECONFIG`, `~/.kube/config`, then in-cluster); `--kubeconfig` reads that one file;
/// `--context` picks a context of the kubeconfig instead of its current one.
pub async fn config(cluster: &ClusterArgs) -> crate::Result<kube::Config> {
    let options = KubeConfigOptions {
        context: cluster.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &cluster.kubeconfig {
        None if cluster.context.is_none() => kube::Config::infer().await.map_err(|e| e.to_string()),
        None => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| e.to_string()),
        Some(path) => match Kubeconfig::read_from(path) {
            Ok(kubeconfig) => kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
    };
    config.map_err(|e| crate::Error::Config(format!("no Kubernetes configuration found: {e}")))
}

/// A client for `cluster` (see [`config`]), counting its requests by verb, each request
/// but the watches answered within `deadline` ([`crate::kube_deadline`]).
pub async fn build(
    cluster: &ClusterArgs,
    metrics: Arc<Metrics>,
    deadline: std::time::Duration,
) -> crate::Result<kube::Client> {
    let mut config = config(cluster).await?;
    config.proxy_url = api_proxy(config.proxy_url.take(), || kubeconfig_proxy_url(cluster));
    let client = ClientBuilder::try_from(config)?
        .with_layer(&crate::kube_deadline::DeadlineLayer::new(deadline))
        .with_layer(&KubeRequestMetricsLayer::new(metrics))
        .build();
    Ok(client)
}

/// The proxy for the Kubernetes API: the kubeconfig's own `proxy-url`, and nothing else.
///
/// `HTTPS_PROXY` and `NO_PROXY` are the operator's settings for Exchange and Entra ID
/// (see `exchange::clients`). kube ignores them in the cluster, but with a kubeconfig it
/// takes `HTTPS_PROXY` for the API server too, when the cluster names no `proxy-url`, so
/// an operator run outside the cluster with a proxy for Exchange would send its API calls
/// there. `inferred` is what kube chose (`None` in the cluster); the kubeconfig is only
/// read when kube chose a proxy.
fn api_proxy(
    inferred: Option<http::Uri>,
    kubeconfig: impl FnOnce() -> Option<http::Uri>,
) -> Option<http::Uri> {
    inferred.and_then(|_| kubeconfig())
}

/// The `proxy-url` of the chosen context's cluster in the kubeconfig `cluster` names, if
/// any.
fn kubeconfig_proxy_url(cluster: &ClusterArgs) -> Option<http::Uri> {
    let kubeconfig = match &cluster.kubeconfig {
        Some(path) => Kubeconfig::read_from(path).ok()?,
        None => Kubeconfig::read().ok()?,
    };
    let current = cluster
        .context
        .as_ref()
        .or(kubeconfig.current_context.as_ref())?;
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| &c.name == current)?
        .context
        .as_ref()?;
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)?
        .cluster
        .as_ref()?;
    cluster.proxy_url.as_deref()?.parse().ok()
}

/// The Kubernetes verb of a request, as RBAC and the API server's audit log name it.
///
/// Only the method, the path and the `watch` query parameter are looked at, so the
/// result is one of a fixed set: `get`, `list`, `watch`, `create`, `update`, `patch`,
/// `delete`, or `other` for anything outside the API's verbs (e.g. `OPTIONS`).
pub fn request_verb(method: &Method, path: &str, query: Option<&str>) -> &'static str {
    match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        // A DELETE on a collection is `deletecollection`; the metric folds it into delete.
        Method::DELETE => "delete",
        Method::GET | Method::HEAD => {
            let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            let rest = resource_segments(&segments);
            let legacy_watch = rest.first() == Some(&"watch");
            if legacy_watch || query.is_some_and(wants_watch) {
                "watch"
            } else if is_collection(rest) {
                "list"
            } else {
                "get"
            }
        }
        _ => "other",
    }
}

/// The path after the API prefix: `/api/v1/…` or `/apis/<group>/<version>/…`. Paths
/// outside the resource API (`/version`, discovery of `/apis`) give an empty slice.
fn resource_segments<'a>(segments: &'a [&'a str]) -> &'a [&'a str] {
    match segments.first() {
        Some(&"api") if segments.len() > 2 => &segments[2..],
        Some(&"apis") if segments.len() > 3 => &segments[3..],
        _ => &[],
    }
}

/// Whether the resource part of a path names a collection rather than one object.
///
/// `namespaces/<ns>/<resource>` is a namespaced collection; `namespaces/<name>/status`
/// and `namespaces/<name>/finalize` are subresources of one Namespace.
fn is_collection(rest: &[&str]) -> bool {
    let rest = match rest {
        ["watch", tail @ ..] => tail,
        other => other,
    };
    match rest {
        ["namespaces", _, sub] if matches!(*sub, "status" | "finalize") => false,
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail.len() == 1,
        [_resource] => true,
        _ => false,
    }
}

/// A tower layer that counts each request to the API server by verb.
#[derive(Clone)]
pub struct KubeRequestMetricsLayer {
    metrics: Arc<Metrics>,
}

impl KubeRequestMetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        KubeRequestMetricsLayer { metrics }
    }
}

impl<S> tower::Layer<S> for KubeRequestMetricsLayer {
    type Service = KubeRequestMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KubeRequestMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`KubeRequestMetricsLayer`] wraps around the client's stack.
#[derive(Clone)]
pub struct KubeRequestMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> tower::Service<Request<B>> for KubeRequestMetrics<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Counted when sent, whatever the answer: the metric measures load on the API server.
        let uri = request.uri();
        let verb = request_verb(request.method(), uri.path(), uri.query());
        self.metrics.record_kube_request(verb);
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use kube::api::{Api, ListParams, Patch, PatchParams};
    use kube::client::Body;

    fn verb(method: Method, uri: &str) -> &'static str {
        let uri: http::Uri = uri.parse().unwrap();
        request_verb(&method, uri.path(), uri.query())
    }

    #[test]
    fn get_on_one_object_is_get() {
        assert_eq!(verb(Method::GET, "/api/v1/namespaces/ns/secrets/s"), "get");
        assert_eq!(verb(Method::GET, "/api/v1/namespaces/ns"), "get");
        assert_eq!(
            verb(Method::GET, "/apis/mailops.dev/v1alpha1/emailproviders/p"),
            "get"
        );
        assert_eq!(
            verb(
                Method::GET,
                "/apis/mailops.dev/v1alpha1/namespaces/ns/mailboxbindings/b/status"
            ),
            "get"
        );
        assert_eq!(verb(Method::GET, "/api/v1/namespaces/ns/status"), "get");
        assert_eq!(verb(Method::GET, "/version"), "get");
        assert_eq!(verb(Method::GET, "/apis"), "get");
    }

    #[test]
    fn get_on_a_collection_is_list() {
        assert_eq!(verb(Method::GET, "/api/v1/namespaces"), "list");
        assert_eq!(verb(Method::GET, "/api/v1/namespaces/ns/secrets"), "list");
        assert_eq!(verb(Method::GET, "/api/v1/secrets?limit=500"), "list");
        assert_eq!(
            verb(Method::GET, "/apis/mailops.dev/v1alpha1/emailproviders"),
            "list"
        );
        assert_eq!(
            verb(
                Method::GET,
                "/apis/mailops.dev/v1alpha1/namespaces/ns/mailboxbindings?labelSelector=a%3Db"
            ),
            "list"
        );
        assert_eq!(
            verb(Method::GET, "/api/v1/namespaces/ns/secrets?watch=false"),
            "list"
        );
    }

    #[test]
    fn watch_parameter_or_legacy_watch_path_is_watch() {
        assert_eq!(
            verb(
                Method::GET,
                "/apis/mailops.dev/v1alpha1/mailboxbindings?allowWatchBookmarks=true&resourceVersion=1&watch=true"
            ),
            "watch"
        );
        assert_eq!(verb(Method::GET, "/api/v1/secrets?watch=1"), "watch");
        assert_eq!(verb(Method::GET, "/api/v1/watch/namespaces"), "watch");
    }

    #[test]
    fn write_methods_map_to_their_verbs() {
        let path = "/apis/mailops.dev/v1alpha1/emailproviders/p";
        assert_eq!(verb(Method::POST, "/api/v1/namespaces/ns/events"), "create");
        assert_eq!(verb(Method::PUT, path), "update");
        assert_eq!(verb(Method::PATCH, &format!("{path}/status")), "patch");
        assert_eq!(verb(Method::DELETE, path), "delete");
        assert_eq!(verb(Method::OPTIONS, path), "other");
    }

    fn json_response(body: serde_json::Value) -> Response<Body> {
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap()
    }

    #[tokio::test]
    async fn client_with_the_layer_counts_requests_by_verb() {
        let metrics = Arc::new(Metrics::new());
        let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = ClientBuilder::new(mock, "default")
            .with_layer(&KubeRequestMetricsLayer::new(metrics.clone()))
            .build();

        // The fake API server: answer the list, then the patch, asserting what arrives.
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("a list request");
            assert_eq!(request.method(), Method::GET);
            assert_eq!(request.uri().path(), "/api/v1/namespaces/ns/secrets");
            send.send_response(json_response(serde_json::json!({
                "apiVersion": "v1", "kind": "SecretList", "metadata": {}, "items": []
            })));
            let (request, send) = handle.next_request().await.expect("a patch request");
            assert_eq!(request.method(), Method::PATCH);
            send.send_response(json_response(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "cm", "namespace": "ns"}
            })));
        });

        let secrets: Api<Secret> = Api::namespaced(client.clone(), "ns");
        assert!(
            secrets
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty()
        );
        let maps: Api<ConfigMap> = Api::namespaced(client, "ns");
        maps.patch(
            "cm",
            &PatchParams::apply("mailops-test"),
            &Patch::Apply(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap"})),
        )
        .await
        .unwrap();
        server.await.unwrap();

        let text = metrics.encode();
        assert!(
            text.contains(r#"mailops_kube_requests_total{verb="list"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"mailops_kube_requests_total{verb="patch"} 1"#),
            "{text}"
        );
        assert!(!text.contains(r#"verb="get""#), "{text}");
    }
}
