//! user-service: an HTTP API for users, stored in SQLite, whose every change is published
//! as a CloudEvent through a transactional outbox (no event is lost when the broker is
//! down, and none is published for a change that did not commit).
//!
//! - [`api`]: the axum routes and handlers.
//! - [`domain`]: names, emails, request validation, the events of a change.
//! - [`store`]: SQLite with one group-committing writer thread and read-only readers.
//! - [`outbox`]: the relay to the broker and the pruning of old rows.
//! - [`metrics`]: the service's Prometheus metrics.
//! - [`settings`]: flags and environment variables.
//!
//! [`run`] binds the address and calls [`serve`], which runs until its `shutdown` token
//! is cancelled (tests serve on a listener bound to port 0).

pub mod api;
pub mod domain;
pub mod metrics;
pub mod outbox;
pub mod settings;
pub mod store;

use std::sync::Arc;

use anyhow::Context;
use events::http::HttpObserver;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::AppState;
use crate::metrics::Metrics;
use crate::outbox::RelaySettings;
pub use crate::settings::Settings;
use crate::store::Store;

/// Binds `settings.addr` and runs until `shutdown` (see [`serve`]).
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = events::http::bind(&settings.addr, "user-service")
        .await
        .with_context(|| format!("binding {}", settings.addr))?;
    serve(listener, settings, shutdown).await
}

/// Runs the service on `listener` until `shutdown`: opens (creating or migrating) the
/// database, starts the outbox relay and the pruning, serves HTTP. On shutdown in-flight
/// requests finish, the relay stops and the last commits are written, then it returns.
/// `Err` on a startup failure or if the HTTP server fails (which stops the rest too).
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    events::Endpoints::new(&settings.amqp).context("the broker settings")?;
    let mut registry = Registry::default();
    let observer = HttpObserver::register(&mut registry);
    let metrics = Metrics::register(&mut registry);
    let (store, writer) = Store::open(&settings.db, &metrics)?;
    let stop = shutdown.child_token();
    let tasks = TaskTracker::new();
    let relay = RelaySettings {
        amqp: settings.amqp.clone(),
        queue: settings.dispatch_queue.clone(),
        poll_interval: settings.outbox_poll_interval,
    };
    tasks.spawn(outbox::relay(
        store.clone(),
        relay,
        metrics.clone(),
        stop.clone(),
    ));
    tasks.spawn(outbox::prune(
        store.clone(),
        settings.outbox_retention,
        stop.clone(),
    ));
    tasks.close();
    let state = AppState {
        store,
        metrics,
        registry: Arc::new(registry),
    };
    let served = axum::serve(listener, api::router(state, observer))
        .with_graceful_shutdown(stop.clone().cancelled_owned())
        .await;
    // A failed server stops the relay and the pruning too.
    stop.cancel();
    tasks.wait().await;
    // The last `Store` handle went with the router, so the writer ends after its last
    // commit.
    writer.join().await;
    tracing::info!("user-service stopped");
    served.context("the HTTP server failed")
}
