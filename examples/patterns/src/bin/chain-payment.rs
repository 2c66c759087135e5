//! The chain's payment step: takes `registration.created`, charges the course price, and
//! emits `registration.paid`. It does not know who comes next: the routing table
//! (`examples/routes/registration-chain.toml`) sends the event to the course service.

use clap::Parser;
use events::CloudEvent;
use lapin::BasicProperties;
use patterns::step::{self, Outcome, Refusal, Step, StepArgs, follow};
use serde::Deserialize;
use serde_json::json;

const NAME: &str = "chain-payment";

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    step: StepArgs,
}

/// The `data` of `registration.created`.
#[derive(Deserialize)]
struct Registration {
    registration: String,
    student: String,
    course: String,
    price_cents: i64,
}

struct Payment;

impl Step for Payment {
    async fn handle(&mut self, event: CloudEvent, _: &BasicProperties) -> Result<Outcome, Refusal> {
        let r: Registration = event.data_as()?;
        tracing::info!(registration = %r.registration, amount = r.price_cents, "charged");
        let data = json!({
            "registration": r.registration,
            "student": r.student,
            "course": r.course,
            "amount_cents": r.price_cents,
            "payment": format!("pay-{}", r.registration),
        });
        Ok(Outcome::Next(follow(
            &event,
            NAME,
            "registration.paid",
            data,
        )))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    step::main(NAME, &args.step, Payment).await
}
