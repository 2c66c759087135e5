//! The broker, the one shared way: connect with retry, declare queues identically
//! everywhere (RabbitMQ refuses a redeclare with other arguments), publish with confirms.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, PublisherConfirm,
};
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
        /// Where it was published.
        exchange: String,
        /// With which routing key.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn arg<'a>(table: &'a FieldTable, key: &str) -> Option<&'a AMQPValue> {
        table.inner().get(key)
    }

    #[test]
    fn quorum_queues_get_a_delivery_limit_and_a_dead_letter_queue() {
        let args = queue_arguments("queue_order", QueueType::Quorum);
        assert_eq!(arg(&args, "x-queue-type"), Some(&long_string("quorum")));
        assert_eq!(arg(&args, "x-dead-letter-exchange"), Some(&long_string("")));
        assert_eq!(
            arg(&args, "x-dead-letter-routing-key"),
            Some(&long_string("queue_order.dead"))
        );
        assert_eq!(
            arg(&args, "x-delivery-limit"),
            Some(&AMQPValue::LongLongInt(DELIVERY_LIMIT))
        );
    }

    #[test]
    fn classic_queues_dead_letter_but_have_no_delivery_limit() {
        let args = queue_arguments("queue_order", QueueType::Classic);
        assert_eq!(arg(&args, "x-queue-type"), Some(&long_string("classic")));
        assert_eq!(
            arg(&args, "x-dead-letter-routing-key"),
            Some(&long_string("queue_order.dead"))
        );
        assert_eq!(arg(&args, "x-delivery-limit"), None);
    }

    #[test]
    fn dead_letter_queues_are_terminal() {
        let args = queue_arguments("queue_dispatch.dead", QueueType::Quorum);
        assert_eq!(args.inner().len(), 1, "{args:?}");
        assert!(is_dead_letter_queue("queue_dispatch.dead"));
        assert!(!is_dead_letter_queue("queue_dispatch"));
    }
}
