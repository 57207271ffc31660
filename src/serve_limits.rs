//! Serving HTTP/1.1 with hyper under limits a client cannot push past: a cap on open
//! connections, a timeout on each connection's handshake (TLS) and on reading request
//! headers (which hyper also runs while a kept-alive connection waits for its next
//! request, so it is the idle limit too), and a request body read with a size bound and a
//! deadline. The webhook serves through it; `crate::http` can adopt it for its endpoints.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// hyper's read buffer per connection, which also bounds a request's headers (larger
/// headers are answered `431`); far above what an API server or a probe sends.
const READ_BUFFER: usize = 64 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a connection may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once. The next one is not accepted until one of them closes:
    /// it waits in the kernel's listen backlog, costing this process nothing, and is
    /// served in turn (closing it instead would fail a legitimate caller at once).
    pub max_connections: usize,
    /// Longest handshake (TLS) before the connection is dropped.
    pub handshake_timeout: Duration,
    /// Longest wait for a request's complete headers, counted from when the connection
    /// is ready for a request: so also how long a kept-alive connection may sit idle.
    pub header_read_timeout: Duration,
}

/// Where connections come from: a TCP listener, or in tests anything that yields streams.
pub trait Listener: Send + 'static {
    /// One accepted connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

impl Listener for TcpListener {
    type Io = TcpStream;
    async fn accept(&mut self) -> io::Result<TcpStream> {
        TcpListener::accept(self)
            .await
            .map(|(stream, _peer)| stream)
    }
}

/// What happens on a connection before HTTP: nothing ([`Plain`]) or a TLS handshake.
pub trait Handshake<I>: Clone + Send + Sync + 'static {
    /// The stream HTTP is spoken on afterwards.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Run the handshake; an error drops the connection.
    fn handshake(&self, io: I) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

/// Plain HTTP: no handshake.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

impl<I: AsyncRead + AsyncWrite + Unpin + Send + 'static> Handshake<I> for Plain {
    type Io = I;
    fn handshake(&self, io: I) -> impl Future<Output = io::Result<I>> + Send {
        std::future::ready(Ok(io))
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin + Send + 'static> Handshake<I>
    for tokio_rustls::TlsAcceptor
{
    type Io = tokio_rustls::server::TlsStream<I>;
    fn handshake(&self, io: I) -> impl Future<Output = io::Result<Self::Io>> + Send {
        self.accept(io)
    }
}

/// Serve `service` on every connection `listener` yields, within `limits`, until
/// `shutdown` completes. Connections in flight then finish in their own tasks.
pub async fn serve<L, H, S, B>(
    mut listener: L,
    handshake: H,
    service: S,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) where
    L: Listener,
    H: Handshake<L::Io>,
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // The permit comes before the accept, so past the cap nothing is read from a
        // new connection, not even its handshake.
        let permit = tokio::select! {
            () = &mut shutdown => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => return,
            },
        };
        let io = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(io) => io,
                Err(error) => {
                    // Running out of file descriptors passes; do not spin while it lasts.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (handshake, service) = (handshake.clone(), service.clone());
        tokio::spawn(async move {
            serve_connection(io, handshake, service, limits).await;
            drop(permit);
        });
    }
}

async fn serve_connection<I, H, S, B>(io: I, handshake: H, service: S, limits: Limits)
where
    H: Handshake<I>,
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let io = match tokio::time::timeout(limits.handshake_timeout, handshake.handshake(io)).await {
        Ok(Ok(io)) => io,
        Ok(Err(error)) => {
            tracing::debug!(%error, "handshake refused");
            return;
        }
        Err(_elapsed) => {
            tracing::debug!("handshake timed out");
            return;
        }
    };
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(READ_BUFFER)
        .serve_connection(TokioIo::new(io), service);
    if let Err(error) = served.await {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Why a request body was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyRefusal {
    /// Its declared length, or what arrived, passed the bound (`413`).
    TooLarge,
    /// It did not arrive within the deadline (`408`).
    TooSlow,
    /// The connection failed or the framing was broken (`400`).
    Unreadable,
}

/// Read a request body of at most `max` bytes within `deadline`. A `Content-Length` over
/// `max` is refused before a byte is read; a body without one (chunked) is read only up
/// to the bound, so at most `max` bytes and one frame are ever held.
pub async fn read_body<B>(body: B, max: usize, deadline: Duration) -> Result<Bytes, BodyRefusal>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    if body.size_hint().lower() > u64::try_from(max).unwrap_or(u64::MAX) {
        return Err(BodyRefusal::TooLarge);
    }
    match tokio::time::timeout(deadline, Limited::new(body, max).collect()).await {
        Err(_elapsed) => Err(BodyRefusal::TooSlow),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(BodyRefusal::TooLarge)
        }
        Ok(Err(_)) => Err(BodyRefusal::Unreadable),
    }
}
