//! The user-service binary: settings from flags and environment, logging, then the library.

use clap::Parser;
use user_service::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    events::telemetry::init("user-service")?;
    let shutdown = events::shutdown::on_signal();
    user_service::run(settings, shutdown).await
}
