//! The broker, the one shared way: connect with retry, declare queues identically
//! everywhere (RabbitMQ refuses a redeclare with other arguments), publish with confirms,
//! and read AMQP header values (as text, as JSON).

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, PublisherConfirm,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::defaults::DEAD_SUFFIX;
use crate::endpoints::{Endpoints, EndpointsError, Node};
use crate::settings::QueueType;
use crate::tls;

/// AMQP delivery mode of a persistent message.
pub const PERSISTENT: u8 = 2;

/// How many times a quorum queue delivers a message before dead-lettering it to
/// `<queue>.dead`. Generous, because crashes and reconnects count as deliveries too;
/// it exists to stop a poison message from looping forever.
pub const DELIVERY_LIMIT: i64 = 20;

/// Bound on one connection attempt (TCP + AMQP handshake).
pub const CONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why connecting failed. Every URL in it has its password redacted.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The attempt did not finish in time.
    #[error("connecting to {url} timed out after {timeout:?}")]
    Timeout {
        /// The broker URL, password redacted.
        url: String,
        /// The bound that was hit.
        timeout: Duration,
    },
    /// The broker refused or was unreachable.
    #[error("connecting to {url}: {source}")]
    Amqp {
        /// The broker URL, password redacted.
        url: String,
        /// What lapin reported.
        source: lapin::Error,
    },
    /// The TLS handshake failed; `reason` says what failed and what to do.
    #[error("connecting to {url}: {reason}")]
    Tls {
        /// The broker URL, password redacted.
        url: String,
        /// One line: what failed, and what to do about it.
        reason: String,
    },
    /// Every node of a several-node list failed (each failure in order).
    #[error("no broker node answered: {}", join(.0))]
    AllNodes(Vec<ConnectError>),
    /// The broker settings cannot be used (bad URL, unreadable file).
    #[error(transparent)]
    Settings(#[from] EndpointsError),
    /// Shutdown was requested while retrying.
    #[error("shutdown requested while connecting to the broker")]
    Cancelled,
}

fn join(errors: &[ConnectError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One connection attempt per node, in turn, each bounded by `timeout`, until one
/// answers. `name` shows in the management UI, and [`Endpoints::node_of`] tells which
/// node it reached.
pub async fn connect_once(
    endpoints: &Endpoints,
    name: &str,
    timeout: Duration,
) -> Result<Connection, ConnectError> {
    let nodes = endpoints.nodes()?;
    let tls = endpoints.tls()?;
    let mut failures = Vec::new();
    for index in endpoints.order(nodes.len()) {
        let node = &nodes[index];
        match connect_node(node, &tls, name, timeout).await {
            Ok(connection) => {
                endpoints.reached_node(name, index, node);
                return Ok(connection);
            }
            Err(error) => {
                if nodes.len() > 1 {
                    tracing::debug!(node = node.shown(), %error, "broker node not reachable, trying the next");
                }
                failures.push(error);
            }
        }
    }
    Err(match failures.len() {
        1 => failures.remove(0),
        _ => ConnectError::AllNodes(failures),
    })
}

/// One attempt at one node.
async fn connect_node(
    node: &Node,
    tls: &OwnedTLSConfig,
    name: &str,
    timeout: Duration,
) -> Result<Connection, ConnectError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let runtime = lapin::runtime::default_runtime().map_err(|source| ConnectError::Amqp {
        url: node.shown().to_owned(),
        source,
    })?;
    let attempt =
        Connection::connect_with_config(node.secret_url(), properties, tls.clone(), runtime);
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(source)) => Err(match tls::diagnose(&source, node, tls) {
            Some(reason) => ConnectError::Tls {
                url: node.shown().to_owned(),
                reason,
            },
            None => ConnectError::Amqp {
                url: node.shown().to_owned(),
                source,
            },
        }),
        Err(_) => Err(ConnectError::Timeout {
            url: node.shown().to_owned(),
            timeout,
        }),
    }
}

/// Connects, retrying with a [`Backoff`] (each attempt bounded by
/// [`CONNECT_ATTEMPT_TIMEOUT`], each failure logged) until it succeeds or `cancel` fires.
pub async fn connect(
    endpoints: &Endpoints,
    name: &str,
    cancel: &CancellationToken,
) -> Result<Connection, ConnectError> {
    let mut backoff = Backoff::new();
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        let result = tokio::select! {
            () = cancel.cancelled() => return Err(ConnectError::Cancelled),
            result = connect_once(endpoints, name, CONNECT_ATTEMPT_TIMEOUT) => result,
        };
        match result {
            Ok(connection) => {
                let node = endpoints.node_of(name).unwrap_or_default();
                tracing::info!(%node, connection = name, attempt, "connected to broker");
                return Ok(connection);
            }
            Err(error) => tracing::warn!(%error, attempt, "broker not reachable, retrying"),
        }
        if !backoff.sleep(cancel).await {
            return Err(ConnectError::Cancelled);
        }
    }
}

