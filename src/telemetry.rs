//! Logging set-up: tracing to stderr as text or JSON, level from `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Install the global subscriber. `RUST_LOG` sets the level (default `info`).
pub fn init(format: LogFormat) -> crate::Result<()> {
    let filter = filter_from(std::env::var(EnvFilter::DEFAULT_ENV).ok().as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| crate::Error::Config(format!("cannot install the log subscriber: {e}")))
}

/// The log filter for a `RUST_LOG` value: its directives, or `info` when unset or invalid.
fn filter_from(rust_log: Option<&str>) -> EnvFilter {
    rust_log
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::filter::LevelFilter;

    #[test]
    fn rust_log_sets_the_level_and_falls_back_to_info() {
        assert_eq!(
            filter_from(Some("debug")).max_level_hint(),
            Some(LevelFilter::DEBUG)
        );
        assert_eq!(
            filter_from(Some("warn,mailops=trace")).max_level_hint(),
            Some(LevelFilter::TRACE)
        );
        assert_eq!(filter_from(None).max_level_hint(), Some(LevelFilter::INFO));
        assert_eq!(
            filter_from(Some("=not a filter=")).max_level_hint(),
            Some(LevelFilter::INFO)
        );
    }
}
