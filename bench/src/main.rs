//! `cargo xtask bench`: the dispatcher and the API measured against their peers in the
//! same run, on a private RabbitMQ node (so the shared broker and other tests don't
//! disturb it). Prints a table and writes `bench/results.json`. Numbers are ratios of
//! the same run on the same machine; nothing here asserts a duration.

mod api;
mod drain;
mod forwarders;
mod latency;
mod procstat;
mod replay;
mod report;
mod routes;
mod stats;
mod summary;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use e2e::{NodeOptions, PrivateBroker};
use events::QueueType;

use drain::Mode;

#[derive(Debug, Parser)]
#[command(about = "Benchmarks: dispatcher vs Shovel, API vs FastAPI peer, end to end")]
struct Args {
    /// Reduced sizes (for a quick look, or CI).
    #[arg(long)]
    quick: bool,
    /// Events preloaded per drain run (default 200,000; 20,000 with --quick; ordered mode
    /// drains a tenth of it).
    #[arg(long)]
    events: Option<u64>,
    /// Sections to run (default all): drain, routing, api, e2e.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Drain contenders to run (default all): shovel, dispatcher, dispatcher-where,
    /// dispatcher-10k-where, dispatcher-x2, dispatcher-x3 (replicas on one queue),
    /// dispatcher-ordered, python-router, relay-lapin, relay-amqprs, dispatcher-archive
    /// (with an [archive] stream, then a replay of it), dispatcher-tapped (a client
    /// following GET /tap?body=true), dispatcher-exchange and dispatcher-templated (an
    /// exchange target with a plain, or a templated, routing key).
    #[arg(long, value_delimiter = ',')]
    contenders: Vec<String>,
    /// Drain modes (default both): shared (broker and forwarder on all cores),
    /// separated (broker on core 0 with one scheduler, forwarder on core 1).
    #[arg(long, value_delimiter = ',')]
    modes: Vec<String>,
    /// Drain repetitions, the contenders alternating in each (the report shows the
    /// median and the range).
    #[arg(long, default_value_t = 3)]
    repetitions: usize,
    /// Queue types for the drain (default both): quorum, classic.
    #[arg(long, value_delimiter = ',', value_enum)]
    queue_types: Vec<QueueType>,
    /// Criterion's output folder, read for the routing figures.
    #[arg(long, default_value = "target/criterion")]
    criterion: PathBuf,
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench/results.json")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let wants = |s: &str| args.only.is_empty() || args.only.iter().any(|o| o == s);
    let mut results = report::Results::new(args.quick);
    // Each group of sections gets a fresh private node: a drain leaves a broker that
    // has just moved over a million messages (segment files to delete, memory to
    // return), and latency measured on it would measure that clean-up.
    if wants("drain") {
        for mode in [Mode::Shared, Mode::Separated] {
            if args.modes.is_empty() || args.modes.iter().any(|m| m == mode.name()) {
                let broker = drain_broker(mode).await?;
                run_drains(&args, mode, &broker, &mut results).await?;
                drop(broker);
            }
        }
    }
    if wants("api") || wants("e2e") {
        let broker = bench_broker().await?;
        if wants("api") {
            let duration = Duration::from_secs(if args.quick { 3 } else { 10 });
            println!("api: user-service, 32 connections, {duration:?}");
            results
                .api
                .push(api::user_service(&broker, 32, duration).await?);
            println!("api: fastapi peer, 32 connections, {duration:?}");
            match api::fastapi_peer(&broker, 32, duration).await? {
                Ok(result) => results.api.push(result),
                Err(reason) => {
                    println!("api: fastapi peer SKIPPED: {reason}");
                    results.skipped.push(format!("fastapi peer: {reason}"));
                }
            }
        }
        if wants("e2e") {
            let seconds = if args.quick { 5 } else { 20 };
            println!("e2e: 500 POST/s for {seconds}s");
            results.latency = Some(latency::run(&broker, 500, seconds).await?);
        }
        drop(broker);
    }
    if wants("routing") {
        results.routing = report::criterion_estimates(&args.criterion);
        if results.routing.is_empty() {
            results.skipped.push(
                "routing: no criterion results (run `cargo bench -p dispatcher --bench routing`)"
                    .into(),
            );
        }
    }
    results.summarize();
    results.print();
    results.write(&args.out)?;
    println!("\nwrote {}", args.out.display());
    Ok(())
}

/// A private RabbitMQ node with the Shovel plugin, on its own ports.
async fn bench_broker() -> anyhow::Result<PrivateBroker> {
    let broker = PrivateBroker::start("bench", &["rabbitmq_shovel"]).await?;
    println!("private broker {} at {}", broker.node(), broker.url());
    Ok(broker)
}

/// The drain's node: in the `separated` mode on core 0, with one scheduler.
async fn drain_broker(mode: Mode) -> anyhow::Result<PrivateBroker> {
    if mode == Mode::Shared {
        return bench_broker().await;
    }
    let options = NodeOptions {
        plugins: vec!["rabbitmq_shovel".to_owned()],
        cpus: Some("0".to_owned()),
        erl_args: Some("+S 1:1".to_owned()),
        ..NodeOptions::default()
    };
    let broker = PrivateBroker::start_with("bench", options).await?;
    println!(
        "private broker {} at {}, on core 0 with one scheduler",
        broker.node(),
        broker.url()
    );
    Ok(broker)
}

async fn run_drains(
    args: &Args,
    mode: Mode,
    broker: &PrivateBroker,
    results: &mut report::Results,
) -> anyhow::Result<()> {
    let n = args
        .events
        .unwrap_or(if args.quick { 20_000 } else { 200_000 });
    let queue_types = if args.queue_types.is_empty() {
        vec![QueueType::Quorum, QueueType::Classic]
    } else {
        args.queue_types.clone()
    };
    for queue_type in queue_types {
        for repetition in 1..=args.repetitions.max(1) {
            for contender in drain::Contender::ALL {
                if !args.contenders.is_empty()
                    && !args.contenders.iter().any(|c| c == contender.name())
                {
                    continue;
                }
                let n = contender.events(n);
                println!(
                    "drain ({}, #{repetition}): {} on {queue_type} queues, {n} events",
                    mode.name(),
                    contender.name()
                );
                let (mut result, replay) =
                    drain::run_one(broker, mode, contender, queue_type, n).await?;
                result.repetition = repetition;
                println!("  {:.0} msg/s, lost {}", result.msgs_per_sec, result.lost);
                results.drain.push(result);
                if let Some(replay) = replay {
                    println!(
                        "  replay {:.0} events/s, lost {}",
                        replay.events_per_sec, replay.lost
                    );
                    results.replay.push(replay);
                }
            }
        }
    }
    Ok(())
}
