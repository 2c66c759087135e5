//! One of the fan-out's consumers (run once per consumer, with its own name and queue).
//! With `--exchange`, its queue is bound to that fanout exchange instead of being a
//! target of the routing table itself. Each listener confirms what it got by emitting
//! `listener.received`, which the routing table sends to the demo's journal.

use clap::Parser;
use events::CloudEvent;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, ExchangeKind};
use patterns::step::{self, Outcome, Refusal, Step, StepArgs, follow};
use serde_json::json;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    step: StepArgs,
    /// This listener's name (also the event `source`).
    #[arg(long)]
    name: String,
    /// A fanout exchange to bind the queue to (declared here: the consumer owns it).
    #[arg(long)]
    exchange: Option<String>,
}

struct Listener {
    name: String,
    queue: String,
    exchange: Option<String>,
}

impl Step for Listener {
    async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let Some(exchange) = &self.exchange else {
            return Ok(());
        };
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                self.queue.as_str().into(),
                exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
    }

    async fn handle(&mut self, event: CloudEvent, _: &BasicProperties) -> Result<Outcome, Refusal> {
        tracing::info!(listener = %self.name, "received");
        let data = json!({
            "listener": self.name,
            "event_id": event.id,
            "event_type": event.ty,
            "via": self.exchange.as_deref().unwrap_or(&self.queue),
        });
        Ok(Outcome::Next(follow(
            &event,
            &self.name,
            "listener.received",
            data,
        )))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = Listener {
        name: args.name.clone(),
        queue: args.step.queue.clone(),
        exchange: args.exchange,
    };
    step::main(&args.name, &args.step, listener).await
}
