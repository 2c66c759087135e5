//! Consume → route → publish → ack, pipelined: up to `prefetch` deliveries in flight,
//! each one's publishes confirmed concurrently, acks batched with `multiple` up to the
//! highest tag whose own fate and all lower ones are settled.
//!
//! A broker session owns two connections (consume, publish). Any consume or publish
//! error ends the session: its channels are dropped unacked (the broker requeues what
//! was in flight), and a new session reconnects, redeclares and resumes. Tags are never
//! carried from one session's channel to another's.

pub mod ack_window;
pub mod acker;
pub mod archive;
pub mod context;
mod dead_letter;
pub mod deliver;
mod failures;
pub mod letter;
pub mod ordered;
mod plan;
mod publish;
mod pump;
mod quote;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use events::amqp::{ConnectError, Publisher, connect};
use events::backoff::Backoff;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use tokio_util::sync::CancellationToken;

use crate::broker::declare_table;
use crate::state::Shared;
use context::Session;
use failures::connection_failures;

/// Bound on opening channels, declaring and starting the consumer.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs broker sessions until `shutdown`, reconnecting with the shared [`Backoff`] (a
/// session that lasted `events::backoff::HEALTHY_SESSION` starts its schedule over).
pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut backoff = Backoff::new();
    loop {
        backoff.session_started();
        let result = session(&shared, &shutdown).await;
        shared.broker.store(None);
        let error = match result {
            Ok(()) => return,
            Err(error) => error,
        };
        shared.set_not_ready(format!("broker session failed: {error:#}"));
        if shutdown.is_cancelled() {
            return;
        }
        tracing::warn!(
            error = format!("{error:#}"),
            "broker session ended, reconnecting"
        );
        if !backoff.sleep(&shutdown).await {
            return;
        }
    }
}

/// One session: `Ok` on shutdown, `Err` when the broker failed us.
async fn session(shared: &Arc<Shared>, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let url = &shared.endpoints;
    let consume_name = format!("{} consume", shared.instance);
    let Some(consume) = connected(connect(url, &consume_name, shutdown).await)? else {
        return Ok(());
    };
    let publish_name = format!("{} publish", shared.instance);
    let Some(publish) = connected(connect(url, &publish_name, shutdown).await)? else {
        return Ok(());
    };
    let publish = Arc::new(publish);
    shared.metrics.sessions.inc();
    shared.broker.store(Some(publish.clone()));
    // Ordered mode: stand by until this replica holds the source's lock; the lock
    // channel must stay open for as long as the session consumes.
    let _lock = if shared.settings.ordered {
        match ordered::claim(shared, &consume, shutdown).await {
            Ok(Some(lock)) => Some(lock),
            Ok(None) => {
                close(&consume, &publish).await;
                return Ok(());
            }
            Err(error) => return Err(error),
        }
    } else {
        None
    };
    // Bounded and cancellable: a broker that accepts connections but hangs must neither
    // stall the session forever nor hold up shutdown.
    let opened = tokio::select! {
        () = shutdown.cancelled() => {
            close(&consume, &publish).await;
            return Ok(());
        }
        opened = tokio::time::timeout(SETUP_TIMEOUT, open(shared, &consume, &publish)) => opened,
    };
    let (publisher, channel, mut consumer) =
        opened.map_err(|_| anyhow::anyhow!("broker did not answer within {SETUP_TIMEOUT:?}"))??;
    let frame_max = publish.configuration().frame_max();
    let session = Arc::new(Session::new(publisher, shared.clone(), frame_max));
    let mut failures = connection_failures(&consume, &publish);
    let result = pump::pump(&session, &channel, &mut consumer, &mut failures, shutdown).await;
    // Whatever was still in flight is dropped with the channel (the broker requeues it).
    shared.metrics.in_flight.set(0);
    shared.metrics.in_flight_bytes.set(0);
    shared.set_not_ready(if result.is_ok() {
        "shutting down"
    } else {
        "broker session failed"
    });
    close(&consume, &publish).await;
    result
}

/// Opens the channels, declares the running table's queues, and starts consuming.
async fn open(
    shared: &Shared,
    consume: &Connection,
    publish: &Connection,
) -> anyhow::Result<(Publisher, Channel, Consumer)> {
    let publisher = Publisher::new(publish)
        .await
        .context("opening the publish channel")?;
    let generation = shared.generation();
    declare_table(publish, &generation.table, shared.settings.amqp.queue_type)
        .await
        .context("declaring the routing table's queues")?;
    let channel = consume
        .create_channel()
        .await
        .context("opening the consume channel")?;
    channel
        .basic_qos(shared.settings.prefetch, BasicQosOptions::default())
        .await
        .context("setting the prefetch")?;
    let source = &generation.table.source;
    let consumer = channel
        .basic_consume(
            source.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("consuming {source}"))?;
    shared.set_ready();
    tracing::info!(%source, prefetch = shared.settings.prefetch, generation = generation.number,
        ordered = shared.settings.ordered, "consuming");
    Ok((publisher, channel, consumer))
}

fn connected(result: Result<Connection, ConnectError>) -> anyhow::Result<Option<Connection>> {
    match result {
        Ok(connection) => Ok(Some(connection)),
        Err(ConnectError::Cancelled) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Closes both connections, bounded: a dead broker must not hold up shutdown.
async fn close(consume: &Connection, publish: &Connection) {
    let bound = Duration::from_secs(2);
    let _ = tokio::time::timeout(bound, consume.close(200, "dispatcher stopping".into())).await;
    let _ = tokio::time::timeout(bound, publish.close(200, "dispatcher stopping".into())).await;
}
