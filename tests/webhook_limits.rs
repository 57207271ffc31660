//! The limits every connection is served under (`serve_limits`, what the webhook's HTTPS
//! runs on), over in-memory connections on tokio's paused clock: the time a client is
//! given is measured, never waited for.

use std::convert::Infallible;
use std::io;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use mailops::serve_limits::{self, BodyRefusal, Handshake, Limits, Listener, Plain, read_body};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

const HEADERS: Duration = Duration::from_secs(10);
const HANDSHAKE: Duration = Duration::from_secs(5);
const BODY: Duration = Duration::from_secs(7);
const MAX_BODY: usize = 64 * 1024;

/// Connections handed over a channel, as a listener would accept them.
struct Pipe(mpsc::UnboundedReceiver<DuplexStream>);

impl Listener for Pipe {
    type Io = DuplexStream;
    async fn accept(&mut self) -> io::Result<DuplexStream> {
        self.0
            .recv()
            .await
            .ok_or_else(|| io::ErrorKind::BrokenPipe.into())
    }
}

/// A handshake that never finishes.
#[derive(Clone)]
struct Stalls;

impl Handshake<DuplexStream> for Stalls {
    type Io = DuplexStream;
    async fn handshake(&self, _io: DuplexStream) -> io::Result<DuplexStream> {
        std::future::pending().await
    }
}

/// Answers with the body's length, or the status its refusal maps to.
async fn echo_length(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, text) = match read_body(request.into_body(), MAX_BODY, BODY).await {
        Ok(body) => (StatusCode::OK, body.len().to_string()),
        Err(BodyRefusal::TooLarge) => (StatusCode::PAYLOAD_TOO_LARGE, String::new()),
        Err(BodyRefusal::TooSlow) => (StatusCode::REQUEST_TIMEOUT, String::new()),
        Err(BodyRefusal::Unreadable) => (StatusCode::BAD_REQUEST, String::new()),
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    Ok(response)
}

fn limits(max_connections: usize) -> Limits {
    Limits {
        max_connections,
        handshake_timeout: HANDSHAKE,
        header_read_timeout: HEADERS,
    }
}

/// A server on in-memory connections; `connect` opens one.
struct Server {
    connections: mpsc::UnboundedSender<DuplexStream>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    fn start<H: Handshake<DuplexStream, Io = DuplexStream>>(limits: Limits, handshake: H) -> Self {
        let (connections, incoming) = mpsc::unbounded_channel();
        let service = service_fn(echo_length);
        let task = tokio::spawn(serve_limits::serve(
            Pipe(incoming),
            handshake,
            service,
            limits,
            std::future::pending(),
        ));
        Server { connections, task }
    }

    fn connect(&self) -> DuplexStream {
        let (client, server) = tokio::io::duplex(256 * 1024);
        self.connections.send(server).unwrap();
        client
    }
}

/// The status and body of one response (bodies here carry a Content-Length).
async fn read_response(stream: &mut DuplexStream) -> Option<(u16, String)> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(String::from)
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.ok()?;
    Some((status, String::from_utf8(body).ok()?))
}

