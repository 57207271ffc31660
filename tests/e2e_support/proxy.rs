//! A TCP proxy on 127.0.0.1 in front of one server (the API server, the fake's token
//! endpoint) that can be taken down: every open connection is dropped at once, and while
//! it is down a new connection is closed as soon as it sends its first bytes, without an
//! answer. Those attempts are counted, so a test can bound how hard a client retries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy; it stops with the test's runtime.
pub struct TcpProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
}

struct State {
    target: SocketAddr,
    down: watch::Sender<bool>,
    attempts_while_down: AtomicUsize,
}

impl TcpProxy {
    /// Listen on a random port of 127.0.0.1 and forward to `target`.
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a proxy port");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            target,
            down: watch::channel(false).0,
            attempts_while_down: AtomicUsize::new(0),
        });
        let accepting = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve(accepting.clone(), client));
            }
        });
        TcpProxy { addr, state }
    }

    /// `scheme://127.0.0.1:port`.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    /// Drop every connection and refuse new ones until [`TcpProxy::bring_up`].
    pub fn take_down(&self) {
        self.state.down.send_replace(true);
    }

    /// Forward again.
    pub fn bring_up(&self) {
        self.state.down.send_replace(false);
    }

    /// Connections refused while down (each one a request or TLS handshake tried).
    pub fn attempts_while_down(&self) -> usize {
        self.state.attempts_while_down.load(Ordering::SeqCst)
    }
}

async fn serve(state: Arc<State>, mut client: TcpStream) {
    let mut down = state.down.subscribe();
    if *down.borrow_and_update() {
        refuse(&state, client).await;
        return;
    }
    let Ok(mut server) = TcpStream::connect(state.target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = down.wait_for(|down| *down) => {}
    }
    // Dropping both ends closes them: the client sees its connection cut.
}

/// Wait for the client's first bytes (so a connection counts only when something was
/// tried on it), count it, and close it unanswered.
async fn refuse(state: &State, mut client: TcpStream) {
    let mut first = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(10), client.read(&mut first)).await;
    if matches!(read, Ok(Ok(n)) if n > 0) {
        state.attempts_while_down.fetch_add(1, Ordering::SeqCst);
    }
}

/// Where the kubeconfig's API server listens.
pub async fn api_server_addr(kube: &kube::Config) -> std::net::SocketAddr {
    let host = kube.cluster_url.host().expect("a host in the cluster URL");
    let port = kube.cluster_url.port_u16().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    tokio::net::lookup_host((host, port))
        .await
        .expect("the API server's address")
        .next()
        .expect("an address")
}
