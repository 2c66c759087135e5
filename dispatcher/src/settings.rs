//! The dispatcher's settings: every one has a default, an environment variable and a
//! flag (`dispatcher --help` lists them).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use events::AmqpSettings;
use events::defaults;

use crate::routes::retry::RetryPolicy;

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
    /// The longest delay between two publish retries: the delay doubles up to this.
    #[arg(long = "retry-max-backoff", env = "DISPATCH_RETRY_MAX_BACKOFF", default_value = "10s",
          value_parser = parse_duration)]
    pub retry_max_backoff: Duration,
    /// No publish retry starts later than this after the first refusal: the event is
    /// dead-lettered instead.
    #[arg(long = "retry-max-age", env = "DISPATCH_RETRY_MAX_AGE", default_value = "1m",
          value_parser = parse_duration)]
    pub retry_max_age: Duration,
    /// On shutdown, how long in-flight events may take to finish before the rest is
    /// left unacked (the broker redelivers it).
    #[arg(long = "drain-timeout", env = "DISPATCH_DRAIN_TIMEOUT", default_value = "5s",
          value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// A bearer token for the admin API: when set, every admin endpoint but `/healthz`,
    /// `/readyz` and `/metrics` requires `Authorization: Bearer <token>`. Unset by
    /// default (the admin API is open; keep its port private).
    #[arg(
        long = "admin-token",
        env = "DISPATCHER_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<AdminToken>,
    /// A file holding the admin token (a Docker or Kubernetes secret), read once at
    /// start. When set, it wins over `DISPATCHER_ADMIN_TOKEN`.
    #[arg(long = "admin-token-file", env = "DISPATCHER_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Ordered mode: one replica consumes the source queue at a time (the others stand
    /// by and take over when it goes), and it forwards one event at a time, so events
    /// reach their targets in queue order. Off by default (replicas share the queue and
    /// each forwards up to the prefetch at once).
    #[arg(long = "ordered", env = "DISPATCH_ORDERED", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub ordered: bool,
    /// Broker settings.
    #[command(flatten)]
    pub amqp: AmqpSettings,
}

/// The admin API's bearer token. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// The token, for comparing (in constant time) with what a request sent.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Why a token was refused. It never quotes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminTokenError {
    /// Empty or only whitespace.
    #[error("the admin token is empty")]
    Empty,
    /// Characters a client cannot send in an `Authorization` header.
    #[error("the admin token must be visible ASCII without spaces (it travels in a header)")]
    NotVisibleAscii,
}

impl std::str::FromStr for AdminToken {
    type Err = AdminTokenError;

    /// Surrounding whitespace (a file's trailing newline) is trimmed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let token = s.trim();
        if token.is_empty() {
            return Err(AdminTokenError::Empty);
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AdminTokenError::NotVisibleAscii);
        }
        Ok(Self(token.to_owned()))
    }
}

impl Settings {
    /// The admin token in force: the file's when `DISPATCHER_ADMIN_TOKEN_FILE` is set
    /// (read now), else `DISPATCHER_ADMIN_TOKEN`, else none.
    pub fn resolve_admin_token(&self) -> anyhow::Result<Option<AdminToken>> {
        resolve_admin_token(self.admin_token.as_ref(), self.admin_token_file.as_deref())
    }
}

