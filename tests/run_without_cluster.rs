//! `mailops run` with no API server to reach, as a pod whose cluster is not (yet)
//! reachable: it keeps running and retrying, `/healthz` answers 200 (the liveness probe
//! does not restart it) and `/readyz` 503 (no traffic is sent to it). The binary itself
//! runs, as the container does.

mod raw_http;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Kills the operator at the end, even when an assertion fails.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn run_stays_alive_and_not_ready_without_a_cluster() {
    let dir = std::env::temp_dir().join(format!("mailops-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    // A refused port: nothing answers there.
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\"}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n",
    )
    .unwrap();
    let addr: SocketAddr = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailops"))
        .args([
            "run",
            "--no-leader-election",
            "--log-format",
            "json",
            "--http-addr",
        ])
        .arg(addr.to_string())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = child.stderr.take().unwrap();
    let running = Running(child);
    // Wait (in the log, not by the clock) for the endpoints and for a failed attempt.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(logs).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut serving, mut retrying) = (false, false);
    while !(serving && retrying) {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the operator logs that it serves and retries");
        serving |= line.contains("serving /metrics, /healthz and /readyz");
        retrying |= line.contains("cannot read the Kubernetes API; retrying");
    }
    let healthz = raw_http::get(addr, "/healthz", &[]).await;
    assert_eq!(healthz.status, 200, "{healthz:?}");
    let readyz = raw_http::get(addr, "/readyz", &[]).await;
    assert_eq!(readyz.status, 503, "{readyz:?}");
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}
