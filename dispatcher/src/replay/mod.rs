//! `dispatcher replay`: reads the archive stream from a time, routes each event by the
//! current table (narrowed by filters), and publishes it again with confirms.
//!
//! - [`select`]: which targets one archived event goes to.
//! - [`run`]: the stream read and the publishes, up to the end as it was at start.
//! - [`headers`]: the headers a replay reads and writes.

pub mod headers;
pub mod run;
pub mod select;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::AmqpSettings;
use events::defaults;

pub use run::replay;

/// `dispatcher replay`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// The routing table: its `[archive]` names the stream, its routes route the events.
    #[arg(long = "routes", env = "ROUTES_FILE", default_value = defaults::ROUTES_FILE)]
    pub routes: PathBuf,
    /// Replay events received at or after this time: RFC 3339 (`2026-11-30T10:00:00Z`),
    /// or a duration meaning that long ago (`1h`).
    #[arg(long = "from", value_parser = parse_time)]
    pub from: DateTime<Utc>,
    /// Replay events received up to this time (default: the end of the stream as it
    /// was when the replay started).
    #[arg(long = "to", value_parser = parse_time)]
    pub to: Option<DateTime<Utc>>,
    /// Only events of this type or topic pattern (`user.*`: patterns as in routes.toml).
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// Only events whose field equals the value, as PATH=VALUE (`data.country=FR`);
    /// repeatable, all must hold.
    #[arg(long = "where")]
    pub conditions: Vec<String>,
    /// Only to the targets of this route (repeatable).
    #[arg(long = "route")]
    pub routes_named: Vec<String>,
    /// Send every selected event to this queue instead of the routes' targets.
    #[arg(long = "to-queue")]
    pub to_queue: Option<String>,
    /// At most this many events per second (`500/s` or `500`).
    #[arg(long = "rate", value_parser = parse_rate)]
    pub rate: Option<u32>,
    /// Read and count, send nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Broker settings.
    #[command(flatten)]
    pub amqp: AmqpSettings,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The replay id (`x-dispatch-replay` of every copy sent).
    pub id: String,
    /// The stream read.
    pub stream: String,
    /// Events read in the time window.
    pub read: u64,
    /// Copies sent (or, in a dry run, that would be sent), per target.
    pub sent: BTreeMap<String, u64>,
    /// Left out by `--type`, `--where` or `--route`.
    pub filtered: u64,
    /// No route of the current table matches them.
    pub unrouted: u64,
    /// Not readable as events (they were dead-lettered when they arrived).
    pub unreadable: u64,
    /// Whether nothing was sent.
    pub dry_run: bool,
}

impl Summary {
    /// The text printed at the end.
    pub fn render(&self) -> String {
        let verb = if self.dry_run { "would send" } else { "sent" };
        let mut text = format!(
            "replay {}: read {} events from {}{}\n",
            self.id,
            self.read,
            self.stream,
            if self.dry_run { " (dry run)" } else { "" }
        );
        if self.sent.is_empty() {
            text.push_str(&format!("  {verb}: nothing\n"));
        }
        for (target, count) in &self.sent {
            text.push_str(&format!("  {verb} to {target}: {count}\n"));
        }
        text.push_str(&format!("  skipped by filter: {}\n", self.filtered));
        text.push_str(&format!("  skipped, no route matches: {}\n", self.unrouted));
        text.push_str(&format!("  skipped, unreadable: {}\n", self.unreadable));
        text
    }
}

/// RFC 3339, or a duration ago.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(time.with_timezone(&Utc));
    }
    let ago = events::duration::parse_duration(text).map_err(|_| {
        format!(
            "`{text}` is neither an RFC 3339 time (2026-11-30T10:00:00Z) nor a duration ago (1h)"
        )
    })?;
    let ago = chrono::Duration::from_std(ago).map_err(|e| format!("`{text}`: {e}"))?;
    Ok(Utc::now() - ago)
}

/// `500/s` or `500`: events per second, at least 1.
pub fn parse_rate(text: &str) -> Result<u32, String> {
    let number = text.trim().strip_suffix("/s").unwrap_or(text.trim());
    match number.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{text}` is not a rate: write e.g. `500/s`")),
    }
}

/// The pause between two sends at `rate` events per second.
pub fn interval_of(rate: u32) -> Duration {
    Duration::from_secs(1) / rate.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_is_rfc3339_or_a_duration_ago() {
        let at = parse_time("2026-11-30T10:00:00Z").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-11-30T10:00:00+00:00");
        let hour_ago = parse_time("1h").unwrap();
        let age = Utc::now() - hour_ago;
        assert!(age.num_minutes() >= 59 && age.num_minutes() <= 61, "{age}");
        assert!(
            parse_time("yesterday-ish")
                .unwrap_err()
                .contains("RFC 3339")
        );
    }

    #[test]
    fn a_rate_is_per_second() {
        assert_eq!(parse_rate("500/s"), Ok(500));
        assert_eq!(parse_rate("20"), Ok(20));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("fast").is_err());
        assert_eq!(interval_of(4), Duration::from_millis(250));
    }

    #[test]
    fn the_summary_lists_each_target_and_the_skips() {
        let summary = Summary {
            id: "r1".to_owned(),
            stream: "dispatch.archive".to_owned(),
            read: 5,
            sent: BTreeMap::from([("queue_order".to_owned(), 3)]),
            filtered: 1,
            unrouted: 1,
            unreadable: 0,
            dry_run: true,
        };
        assert_eq!(
            summary.render(),
            "replay r1: read 5 events from dispatch.archive (dry run)\n  would send to queue_order: 3\n  skipped by filter: 1\n  skipped, no route matches: 1\n  skipped, unreadable: 0\n"
        );
    }
}
