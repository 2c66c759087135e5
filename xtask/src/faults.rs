//! `cargo xtask faults`: the fault suite (see `e2e/src/faults/`) on a private RabbitMQ
//! node. `cargo xtask test` runs it with `--quick`.

use crate::workspace::{cargo, root, run as step, target_dir};

/// Options of `cargo xtask faults`.
#[derive(Debug, clap::Args)]
pub struct FaultsArgs {
    /// CI-sized: fewer events, no 30 s broker outage, one cluster scenario.
    #[arg(long)]
    pub quick: bool,
    /// Passed to the suite (e.g. `--only kill,broker`).
    #[arg(last = true)]
    pub suite_args: Vec<String>,
}

/// Builds optimised binaries and runs the suite.
pub fn run(args: &FaultsArgs) -> anyhow::Result<()> {
    step(
        "cargo build --release (services and fault suite)",
        cargo().args([
            "build",
            "--release",
            "--bins",
            "-p",
            "dispatcher",
            "-p",
            "user-service",
            "-p",
            "order-service",
            "-p",
            "e2e",
        ]),
    )?;
    run_suite("release", args)
}

/// Runs an already built suite from `target/<profile>/faults`.
pub fn run_suite(profile: &str, args: &FaultsArgs) -> anyhow::Result<()> {
    let mut suite = std::process::Command::new(target_dir().join(profile).join("faults"));
    suite.current_dir(root());
    if args.quick {
        suite.arg("--quick");
    }
    suite.args(&args.suite_args);
    step(
        &format!("fault suite{}", if args.quick { " (quick)" } else { "" }),
        &mut suite,
    )
}
