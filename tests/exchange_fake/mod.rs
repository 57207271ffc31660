//! A fake Entra ID + EWS + Microsoft Graph on 127.0.0.1 (random port), configured per
//! test, counting what it receives. It answers the way the real services do for the
//! cases mailops cares about (error codes, statuses, headers), and can throttle, hang,
//! send malformed bodies, or hold mailbox requests until the test opens a gate. It serves
//! HTTPS with a certificate from a CA generated at start-up, as production is HTTPS.
#![allow(dead_code)]

pub mod connect_proxy;
mod entra;
pub mod harness;
mod mailbox;
pub mod tls;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use tls::{ServerCert, TestCa};

/// Marker inside every access token the fake issues, to look for in logs.
pub const TOKEN_MARKER: &str = "FAKETOKENSIGNATURE";

/// One app registration.
#[derive(Clone, Debug)]
pub struct App {
    /// Its client secret.
    pub secret: String,
    /// Application roles its tokens carry.
    pub roles: Vec<String>,
}

/// What redeeming a refresh token gives.
#[derive(Clone, Debug)]
pub struct Grant {
    /// The refresh token returned (rotation when different from the one sent).
    pub returns: String,
    /// Delegated scopes of the access token.
    pub scp: String,
}

/// How one service answers, beyond its normal behaviour.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Normal answers.
    #[default]
    Normal,
    /// HTTP 429 with this `Retry-After` value.
    Throttle(String),
    /// HTTP 200 with a broken body.
    Malformed,
    /// Never answer.
    Hang,
    /// HTTP 200 with a body of [`OVERSIZED_BODY`] bytes, sent in chunks without a
    /// `Content-Length`, the way an endpoint streaming without end would start.
    Oversized,
}

/// The size of a [`Mode::Oversized`] body: twice the client's limit.
pub const OVERSIZED_BODY: usize = 2 * mailops::exchange::body::MAX_RESPONSE_BODY;

/// The fake's configuration; tests change it between calls.
#[derive(Clone, Debug)]
pub struct Behaviour {
    /// Known tenants.
    pub tenants: HashSet<String>,
    /// App registrations by client ID.
    pub apps: HashMap<String, App>,
    /// Valid refresh tokens.
    pub refresh_tokens: HashMap<String, Grant>,
    /// `expires_in` of issued tokens.
    pub expires_in: u64,
    /// Appended to every app access token issued (to issue malformed tokens).
    pub token_suffix: String,
    /// Basic users and passwords.
    pub basic_users: HashMap<String, String>,
    /// Existing mailboxes (lowercase).
    pub mailboxes: HashSet<String>,
    /// EWS and Graph refuse every access token with 401, as after an app's tokens are
    /// revoked or its permissions withdrawn.
    pub refuse_tokens: bool,
    /// Mailboxes outside the caller's scope (EWS impersonation denied, Graph 403).
    pub denied: HashSet<String>,
    /// Mailboxes Graph refuses with `MailboxNotEnabledForRESTAPI`.
    pub rest_disabled: HashSet<String>,
    /// Per service.
    pub token_mode: Mode,
    /// EWS.
    pub ews_mode: Mode,
    /// Graph.
    pub graph_mode: Mode,
    /// When set, EWS and Graph mailbox requests wait for a permit before answering.
    pub gate: Option<Arc<Semaphore>>,
    /// When set, token requests wait for a permit before answering (after being counted).
    pub token_gate: Option<Arc<Semaphore>>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            tenants: HashSet::from(["contoso".to_string()]),
            apps: HashMap::new(),
            refresh_tokens: HashMap::new(),
            expires_in: 3600,
            token_suffix: String::new(),
            basic_users: HashMap::new(),
            mailboxes: HashSet::new(),
            refuse_tokens: false,
            denied: HashSet::new(),
            rest_disabled: HashSet::new(),
            token_mode: Mode::Normal,
            ews_mode: Mode::Normal,
            graph_mode: Mode::Normal,
            gate: None,
            token_gate: None,
        }
    }
}

impl Behaviour {
    /// Add an app.
    pub fn app(mut self, client_id: &str, secret: &str, roles: &[&str]) -> Self {
        self.apps.insert(
            client_id.into(),
            App {
                secret: secret.into(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
            },
        );
        self
    }

    /// Add mailboxes.
    pub fn mailboxes(mut self, addresses: &[&str]) -> Self {
        self.mailboxes
            .extend(addresses.iter().map(|a| a.to_ascii_lowercase()));
        self
    }

    /// Add a Basic user.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.basic_users.insert(name.into(), password.into());
        self
    }
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lowercase.
    pub headers: HashMap<String, String>,
    /// Body as text.
    pub body: String,
    /// When it arrived.
    pub at: std::time::Instant,
}