/// The admin token in force, for the daemon and for `dispatcher tap` alike: the one in
/// `file` when given (read now, trimmed), else `token`, else none.
pub fn resolve_admin_token(
    token: Option<&AdminToken>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<Option<AdminToken>> {
    let Some(path) = file else {
        return Ok(token.cloned());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the admin token file {}", path.display()))?;
    let token = text
        .parse()
        .with_context(|| format!("the admin token file {}", path.display()))?;
    Ok(Some(token))
}

impl Settings {
    /// The publish retry policy of a route that sets no `retry` (and what fills the
    /// gaps of one that sets part of it): `--publish-retries` counts retries, a
    /// policy's `attempts` every publish, the first included.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.publish_retries.saturating_add(1),
            backoff: self.retry_backoff,
            max_backoff: self.retry_max_backoff.max(self.retry_backoff),
            max_age: self.retry_max_age,
        }
    }

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
            retry_max_backoff: Duration::from_secs(10),
            retry_max_age: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(5),
            admin_token: None,
            admin_token_file: None,
            ordered: false,
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
    fn the_default_retry_policy_comes_from_the_retry_flags() {
        let cli = Cli::try_parse_from([
            "dispatcher",
            "--publish-retries=4",
            "--retry-max-backoff=2s",
            "--retry-max-age=30s",
        ])
        .unwrap();
        let policy = cli.settings.retry_policy();
        assert_eq!(policy.attempts, 5);
        assert_eq!(policy.backoff, Duration::from_millis(100));
        assert_eq!(policy.max_backoff, Duration::from_secs(2));
        assert_eq!(policy.max_age, Duration::from_secs(30));
        let defaults = Cli::try_parse_from(["dispatcher"]).unwrap().settings;
        assert_eq!(
            defaults.retry_policy(),
            Settings::with_routes("r").retry_policy()
        );
    }

    #[test]
    fn the_admin_token_never_shows_in_debug_output() {
        let cli = Cli::try_parse_from(["dispatcher", "--admin-token=s3cr3t-T0ken"]).unwrap();
        let shown = format!("{:?}", cli.settings);
        assert!(!shown.contains("s3cr3t-T0ken"), "{shown}");
        assert!(shown.contains("AdminToken(<redacted>)"), "{shown}");
    }

    #[test]
    fn the_admin_token_file_wins_and_is_trimmed() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "from-file\n").unwrap();
        let path = file.path().to_str().unwrap();
        let cli = Cli::try_parse_from([
            "dispatcher",
            "--admin-token=from-flag",
            &format!("--admin-token-file={path}"),
        ])
        .unwrap();
        let token = cli.settings.resolve_admin_token().unwrap().unwrap();
        assert_eq!(token.expose(), "from-file");
        let flag_only = Cli::try_parse_from(["dispatcher", "--admin-token=from-flag"]).unwrap();
        let token = flag_only.settings.resolve_admin_token().unwrap().unwrap();
        assert_eq!(token.expose(), "from-flag");
        let none = Cli::try_parse_from(["dispatcher"]).unwrap();
        assert_eq!(none.settings.resolve_admin_token().unwrap(), None);
    }

    #[test]
    fn an_empty_or_missing_admin_token_file_is_an_error_naming_the_file() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), " \n").unwrap();
        let mut settings = Settings::with_routes("routes.toml");
        settings.admin_token_file = Some(file.path().to_owned());
        let err = format!("{:#}", settings.resolve_admin_token().unwrap_err());
        assert!(err.contains("is empty"), "{err}");
        assert!(err.contains(&file.path().display().to_string()), "{err}");
        settings.admin_token_file = Some("/nonexistent/token".into());
        let err = format!("{:#}", settings.resolve_admin_token().unwrap_err());
        assert!(err.contains("cannot read the admin token file"), "{err}");
    }

    #[test]
    fn a_token_with_spaces_inside_is_refused_without_quoting_it() {
        let err = "two words".parse::<AdminToken>().unwrap_err().to_string();
        assert!(err.contains("visible ASCII"), "{err}");
        assert!(!err.contains("two words"), "{err}");
    }

    #[test]
    fn ordered_mode_is_off_by_default_and_takes_a_bare_flag_or_a_value() {
        let off = Cli::try_parse_from(["dispatcher"]).unwrap();
        assert!(!off.settings.ordered);
        let bare = Cli::try_parse_from(["dispatcher", "--ordered"]).unwrap();
        assert!(bare.settings.ordered);
        let valued = Cli::try_parse_from(["dispatcher", "--ordered=false"]).unwrap();
        assert!(!valued.settings.ordered);
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
