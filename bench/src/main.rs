//! `cargo xtask bench`: the dispatcher and the API measured against their peers in the
//! same run, on a private RabbitMQ node (so the shared broker and other tests don't
//! disturb it). Prints a table and writes `bench/results.json`. Numbers are ratios of
//! the same run on the same machine; nothing here asserts a duration.

mod drain;
mod procstat;

use std::path::PathBuf;

use clap::Parser;
use e2e::PrivateBroker;
use events::QueueType;

#[derive(Debug, Parser)]
#[command(about = "Benchmarks: dispatcher vs Shovel, API vs FastAPI peer, end to end")]
struct Args {
    /// Reduced sizes (for a quick look, or CI).
    #[arg(long)]
    quick: bool,
    /// Events preloaded per drain run (default 200,000; 20,000 with --quick).
    #[arg(long)]
    events: Option<u64>,
    /// Sections to run (default all): drain, api, e2e.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Drain contenders to run (default all): shovel, dispatcher, dispatcher-10k-where.
    #[arg(long, value_delimiter = ',')]
    contenders: Vec<String>,
    /// Queue types for the drain (default both): quorum, classic.
    #[arg(long, value_delimiter = ',')]
    queue_types: Vec<QueueType>,
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench/results.json")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let wants = |s: &str| args.only.is_empty() || args.only.iter().any(|o| o == s);
    let broker = PrivateBroker::start("bench", &["rabbitmq_shovel"]).await?;
    println!("private broker {} at {}", broker.node(), broker.url());
    let mut drains = Vec::new();
    if wants("drain") {
        let n = args
            .events
            .unwrap_or(if args.quick { 20_000 } else { 200_000 });
        let queue_types = if args.queue_types.is_empty() {
            vec![QueueType::Quorum, QueueType::Classic]
        } else {
            args.queue_types.clone()
        };
        for queue_type in queue_types {
            for contender in [
                drain::Contender::Shovel,
                drain::Contender::Dispatcher,
                drain::Contender::DispatcherLarge,
            ] {
                if !args.contenders.is_empty()
                    && !args.contenders.iter().any(|c| c == contender.name())
                {
                    continue;
                }
                let result = drain::run_one(&broker, contender, queue_type, n).await?;
                println!("{result:?}");
                drains.push(result);
            }
        }
    }
    let results = serde_json::json!({ "drain": drains });
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)?;
    Ok(())
}
