//! A small HTTP CONNECT proxy on 127.0.0.1, as corporate egress proxies are: it reads the
//! `CONNECT host:port` request, records the target, opens the tunnel and copies bytes both
//! ways. TLS passes through it end to end (it sees only ciphertext).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy; it stops with the test's runtime.
pub struct ConnectProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    tunnels: Arc<Mutex<Vec<String>>>,
}

impl ConnectProxy {
    /// Listen on a random port of 127.0.0.1.
    pub async fn start() -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let recorded = tunnels.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(tunnel(client, recorded.clone()));
            }
        });
        ConnectProxy { addr, tunnels }
    }

    /// `http://127.0.0.1:<port>`, what `HTTPS_PROXY` holds.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `host:port` of every tunnel asked for, in order.
    pub fn tunnels(&self) -> Vec<String> {
        self.tunnels.lock().unwrap().clone()
    }
}

/// Serve one client: read the request head, connect, answer 200, then relay.
async fn tunnel(mut client: TcpStream, tunnels: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte).await {
            Ok(1) if head.len() < 8192 => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        let _ = client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    tunnels.lock().unwrap().push(target.to_string());
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
