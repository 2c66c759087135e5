//! The service's settings: every one is a flag, an environment variable and a default
//! (`order-service --help` lists them).

use std::path::PathBuf;
use std::time::Duration;

use events::AmqpSettings;
use events::defaults;
use events::duration::parse_duration;

/// Default of `--prefetch`.
pub const DEFAULT_PREFETCH: u16 = 100;
/// Default of `--dedupe-retention`: seven days.
pub const DEFAULT_DEDUPE_RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// Every setting, from flags or environment variables (`order-service --help`).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "order-service", version, about)]
pub struct Settings {
    /// HTTP listen address; port 0 picks a free port (the log says which).
    #[arg(long, env = "ORDER_SERVICE_ADDR", default_value = defaults::ORDER_SERVICE_ADDR)]
    pub addr: String,
    /// SQLite database file (its folder is created if missing).
    #[arg(long, env = "ORDER_DB", default_value = defaults::ORDER_DB)]
    pub db: PathBuf,
    /// Queue of user events to consume (declared with its `.dead` queue at start).
    #[arg(long, env = "ORDER_QUEUE", default_value = defaults::QUEUE_ORDER)]
    pub queue: String,
    /// Queue the events this service emits (`order_placed`) are published to: the
    /// dispatcher's source queue (declared with its `.dead` queue at start).
    #[arg(long, env = "DISPATCH_QUEUE", default_value = defaults::QUEUE_DISPATCH)]
    pub dispatch_queue: String,
    /// Most unacknowledged deliveries at once; also the largest batch per transaction.
    #[arg(long, env = "ORDER_PREFETCH", default_value_t = DEFAULT_PREFETCH,
          value_parser = clap::value_parser!(u16).range(1..=5000))]
    pub prefetch: u16,
    /// How long processed event ids are remembered for deduplication (`7d`, `36h`, ...;
    /// `0` remembers them forever). Older redeliveries are still ignored by version,
    /// counted as stale.
    #[arg(long, env = "ORDER_DEDUPE_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub dedupe_retention: Duration,
    /// The former spelling of `--dedupe-retention`, in whole days (`0`: forever); still
    /// accepted, and refused together with `--dedupe-retention`.
    #[arg(
        long,
        env = "ORDER_DEDUPE_RETENTION_DAYS",
        hide = true,
        conflicts_with = "dedupe_retention"
    )]
    pub dedupe_retention_days: Option<u32>,
    /// Broker settings.
    #[command(flatten)]
    pub amqp: AmqpSettings,
}

impl Settings {
    /// The defaults (those of `events::defaults`) with the given broker settings.
    pub fn defaults_with(amqp: AmqpSettings) -> Self {
        Self {
            addr: defaults::ORDER_SERVICE_ADDR.to_owned(),
            db: PathBuf::from(defaults::ORDER_DB),
            queue: defaults::QUEUE_ORDER.to_owned(),
            dispatch_queue: defaults::QUEUE_DISPATCH.to_owned(),
            prefetch: DEFAULT_PREFETCH,
            dedupe_retention: DEFAULT_DEDUPE_RETENTION,
            dedupe_retention_days: None,
            amqp,
        }
    }

    /// How long processed event ids are kept, from whichever spelling was given;
    /// `None`: forever.
    pub(crate) fn dedupe_window(&self) -> Option<Duration> {
        let retention = match self.dedupe_retention_days {
            Some(days) => Duration::from_secs(u64::from(days) * 86_400),
            None => self.dedupe_retention,
        };
        (!retention.is_zero()).then_some(retention)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_flag_defaults_match_the_programmatic_defaults() {
        let parsed = Settings::try_parse_from(["order-service"]).unwrap();
        let built = Settings::defaults_with(parsed.amqp.clone());
        assert_eq!(parsed.prefetch, built.prefetch);
        assert_eq!(parsed.dedupe_retention, built.dedupe_retention);
        assert_eq!(parsed.dedupe_retention_days, built.dedupe_retention_days);
        assert_eq!(parsed.dedupe_window(), built.dedupe_window());
        assert_eq!(parsed.queue, built.queue);
        assert_eq!(parsed.dispatch_queue, built.dispatch_queue);
    }

    #[test]
    fn a_prefetch_of_zero_is_refused_and_zero_retention_means_forever() {
        assert!(Settings::try_parse_from(["order-service", "--prefetch", "0"]).is_err());
        let mut settings = Settings::defaults_with(AmqpSettings::default());
        settings.dedupe_retention = Duration::ZERO;
        assert_eq!(settings.dedupe_window(), None);
        settings.dedupe_retention = Duration::from_secs(86_400);
        assert_eq!(settings.dedupe_window(), Some(Duration::from_secs(86_400)));
        settings.dedupe_retention_days = Some(0);
        assert_eq!(settings.dedupe_window(), None);
    }

    #[test]
    fn the_dedupe_retention_takes_the_shared_duration_grammar() {
        let window = |args: &[&str]| {
            let mut argv = vec!["order-service"];
            argv.extend_from_slice(args);
            Settings::try_parse_from(argv).unwrap().dedupe_window()
        };
        let hours = |h: u64| Some(Duration::from_secs(h * 3_600));
        assert_eq!(window(&[]), hours(7 * 24));
        assert_eq!(window(&["--dedupe-retention=36h"]), hours(36));
        assert_eq!(window(&["--dedupe-retention=1.5d"]), hours(36));
        assert_eq!(window(&["--dedupe-retention=0"]), None);
        let err = Settings::try_parse_from(["order-service", "--dedupe-retention=soon"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("e.g. `7d`"), "{err}");
    }

    #[test]
    fn the_former_days_flag_still_works_but_not_with_the_new_one() {
        let parsed =
            Settings::try_parse_from(["order-service", "--dedupe-retention-days=3"]).unwrap();
        assert_eq!(
            parsed.dedupe_window(),
            Some(Duration::from_secs(3 * 86_400))
        );
        let both = Settings::try_parse_from([
            "order-service",
            "--dedupe-retention-days=3",
            "--dedupe-retention=3d",
        ]);
        assert!(both.is_err());
    }
}