/// Whether `name` is a dead-letter queue (`<queue>.dead`): terminal, no DLX of its own.
pub fn is_dead_letter_queue(name: &str) -> bool {
    name.ends_with(DEAD_SUFFIX)
}

/// The dead-letter queue of `name`.
pub fn dead_letter_queue(name: &str) -> String {
    format!("{name}{DEAD_SUFFIX}")
}

/// The `queue.declare` arguments of `name`, identical for every declarer:
/// `x-queue-type`; unless `name` is itself a `.dead` queue, dead-lettering to
/// `<name>.dead` through the default exchange and, for quorum queues, a delivery limit.
pub fn queue_arguments(name: &str, queue_type: QueueType) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string(queue_type.as_str()));
    if !is_dead_letter_queue(name) {
        args.insert("x-dead-letter-exchange".into(), long_string(""));
        args.insert(
            "x-dead-letter-routing-key".into(),
            long_string(&dead_letter_queue(name)),
        );
        if queue_type == QueueType::Quorum {
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(DELIVERY_LIMIT),
            );
        }
    }
    args
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// Declares `name` durable with [`queue_arguments`], and its `.dead` queue first (so a
/// dead-lettered message always has somewhere to go). Idempotent.
pub async fn declare_queue(
    channel: &Channel,
    name: &str,
    queue_type: QueueType,
) -> Result<(), lapin::Error> {
    if !is_dead_letter_queue(name) {
        let dead = dead_letter_queue(name);
        declare_one(channel, &dead, queue_type).await?;
    }
    declare_one(channel, name, queue_type).await
}

async fn declare_one(
    channel: &Channel,
    name: &str,
    queue_type: QueueType,
) -> Result<(), lapin::Error> {
    channel
        .queue_declare(
            ShortString::from(name),
            QueueDeclareOptions::durable(),
            queue_arguments(name, queue_type),
        )
        .await
        .map(|_| ())
}

/// Why a publish did not end in a confirmed, routed message.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The channel or connection failed.
    #[error("broker error while publishing: {0}")]
    Amqp(#[from] lapin::Error),
    /// The broker refused the message (`basic.nack`).
    #[error("broker refused the message (nack)")]
    Nacked,
    /// The message was `mandatory` and no queue was bound: RabbitMQ returns it, then acks
    /// it. An acked return is a failure, not a success.
    #[error(
        "message returned unroutable: {code} {text} (exchange {exchange:?}, routing key {routing_key:?})"
    )]
    Returned {
        /// AMQP reply code (312 NO_ROUTE).
        code: u16,
        /// AMQP reply text.
        text: String,
        exchange: String,
        routing_key: String,
    },
    /// Publisher confirms were not enabled on the channel.
    #[error("publisher confirms are not enabled on this channel")]
    NotConfirmed,
}

impl PublishError {
    /// A short, stable code for metrics labels and headers.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Amqp(_) => "broker_error",
            Self::Nacked => "nacked",
            Self::Returned { .. } => "unroutable",
            Self::NotConfirmed => "not_confirmed",
        }
    }

    /// Whether the channel is unusable and the caller must reconnect.
    pub fn is_connection_error(&self) -> bool {
        matches!(self, Self::Amqp(_))
    }
}

/// A channel in confirm mode: every message is `mandatory` and persistent-as-given,
/// and counts as published only when the broker acked it and did not return it.
#[derive(Debug, Clone)]
pub struct Publisher {
    channel: Channel,
}

/// A publish that was sent and awaits the broker's confirmation. Pipelining: send many,
/// then wait for each.
#[derive(Debug)]
#[must_use = "a publish is not confirmed until `wait` says so"]
pub struct PendingConfirm(PublisherConfirm);

impl Publisher {
    /// Opens a channel on `connection` and enables publisher confirms on it.
    pub async fn new(connection: &Connection) -> Result<Self, lapin::Error> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self { channel })
    }

    /// The underlying channel (for declarations on the same channel).
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Sends a `mandatory` publish; await [`PendingConfirm::wait`] for its fate.
    pub async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<PendingConfirm, PublishError> {
        let confirm = self
            .channel
            .basic_publish(
                ShortString::from(exchange),
                ShortString::from(routing_key),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await?;
        Ok(PendingConfirm(confirm))
    }

    /// Sends and waits for the confirmation.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        self.send(exchange, routing_key, body, properties)
            .await?
            .wait()
            .await
    }

    /// Publishes to a queue through the default exchange.
    pub async fn publish_to_queue(
        &self,
        queue: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        self.publish("", queue, body, properties).await
    }
}

impl PendingConfirm {
    /// Ok only when the broker acked the message and did not return it.
    pub async fn wait(self) -> Result<(), PublishError> {
        match self.0.await? {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                Err(PublishError::Returned {
                    code: returned.reply_code,
                    text: returned.reply_text.as_str().to_owned(),
                    exchange: returned.delivery.exchange.as_str().to_owned(),
                    routing_key: returned.delivery.routing_key.as_str().to_owned(),
                })
            }
            Confirmation::Nack(None) => Err(PublishError::Nacked),
            Confirmation::NotRequested => Err(PublishError::NotConfirmed),
        }
    }
}

