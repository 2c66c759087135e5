//! The `order-service` binary: settings, telemetry, stop signal, then [`order_service::run`].

use clap::Parser;
use order_service::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    events::telemetry::init("order-service")?;
    let shutdown = events::shutdown::on_signal();
    order_service::run(settings, shutdown).await
}
