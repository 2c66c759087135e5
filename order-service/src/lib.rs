//! order-service: consumes user events into idempotent, version-aware SQLite snapshots
//! of users, and takes orders for the users it knows, without ever calling user-service.
//! Each order is the order side of a choreography saga: placed `pending` with its
//! `order_placed` event (through an outbox), then `confirmed` or `cancelled` by the
//! payment event that answers it.
//!
//! - [`consume`]: the AMQP loop; `batch` applies, dead-letters and acks one batch;
//!   [`disposition`] names the end of each message, [`dead_letter`] builds what goes to
//!   `<queue>.dead`.
//! - [`event`] reads user events, [`payment`] payment events; [`apply`] and [`status`]
//!   hold the pure rules of each.
//! - [`writer`] is the one SQLite writer thread; [`db`], [`snapshots`] and
//!   [`order_store`], [`order_history`] and [`outbox_store`] are the SQL; [`outbox`]
//!   publishes what orders emit.
//! - [`orders`] is the order domain and its validation; [`api`] the HTTP routes (`api_users`
//!   the user snapshots) and [`openapi`] the frame of their OpenAPI document;
//!   [`metrics`] the Prometheus metrics; [`settings`] the flags and environment variables.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use events::http::HttpObserver;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub mod api;
mod api_users;
pub mod apply;
mod batch;
pub mod consume;
pub mod db;
pub mod dead_letter;
pub mod disposition;
pub mod event;
pub mod metrics;
pub mod openapi;
pub mod order_history;
pub mod order_store;
pub mod orders;
pub mod outbox;
pub mod outbox_store;
pub mod payment;
pub mod settings;
pub mod snapshots;
pub mod status;
pub mod writer;

use consume::{ConsumeSettings, EventConsumer};
use metrics::Metrics;
pub use settings::{DEFAULT_DEDUPE_RETENTION, DEFAULT_PREFETCH, Settings};
use writer::WriterOptions;

/// Binds `settings.addr` and runs until `shutdown` (see [`serve`]).
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = events::http::bind(&settings.addr, "order-service")
        .await
        .with_context(|| format!("cannot listen on {}", settings.addr))?;
    serve(listener, settings, shutdown).await
}

/// Runs the service on `listener` until `shutdown`: opens (and migrates) the database,
/// consumes the queue, serves HTTP. On shutdown the batch in hand is committed and
/// acked, in-flight requests finish, then it returns. `Err` on a startup failure or if
/// the database writer dies.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    events::Endpoints::new(&settings.amqp).context("the broker settings")?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let observer = HttpObserver::register(&mut registry);
    let stop = shutdown.child_token();
    let options = WriterOptions {
        dedupe_retention: settings.dedupe_window(),
        stop: stop.clone(),
        retries: metrics.store_retries.clone(),
    };
    let (writer, writer_thread) = writer::start(&settings.db, options)
        .with_context(|| format!("cannot open the database {}", settings.db.display()))?;
    tracing::info!(db = %settings.db.display(), "database ready");
    let consuming = Arc::new(AtomicBool::new(false));
    let consumer = EventConsumer {
        settings: ConsumeSettings {
            amqp: settings.amqp.clone(),
            queue: settings.queue.clone(),
            prefetch: settings.prefetch,
        },
        writer: writer.clone(),
        metrics: metrics.clone(),
        consuming: consuming.clone(),
    };
    let relay = tokio::spawn(outbox::relay(
        db::Readers::new(&settings.db),
        writer.clone(),
        outbox::RelaySettings {
            amqp: settings.amqp.clone(),
            queue: settings.dispatch_queue.clone(),
        },
        stop.clone(),
    ));
    let consumer_stop = stop.clone();
    let consumer = tokio::spawn(async move {
        let result = consumer.run(consumer_stop.clone()).await;
        // The service is useless without its writer: stop serving too.
        consumer_stop.cancel();
        result
    });
    let state = api::AppState {
        readers: db::Readers::new(&settings.db),
        writer,
        consuming,
        metrics,
        registry: Arc::new(registry),
    };
    let served = axum::serve(listener, api::router(state, observer))
        .with_graceful_shutdown(stop.clone().cancelled_owned())
        .await;
    let consumed = consumer.await;
    // The relay ends with `stop`, which the server's end or the consumer's has cancelled.
    stop.cancel();
    let relayed = relay.await;
    // Every writer handle is dropped now, so the thread ends after its last command.
    let joined = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    served.context("the HTTP server failed")?;
    relayed.context("the outbox relay panicked")?;
    consumed
        .context("the consumer task panicked")?
        .context("the consumer stopped")?;
    match joined {
        Ok(Ok(())) => {}
        _ => anyhow::bail!("the database writer thread panicked"),
    }
    tracing::info!("order-service stopped");
    Ok(())
}
