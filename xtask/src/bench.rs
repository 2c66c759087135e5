//! `cargo xtask bench`: builds optimised binaries, runs the routing micro-benchmarks
//! (criterion), then the `bench` runner (drain vs Shovel, 1 to 3 dispatcher replicas,
//! ordered mode, archive on vs off and the replay of that archive, a Python router,
//! lapin and amqprs relays, each in the `shared` and `separated` modes over 3
//! repetitions; API vs FastAPI peer, end to end) on private RabbitMQ nodes; the table is
//! printed and `bench/results.json` written.

use crate::workspace::{build_services, cargo, root, run as step, target_dir};

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Reduced sizes: 20,000 events per drain (2,000 in ordered mode), 3 s API runs, 5 s
    /// end to end.
    #[arg(long)]
    quick: bool,
    /// Passed to the runner (e.g. `--only drain --contenders shovel,dispatcher`).
    #[arg(last = true)]
    runner_args: Vec<String>,
}

/// Builds, runs criterion, runs the runner.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    step(
        "cargo build --release (services and bench runner)",
        build_services(&["bench"]).arg("--release"),
    )?;
    let mut criterion = cargo();
    criterion.args(["bench", "-p", "dispatcher", "--bench", "routing"]);
    if args.quick {
        criterion.args(["--", "--quick"]);
    }
    step(
        "cargo bench -p dispatcher --bench routing (criterion)",
        &mut criterion,
    )?;
    let mut runner = std::process::Command::new(target_dir().join("release/bench"));
    runner.current_dir(root());
    runner
        .arg("--criterion")
        .arg(target_dir().join("criterion"));
    if args.quick {
        runner.arg("--quick");
    }
    runner.args(&args.runner_args);
    step("bench runner", &mut runner)
}
