//! The `mailops` command: `run` starts the operator, `check` validates manifests offline,
//! `status` shows what the cluster's mailops objects say, `crd` prints the CRDs.
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

// Why mimalloc: see Cargo.toml (the operator's cache is a great many small allocations).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mailops",
    version,
    about = "Declarative Exchange / Microsoft 365 mailbox connectivity for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator against the cluster in KUBECONFIG or the pod's service account.
    Run(Box<mailops::config::RunArgs>),
    /// Validate and resolve manifests offline, without a cluster.
    Check(mailops::check::CheckArgs),
    /// Show providers, service accounts and bindings as a tree with their Ready state,
    /// read-only, with the current kubeconfig context (or --kubeconfig, --context); exits
    /// 1 when anything is not Ready. Also runs as `kubectl mailops status` when the binary
    /// is on PATH as `kubectl-mailops`.
    Status(mailops::status::StatusArgs),
    /// Print the three CustomResourceDefinitions as YAML (what `crds/` holds).
    Crd,
}

/// Exit codes: 0 all good, 1 `check` found problems or `status` found an object not Ready, 2 the command could not do its work
/// (unreadable input, no cluster, ...), so scripts can tell a bad manifest from a bad call.
fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            // Library errors already carry their cause in their message; print a cause
            // only when it adds something.
            let mut line = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !line.contains(&cause) {
                    line = format!("{line}: {cause}");
                }
            }
            // Errors may quote what the cluster or a file said: no raw control characters.
            eprintln!("error: {}", mailops::status::escape::text(&line));
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode> {
    match Cli::parse().command {
        Command::Run(args) => {
            mailops::telemetry::init(args.log_format)?;
            let config = mailops::config::OperatorConfig::from(&*args);
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(mailops::controller::run_operator(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => {
            let ok = mailops::check::run(&args)?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Status(args) => {
            let ok = mailops::status::run(&args)?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Crd => {
            print!("{}", mailops::api::crds_yaml()?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