struct State {
    behaviour: Mutex<Behaviour>,
    recorded: Mutex<Vec<Recorded>>,
    token_requests: AtomicUsize,
    issued: Mutex<HashMap<String, Identity>>,
    revoked: Mutex<HashSet<String>>,
    in_flight: watch::Sender<usize>,
    max_in_flight: AtomicUsize,
    /// TLS handshakes completed (one per connection a client opened).
    handshakes: AtomicUsize,
    /// TLS handshakes the client broke off (it refused the certificate).
    refused_handshakes: AtomicUsize,
}

#[derive(Clone, Debug)]
enum Identity {
    App,
    Delegated,
}

/// A running fake.
pub struct FakeExchange {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    scheme: &'static str,
    ca_pem: Option<String>,
}

/// The names the fake's default certificate is valid for.
pub const FAKE_NAMES: &[&str] = &["127.0.0.1", "localhost"];

impl FakeExchange {
    /// Start on a random port of 127.0.0.1, serving HTTPS with a certificate for
    /// [`FAKE_NAMES`] from a CA of its own (see [`FakeExchange::ca_pem`]).
    pub async fn start(behaviour: Behaviour) -> FakeExchange {
        let ca = TestCa::new("Fake Exchange Test Root CA");
        let mut fake = Self::serve(behaviour, Some(ca.server(FAKE_NAMES))).await;
        fake.ca_pem = Some(ca.pem);
        fake
    }

    /// Start serving HTTPS with `cert` (good, expired, for another name, from another CA).
    pub async fn start_tls(behaviour: Behaviour, cert: ServerCert) -> FakeExchange {
        Self::serve(behaviour, Some(cert)).await
    }

    /// Start serving plain http, for the one test of `--allow-insecure-endpoints`.
    pub async fn start_plain(behaviour: Behaviour) -> FakeExchange {
        Self::serve(behaviour, None).await
    }

    async fn serve(behaviour: Behaviour, cert: Option<ServerCert>) -> FakeExchange {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            behaviour: Mutex::new(behaviour),
            recorded: Mutex::default(),
            token_requests: AtomicUsize::new(0),
            issued: Mutex::default(),
            revoked: Mutex::default(),
            in_flight: watch::channel(0).0,
            max_in_flight: AtomicUsize::new(0),
            handshakes: AtomicUsize::new(0),
            refused_handshakes: AtomicUsize::new(0),
        });
        let scheme = if cert.is_some() { "https" } else { "http" };
        accept_loop(listener, cert, state.clone());
        FakeExchange {
            addr,
            state,
            scheme,
            ca_pem: None,
        }
    }

    /// Answer on a second port of 127.0.0.1 with another certificate, sharing everything
    /// else (the tokens it issued, the counts): an authority and a mailbox server of one
    /// organisation, each with its own CA. Returns `https://127.0.0.1:<port>`.
    pub async fn listen_also(&self, cert: ServerCert) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        accept_loop(listener, Some(cert), self.state.clone());
        format!("https://{addr}")
    }

    /// `https://127.0.0.1:<port>` (`http://` when started plain).
    pub fn base(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The same, by the name `localhost`.
    pub fn base_by_name(&self) -> String {
        format!("{}://localhost:{}", self.scheme, self.addr.port())
    }

    /// The PEM of the CA the fake's certificate comes from, when [`FakeExchange::start`]
    /// generated it.
    pub fn ca_pem(&self) -> &str {
        self.ca_pem
            .as_deref()
            .expect("a fake started with its own CA")
    }

    /// TLS handshakes completed: the connections clients opened.
    pub fn handshakes(&self) -> usize {
        self.state.handshakes.load(Ordering::SeqCst)
    }

    /// TLS handshakes a client broke off, refusing the certificate.
    pub fn refused_handshakes(&self) -> usize {
        self.state.refused_handshakes.load(Ordering::SeqCst)
    }

    /// Change the behaviour.
    pub fn update(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.behaviour.lock().unwrap());
    }

    /// Revoke every access token issued so far: EWS and Graph answer them with 401.
    /// Tokens issued later are good.
    pub fn revoke_tokens(&self) {
        let issued = self.state.issued.lock().unwrap();
        self.state
            .revoked
            .lock()
            .unwrap()
            .extend(issued.keys().cloned());
    }

    /// Token requests received.
    pub fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// Everything received so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.state.recorded.lock().unwrap().clone()
    }

    /// Requests received on a path prefix.
    pub fn requests_to(&self, prefix: &str) -> Vec<Recorded> {
        self.recorded()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }

    /// When EWS received a request logging in as Basic user `user`, in order.
    pub fn basic_logins(&self, user: &str) -> Vec<std::time::Instant> {
        self.requests_to("/EWS/")
            .into_iter()
            .filter(|r| mailbox::basic_user(r).is_some_and(|u| u.eq_ignore_ascii_case(user)))
            .map(|r| r.at)
            .collect()
    }

    /// Most mailbox requests (EWS, Graph) that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Mailbox requests in flight now.
    pub fn in_flight(&self) -> usize {
        *self.state.in_flight.borrow()
    }
}

