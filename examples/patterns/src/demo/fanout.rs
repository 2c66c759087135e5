//! Fan-out: one `course.published` event to three consumers. The routing table names two
//! queues and a fanout exchange; the third consumer's queue is bound to that exchange.
//! Each listener confirms with `listener.received`, which the table sends to a journal
//! queue, from which the driver prints who got the event and when.

use std::collections::BTreeSet;

use anyhow::{Context, ensure};
use events::CloudEvent;
use serde_json::json;

use super::catalog::Demo;
use super::journal::{Hop, Journal, print_header, print_hop};
use super::stage::{Names, Options, Plan, ServiceSpec, Stage, ms, with_stage};

/// The three listeners; the last one listens through the exchange.
pub const LISTENERS: [&str; 3] = ["search", "newsletter", "audit"];

/// What the fan-out declares and starts.
pub fn plan(names: &Names) -> Plan {
    let listener = |name: &str, exchange: Option<String>| {
        let mut args = vec!["--name".to_owned(), name.to_owned()];
        if let Some(exchange) = exchange {
            args.extend(["--exchange".to_owned(), exchange]);
        }
        ServiceSpec {
            binary: "fanout-listener",
            label: format!("fanout-listener {name}"),
            queue: names.of(name),
            args,
        }
    };
    Plan {
        source: names.of("dispatch"),
        queues: [
            "dispatch",
            "unrouted",
            "search",
            "newsletter",
            "audit",
            "journal",
        ]
        .map(|q| names.of(q))
        .to_vec(),
        exchanges: vec![names.of("broadcast")],
        services: vec![
            listener("search", None),
            listener("newsletter", None),
            listener("audit", Some(names.of("broadcast"))),
        ],
    }
}

/// Runs the fan-out; returns one hop per listener, in the order the receipts arrived.
pub async fn run(options: &Options) -> anyhow::Result<Vec<Hop>> {
    let names = Names::new(&options.prefix, Demo::Fanout);
    println!("fanout: {}", Demo::Fanout.about());
    with_stage(Demo::Fanout, plan(&names), options, async |stage| {
        journey(stage).await
    })
    .await
}

async fn journey(stage: &mut Stage) -> anyhow::Result<Vec<Hop>> {
    let mut journal = Journal::open(stage, &stage.names.of("journal")).await?;
    let published = CloudEvent::new(
        "catalog",
        "course.published",
        json!({"course": "rust-101", "title": "Rust from zero"}),
    );
    let id = published.id.clone();
    print_header("emitted by", "routed by");
    journal.start_clock();
    stage
        .publisher
        .publish_to_queue(
            &stage.plan.source,
            &published.to_json_vec(),
            published.amqp_properties(),
        )
        .await
        .context("hop 1 (publish course.published) failed")?;
    let confirmed = journal.elapsed();
    println!(
        "  {:>3} {:>9}  +{:>9}  {:<20} {:<24} (publish confirmed)",
        "1.",
        ms(confirmed),
        ms(confirmed),
        "catalog",
        "course.published"
    );
    let mut hops = Vec::new();
    let mut heard: BTreeSet<String> = BTreeSet::new();
    for n in 0..LISTENERS.len() {
        let missing: Vec<&str> = LISTENERS
            .iter()
            .copied()
            .filter(|l| !heard.contains(*l))
            .collect();
        let name = format!("hop {} (a receipt from {})", n + 2, missing.join(" or "));
        let hop = journal
            .wait_for(&name, stage.options.timeout, &mut stage.fleet, |e| {
                let data = e.data.as_ref();
                e.ty == "listener.received"
                    && data.and_then(|d| d["event_id"].as_str()) == Some(id.as_str())
                    && data
                        .and_then(|d| d["listener"].as_str())
                        .is_some_and(|l| !heard.contains(l))
            })
            .await?;
        let via = hop.data["via"].as_str().unwrap_or_default().to_owned();
        print_hop(
            n + 2,
            &hop,
            hops.last().map_or(confirmed, |h: &Hop| h.at),
            &format!(" (got it from {via})"),
        );
        heard.insert(hop.by.clone());
        hops.push(hop);
    }
    let expected: BTreeSet<String> = LISTENERS.iter().map(|l| (*l).to_owned()).collect();
    ensure!(
        heard == expected,
        "the receipts came from {heard:?}, not from {expected:?}"
    );
    println!(
        "\none event reached all three consumers in {}",
        ms(hops.last().map(|h| h.at).unwrap_or_default())
    );
    journal.close().await;
    Ok(hops)
}
