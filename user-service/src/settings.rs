//! The service's settings: every one is a flag, an environment variable and a default
//! (`user-service --help` lists them).

use std::path::PathBuf;
use std::time::Duration;

use events::AmqpSettings;
use events::defaults;
use events::duration::parse_duration;

/// Every setting of the service: a flag, an environment variable, a default.
#[derive(Debug, Clone, PartialEq, Eq, clap::Parser)]
#[command(
    name = "user-service",
    version,
    about = "HTTP API for users, with a transactional outbox"
)]
pub struct Settings {
    /// HTTP listen address; port 0 picks a free port (the bound address is logged).
    #[arg(long, env = "USER_SERVICE_ADDR", default_value = defaults::USER_SERVICE_ADDR)]
    pub addr: String,
    /// SQLite database file; created, with its folder, if missing.
    #[arg(long, env = "USER_DB", default_value = defaults::USER_DB)]
    pub db: PathBuf,
    /// Queue the outbox relay publishes every event to (declared on connect).
    #[arg(long, env = "DISPATCH_QUEUE", default_value = defaults::QUEUE_DISPATCH)]
    pub dispatch_queue: String,
    /// How long published events and idempotency keys are kept: `7d`, `24h`, `1h30m`, `10s`.
    #[arg(long, env = "OUTBOX_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub outbox_retention: Duration,
    /// How often the relay looks for unpublished events without a commit signal.
    #[arg(long, env = "OUTBOX_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub outbox_poll_interval: Duration,
    /// The broker.
    #[command(flatten)]
    pub amqp: AmqpSettings,
}

impl Settings {
    /// The defaults, with the database at `db` (handy in tests).
    pub fn with_db(db: impl Into<PathBuf>) -> Self {
        Self {
            addr: defaults::USER_SERVICE_ADDR.to_owned(),
            db: db.into(),
            dispatch_queue: defaults::QUEUE_DISPATCH.to_owned(),
            outbox_retention: Duration::from_secs(7 * 86_400),
            outbox_poll_interval: Duration::from_secs(1),
            amqp: AmqpSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn flags_set_every_setting_and_durations_are_human() {
        let settings = Settings::try_parse_from([
            "user-service",
            "--addr=127.0.0.1:0",
            "--db=/tmp/x/users.db",
            "--dispatch-queue=q",
            "--outbox-retention=24h",
            "--outbox-poll-interval=250ms",
            "--amqp-url=amqp://u:p@h:1/%2f",
            "--queue-type=classic",
        ])
        .unwrap();
        assert_eq!(settings.addr, "127.0.0.1:0");
        assert_eq!(settings.db, PathBuf::from("/tmp/x/users.db"));
        assert_eq!(settings.dispatch_queue, "q");
        assert_eq!(settings.outbox_retention, Duration::from_secs(86_400));
        assert_eq!(settings.outbox_poll_interval, Duration::from_millis(250));
        assert_eq!(settings.amqp.url, "amqp://u:p@h:1/%2f");
        assert_eq!(settings.amqp.queue_type, events::QueueType::Classic);
    }

    #[test]
    fn a_nonsense_duration_is_refused_with_an_example() {
        let err = Settings::try_parse_from(["user-service", "--outbox-retention=soon"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("e.g. `7d`"), "{err}");
    }
}
