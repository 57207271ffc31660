//! The offline `mailops check` command: validate and resolve manifests without a cluster.

use std::path::PathBuf;

/// Flags of `mailops check`.
#[derive(Clone, Debug, clap::Args)]
pub struct CheckArgs {
    /// Files or folders of YAML manifests, or `-` for standard input.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Run the check; `Ok(true)` when every object is valid and every binding resolves.
pub fn run(args: &CheckArgs) -> crate::Result<bool> {
    let _ = args;
    Err(crate::Error::Config("check is not implemented yet".into()))
}
