//! `mailops run` (this build) as child processes: started with the flags a phase needs,
//! stopped as Kubernetes stops a pod (SIGTERM, then SIGKILL after a grace period) or
//! killed outright, and asked whether it is ready (`/readyz`: caches synced).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a stopping operator may take before it is killed (a pod's default grace).
pub const GRACE: Duration = Duration::from_secs(30);

/// One `mailops run` process, logging to a file of its own.
pub struct Operator {
    child: Child,
    /// Where it serves `/metrics`, `/healthz` and `/readyz`.
    pub http: SocketAddr,
}

/// The flags of a single replica without leader election, as the converging phase runs.
pub fn single() -> Vec<String> {
    vec!["--no-leader-election".into()]
}

/// The flags of a replica that elects through Lease `namespace/name` as `identity`.
pub fn electing(namespace: &str, name: &str, identity: &str) -> Vec<String> {
    [
        "--lease-namespace",
        namespace,
        "--lease-name",
        name,
        "--identity",
        identity,
    ]
    .map(String::from)
    .into()
}

fn free_port() -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.local_addr().map_err(|e| e.to_string())
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status();
}

impl Operator {
    /// Start it against the cluster in `KUBECONFIG` with `flags`; `tag` names its log.
    pub fn start(run: &str, tag: &str, flags: &[String]) -> Result<Operator, String> {
        let log_path = std::env::temp_dir().join(format!("mailops-bench-{run}-{tag}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let http = free_port()?;
        let child = Command::new(env!("CARGO_BIN_EXE_mailops"))
            .args(["run", "--no-webhook", "--http-addr", &http.to_string()])
            .args(flags)
            .env(
                "RUST_LOG",
                std::env::var("MAILOPS_BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting mailops: {e}"))?;
        eprintln!("scale: operator {tag} logs to {}", log_path.display());
        Ok(Operator { child, http })
    }

    /// Its process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait for it to exit (SIGKILL past [`GRACE`]); seconds it took.
    pub async fn terminate(&mut self) -> f64 {
        let start = Instant::now();
        signal(self.pid(), "TERM");
        while start.elapsed() < GRACE {
            if matches!(self.child.try_wait(), Ok(Some(_)) | Err(_)) {
                return start.elapsed().as_secs_f64();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill();
        start.elapsed().as_secs_f64()
    }

    /// SIGKILL, as a node failure or an OOM kill ends it: no shutdown, no Lease release.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether `/readyz` answers 200 (its caches are synced, leader or not).
    pub async fn ready(&self) -> bool {
        let ask = async {
            let mut stream = tokio::net::TcpStream::connect(self.http).await.ok()?;
            let request = "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut head = [0u8; 12];
            stream.read_exact(&mut head).await.ok()?;
            Some(head.ends_with(b" 200"))
        };
        let answer = tokio::time::timeout(Duration::from_secs(2), ask).await;
        answer.ok().flatten().unwrap_or(false)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}