async fn post(stream: &mut DuplexStream, body: &str) -> Option<(u16, String)> {
    let request = format!(
        "POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    read_response(stream).await
}

/// Reads until the server closes the connection (failing if it has not within a
/// minute); what it sent before is returned.
async fn until_closed(stream: &mut DuplexStream) -> Vec<u8> {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut rest));
    assert!(read.await.is_ok(), "the server never closed the connection");
    rest
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_finishes_its_headers_is_dropped_after_the_timeout() {
    let server = Server::start(limits(4), Plain);
    let mut slow = server.connect();
    slow.write_all(b"POST /x HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let rest = until_closed(&mut slow).await;
    let waited = started.elapsed();
    assert!(
        waited >= HEADERS && waited < HEADERS + Duration::from_secs(1),
        "{waited:?}"
    );
    assert!(
        !String::from_utf8_lossy(&rest).contains("200"),
        "never served"
    );
}

#[tokio::test(start_paused = true)]
async fn a_kept_alive_connection_left_idle_is_closed_after_the_header_timeout() {
    let server = Server::start(limits(4), Plain);
    let mut client = server.connect();
    assert_eq!(post(&mut client, "abc").await, Some((200, "3".into())));
    let idle_from = Instant::now();
    assert!(until_closed(&mut client).await.is_empty());
    let idle = idle_from.elapsed();
    assert!(
        idle >= HEADERS && idle < HEADERS + Duration::from_secs(1),
        "{idle:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn past_the_connection_cap_the_next_connection_waits_until_one_closes() {
    let server = Server::start(limits(2), Plain);
    let mut first = server.connect();
    let mut second = server.connect();
    assert_eq!(post(&mut first, "a").await, Some((200, "1".into())));
    assert_eq!(post(&mut second, "bb").await, Some((200, "2".into())));

    // Both stay open (kept alive); a third is not even accepted while they do.
    let mut third = server.connect();
    third
        .write_all(b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nccc")
        .await
        .unwrap();
    let waiting = tokio::time::timeout(HEADERS / 2, read_response(&mut third)).await;
    assert!(
        waiting.is_err(),
        "the third connection was served: {waiting:?}"
    );

    // One closes: the third is served at once, not when the idle ones time out.
    let freed_at = Instant::now();
    drop(first);
    assert_eq!(read_response(&mut third).await, Some((200, "3".into())));
    assert!(freed_at.elapsed() < Duration::from_secs(1));
    assert_eq!(post(&mut second, "dddd").await, Some((200, "4".into())));
}

#[tokio::test(start_paused = true)]
async fn a_stalled_handshake_is_dropped_and_frees_its_place() {
    let stalled = Server::start(limits(1), Stalls);
    let mut client = stalled.connect();
    let started = Instant::now();
    assert!(until_closed(&mut client).await.is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= HANDSHAKE && waited < HANDSHAKE + Duration::from_secs(1),
        "{waited:?}"
    );
    // Its place is free again: the next connection is taken (and stalls in turn).
    let mut next = stalled.connect();
    let started = Instant::now();
    until_closed(&mut next).await;
    assert!(started.elapsed() >= HANDSHAKE);
}

#[tokio::test(start_paused = true)]
async fn a_content_length_over_the_bound_is_refused_before_the_body_is_read() {
    let server = Server::start(limits(4), Plain);
    let mut client = server.connect();
    // Headers only: a server that waited for this body would answer 408 after BODY.
    client
        .write_all(b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 10000000000\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (status, _) = read_response(&mut client).await.expect("an answer");
    assert_eq!(status, 413);
    assert_eq!(started.elapsed(), Duration::ZERO, "answered at once");
    assert!(until_closed(&mut client).await.is_empty(), "then closed");
}

#[tokio::test(start_paused = true)]
async fn a_chunked_body_that_never_ends_is_cut_at_the_bound() {
    let server = Server::start(limits(4), Plain);
    let client = server.connect();
    let (mut reading, mut writing) = tokio::io::split(client);
    // Chunks for ever, never the last one; the writer stops only when the server hangs up.
    let writer = tokio::spawn(async move {
        let head = b"POST /x HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n";
        writing.write_all(head).await.expect("headers sent");
        let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
        let mut sent = 0usize;
        while writing.write_all(chunk.as_bytes()).await.is_ok() {
            sent += 1024;
        }
        sent
    });
    let started = Instant::now();
    let mut head = vec![0u8; 12];
    reading.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
    assert!(
        started.elapsed() < BODY,
        "cut at the bound, not at the deadline"
    );
    let mut rest = Vec::new();
    let _ = reading.read_to_end(&mut rest).await;
    let sent = writer
        .await
        .expect("the writer stops when the server hangs up");
    // What was written at most: the bound, the duplex buffer and hyper's read buffer.
    assert!(sent >= MAX_BODY, "{sent}");
    assert!(sent < MAX_BODY + 256 * 1024 + 128 * 1024, "{sent}");
}

#[tokio::test(start_paused = true)]
async fn a_body_that_trickles_is_refused_at_the_deadline() {
    let server = Server::start(limits(4), Plain);
    let mut client = server.connect();
    client
        .write_all(b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let started = Instant::now();
    let (status, _) = read_response(&mut client).await.expect("an answer");
    assert_eq!(status, 408);
    assert!(started.elapsed() >= BODY && started.elapsed() < BODY + Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn within_the_bound_bodies_are_read_whole_with_or_without_a_length() {
    let server = Server::start(limits(4), Plain);
    let mut client = server.connect();
    let body = "y".repeat(MAX_BODY);
    assert_eq!(
        post(&mut client, &body).await,
        Some((200, MAX_BODY.to_string()))
    );
    client
        .write_all(b"POST /x HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut client).await, Some((200, "5".into())));
}
