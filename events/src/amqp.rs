//! The broker, the one shared way: connect with retry, declare queues identically
//! everywhere (RabbitMQ refuses a redeclare with other arguments), publish with confirms,
//! and read AMQP header values (as text, as JSON).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, PublisherConfirm,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::defaults::DEAD_SUFFIX;
use crate::settings::{QueueType, redact_url};

/// AMQP delivery mode of a persistent message.
pub const PERSISTENT: u8 = 2;

/// How many times a quorum queue delivers a message before dead-lettering it to
/// `<queue>.dead`. Generous, because crashes and reconnects count as deliveries too;
/// it exists to stop a poison message from looping forever.
pub const DELIVERY_LIMIT: i64 = 20;

/// Bound on one connection attempt (TCP + AMQP handshake).
pub const CONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why connecting failed.
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
    /// Shutdown was requested while retrying.
    #[error("shutdown requested while connecting to the broker")]
    Cancelled,
}

/// One connection attempt, bounded by `timeout`. `name` shows in the management UI.
pub async fn connect_once(
    url: &str,
    name: &str,
    timeout: Duration,
) -> Result<Connection, ConnectError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    match tokio::time::timeout(timeout, Connection::connect(url, properties)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(source)) => Err(ConnectError::Amqp {
            url: redact_url(url),
            source,
        }),
        Err(_) => Err(ConnectError::Timeout {
            url: redact_url(url),
            timeout,
        }),
    }
}

/// The reconnect schedule: exponential from 100 ms, capped at 5 s, with jitter, forever.
pub fn reconnect_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Connects, retrying with [`reconnect_backoff`] (each attempt bounded by
/// [`CONNECT_ATTEMPT_TIMEOUT`], each failure logged) until it succeeds or `cancel` fires.
pub async fn connect(
    url: &str,
    name: &str,
    cancel: &CancellationToken,
) -> Result<Connection, ConnectError> {
    let mut delays = reconnect_backoff();
    for attempt in 1u64.. {
        let result = tokio::select! {
            () = cancel.cancelled() => return Err(ConnectError::Cancelled),
            result = connect_once(url, name, CONNECT_ATTEMPT_TIMEOUT) => result,
        };
        let error = match result {
            Ok(connection) => {
                tracing::info!(url = %redact_url(url), attempt, "connected to broker");
                return Ok(connection);
            }
            Err(error) => error,
        };
        let delay = delays.next().unwrap_or(Duration::from_secs(5));
        tracing::warn!(%error, attempt, retry_in_ms = delay.as_millis() as u64, "broker not reachable, retrying");
        tokio::select! {
            () = cancel.cancelled() => return Err(ConnectError::Cancelled),
            () = tokio::time::sleep(delay) => {}
        }
    }
    Err(ConnectError::Cancelled)
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
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn the_backoff_grows_and_is_capped() {
        let delays: Vec<Duration> = reconnect_backoff().take(12).collect();
        assert_eq!(delays.len(), 12, "the schedule never ends");
        assert!(delays[0] < Duration::from_millis(250), "{delays:?}");
        // Jitter adds up to one min_delay on top of the cap.
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(10)),
            "{delays:?}"
        );
        assert!(delays[11] >= Duration::from_secs(5), "{delays:?}");
    }

    #[test]
    fn amqp_header_values_convert_to_json() {
        let mut inner = FieldTable::default();
        inner.insert("k".into(), AMQPValue::Boolean(true));
        assert_eq!(amqp_to_json(&AMQPValue::LongInt(-3)), json!(-3));
        assert_eq!(
            amqp_to_json(&AMQPValue::LongString("FR".into())),
            json!("FR")
        );
        assert_eq!(
            amqp_to_json(&AMQPValue::FieldTable(inner)),
            json!({"k": true})
        );
        assert_eq!(amqp_to_json(&AMQPValue::Void), Value::Null);
    }
}