/// Bytes of a frame besides its payload: type (1), channel (2), size (4), frame end (1).
pub const FRAME_OVERHEAD: usize = 8;

/// The smallest `frame_max` an AMQP 0-9-1 peer may negotiate (the spec's
/// `frame-min-size`): whatever the broker says, a frame this size always fits.
pub const MIN_FRAME_MAX: u32 = 4096;

/// The size in bytes of the content header frame that carries a message with
/// `properties`, as the client encodes it (frame overhead, class id, weight, body size,
/// then the properties with their header table). A connection carries it only when it
/// is at most the negotiated `frame_max`; the body travels in frames of its own, so its
/// size does not count.
///
/// Computed, not encoded: encoding every message's properties a second time to measure
/// them cost a tenth of the dispatcher's CPU per message. A property test checks it
/// against lapin's own encoder.
pub fn content_header_frame_size(properties: &BasicProperties) -> usize {
    // class id (2) + weight (2) + body size (8), then the properties.
    FRAME_OVERHEAD + 12 + properties_size(properties)
}

fn properties_size(p: &BasicProperties) -> usize {
    let short = |s: &Option<ShortString>| s.as_ref().map_or(0, |s| 1 + s.as_str().len());
    let flags = 2;
    flags
        + short(p.content_type())
        + short(p.content_encoding())
        + p.headers().as_ref().map_or(0, table_size)
        + p.delivery_mode().map_or(0, |_| 1)
        + p.priority().map_or(0, |_| 1)
        + short(p.correlation_id())
        + short(p.reply_to())
        + short(p.expiration())
        + short(p.message_id())
        + p.timestamp().map_or(0, |_| 8)
        + short(p.kind())
        + short(p.user_id())
        + short(p.app_id())
        + short(p.cluster_id())
}

/// A field table: its length (4), then each name (1 + bytes), type tag (1) and value.
fn table_size(table: &FieldTable) -> usize {
    4 + table
        .inner()
        .iter()
        .map(|(name, value)| 1 + name.as_str().len() + 1 + value_size(value))
        .sum::<usize>()
}

fn value_size(value: &AMQPValue) -> usize {
    match value {
        AMQPValue::Void => 0,
        AMQPValue::Boolean(_) | AMQPValue::ShortShortInt(_) | AMQPValue::ShortShortUInt(_) => 1,
        AMQPValue::ShortInt(_) | AMQPValue::ShortUInt(_) => 2,
        AMQPValue::LongInt(_) | AMQPValue::LongUInt(_) | AMQPValue::Float(_) => 4,
        AMQPValue::DecimalValue(_) => 5,
        AMQPValue::LongLongInt(_) | AMQPValue::Double(_) | AMQPValue::Timestamp(_) => 8,
        AMQPValue::ShortString(s) => 1 + s.as_str().len(),
        AMQPValue::LongString(s) => 4 + s.as_bytes().len(),
        AMQPValue::ByteArray(b) => 4 + b.as_slice().len(),
        AMQPValue::FieldArray(a) => {
            4 + a
                .as_slice()
                .iter()
                .map(|v| 1 + value_size(v))
                .sum::<usize>()
        }
        AMQPValue::FieldTable(t) => table_size(t),
    }
}

/// A header's value as text, when it is a string (short or long).
pub fn header_string(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// An AMQP header value as JSON, for conditions on `headers.<name>`.
pub fn amqp_to_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(n) => Value::from(*n),
        AMQPValue::ShortShortUInt(n) => Value::from(*n),
        AMQPValue::ShortInt(n) => Value::from(*n),
        AMQPValue::ShortUInt(n) => Value::from(*n),
        AMQPValue::LongInt(n) => Value::from(*n),
        AMQPValue::LongUInt(n) => Value::from(*n),
        AMQPValue::LongLongInt(n) => Value::from(*n),
        AMQPValue::Timestamp(n) => Value::from(*n),
        AMQPValue::Float(f) => Value::from(f64::from(*f)),
        AMQPValue::Double(f) => Value::from(*f),
        AMQPValue::DecimalValue(d) => {
            Value::from(f64::from(d.value) / 10f64.powi(i32::from(d.scale)))
        }
        AMQPValue::ShortString(s) => Value::String(s.as_str().to_owned()),
        AMQPValue::LongString(s) => Value::String(String::from_utf8_lossy(s.as_bytes()).into()),
        AMQPValue::ByteArray(b) => Value::String(String::from_utf8_lossy(b.as_slice()).into()),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(amqp_to_json).collect()),
        AMQPValue::FieldTable(t) => Value::Object(
            t.inner()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), amqp_to_json(v)))
                .collect(),
        ),
        AMQPValue::Void => Value::Null,
    }
}

#[cfg(test)]
mod tests;
