//! The Kubernetes CEL URL library (`k8s.io/apiserver/pkg/cel/library/urls.go`) on Go's
//! `net/url`: registered over kube-cel's own, which parses with the WHATWG URL standard
//! and so judges many strings differently from the API server.

use std::collections::HashMap;
use std::sync::Arc;

use kube_cel::cel::extractors::This;
use kube_cel::cel::objects::{Key, Map, Opaque};
use kube_cel::cel::{Context, ExecutionError, ResolveResult, Value};

use super::gourl::{self, GoUrl};

/// A CEL `kubernetes.URL` value.
#[derive(Debug, PartialEq, Eq)]
struct KubeUrl(GoUrl);

impl Opaque for KubeUrl {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.URL"
    }
}

/// Register `url`, `isURL` and the URL accessors, replacing kube-cel's.
pub fn register(ctx: &mut Context<'_>) {
    ctx.add_function("url", url);
    ctx.add_function("isURL", is_url);
    ctx.add_function("getScheme", get_scheme);
    ctx.add_function("getHost", get_host);
    ctx.add_function("getHostname", get_hostname);
    ctx.add_function("getPort", get_port);
    ctx.add_function("getEscapedPath", get_escaped_path);
    ctx.add_function("getQuery", get_query);
}

/// `url(string)`: `url.ParseRequestURI` must accept it, then `url.Parse` gives the value.
fn url(text: Arc<String>) -> ResolveResult {
    let fail = |e: String| {
        ExecutionError::function_error(
            "url",
            format!("URL parse error during conversion from string: {e}"),
        )
    };
    gourl::parse_request_uri(&text).map_err(fail)?;
    let parsed = gourl::parse_reference(&text).map_err(fail)?;
    Ok(Value::Opaque(Arc::new(KubeUrl(parsed))))
}

/// `isURL(string)`: whether `url.ParseRequestURI` accepts it.
fn is_url(text: Arc<String>) -> ResolveResult {
    Ok(Value::Bool(gourl::parse_request_uri(&text).is_ok()))
}

fn this_url(value: &Value) -> Result<&GoUrl, ExecutionError> {
    match value {
        Value::Opaque(o) => o
            .downcast_ref::<KubeUrl>()
            .map(|u| &u.0)
            .ok_or_else(|| ExecutionError::function_error("url", "no such overload")),
        _ => Err(ExecutionError::function_error("url", "no such overload")),
    }
}

fn text(bytes: &[u8]) -> Value {
    Value::String(Arc::new(String::from_utf8_lossy(bytes).into_owned()))
}

fn get_scheme(This(this): This<Value>) -> ResolveResult {
    Ok(text(&this_url(&this)?.scheme))
}

fn get_host(This(this): This<Value>) -> ResolveResult {
    Ok(text(&this_url(&this)?.host))
}

fn get_hostname(This(this): This<Value>) -> ResolveResult {
    Ok(text(this_url(&this)?.hostname()))
}

fn get_port(This(this): This<Value>) -> ResolveResult {
    Ok(text(this_url(&this)?.port()))
}

fn get_escaped_path(This(this): This<Value>) -> ResolveResult {
    Ok(text(&this_url(&this)?.escaped_path()))
}

fn get_query(This(this): This<Value>) -> ResolveResult {
    let query = this_url(&this)?.query();
    let map: HashMap<Key, Value> = query
        .into_iter()
        .map(|(key, values)| {
            let key = Key::String(Arc::new(String::from_utf8_lossy(&key).into_owned()));
            (
                key,
                Value::List(Arc::new(values.iter().map(|v| text(v)).collect())),
            )
        })
        .collect();
    Ok(Value::Map(Map { map: Arc::new(map) }))
}
