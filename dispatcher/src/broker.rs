//! Declarations on the broker: the queues a table publishes to, declared the one shared
//! way, its archive stream, and its exchanges checked to exist (a passive declare) before a table is used.

use events::QueueType;
use events::amqp::declare_queue;
use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ExchangeKind};

use crate::routes::{Archive, RoutingTable};

/// Why a table's declarations failed.
#[derive(Debug, thiserror::Error)]
pub enum DeclareError {
    /// An exchange target does not exist.
    #[error(
        "exchange `{0}` does not exist on the broker (exchange targets must be declared by their owner first)"
    )]
    MissingExchange(String),
    /// A queue could not be declared (e.g. it exists with other arguments).
    #[error("declaring queue `{queue}`: {source}")]
    Queue {
        queue: String,
        /// What the broker said.
        source: lapin::Error,
    },
    /// The archive stream could not be declared (e.g. it exists with other retention
    /// arguments, or a queue of another type has its name).
    #[error(
        "declaring the archive stream `{stream}`: {source} (a stream's retention cannot be changed by declaring it again: change it with a policy, or archive to a new stream)"
    )]
    Archive {
        stream: String,
        /// What the broker said.
        source: lapin::Error,
    },
    /// The connection or a channel failed.
    #[error("broker error while declaring: {0}")]
    Broker(#[from] lapin::Error),
}

/// Declares the source queue and every queue of `table`, and checks its exchanges.
pub async fn declare_table(
    connection: &Connection,
    table: &RoutingTable,
    queue_type: QueueType,
) -> Result<(), DeclareError> {
    let channel = connection.create_channel().await?;
    let mut queues = table.queues();
    queues.push(&table.source);
    for queue in queues {
        declare_queue(&channel, queue, queue_type)
            .await
            .map_err(|source| DeclareError::Queue {
                queue: queue.to_owned(),
                source,
            })?;
    }
    if let Some(archive) = &table.archive {
        declare_archive(&channel, archive).await?;
    }
    let _ = channel.close(200, "declared".into()).await;
    for exchange in table.exchanges() {
        check_exchange(connection, exchange).await?;
    }
    Ok(())
}

/// Declares the archive stream: durable, `x-queue-type = stream`, with its retention.
async fn declare_archive(channel: &Channel, archive: &Archive) -> Result<(), DeclareError> {
    channel
        .queue_declare(
            archive.stream.as_str().into(),
            QueueDeclareOptions::durable(),
            archive.arguments(),
        )
        .await
        .map(|_| ())
        .map_err(|source| DeclareError::Archive {
            stream: archive.stream.clone(),
            source,
        })
}

/// A passive declare on a throw-away channel: the broker closes the channel with 404
/// when the exchange is missing, which must not take a working channel down.
async fn check_exchange(connection: &Connection, exchange: &str) -> Result<(), DeclareError> {
    let channel = connection.create_channel().await?;
    let result = channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    match result {
        Ok(()) => {
            let _ = channel.close(200, "checked".into()).await;
            Ok(())
        }
        Err(error) if is_not_found(&error) => {
            Err(DeclareError::MissingExchange(exchange.to_owned()))
        }
        Err(error) => Err(DeclareError::Broker(error)),
    }
}

fn is_not_found(error: &lapin::Error) -> bool {
    error.to_string().contains("NOT_FOUND")
}
