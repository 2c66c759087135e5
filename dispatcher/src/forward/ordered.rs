//! Ordered mode (`DISPATCH_ORDERED`): one replica at a time consumes the source queue.
//!
//! The active replica holds a lock: an exclusive queue `<source>.ordered-lock` declared on
//! its consume connection. The broker lets one connection hold an exclusive queue
//! (others get `RESOURCE_LOCKED`) and deletes it when that connection closes, dies or
//! misses its heartbeats; a standby tries again every [`STANDBY_RETRY`] and takes over.
//!
//! Why not RabbitMQ's single active consumer: it is a queue argument
//! (`x-single-active-consumer`), fixed when the queue is created, which every declarer of
//! the source queue (the user-service relay too) must repeat or be refused with
//! `PRECONDITION_FAILED - inequivalent arg`, and which cannot be turned on for an existing
//! queue without deleting it. Why not an exclusive consumer: quorum queues (the default)
//! do not enforce it (RabbitMQ 3.10 accepts a second exclusive consumer). The lock queue
//! leaves the source queue's arguments alone, works for both queue types, and the mode
//! can be switched by restarting the replicas; its cost is up to [`STANDBY_RETRY`] more
//! failover time than the broker's own hand-over.

use std::time::Duration;

use anyhow::Context as _;
use lapin::options::QueueDeclareOptions;
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ErrorKind};
use tokio_util::sync::CancellationToken;

use crate::state::Shared;

/// How often a standby tries to take the lock.
pub const STANDBY_RETRY: Duration = Duration::from_secs(1);

/// The lock queue of `source`.
pub fn lock_queue(source: &str) -> String {
    format!("{source}.ordered-lock")
}

/// Waits until this replica holds the lock of the source queue on `consume` (standing by
/// meanwhile), and returns the channel that declared it. `Ok(None)` on shutdown; `Err`
/// when the broker fails otherwise.
pub(super) async fn claim(
    shared: &Shared,
    consume: &Connection,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Channel>> {
    let lock = lock_queue(&shared.generation().table.source);
    let mut announced = false;
    loop {
        let channel = consume
            .create_channel()
            .await
            .context("opening the lock channel")?;
        match channel
            .queue_declare(lock.as_str().into(), exclusive(), classic())
            .await
        {
            Ok(_) => {
                shared.set_standby(false);
                tracing::info!(lock = %lock, "ordered mode: this replica is active");
                return Ok(Some(channel));
            }
            Err(error) if is_locked(&error) => {
                if !announced {
                    tracing::info!(lock = %lock, "ordered mode: another replica is active; standing by");
                    announced = true;
                }
                shared.set_standby(true);
                shared.set_ready();
            }
            Err(error) => return Err(error).with_context(|| format!("declaring the lock {lock}")),
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            () = tokio::time::sleep(STANDBY_RETRY) => {}
        }
    }
}

fn exclusive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    }
}

// Exclusive queues must be classic, whatever the vhost's default queue type.
fn classic() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("classic")),
    );
    args
}

fn is_locked(error: &lapin::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ProtocolError(amqp)
            if *amqp.kind() == AMQPErrorKind::Soft(AMQPSoftError::RESOURCELOCKED)
    )
}
