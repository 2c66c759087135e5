//! Settings every binary shares: the broker URL and the queue type. Each has a default
//! that works on a developer's machine, an environment variable, and a flag.

use std::fmt;
use std::str::FromStr;

use crate::defaults;

/// The `x-queue-type` of every queue this system declares (`QUEUE_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum QueueType {
    /// Replicated, durable, with a delivery limit (the default: safer and, measured on
    /// this system, faster than classic durable queues).
    #[default]
    Quorum,
    /// Classic durable queues, for brokers without quorum queue support.
    Classic,
}

impl QueueType {
    /// The value of the `x-queue-type` argument.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quorum => "quorum",
            Self::Classic => "classic",
        }
    }
}

impl fmt::Display for QueueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a `QUEUE_TYPE` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown queue type {0:?}: expected `quorum` or `classic`")]
pub struct UnknownQueueType(String);

impl FromStr for QueueType {
    type Err = UnknownQueueType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "quorum" => Ok(Self::Quorum),
            "classic" => Ok(Self::Classic),
            _ => Err(UnknownQueueType(s.to_owned())),
        }
    }
}

/// Broker settings, flattened into each binary's clap arguments.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct AmqpSettings {
    /// Broker URL (AMQP 0-9-1); the vhost is URL-encoded (`%2f` is `/`).
    #[arg(long = "amqp-url", env = "AMQP_URL", default_value = defaults::AMQP_URL)]
    pub url: String,
    /// Type of every queue this process declares: `quorum` or `classic`.
    #[arg(long = "queue-type", env = "QUEUE_TYPE", value_enum, default_value_t = QueueType::Quorum)]
    pub queue_type: QueueType,
}

impl Default for AmqpSettings {
    fn default() -> Self {
        Self {
            url: defaults::AMQP_URL.to_owned(),
            queue_type: QueueType::Quorum,
        }
    }
}

impl AmqpSettings {
    /// Settings from `AMQP_URL` and `QUEUE_TYPE`, with the defaults where unset.
    pub fn from_env() -> Result<Self, UnknownQueueType> {
        let url = std::env::var("AMQP_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| defaults::AMQP_URL.to_owned());
        let queue_type = match std::env::var("QUEUE_TYPE") {
            Ok(value) if !value.trim().is_empty() => value.parse()?,
            _ => QueueType::default(),
        };
        Ok(Self { url, queue_type })
    }
}

/// The URL with its password replaced by `***`, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        amqp: AmqpSettings,
    }

    #[test]
    fn queue_types_parse_case_insensitively_and_refuse_others() {
        assert_eq!("Quorum".parse::<QueueType>().unwrap(), QueueType::Quorum);
        assert_eq!("classic".parse::<QueueType>().unwrap(), QueueType::Classic);
        let err = "stream".parse::<QueueType>().unwrap_err();
        assert!(err.to_string().contains("quorum"), "{err}");
    }

    #[test]
    fn flags_override_the_defaults() {
        let cli = Cli::try_parse_from(["x", "--queue-type", "classic", "--amqp-url", "amqp://h"])
            .unwrap();
        assert_eq!(cli.amqp.queue_type, QueueType::Classic);
        assert_eq!(cli.amqp.url, "amqp://h");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("amqp://127.0.0.1"), "amqp://127.0.0.1");
        assert_eq!(redact_url("amqp://u:p@ss@h/v"), "amqp://u:***@h/v");
    }
}
