//! An HTTPS front for Microsoft Graph on 127.0.0.1 that answers `429 Too Many Requests`
//! with a chosen `Retry-After` for chosen mailboxes and forwards everything else to the
//! fake Graph behind it, recording when each mailbox was asked for.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// A running front; it stops with the test's runtime.
pub struct GraphThrottle {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
}

struct State {
    upstream: String,
    http: reqwest::Client,
    /// `Retry-After` value by mailbox (lowercase).
    throttled: HashMap<String, String>,
    /// When each mailbox was asked for.
    seen: Mutex<HashMap<String, Vec<Instant>>>,
}

impl GraphThrottle {
    /// Front `upstream` (`https://127.0.0.1:port`, whose certificate `upstream_ca`
    /// issued), serving TLS with `tls`, and throttling the mailboxes named in `throttled`
    /// with their `Retry-After` values.
    pub async fn start(
        (upstream, upstream_ca): (String, &str),
        tls: TlsAcceptor,
        throttled: &[(&str, &str)],
    ) -> GraphThrottle {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().unwrap();
        let ca = reqwest::Certificate::from_pem(upstream_ca.as_bytes()).expect("a CA");
        let http = reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()
            .expect("a client");
        let state = Arc::new(State {
            upstream,
            http,
            throttled: throttled
                .iter()
                .map(|(m, r)| (m.to_ascii_lowercase(), r.to_string()))
                .collect(),
            seen: Mutex::default(),
        });
        let serving = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = serving.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let Ok(stream) = tls.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        GraphThrottle { addr, state }
    }

    /// `https://127.0.0.1:port`.
    pub fn base(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// When `mailbox` was asked for, in order.
    pub fn requests_for(&self, mailbox: &str) -> Vec<Instant> {
        let seen = self.state.seen.lock().unwrap();
        seen.get(&mailbox.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }
}

/// The mailbox of `/v1.0/users/{mailbox}/...`, lowercase.
fn mailbox_of(path: &str) -> Option<String> {
    let segment = path.strip_prefix("/v1.0/users/")?.split('/').next()?;
    let decoded: String = url::form_urlencoded::parse(segment.as_bytes())
        .map(|(k, _)| k.into_owned())
        .next()?;
    Some(decoded.to_ascii_lowercase())
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mailbox = mailbox_of(req.uri().path());
    if let Some(mailbox) = &mailbox {
        let mut seen = state.seen.lock().unwrap();
        seen.entry(mailbox.clone())
            .or_default()
            .push(Instant::now());
    }
    if let Some(retry_after) = mailbox.as_ref().and_then(|m| state.throttled.get(m)) {
        let body = r#"{"error":{"code":"TooManyRequests","message":"Too many requests"}}"#;
        let answer = Response::builder()
            .status(429)
            .header("retry-after", retry_after.as_str())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        return Ok(answer);
    }
    Ok(forward(&state, req).await)
}

async fn forward(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let target = format!(
        "{}{}",
        state.upstream,
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut outbound = state.http.request(req.method().clone(), target);
    for (name, value) in req.headers() {
        if name != http::header::HOST {
            outbound = outbound.header(name, value);
        }
    }
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let answer = match body {
        Ok(body) => outbound.body(body).send().await,
        Err(_) => return bad_gateway(),
    };
    let Ok(answer) = answer else {
        return bad_gateway();
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        response = response.header(name, value);
    }
    let body = answer.bytes().await.unwrap_or_default();
    response.body(Full::new(body)).unwrap()
}

fn bad_gateway() -> Response<Full<Bytes>> {
    Response::builder()
        .status(502)
        .body(Full::new(Bytes::new()))
        .unwrap()
}
