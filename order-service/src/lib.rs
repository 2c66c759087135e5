//! order-service: consumes user events into idempotent, version-aware SQLite snapshots
//! of users, and takes orders for the users it knows, without ever calling user-service.
//!
//! - [`consume`]: the AMQP loop; `batch` applies, dead-letters and acks one batch;
//!   [`outcome`] names the end of each message, [`dead_letter`] builds what goes to `<queue>.dead`.
//! - [`event`] reads user events; [`apply`] holds the pure apply rules.
//! - [`writer`] is the one SQLite writer thread; [`db`], [`snapshots`] and
//!   [`order_store`] are the SQL.
//! - [`orders`] is the order domain and its validation; [`api`] the HTTP routes;
//!   [`metrics`] the Prometheus metrics.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use events::AmqpSettings;
use events::defaults;
use events::http::HttpObserver;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub mod api;
pub mod apply;
mod batch;
pub mod consume;
pub mod db;
pub mod dead_letter;
pub mod event;
pub mod metrics;
pub mod order_store;
pub mod orders;
pub mod outcome;
pub mod snapshots;
pub mod writer;

use consume::{ConsumeSettings, EventConsumer};
use metrics::Metrics;
use writer::WriterOptions;

/// Default of `--prefetch`.
pub const DEFAULT_PREFETCH: u16 = 100;
/// Default of `--dedupe-retention-days`.
pub const DEFAULT_DEDUPE_RETENTION_DAYS: u32 = 7;

/// Every setting, from flags or environment variables (`order-service --help`).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "order-service", version, about)]
pub struct Settings {
    /// HTTP listen address; port 0 picks a free port (the log says which).
    #[arg(long, env = "ORDER_SERVICE_ADDR", default_value = defaults::ORDER_SERVICE_ADDR)]
    pub addr: String,
    /// SQLite database file (its folder is created if missing).
    #[arg(long, env = "ORDER_DB", default_value = defaults::ORDER_DB)]
    pub db: PathBuf,
    /// Queue of user events to consume (declared with its `.dead` queue at start).
    #[arg(long, env = "ORDER_QUEUE", default_value = defaults::QUEUE_ORDER)]
    pub queue: String,
    /// Most unacknowledged deliveries at once; also the largest batch per transaction.
    #[arg(long, env = "ORDER_PREFETCH", default_value_t = DEFAULT_PREFETCH,
          value_parser = clap::value_parser!(u16).range(1..=5000))]
    pub prefetch: u16,
    /// Days to remember processed event ids for deduplication (0: forever). Older
    /// redeliveries are still ignored by version, counted as stale.
    #[arg(long, env = "ORDER_DEDUPE_RETENTION_DAYS", default_value_t = DEFAULT_DEDUPE_RETENTION_DAYS)]
    pub dedupe_retention_days: u32,
    /// Broker settings.
    #[command(flatten)]
    pub amqp: AmqpSettings,
}

impl Settings {
    /// The defaults of SYSTEM.md with the broker settings from the environment.
    pub fn defaults_with(amqp: AmqpSettings) -> Self {
        Self {
            addr: defaults::ORDER_SERVICE_ADDR.to_owned(),
            db: PathBuf::from(defaults::ORDER_DB),
            queue: defaults::QUEUE_ORDER.to_owned(),
            prefetch: DEFAULT_PREFETCH,
            dedupe_retention_days: DEFAULT_DEDUPE_RETENTION_DAYS,
            amqp,
        }
    }

    fn dedupe_retention(&self) -> Option<Duration> {
        (self.dedupe_retention_days > 0)
            .then(|| Duration::from_secs(u64::from(self.dedupe_retention_days) * 86_400))
    }
}

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
        dedupe_retention: settings.dedupe_retention(),
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
    // Every writer handle is dropped now, so the thread ends after its last command.
    let joined = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    served.context("the HTTP server failed")?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_flag_defaults_match_the_programmatic_defaults() {
        let parsed = Settings::try_parse_from(["order-service"]).unwrap();
        let built = Settings::defaults_with(parsed.amqp.clone());
        assert_eq!(parsed.prefetch, built.prefetch);
        assert_eq!(parsed.dedupe_retention_days, built.dedupe_retention_days);
        assert_eq!(parsed.queue, built.queue);
    }

    #[test]
    fn a_prefetch_of_zero_is_refused_and_zero_retention_means_forever() {
        assert!(Settings::try_parse_from(["order-service", "--prefetch", "0"]).is_err());
        let mut settings = Settings::defaults_with(AmqpSettings::default());
        settings.dedupe_retention_days = 0;
        assert_eq!(settings.dedupe_retention(), None);
        settings.dedupe_retention_days = 1;
        assert_eq!(
            settings.dedupe_retention(),
            Some(Duration::from_secs(86_400))
        );
    }
}
