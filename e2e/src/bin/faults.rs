//! `cargo xtask faults`: the fault suite. A numbered stream of users goes through the
//! real system on a private RabbitMQ node while one fault is injected per scenario;
//! prints a table (lost must be 0, duplicates are counted) and exits 1 if any scenario
//! lost data, left a process not serving, or failed a check.

use std::path::PathBuf;

use clap::Parser;
use e2e::PrivateBroker;
use e2e::faults::{self, Row, Scale};

#[derive(Debug, Parser)]
#[command(about = "Fault suite: broker loss, killed processes, bad input, reload storms")]
struct Args {
    /// CI-sized: fewer events, no 30 s outage, one cluster scenario.
    #[arg(long)]
    quick: bool,
    /// Only scenarios whose name contains one of these.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Write the rows as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let args = Args::parse();
    let scale = if args.quick {
        Scale::quick()
    } else {
        Scale::full()
    };
    let broker = PrivateBroker::start("faults", &[]).await?;
    println!(
        "fault suite on private broker {} ({})",
        broker.node(),
        broker.url()
    );
    let mut rows: Vec<Row> = Vec::new();
    for fault in faults::scenarios(scale) {
        let name = fault.name();
        if !args.only.is_empty() && !args.only.iter().any(|o| name.contains(o.as_str())) {
            continue;
        }
        println!("--- {name}");
        let started = std::time::Instant::now();
        let row = match faults::run(&broker, fault, scale).await {
            Ok(row) => row,
            Err(error) => Row {
                scenario: name,
                sent: 0,
                lost: 0,
                duplicates: 0,
                serving: false,
                notes: format!("FAILED: {error:#}"),
            },
        };
        println!(
            "    sent {} lost {} duplicates {} serving {} — {} (scenario took {:.0}s)",
            row.sent,
            row.lost,
            row.duplicates,
            row.serving,
            row.notes,
            started.elapsed().as_secs_f64()
        );
        rows.push(row);
    }
    print_table(&rows);
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&rows)? + "\n")?;
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.scenario.as_str())
        .collect();
    if failed.is_empty() {
        println!("\nall {} scenarios passed: nothing lost", rows.len());
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        println!("\nFAILED: {}", failed.join(", "));
        Ok(std::process::ExitCode::FAILURE)
    }
}

fn print_table(rows: &[Row]) {
    println!("\n| scenario | sent | lost | duplicates | serving | notes |");
    println!("|---|---:|---:|---:|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.sent,
            r.lost,
            r.duplicates,
            if r.serving { "yes" } else { "no" },
            r.notes.replace('|', "/")
        );
    }
}
