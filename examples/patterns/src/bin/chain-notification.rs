//! The chain's last step: its queue is bound to a topic exchange with a pattern
//! (`registration.*`), as in the classic tutorial; the routing table publishes
//! `registration.completed` to that exchange. It "sends" the welcome mail and emits
//! `notification.sent`, which ends the journey.

use clap::Parser;
use events::CloudEvent;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, ExchangeKind};
use patterns::step::{self, Outcome, Refusal, Step, StepArgs, follow};
use serde::Deserialize;
use serde_json::json;

const NAME: &str = "chain-notification";

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    step: StepArgs,
    /// The topic exchange the queue is bound to (declared here: the consumer owns it).
    #[arg(long)]
    exchange: String,
    /// The binding pattern.
    #[arg(long, default_value = "registration.*")]
    binding: String,
}

/// The `data` of `registration.completed`.
#[derive(Deserialize)]
struct Completed {
    registration: String,
    student: String,
    course: String,
}

struct Notification {
    queue: String,
    exchange: String,
    binding: String,
}

impl Step for Notification {
    async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                self.queue.as_str().into(),
                self.exchange.as_str().into(),
                self.binding.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
    }

    async fn handle(&mut self, event: CloudEvent, _: &BasicProperties) -> Result<Outcome, Refusal> {
        let done: Completed = event.data_as()?;
        let message = format!("Welcome to {}, {}!", done.course, done.student);
        tracing::info!(registration = %done.registration, %message, "mail sent");
        let data = json!({
            "registration": done.registration,
            "to": done.student,
            "channel": "email",
            "message": message,
        });
        Ok(Outcome::Next(follow(
            &event,
            NAME,
            "notification.sent",
            data,
        )))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let step = Notification {
        queue: args.step.queue.clone(),
        exchange: args.exchange,
        binding: args.binding,
    };
    step::main(NAME, &args.step, step).await
}