/// Accept connections until the runtime stops, over TLS with `cert` when given.
fn accept_loop(listener: TcpListener, cert: Option<ServerCert>, state: Arc<State>) {
    let acceptor = cert.map(|c| c.acceptor());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Some(acceptor) = acceptor else {
                    return serve_http(stream, state).await;
                };
                match acceptor.accept(stream).await {
                    Ok(tls) => {
                        state.handshakes.fetch_add(1, Ordering::SeqCst);
                        serve_http(tls, state).await
                    }
                    Err(_) => {
                        state.refused_handshakes.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
}

async fn serve_http<I>(io: I, state: Arc<State>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handle(state.clone(), req));
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// Counts a mailbox request in flight for as long as its handler lives (a client that
/// gives up drops the handler, and the count with it).
struct InFlight(Arc<State>);

impl InFlight {
    fn enter(state: &Arc<State>) -> InFlight {
        state.in_flight.send_modify(|v| {
            *v += 1;
            state.max_in_flight.fetch_max(*v, Ordering::SeqCst);
        });
        InFlight(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.send_modify(|v| *v -= 1);
    }
}

type Reply = Response<BoxBody<Bytes, Infallible>>;

fn reply(status: u16, content_type: &str, body: impl Into<String>) -> Reply {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body.into())).boxed())
        .unwrap()
}

/// [`OVERSIZED_BODY`] bytes in 64 KiB chunks; a streamed body has no `Content-Length`.
fn oversized(content_type: &str) -> Reply {
    const CHUNK: usize = 64 * 1024;
    let chunk = Bytes::from(vec![b' '; CHUNK]);
    let frames =
        futures::stream::repeat_with(move || Ok::<_, Infallible>(Frame::data(chunk.clone())))
            .take(OVERSIZED_BODY / CHUNK);
    Response::builder()
        .status(200)
        .header("content-type", content_type)
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .unwrap()
}

fn json(status: u16, body: serde_json::Value) -> Reply {
    reply(status, "application/json; charset=utf-8", body.to_string())
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let recorded = Recorded {
        method,
        path: path.clone(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: std::time::Instant::now(),
    };
    state.recorded.lock().unwrap().push(recorded.clone());
    let behaviour = state.behaviour.lock().unwrap().clone();
    let answer = if path.ends_with("/oauth2/v2.0/token") {
        state.token_requests.fetch_add(1, Ordering::SeqCst);
        hold(&behaviour.token_gate).await;
        entra::token(&state, &behaviour, &recorded).await
    } else if path.starts_with("/EWS/") && recorded.method == "POST" {
        let _counted = InFlight::enter(&state);
        hold(&behaviour.gate).await;
        mailbox::ews(&state, &behaviour, &recorded).await
    } else if path.starts_with("/v1.0/users/") {
        let _counted = InFlight::enter(&state);
        hold(&behaviour.gate).await;
        mailbox::graph(&state, &behaviour, &recorded).await
    } else if path.starts_with("/EWS/") {
        // EWS answers an unauthenticated GET with 401, like IIS does.
        reply(401, "text/plain", "")
    } else {
        json(
            404,
            serde_json::json!({"error": {"code": "ResourceNotFound"}}),
        )
    };
    Ok(answer)
}

async fn hold(gate: &Option<Arc<Semaphore>>) {
    if let Some(gate) = gate {
        let _permit = gate.acquire().await.unwrap();
    }
}

/// Common misbehaviour; `None` when the service should answer normally.
async fn misbehave(mode: &Mode, malformed: &str) -> Option<Reply> {
    match mode {
        Mode::Normal => None,
        Mode::Throttle(retry_after) => Some(
            Response::builder()
                .status(429)
                .header("retry-after", retry_after.as_str())
                .header("content-type", "application/json")
                .body(
                    Full::new(Bytes::from(
                        r#"{"error":{"code":"TooManyRequests","message":"Too many requests"}}"#,
                    ))
                    .boxed(),
                )
                .unwrap(),
        ),
        Mode::Malformed => Some(reply(200, "text/xml; charset=utf-8", malformed)),
        Mode::Oversized => Some(oversized("application/json")),
        Mode::Hang => {
            std::future::pending::<()>().await;
            None
        }
    }
}
