//! The registration chain: registration → payment → course → notification. The driver
//! plays registration and publishes `registration.created`; each service emits the next
//! event (`registration.paid`, `registration.completed`, `notification.sent`) back to
//! the dispatcher, which alone knows the order of the steps. The table copies every event
//! to a journal queue, from which the driver prints the journey.

use anyhow::Context;
use events::{CloudEvent, TraceParent};
use serde_json::json;

use super::catalog::Demo;
use super::journal::{Hop, Journal, print_header, print_hop};
use super::stage::{Names, Options, Plan, ServiceSpec, Stage, ms, with_stage};

/// The chain's steps after registration: who emits what.
pub const STEPS: [(&str, &str); 4] = [
    ("registration", "registration.created"),
    ("payment", "registration.paid"),
    ("course", "registration.completed"),
    ("notification", "notification.sent"),
];

/// What the chain declares and starts.
pub fn plan(names: &Names) -> Plan {
    let service = |binary: &'static str, queue: &str, args: Vec<String>| ServiceSpec {
        binary,
        label: binary.to_owned(),
        queue: names.of(queue),
        args,
    };
    Plan {
        source: names.of("dispatch"),
        queues: [
            "dispatch",
            "unrouted",
            "payment",
            "course",
            "notification",
            "journal",
        ]
        .map(|q| names.of(q))
        .to_vec(),
        exchanges: vec![names.of("events")],
        services: vec![
            service("chain-payment", "payment", vec![]),
            service("chain-course", "course", vec![]),
            service(
                "chain-notification",
                "notification",
                vec![
                    "--exchange".to_owned(),
                    names.of("events"),
                    "--binding".to_owned(),
                    "registration.*".to_owned(),
                ],
            ),
        ],
    }
}

/// Runs the chain; returns its hops, one per event, in order.
pub async fn run(options: &Options) -> anyhow::Result<Vec<Hop>> {
    let names = Names::new(&options.prefix, Demo::Chain);
    println!("chain: {}", Demo::Chain.about());
    with_stage(Demo::Chain, plan(&names), options, async |stage| {
        journey(stage).await
    })
    .await
}

async fn journey(stage: &mut Stage) -> anyhow::Result<Vec<Hop>> {
    let mut journal = Journal::open(stage, &stage.names.of("journal")).await?;
    let registration = format!("reg-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let created = CloudEvent::new(
        "registration",
        "registration.created",
        json!({"registration": registration, "student": "ada", "course": "rust-101", "price_cents": 12_000}),
    )
    .with_subject(&registration)
    .with_traceparent(&TraceParent::new_root());
    print_header("emitted by", "routed by");
    journal.start_clock();
    stage
        .publisher
        .publish_to_queue(
            &stage.plan.source,
            &created.to_json_vec(),
            created.amqp_properties(),
        )
        .await
        .context("hop 1 (registration) failed: publishing registration.created")?;
    let mut hops: Vec<Hop> = Vec::new();
    for (n, (step, ty)) in STEPS.iter().enumerate() {
        let name = format!("hop {} ({step}: {ty})", n + 1);
        let hop = journal
            .wait_for(&name, stage.options.timeout, &mut stage.fleet, |e| {
                e.ty == *ty && e.subject.as_deref() == Some(registration.as_str())
            })
            .await?;
        let before = hops.last().map(|h| h.at).unwrap_or_default();
        print_hop(n + 1, &hop, before, "");
        hops.push(hop);
    }
    let total = hops.last().map(|h| h.at).unwrap_or_default();
    let mail = hops
        .last()
        .and_then(|h| h.data["message"].as_str())
        .unwrap_or_default();
    println!(
        "\nthe journey completed in {}: {registration}, mail sent: {mail:?}",
        ms(total)
    );
    journal.close().await;
    Ok(hops)
}
