//! `cargo xtask test`: what CI runs. Broker and headless browser first (tests use real
//! ones), then the formatting and lint gates, then every test of the workspace, then
//! schemathesis against the services' OpenAPI documents, then the reduced fault suite.

use crate::workspace::{cargo, run as step, succeeds, which};
use crate::{broker, browser, faults, schemathesis};

/// Options of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Skip `cargo fmt --check` and clippy (for a quick local loop).
    #[arg(long)]
    no_lint: bool,
    /// Passed to the test runner, e.g. a test name filter.
    #[arg(last = true)]
    runner_args: Vec<String>,
}

/// Why private RabbitMQ nodes cannot be started on this machine, if they cannot.
fn private_nodes_unavailable() -> Option<&'static str> {
    if which("rabbitmq-server").is_none() {
        Some("rabbitmq-server is not installed on this machine")
    } else if !nix::unistd::Uid::effective().is_root() {
        Some("starting private RabbitMQ nodes needs root")
    } else {
        None
    }
}

/// Runs the gates in order; stops at the first that fails.
pub fn run(args: &TestArgs) -> anyhow::Result<()> {
    broker::ensure()?;
    browser::ensure()?;
    if !args.no_lint {
        step(
            "cargo fmt --check",
            cargo().args(["fmt", "--all", "--", "--check"]),
        )?;
        step(
            "cargo clippy --all-targets -- -D warnings",
            cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ]),
        )?;
    }
    // End-to-end tests start the real binaries: build them first so none is stale.
    step(
        "cargo build --bins",
        cargo().args(["build", "--workspace", "--bins"]),
    )?;
    if succeeds("cargo", &["nextest", "--version"]) {
        step(
            "cargo nextest run --workspace",
            cargo()
                .args(["nextest", "run", "--workspace", "--no-fail-fast"])
                .args(&args.runner_args),
        )?;
        if args.runner_args.is_empty() {
            step(
                "cargo test --doc",
                cargo().args(["test", "--workspace", "--doc"]),
            )?;
        }
    } else {
        step(
            "cargo test --workspace",
            cargo()
                .args(["test", "--workspace", "--no-fail-fast"])
                .args(&args.runner_args),
        )?;
    }
    if args.runner_args.is_empty() {
        // The services' APIs against their OpenAPI documents, on the binaries just built.
        schemathesis::run()?;
    }
    if args.runner_args.is_empty() {
        // The reduced fault suite, on the debug binaries just built. It starts private
        // RabbitMQ nodes (as the rabbitmq user), which needs the server installed here
        // and root; where that is impossible (a broker in Docker, a laptop) it says so.
        match private_nodes_unavailable() {
            None => faults::run_suite(
                "debug",
                &faults::FaultsArgs {
                    quick: true,
                    suite_args: Vec::new(),
                },
            )?,
            Some(why) => println!(
                "\x1b[33mNOT RUN: the fault suite ({why}); CI runs it, or run `sudo cargo xtask faults`\x1b[0m"
            ),
        }
    }
    println!("\x1b[32mall checks passed\x1b[0m");
    Ok(())
}
