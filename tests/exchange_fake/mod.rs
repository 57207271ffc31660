//! A fake Entra ID + EWS + Microsoft Graph on 127.0.0.1 (random port), configured per
//! test, counting what it receives. It answers the way the real services do for the
//! cases mailops cares about (error codes, statuses, headers), and can throttle, hang,
//! send malformed bodies, or hold mailbox requests until the test opens a gate.
#![allow(dead_code)]

pub mod harness;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

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
}

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
    /// Basic users and passwords.
    pub basic_users: HashMap<String, String>,
    /// Existing mailboxes (lowercase).
    pub mailboxes: HashSet<String>,
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
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            tenants: HashSet::from(["contoso".to_string()]),
            apps: HashMap::new(),
            refresh_tokens: HashMap::new(),
            expires_in: 3600,
            basic_users: HashMap::new(),
            mailboxes: HashSet::new(),
            denied: HashSet::new(),
            rest_disabled: HashSet::new(),
            token_mode: Mode::Normal,
            ews_mode: Mode::Normal,
            graph_mode: Mode::Normal,
            gate: None,
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
}

struct State {
    behaviour: Mutex<Behaviour>,
    recorded: Mutex<Vec<Recorded>>,
    token_requests: AtomicUsize,
    issued: Mutex<HashMap<String, Identity>>,
    in_flight: watch::Sender<usize>,
    max_in_flight: AtomicUsize,
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
}

impl FakeExchange {
    /// Start on a random port of 127.0.0.1.
    pub async fn start(behaviour: Behaviour) -> FakeExchange {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            behaviour: Mutex::new(behaviour),
            recorded: Mutex::default(),
            token_requests: AtomicUsize::new(0),
            issued: Mutex::default(),
            in_flight: watch::channel(0).0,
            max_in_flight: AtomicUsize::new(0),
        });
        let server_state = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = server_state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeExchange { addr, state }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Change the behaviour.
    pub fn update(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.behaviour.lock().unwrap());
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

    /// Most mailbox requests (EWS, Graph) that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Mailbox requests in flight now.
    pub fn in_flight(&self) -> usize {
        *self.state.in_flight.borrow()
    }
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

type Reply = Response<Full<Bytes>>;

fn reply(status: u16, content_type: &str, body: impl Into<String>) -> Reply {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body.into())))
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
    };
    state.recorded.lock().unwrap().push(recorded.clone());
    let behaviour = state.behaviour.lock().unwrap().clone();
    let answer = if path.ends_with("/oauth2/v2.0/token") {
        state.token_requests.fetch_add(1, Ordering::SeqCst);
        token(&state, &behaviour, &recorded).await
    } else if path.starts_with("/EWS/") && recorded.method == "POST" {
        let _counted = InFlight::enter(&state);
        gate(&behaviour).await;
        ews(&state, &behaviour, &recorded).await
    } else if path.starts_with("/v1.0/users/") {
        let _counted = InFlight::enter(&state);
        gate(&behaviour).await;
        graph(&state, &behaviour, &recorded).await
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

async fn gate(behaviour: &Behaviour) {
    if let Some(gate) = &behaviour.gate {
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
                .body(Full::new(Bytes::from(
                    r#"{"error":{"code":"TooManyRequests","message":"Too many requests"}}"#,
                )))
                .unwrap(),
        ),
        Mode::Malformed => Some(reply(200, "text/xml; charset=utf-8", malformed)),
        Mode::Hang => {
            std::future::pending::<()>().await;
            None
        }
    }
}

fn form(body: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

fn entra_error(status: u16, error: &str, code: u32, text: &str) -> Reply {
    json(
        status,
        serde_json::json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: 0000 Correlation ID: 1111 Timestamp: 2026-01-01 00:00:00Z"),
            "error_codes": [code],
            "trace_id": "0000",
        }),
    )
}

fn issue(state: &State, identity: Identity, claims: serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"none"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut issued = state.issued.lock().unwrap();
    let token = format!("{header}.{payload}.{TOKEN_MARKER}{}", issued.len());
    issued.insert(token.clone(), identity);
    token
}

