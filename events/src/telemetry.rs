//! Logging for every process: `tracing` with `RUST_LOG` filtering (default `info`) and
//! `LOG_FORMAT` = `pretty` (human, one line per event) or `json` (one object per line,
//! with the current span's fields, for machines).

use std::io::IsTerminal;

use anyhow::{Context, bail};
use tracing_subscriber::EnvFilter;

/// The log output format (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// Newline-delimited JSON.
    Json,
}

impl LogFormat {
    /// From `LOG_FORMAT` (case-insensitive); `pretty` when unset.
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var("LOG_FORMAT") {
            Ok(value) => Self::parse(&value),
            Err(_) => Ok(Self::Pretty),
        }
    }

    fn parse(value: &str) -> anyhow::Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "pretty" | "text" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            other => bail!("LOG_FORMAT={other:?} is not supported: use `pretty` or `json`"),
        }
    }
}

/// Installs the global subscriber for `service`. Calling it twice (as tests do) is
/// harmless: the first subscriber stays.
pub fn init(service: &str) -> anyhow::Result<()> {
    let format = LogFormat::from_env()?;
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .with_context(|| format!("RUST_LOG={directives:?} is not a valid filter"))?,
        _ => EnvFilter::new("info"),
    };
    // A log line that cannot be written (stdout a closed pipe, after the supervisor
    // died) is dropped. By default the subscriber reports that on stderr with
    // `eprintln!`, which panics when stderr is closed too, inside whatever task was
    // logging, such as the one that turns SIGTERM into a shutdown.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .log_internal_errors(false);
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
    };
    if installed.is_ok() {
        tracing::debug!(service, ?format, "telemetry initialised");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats_parse_and_unknown_ones_are_refused() {
        assert_eq!(LogFormat::parse("JSON").unwrap(), LogFormat::Json);
        assert_eq!(LogFormat::parse("pretty").unwrap(), LogFormat::Pretty);
        let err = LogFormat::parse("xml").unwrap_err().to_string();
        assert!(err.contains("use `pretty` or `json`"), "{err}");
    }
}
