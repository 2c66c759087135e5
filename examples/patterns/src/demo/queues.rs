//! The demo's queues and exchanges on the broker: how many consumers a queue has (a
//! service is ready when its queue has one), and deleting all of them at the end.

use anyhow::Context;
use events::amqp::dead_letter_queue;
use lapin::Connection;
use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;

/// The consumers of `queue` (0 when it does not exist yet).
pub async fn consumers(connection: &Connection, queue: &str) -> anyhow::Result<u32> {
    Ok(passive(connection, queue).await?.unwrap_or(0))
}

/// A passive declare on its own channel (a missing queue closes the channel):
/// `Some(consumer count)`, or `None` when the queue does not exist.
async fn passive(connection: &Connection, queue: &str) -> anyhow::Result<Option<u32>> {
    let channel = connection.create_channel().await?;
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::durable().passive(),
            FieldTable::default(),
        )
        .await;
    let _ = channel.close(200, "ok".into()).await;
    Ok(declared.ok().map(|q| q.consumer_count()))
}

/// Deletes `queues` (each with its `.dead` queue) and `exchanges`.
pub async fn delete_all(
    connection: &Connection,
    queues: &[String],
    exchanges: &[String],
) -> anyhow::Result<()> {
    let channel = connection.create_channel().await?;
    for queue in queues {
        for name in [queue.clone(), dead_letter_queue(queue)] {
            channel
                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await
                .with_context(|| format!("deleting queue {name}"))?;
        }
    }
    for exchange in exchanges {
        channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .with_context(|| format!("deleting exchange {exchange}"))?;
    }
    let _ = channel.close(200, "ok".into()).await;
    Ok(())
}
