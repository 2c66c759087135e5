//! `cargo xtask <command>`: the developer's commands (see `cargo xtask --help`).
//!
//! - `broker`: make sure a RabbitMQ broker answers at `AMQP_URL` (start or install one).
//! - `test`: broker, then fmt, clippy, the whole test suite and schemathesis against the
//!   services' OpenAPI documents: what CI runs.
//! - `up`: broker, build, and run the three services with interleaved logs.
//! - `demo`: one user's journey through the system, timed; or a pattern of `examples/`.
//! - `bench`: the benchmarks, each figure against its peer in the same run.
//! - `schemathesis`: only the API fuzzing step of `test`.
//! - `faults`: the fault suite (nothing lost under broker loss, kills, bad input…).
//! - `cluster`: a three-node RabbitMQ cluster on this machine (`up`, `down`, `status`).

mod bench;
mod broker;
mod browser;
mod cluster;
mod demo;
mod faults;
mod schemathesis;
mod test;
mod up;
mod workspace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Developer commands for the event-driven system",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make sure a RabbitMQ broker answers at AMQP_URL: start a local rabbitmq-server,
    /// or `docker compose up -d rabbitmq`, or (as root on Debian/Ubuntu) install it.
    Broker,
    /// What CI runs: broker, `cargo fmt --check`, clippy with -D warnings, all tests,
    /// schemathesis against the services, the reduced fault suite.
    Test(test::TestArgs),
    /// Only the schemathesis step of `test`: build the services, fuzz their APIs against
    /// their OpenAPI documents (installs schemathesis in target/bench-venv).
    Schemathesis,
    /// Run the whole system: broker, build, dispatcher + user-service + order-service.
    Up(up::UpArgs),
    /// Create a user and follow its event through the system, with timings (starts the
    /// system if it is not up); or, with a name, run one pattern of `examples/` (`--list`).
    Demo(demo::DemoArgs),
    /// Benchmarks against peers in the same run: dispatcher vs RabbitMQ Shovel, routing
    /// cost (criterion), user-service vs a FastAPI peer, end-to-end latency.
    Bench(bench::BenchArgs),
    /// The fault suite: broker loss, killed processes, reload storms, bad input; counts
    /// lost (must be 0) and duplicated events per scenario.
    Faults(faults::FaultsArgs),
    /// A three-node RabbitMQ cluster on this machine, from private nodes on their own
    /// ports: `up` (prints the AMQP_URL to use), `down`, `status`.
    Cluster(cluster::ClusterArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Broker => broker::ensure().map(|_| ()),
        Command::Test(args) => test::run(&args),
        Command::Schemathesis => schemathesis::run_alone(),
        Command::Up(args) => up::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Faults(args) => faults::run(&args),
        Command::Cluster(args) => cluster::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("\x1b[31merror:\x1b[0m {error:#}");
            ExitCode::FAILURE
        }
    }
}
