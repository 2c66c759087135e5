//! user-service: an HTTP API for users, stored in SQLite, whose every change is published
//! as a CloudEvent through a transactional outbox (no event is lost when the broker is
//! down, and none is published for a change that did not commit).
//!
//! - [`api`]: the axum routes and handlers.
//! - [`domain`]: names, emails, request validation, the events of a change.
//! - [`store`]: SQLite with one group-committing writer thread and read-only readers.
//! - [`outbox`]: the relay to the broker and the pruning of old rows.
//! - [`metrics`]: the service's Prometheus metrics.

pub mod api;
pub mod domain;
pub mod duration;
pub mod metrics;
pub mod outbox;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use events::AmqpSettings;
use events::defaults;
use events::http::HttpObserver;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::AppState;
use crate::metrics::Metrics;
use crate::outbox::RelaySettings;
use crate::store::{Store, WriterThread};

/// Every setting of the service: a flag, an environment variable, a default.
#[derive(Debug, Clone, PartialEq, Eq, clap::Parser)]
#[command(
    name = "user-service",
    version,
    about = "HTTP API for users, with a transactional outbox"
)]
pub struct Settings {
    /// HTTP listen address; port 0 picks a free port (the bound address is logged).
    #[arg(long, env = "USER_SERVICE_ADDR", default_value = defaults::USER_SERVICE_ADDR)]
    pub addr: String,
    /// SQLite database file; created, with its folder, if missing.
    #[arg(long, env = "USER_DB", default_value = defaults::USER_DB)]
    pub db: PathBuf,
    /// Queue the outbox relay publishes every event to (declared on connect).
    #[arg(long, env = "DISPATCH_QUEUE", default_value = defaults::QUEUE_DISPATCH)]
    pub dispatch_queue: String,
    /// How long published events and idempotency keys are kept: `7d`, `24h`, `30m`, `10s`.
    #[arg(long, env = "OUTBOX_RETENTION", default_value = "7d", value_parser = duration::parse)]
    pub outbox_retention: Duration,
    /// How often the relay looks for unpublished events without a commit signal.
    #[arg(long, env = "OUTBOX_POLL_INTERVAL", default_value = "1s", value_parser = duration::parse)]
    pub outbox_poll_interval: Duration,
    /// The broker.
    #[command(flatten)]
    pub amqp: AmqpSettings,
}

impl Settings {
    /// The defaults, with the database at `db` (handy in tests).
    pub fn with_db(db: impl Into<PathBuf>) -> Self {
        Self {
            addr: defaults::USER_SERVICE_ADDR.to_owned(),
            db: db.into(),
            dispatch_queue: defaults::QUEUE_DISPATCH.to_owned(),
            outbox_retention: Duration::from_secs(7 * 86_400),
            outbox_poll_interval: Duration::from_secs(1),
            amqp: AmqpSettings::default(),
        }
    }
}

/// Runs the service until `shutdown` is cancelled, then stops gracefully: in-flight
/// requests finish, the relay stops, the last commits are written.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(settings, shutdown).await?.wait().await
}

/// Opens the database, binds the address and starts the server and the relay; returns at
/// once with the bound address (tests use port 0).
pub async fn start(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<Running> {
    events::Endpoints::new(&settings.amqp).context("the broker settings")?;
    let mut registry = Registry::default();
    let observer = HttpObserver::register(&mut registry);
    let metrics = Metrics::register(&mut registry);
    let (store, writer) = Store::open(&settings.db, &metrics)?;
    let listener = events::http::bind(&settings.addr, "user-service")
        .await
        .with_context(|| format!("binding {}", settings.addr))?;
    let addr = listener.local_addr()?;
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
        shutdown.clone(),
    ));
    tasks.spawn(outbox::prune(
        store.clone(),
        settings.outbox_retention,
        shutdown.clone(),
    ));
    tasks.close();
    let state = AppState {
        store,
        metrics,
        registry: Arc::new(registry),
    };
    let app = api::router(state, observer);
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );
    Ok(Running {
        addr,
        server,
        tasks,
        writer,
        shutdown,
    })
}

/// A started service.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    server: JoinHandle<std::io::Result<()>>,
    tasks: TaskTracker,
    writer: WriterThread,
    shutdown: CancellationToken,
}

impl Running {
    /// The address the HTTP server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until the service has stopped (after `shutdown`, or a server failure).
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.server.await;
        self.shutdown.cancel();
        self.tasks.wait().await;
        self.writer.join().await;
        tracing::info!("user-service stopped");
        served
            .context("the HTTP server task failed")?
            .context("the HTTP server failed")
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn flags_set_every_setting_and_durations_are_human() {
        let settings = Settings::try_parse_from([
            "user-service",
            "--addr=127.0.0.1:0",
            "--db=/tmp/x/users.db",
            "--dispatch-queue=q",
            "--outbox-retention=24h",
            "--outbox-poll-interval=250ms",
            "--amqp-url=amqp://u:p@h:1/%2f",
            "--queue-type=classic",
        ])
        .unwrap();
        assert_eq!(settings.addr, "127.0.0.1:0");
        assert_eq!(settings.db, PathBuf::from("/tmp/x/users.db"));
        assert_eq!(settings.dispatch_queue, "q");
        assert_eq!(settings.outbox_retention, Duration::from_secs(86_400));
        assert_eq!(settings.outbox_poll_interval, Duration::from_millis(250));
        assert_eq!(settings.amqp.url, "amqp://u:p@h:1/%2f");
        assert_eq!(settings.amqp.queue_type, events::QueueType::Classic);
    }

    #[test]
    fn a_nonsense_duration_is_refused_with_an_example() {
        let err = Settings::try_parse_from(["user-service", "--outbox-retention=soon"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("e.g. `7d`"), "{err}");
    }
}
