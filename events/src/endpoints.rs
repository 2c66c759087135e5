//! Where the broker is: one URL per cluster node, tried in turn, and the TLS files.
//! Resolved from [`AmqpSettings`] at each connection, so a rotated secret or certificate
//! applies at the next reconnect; which node to try first is shared by every clone.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use lapin::tcp::OwnedTLSConfig;
use lapin::uri::{AMQPScheme, AMQPUri};

use crate::settings::{AmqpSettings, UnknownQueueType, redact_url, redact_urls, split_urls};
use crate::tls::{self, TlsFileError};

/// Why the broker settings cannot be used. Never shows a password.
#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    /// No URL at all.
    #[error(
        "no broker URL: set AMQP_URL (or AMQP_URL_FILE) to one or more amqp:// or amqps:// URLs"
    )]
    NoUrl,
    /// One URL of the list does not parse.
    #[error("broker URL {url} is not valid: {reason}")]
    BadUrl {
        /// The URL, password redacted.
        url: String,
        /// Why, password redacted.
        reason: String,
    },
    /// `AMQP_URL_FILE` could not be read.
    #[error("cannot read AMQP_URL_FILE {path}: {source}")]
    UrlFile {
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A TLS file is missing or malformed.
    #[error(transparent)]
    Tls(#[from] TlsFileError),
    /// `QUEUE_TYPE` is not a queue type.
    #[error(transparent)]
    QueueType(#[from] UnknownQueueType),
}

/// One broker node. Its URL may hold a password: only [`Node::shown`] is ever printed.
#[derive(Clone)]
pub struct Node {
    url: String,
    shown: String,
    host: String,
    port: u16,
    tls: bool,
}

impl Node {
    /// Parses one AMQP URL.
    pub fn parse(url: &str) -> Result<Self, EndpointsError> {
        let shown = redact_url(url);
        let uri: AMQPUri = url
            .parse()
            .map_err(|reason: String| EndpointsError::BadUrl {
                // The parser may quote the whole URL back.
                reason: reason.replace(url, &shown),
                url: shown.clone(),
            })?;
        Ok(Self {
            url: url.to_owned(),
            shown,
            host: uri.authority.host,
            port: uri.authority.port,
            tls: uri.scheme == AMQPScheme::AMQPS,
        })
    }

    /// The URL with its password redacted: for logs, errors, `/readyz` and metrics.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The host name or address, as the URL gives it (what the certificate must name).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether it is an `amqps://` URL.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The full URL, password included: only for the connection itself.
    pub(crate) fn secret_url(&self) -> &str {
        &self.url
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// The nodes of a URL list (commas, newlines or spaces between them), in order.
pub fn parse_nodes(urls: &str) -> Result<Vec<Node>, EndpointsError> {
    let nodes = split_urls(urls)
        .map(Node::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if nodes.is_empty() {
        return Err(EndpointsError::NoUrl);
    }
    Ok(nodes)
}

/// The broker settings and the runtime state of connecting to them: which node to try
/// first, and which node each named connection reached. Clones share that state.
#[derive(Clone)]
pub struct Endpoints {
    settings: Arc<AmqpSettings>,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    /// Index of the node the next connection tries first.
    next: AtomicUsize,
    /// Connection name → node it reached (shown form). Never held across an await.
    reached: Mutex<BTreeMap<String, String>>,
}

impl Endpoints {
    /// Checks `settings` now (URLs parse, files readable), so that a mistake stops the
    /// process at startup rather than at each reconnect.
    pub fn new(settings: &AmqpSettings) -> Result<Self, EndpointsError> {
        let endpoints = Self::unchecked(settings.clone());
        endpoints.nodes()?;
        endpoints.tls()?;
        Ok(endpoints)
    }

    /// [`Endpoints::new`] from the environment ([`AmqpSettings::from_env`]): for tools
    /// and tests that have no command line of their own.
    pub fn from_env() -> Result<Self, EndpointsError> {
        Self::new(&AmqpSettings::from_env()?)
    }

    fn unchecked(settings: AmqpSettings) -> Self {
        Self {
            settings: Arc::new(settings),
            state: Arc::default(),
        }
    }

    /// The settings these endpoints were made from.
    pub fn settings(&self) -> &AmqpSettings {
        &self.settings
    }

    /// The nodes, from `AMQP_URL_FILE` when set (read now), else from `AMQP_URL`.
    pub fn nodes(&self) -> Result<Vec<Node>, EndpointsError> {
        match &self.settings.url_file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| EndpointsError::UrlFile {
                        path: path.clone(),
                        source,
                    })?;
                parse_nodes(&text)
            }
            None => parse_nodes(&self.settings.url),
        }
    }

    /// The nodes in effect, passwords redacted, comma-separated (or why they cannot be
    /// read): for messages that name the broker.
    pub fn shown(&self) -> String {
        match self.nodes() {
            Ok(nodes) => nodes.iter().map(Node::shown).collect::<Vec<_>>().join(","),
            Err(error) => error.to_string(),
        }
    }

    /// The TLS configuration (CA bundle, client identity), read now.
    pub fn tls(&self) -> Result<OwnedTLSConfig, EndpointsError> {
        Ok(tls::load(&self.settings)?)
    }

    /// The node the connection named `name` reached last (password redacted).
    pub fn node_of(&self, name: &str) -> Option<String> {
        self.reached().get(name).cloned()
    }

    /// Every connection name with the node it reached last (password redacted).
    pub fn reached_nodes(&self) -> BTreeMap<String, String> {
        self.reached().clone()
    }

    fn reached(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        // A panic while holding this lock cannot leave the map half-written.
        self.state
            .reached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The order in which to try `count` nodes: from the one after the node the last
    /// connection reached, so connections spread over the cluster and a reconnect after
    /// a loss tries the other nodes first.
    pub(crate) fn order(&self, count: usize) -> impl Iterator<Item = usize> + use<> {
        let first = self.state.next.load(Ordering::Relaxed);
        (0..count).map(move |offset| (first + offset) % count.max(1))
    }

    /// Records that `name` reached node `index`.
    pub(crate) fn reached_node(&self, name: &str, index: usize, node: &Node) {
        self.state.next.store(index + 1, Ordering::Relaxed);
        self.reached()
            .insert(name.to_owned(), node.shown().to_owned());
    }
}

impl From<&AmqpSettings> for Endpoints {
    /// Endpoints for settings already checked with [`Endpoints::new`] (at startup): a
    /// file that went missing since shows at connection time.
    fn from(settings: &AmqpSettings) -> Self {
        Self::unchecked(settings.clone())
    }
}

impl From<&str> for Endpoints {
    /// Endpoints for a URL list with no TLS files; a bad URL shows at connection time.
    fn from(urls: &str) -> Self {
        Self::unchecked(AmqpSettings::for_url(urls))
    }
}

impl From<String> for Endpoints {
    fn from(urls: String) -> Self {
        Self::unchecked(AmqpSettings::for_url(urls))
    }
}

impl fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoints")
            .field("urls", &redact_urls(&self.settings.url))
            .field("url_file", &self.settings.url_file)
            .field("reached", &self.reached_nodes())
            .finish()
    }
}

#[cfg(test)]
mod tests;
