//! The three controllers in one process: shared context, start-up, error policy and
//! event reporting.

use crate::config::OperatorConfig;

/// Run the operator until SIGTERM. (Placeholder until the controllers land.)
pub async fn run(config: OperatorConfig) -> crate::Result<()> {
    let _ = config;
    Err(crate::Error::Config(
        "the controllers are not implemented yet".into(),
    ))
}
