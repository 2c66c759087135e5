//! The chain's course step: takes `registration.paid`, enrolls the student, and emits
//! `registration.completed`. The routing table sends that to the notification service
//! through a topic exchange.

use clap::Parser;
use events::CloudEvent;
use lapin::BasicProperties;
use patterns::step::{self, Outcome, Refusal, Step, StepArgs, follow};
use serde::Deserialize;
use serde_json::json;

const NAME: &str = "chain-course";

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    step: StepArgs,
}

/// The `data` of `registration.paid`.
#[derive(Deserialize)]
struct Paid {
    registration: String,
    student: String,
    course: String,
}

struct Course;

impl Step for Course {
    async fn handle(&mut self, event: CloudEvent, _: &BasicProperties) -> Result<Outcome, Refusal> {
        let paid: Paid = event.data_as()?;
        tracing::info!(registration = %paid.registration, course = %paid.course, "enrolled");
        let data = json!({
            "registration": paid.registration,
            "student": paid.student,
            "course": paid.course,
            "seat": format!("{}/{}", paid.course, paid.student),
        });
        Ok(Outcome::Next(follow(
            &event,
            NAME,
            "registration.completed",
            data,
        )))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    step::main(NAME, &args.step, Course).await
}
