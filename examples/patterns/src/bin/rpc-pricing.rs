//! Request/reply behind the dispatcher: takes `quote.requested`, prices it, and answers
//! straight to the request's `reply_to` with its `correlation_id`. The dispatcher keeps
//! both properties when it forwards, so the requester may use an exclusive callback queue
//! or RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to`): this service does not care.

use clap::Parser;
use events::CloudEvent;
use lapin::BasicProperties;
use patterns::step::{self, Outcome, Refusal, Step, StepArgs, follow};
use serde::Deserialize;
use serde_json::json;

const NAME: &str = "rpc-pricing";

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    step: StepArgs,
}

/// The `data` of `quote.requested`.
#[derive(Deserialize)]
struct QuoteRequest {
    sku: String,
    quantity: u32,
}

/// Unit prices, in cents.
fn unit_price(sku: &str) -> Option<i64> {
    match sku {
        "rust-101" => Some(12_000),
        "async-201" => Some(18_000),
        "rabbitmq-301" => Some(24_000),
        _ => None,
    }
}

struct Pricing;

impl Step for Pricing {
    async fn handle(
        &mut self,
        event: CloudEvent,
        properties: &BasicProperties,
    ) -> Result<Outcome, Refusal> {
        let (Some(reply_to), Some(correlation_id)) =
            (properties.reply_to(), properties.correlation_id())
        else {
            return Err(Refusal::Invalid(
                "a request needs reply_to and correlation_id".to_owned(),
            ));
        };
        let request: QuoteRequest = event.data_as()?;
        let answer = match unit_price(&request.sku) {
            Some(unit) => follow(
                &event,
                NAME,
                "quote.replied",
                json!({
                    "sku": request.sku,
                    "quantity": request.quantity,
                    "unit_price_cents": unit,
                    "total_cents": unit * i64::from(request.quantity),
                }),
            ),
            None => follow(
                &event,
                NAME,
                "quote.refused",
                json!({
                    "sku": request.sku,
                    "quantity": request.quantity,
                    "reason": "unknown sku",
                }),
            ),
        };
        Ok(Outcome::Reply {
            to: reply_to.to_string(),
            correlation_id: correlation_id.to_string(),
            event: answer,
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    step::main(NAME, &args.step, Pricing).await
}
