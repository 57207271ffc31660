//! `mailops run` as a process of its own (this build's binary), against the cluster in
//! `KUBECONFIG`, for what only a process shows: its resident memory (`VmRSS` of
//! `/proc/<pid>/status`). It logs to a file in the temp directory; dropping it kills it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How often the resident memory is sampled while waiting for it to settle.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// Settled: this many samples in a row (3 s) within [`SETTLED_SPREAD_KIB`] of each other.
const SETTLED_SAMPLES: usize = 6;
/// How far apart the settled samples may be.
const SETTLED_SPREAD_KIB: u64 = 128;
/// How long the memory may take to settle.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// A running `mailops run`.
pub struct OperatorProcess {
    child: Child,
    /// Where it logs.
    pub log: PathBuf,
}

impl OperatorProcess {
    /// Start `mailops run --no-leader-election --no-webhook` with `args` besides, its
    /// endpoints on a free port of 127.0.0.1, logging at `info` (or `RUST_LOG`) to a file
    /// named after `name`.
    pub fn start(name: &str, args: &[&str]) -> OperatorProcess {
        let log = std::env::temp_dir().join(format!("mailops-e2e-{name}.log"));
        let file = std::fs::File::create(&log).expect("a log file");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_mailops"))
            .args(["run", "--no-leader-election", "--no-webhook"])
            .args(["--http-addr", &format!("127.0.0.1:{port}")])
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("starting mailops run");
        eprintln!("operator {} logs to {}", child.id(), log.display());
        OperatorProcess { child, log }
    }

    /// Its process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory now, in KiB; panics, with its log's end, if it has exited.
    pub fn rss_kib(&mut self) -> u64 {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            panic!("the operator exited ({status}); its log ends:\n{tail}");
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS line")
    }

    /// Its resident memory once it stops moving (see [`SETTLED_SAMPLES`]), in KiB: the
    /// largest of the settled samples.
    pub async fn settled_rss_kib(&mut self) -> u64 {
        let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
        let mut samples: Vec<u64> = Vec::new();
        loop {
            samples.push(self.rss_kib());
            let last = &samples[samples.len().saturating_sub(SETTLED_SAMPLES)..];
            let (low, high) = (last.iter().min(), last.iter().max());
            if let (true, Some(low), Some(high)) = (last.len() == SETTLED_SAMPLES, low, high)
                && high - low <= SETTLED_SPREAD_KIB
            {
                return *high;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the operator's memory did not settle in {SETTLE_LIMIT:?}: {samples:?} KiB"
            );
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    }

    /// Stop it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
