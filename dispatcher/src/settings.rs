//! The dispatcher's settings: every one has a default, an environment variable and a
//! flag (`dispatcher --help` lists them).

use std::path::PathBuf;
use std::time::Duration;

use events::AmqpSettings;
use events::defaults;

/// The default of [`Settings::max_in_flight_bytes`]: 64 MiB.
pub const DEFAULT_MAX_IN_FLIGHT_BYTES: u64 = 64 * 1024 * 1024;

/// Settings of `dispatcher run`.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// The routing table to load and watch.
    #[arg(long = "routes", env = "ROUTES_FILE", default_value = defaults::ROUTES_FILE)]
    pub routes: PathBuf,
    /// Admin HTTP listen address (health, metrics, routes, reload); port 0 picks one.
    #[arg(long = "addr", env = "DISPATCHER_ADDR", default_value = defaults::DISPATCHER_ADDR)]
    pub addr: String,
    /// Deliveries in flight at once (AMQP prefetch): higher is faster, bounded memory.
    #[arg(long = "prefetch", env = "DISPATCH_PREFETCH", default_value_t = 500,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,
    /// Bytes of message bodies in flight at once, on top of the prefetch count: past it,
    /// no delivery is taken until some settle (one body larger than this still goes
    /// through, alone). Default 64 MiB.
    #[arg(long = "max-in-flight-bytes", env = "DISPATCH_MAX_IN_FLIGHT_BYTES",
          default_value_t = DEFAULT_MAX_IN_FLIGHT_BYTES,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight_bytes: u64,
    /// Also check the routes file every interval (e.g. `2s`, `500ms`), for file systems
    /// that send no change events (bind mounts, NFS). Off by default.
    #[arg(long = "poll-interval", env = "ROUTES_POLL_INTERVAL", value_parser = parse_duration)]
    pub poll_interval: Option<Duration>,
    /// How many times a nacked or returned publish is retried before the event goes to
    /// the dead-letter queue.
    #[arg(
        long = "publish-retries",
        env = "DISPATCH_PUBLISH_RETRIES",
        default_value_t = 3
    )]
    pub publish_retries: u32,
    /// Delay before the first publish retry; it doubles on each retry (e.g. `100ms`).
    #[arg(long = "retry-backoff", env = "DISPATCH_RETRY_BACKOFF", default_value = "100ms",
          value_parser = parse_duration)]
    pub retry_backoff: Duration,
    /// On shutdown, how long in-flight events may take to finish before the rest is
    /// left unacked (the broker redelivers it).
    #[arg(long = "drain-timeout", env = "DISPATCH_DRAIN_TIMEOUT", default_value = "5s",
          value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Broker settings.
    #[command(flatten)]
    pub amqp: AmqpSettings,
}

impl Settings {
    /// Defaults with the given routes file: what tests start from.
    pub fn with_routes(routes: impl Into<PathBuf>) -> Self {
        Self {
            routes: routes.into(),
            addr: "127.0.0.1:0".to_owned(),
            prefetch: 500,
            max_in_flight_bytes: DEFAULT_MAX_IN_FLIGHT_BYTES,
            poll_interval: None,
            publish_retries: 3,
            retry_backoff: Duration::from_millis(100),
            drain_timeout: Duration::from_secs(5),
            amqp: AmqpSettings::default(),
        }
    }
}

/// Parses `250ms`, `2s`, `1m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: write e.g. `500ms`, `2s` or `1m`"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use ms, s or m"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("0.5s").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("2h").unwrap_err().contains("unknown unit"));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }
}
