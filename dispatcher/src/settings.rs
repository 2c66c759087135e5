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

/// The workspace's one duration grammar (`250ms`, `2s`, `0.5s`, `1h30m`, `7d`, or a bare
/// number of seconds), re-exported for the flags above.
pub use events::duration::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    #[test]
    fn duration_flags_take_the_shared_grammar() {
        let cli = Cli::try_parse_from([
            "dispatcher",
            "--poll-interval=0.5s",
            "--retry-backoff=250ms",
            "--drain-timeout=1h",
        ])
        .unwrap();
        assert_eq!(cli.settings.poll_interval, Some(Duration::from_millis(500)));
        assert_eq!(cli.settings.retry_backoff, Duration::from_millis(250));
        assert_eq!(cli.settings.drain_timeout, Duration::from_secs(3_600));
        let defaults = Cli::try_parse_from(["dispatcher"]).unwrap();
        assert_eq!(defaults.settings.retry_backoff, Duration::from_millis(100));
        assert_eq!(defaults.settings.drain_timeout, Duration::from_secs(5));
    }

    #[test]
    fn a_bad_duration_flag_says_what_to_write() {
        let err = Cli::try_parse_from(["dispatcher", "--drain-timeout=soon"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("not a duration"), "{err}");
        assert!(err.contains("e.g. `7d`"), "{err}");
    }
}
