//! The dispatcher: consumes `queue_dispatch`, routes each event by a hot-reloaded
//! `routes.toml`, and forwards it to every target of every matching route with
//! publisher confirms, acking the source only when all of them confirmed.
//!
//! - [`routes`]: the file format, validation, the compiled and indexed table.
//! - [`forward`]: consume → route → publish → ack, reconnecting on broker loss.
//! - [`watch`] and [`reload`]: file → table, swapped whole.
//! - [`admin`]: health, readiness, metrics, `GET /routes`, `POST /reload`, the tap
//!   (`GET /tap`), `POST /explain` and the dashboard (`GET /`).
//! - [`tap`]: what each settled event did, for watchers that never slow forwarding.
//! - [`cli`]: `run`, `check`, `explain`, `replay`, `redrive` ([`redrive`]), `tap`.
//! - [`replay`]: re-sends archived events from the archive stream.

pub mod admin;
pub mod broker;
pub mod cli;
pub mod forward;
pub mod metrics;
pub mod redrive;
pub mod reload;
pub mod replay;
pub mod routes;
pub mod settings;
pub mod state;
pub mod tap;
pub mod watch;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use settings::Settings;
use state::Shared;

/// Binds the admin address, then [`serve`]s until `shutdown`.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = events::http::bind(&settings.addr, "dispatcher admin")
        .await
        .with_context(|| format!("binding the admin address {}", settings.addr))?;
    serve(listener, settings, shutdown).await
}

/// Loads the routes file (refusing to start on any error), then runs the forwarder and
/// the file watcher on the calling runtime and the admin API on `listener`, on a thread
/// of its own, until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let shared = Arc::new(initial_state(settings)?);
    let generation = shared.generation();
    tracing::info!(
        file = %shared.settings.routes.display(),
        routes = generation.table.routes().len(),
        sha256 = %generation.sha256,
        "routing table loaded: generation 1"
    );
    drop(generation);
    // Any task ending early stops the others.
    let stop = shutdown.child_token();
    let admin = admin::AdminServer::spawn(listener, shared.clone(), stop.clone())?;
    let tasks = TaskTracker::new();
    tasks.spawn(forward::run(shared.clone(), stop.clone()));
    tasks.spawn(watch::run(shared.clone(), stop.clone()));
    let served = admin.finished().await;
    stop.cancel();
    tasks.close();
    tasks.wait().await;
    tracing::info!("dispatcher stopped");
    served
}

fn initial_state(settings: Settings) -> anyhow::Result<Shared> {
    let endpoints = events::Endpoints::new(&settings.amqp).context("the broker settings")?;
    let path = &settings.routes;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the routes file {}", path.display()))?;
    let table = routes::load(&path.display().to_string(), &text)?;
    let sha256 = reload::sha256_hex(&text);
    let admin_token = settings.resolve_admin_token()?;
    Ok(Shared::new(settings, endpoints, table, sha256).with_admin_token(admin_token))
}
