//! Settings every binary shares: the broker URL(s), the TLS files and the queue type.
//! Each has a default that works on a developer's machine, an environment variable, and
//! a flag.

use std::fmt;
use std::path::PathBuf;
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

/// Broker settings, flattened into each binary's clap arguments. `Debug` shows the URLs
/// with their passwords redacted, so the settings may be logged whole.
#[derive(Clone, PartialEq, Eq, clap::Args)]
pub struct AmqpSettings {
    /// Broker URL (AMQP 0-9-1), or several separated by commas, one per cluster node:
    /// a connection tries them in turn. `amqps://` for TLS; the vhost is URL-encoded
    /// (`%2f` is `/`).
    #[arg(long = "amqp-url", env = "AMQP_URL", default_value = defaults::AMQP_URL)]
    pub url: String,
    /// A file holding the broker URL(s), separated by commas or newlines (a Docker or
    /// Kubernetes secret). When set, it wins over `AMQP_URL`; it is read again at each
    /// connection, so a rotated secret applies at the next reconnect.
    #[arg(long = "amqp-url-file", env = "AMQP_URL_FILE")]
    pub url_file: Option<PathBuf>,
    /// A PEM file of CA certificates to trust for `amqps://`, on top of the system's.
    #[arg(long = "amqp-ca-file", env = "AMQP_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate (with its chain) for mutual TLS; needs `AMQP_CLIENT_KEY`.
    #[arg(
        long = "amqp-client-cert",
        env = "AMQP_CLIENT_CERT",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// The PEM private key of `AMQP_CLIENT_CERT`.
    #[arg(
        long = "amqp-client-key",
        env = "AMQP_CLIENT_KEY",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
    /// Type of every queue this process declares: `quorum` or `classic`.
    #[arg(long = "queue-type", env = "QUEUE_TYPE", value_enum, default_value_t = QueueType::Quorum)]
    pub queue_type: QueueType,
}

impl Default for AmqpSettings {
    fn default() -> Self {
        Self {
            url: defaults::AMQP_URL.to_owned(),
            url_file: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            queue_type: QueueType::Quorum,
        }
    }
}

// Written by hand: a derived `Debug` would print the password of every URL.
impl fmt::Debug for AmqpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpSettings")
            .field("url", &redact_urls(&self.url))
            .field("url_file", &self.url_file)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("queue_type", &self.queue_type)
            .finish()
    }
}

impl AmqpSettings {
    /// Settings from `AMQP_URL`, `AMQP_URL_FILE`, `AMQP_CA_FILE`, `AMQP_CLIENT_CERT`,
    /// `AMQP_CLIENT_KEY` and `QUEUE_TYPE`, with the defaults where unset or empty.
    pub fn from_env() -> Result<Self, UnknownQueueType> {
        let queue_type = match env("QUEUE_TYPE") {
            Some(value) => value.parse()?,
            None => QueueType::default(),
        };
        Ok(Self {
            url: env("AMQP_URL").unwrap_or_else(|| defaults::AMQP_URL.to_owned()),
            url_file: env("AMQP_URL_FILE").map(PathBuf::from),
            ca_file: env("AMQP_CA_FILE").map(PathBuf::from),
            client_cert: env("AMQP_CLIENT_CERT").map(PathBuf::from),
            client_key: env("AMQP_CLIENT_KEY").map(PathBuf::from),
            queue_type,
        })
    }

    /// Settings for `url` (one URL or a comma-separated list), everything else default.
    pub fn for_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The URL with its password replaced by `***`, for logs and error messages. Also
/// without a scheme (`user:pass@host`), where a typo would otherwise show the password.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    let Some((user, _)) = userinfo.split_once(':') else {
        return url.to_owned();
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{user}:***@{host}"),
    }
}

/// [`redact_url`] on each URL of a comma- or newline-separated list.
pub fn redact_urls(urls: &str) -> String {
    split_urls(urls)
        .map(redact_url)
        .collect::<Vec<_>>()
        .join(",")
}

/// The URLs of a list separated by commas, newlines or spaces, empty entries skipped.
pub fn split_urls(urls: &str) -> impl Iterator<Item = &str> {
    urls.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|u| !u.is_empty())
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
        assert_eq!(redact_url("u:secret@h:5672"), "u:***@h:5672");
    }

    #[test]
    fn every_url_of_a_list_is_redacted() {
        assert_eq!(
            redact_urls("amqp://a:s1@h1, amqps://b:s2@h2\namqp://h3"),
            "amqp://a:***@h1,amqps://b:***@h2,amqp://h3"
        );
    }

    #[test]
    fn debug_of_the_settings_shows_no_password() {
        let settings =
            AmqpSettings::for_url("amqp://u:Zebra-Quartz-77@h1,amqps://u:Zebra-Quartz-77@h2");
        let shown = format!("{settings:?} {settings:#?}");
        assert!(!shown.contains("Zebra-Quartz-77"), "{shown}");
        assert!(shown.contains("amqps://u:***@h2"), "{shown}");
    }

    #[test]
    fn tls_files_come_from_flags() {
        let cli = Cli::try_parse_from([
            "x",
            "--amqp-ca-file",
            "ca.pem",
            "--amqp-client-cert",
            "c.pem",
            "--amqp-client-key",
            "k.pem",
            "--amqp-url-file",
            "/run/secrets/amqp",
        ])
        .unwrap();
        assert_eq!(cli.amqp.ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(cli.amqp.client_cert, Some(PathBuf::from("c.pem")));
        assert_eq!(cli.amqp.client_key, Some(PathBuf::from("k.pem")));
        assert_eq!(cli.amqp.url_file, Some(PathBuf::from("/run/secrets/amqp")));
    }

    #[test]
    fn a_client_certificate_without_its_key_is_refused() {
        let err = Cli::try_parse_from(["x", "--amqp-client-cert", "c.pem"])
            .err()
            .expect("refused");
        assert!(err.to_string().contains("amqp-client-key"), "{err}");
    }
}