async fn token(state: &State, b: &Behaviour, r: &Recorded) -> Reply {
    if let Some(answer) = misbehave(&b.token_mode, "{\"access_token\": ").await {
        return answer;
    }
    let tenant = r
        .path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    if !b.tenants.contains(tenant) {
        return entra_error(
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    let f = form(&r.body);
    let client_id = f.get("client_id").cloned().unwrap_or_default();
    let Some(app) = b.apps.get(&client_id) else {
        return entra_error(
            400,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory."),
        );
    };
    if f.get("client_secret") != Some(&app.secret) {
        return entra_error(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.",
        );
    }
    match f.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {
            let access = issue(
                state,
                Identity::App,
                serde_json::json!({"appid": client_id, "roles": app.roles}),
            );
            json(
                200,
                serde_json::json!({"token_type": "Bearer", "expires_in": b.expires_in, "access_token": access}),
            )
        }
        Some("refresh_token") => {
            let sent = f.get("refresh_token").cloned().unwrap_or_default();
            let Some(grant) = b.refresh_tokens.get(&sent) else {
                return entra_error(
                    400,
                    "invalid_grant",
                    700082,
                    "The refresh token has expired due to inactivity.",
                );
            };
            let access = issue(
                state,
                Identity::Delegated,
                serde_json::json!({"appid": client_id, "scp": grant.scp}),
            );
            json(
                200,
                serde_json::json!({
                    "token_type": "Bearer",
                    "expires_in": b.expires_in,
                    "access_token": access,
                    "refresh_token": grant.returns,
                    "scope": grant.scp,
                }),
            )
        }
        _ => entra_error(400, "unsupported_grant_type", 70003, "unsupported grant"),
    }
}

/// Who the request authenticates as: `Some(name)` for a Basic user or a token.
fn authenticate(state: &State, b: &Behaviour, r: &Recorded) -> Option<String> {
    let header = r.headers.get("authorization")?;
    if let Some(basic) = header.strip_prefix("Basic ") {
        let decoded = String::from_utf8(STANDARD.decode(basic).ok()?).ok()?;
        let (user, password) = decoded.split_once(':')?;
        return (b.basic_users.get(user).map(String::as_str) == Some(password))
            .then(|| user.to_string());
    }
    let token = header.strip_prefix("Bearer ")?;
    state
        .issued
        .lock()
        .unwrap()
        .get(token)
        .map(|identity| format!("{identity:?}"))
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

fn soap_fault(code: &str, text: &str) -> Reply {
    reply(
        500,
        "text/xml; charset=utf-8",
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:{code}</faultcode><faultstring xml:lang="en-US">{text}</faultstring><detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{code}</e:ResponseCode><e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{text}</e:Message></detail></s:Fault></s:Body></s:Envelope>"#
        ),
    )
}

fn get_folder_response(class: &str, code: &str) -> Reply {
    reply(
        200,
        "text/xml; charset=utf-8",
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="20" xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types"/></s:Header><s:Body><m:GetFolderResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages><m:GetFolderResponseMessage ResponseClass="{class}"><m:ResponseCode>{code}</m:ResponseCode><m:Folders><t:Folder><t:FolderId Id="AAMkAD" ChangeKey="AQAAAA=="/></t:Folder></m:Folders></m:GetFolderResponseMessage></m:ResponseMessages></m:GetFolderResponse></s:Body></s:Envelope>"#
        ),
    )
}

async fn ews(state: &State, b: &Behaviour, r: &Recorded) -> Reply {
    if let Some(answer) = misbehave(
        &b.ews_mode,
        r#"<s:Envelope xmlns:s="x"><s:Body><m:GetFolderResponse></s:Body>"#,
    )
    .await
    {
        return answer;
    }
    let Some(caller) = authenticate(state, b, r) else {
        return reply(401, "text/plain", "");
    };
    let target = between(&r.body, "<t:SmtpAddress>", "</t:SmtpAddress>")
        .map(str::to_string)
        .unwrap_or(caller);
    let target = target.to_ascii_lowercase();
    let impersonating = r.body.contains("ExchangeImpersonation");
    if impersonating && b.denied.contains(&target) {
        return soap_fault(
            "ErrorImpersonateUserDenied",
            "The account does not have permission to impersonate the requested user.",
        );
    }
    if !b.mailboxes.contains(&target) {
        return if impersonating {
            soap_fault(
                "ErrorNonExistentMailbox",
                "The SMTP address has no mailbox associated with it.",
            )
        } else {
            get_folder_response("Error", "ErrorNonExistentMailbox")
        };
    }
    if b.denied.contains(&target) {
        return get_folder_response("Error", "ErrorAccessDenied");
    }
    get_folder_response("Success", "NoError")
}

async fn graph(state: &State, b: &Behaviour, r: &Recorded) -> Reply {
    if let Some(answer) = misbehave(&b.graph_mode, r#"{"id": "AAMk"#).await {
        return answer;
    }
    if authenticate(state, b, r).is_none() {
        return json(
            401,
            serde_json::json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token validation failure."}}),
        );
    }
    let path = r.path.split('?').next().unwrap_or("");
    let segments: Vec<&str> = path.split('/').collect();
    // ["", "v1.0", "users", email, ...]
    let email = url::form_urlencoded::parse(segments.get(3).unwrap_or(&"").as_bytes())
        .map(|(k, _)| k.into_owned())
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if b.rest_disabled.contains(&email) {
        return json(
            404,
            serde_json::json!({"error": {"code": "MailboxNotEnabledForRESTAPI", "message": "The mailbox is either inactive, soft-deleted, or is hosted on-premise."}}),
        );
    }
    if !b.mailboxes.contains(&email) {
        return json(
            404,
            serde_json::json!({"error": {"code": "ErrorInvalidUser", "message": format!("The requested user '{email}' is invalid.")}}),
        );
    }
    if b.denied.contains(&email) {
        return json(
            403,
            serde_json::json!({"error": {"code": "ErrorAccessDenied", "message": "Access is denied. Check credentials and try again."}}),
        );
    }
    json(
        200,
        serde_json::json!({"@odata.context": "x", "id": "AAMkAGI2TG93AAA="}),
    )
}
