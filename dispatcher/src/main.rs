//! `dispatcher`: parse the command line, then run the daemon or a one-shot command.

use std::process::ExitCode;

use clap::Parser;
use dispatcher::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    match cli.command {
        Some(Command::Check { path }) => cli::check(&path, &mut out, &mut err),
        Some(Command::Explain {
            args,
            headers,
            properties,
            json,
        }) => cli::explain(&args, &headers, &properties, json, &mut out, &mut err),
        Some(Command::Tap(args)) => dispatcher::tap::client::run(&args, &mut out, &mut err),
        Some(Command::Redrive(args)) => redrive(&args),
        Some(Command::Run(settings)) => run(*settings),
        Some(Command::Replay(args)) => replay(&args),
        None => run(cli.run),
    }
}

/// `dispatcher replay`: the summary on stdout, 1 with the error on stderr.
fn replay(args: &dispatcher::replay::ReplayArgs) -> ExitCode {
    // No log subscriber: stdout carries the summary alone, errors go to stderr.
    let result = on_one_thread(dispatcher::replay::replay(args, true));
    match result {
        Ok(summary) => {
            print!("{}", summary.render());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("dispatcher replay: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(settings: dispatcher::Settings) -> ExitCode {
    // One runtime thread for the forwarder: lapin runs each connection's I/O on its own
    // thread, and the routing work is small, so extra workers only add cross-thread
    // wake-ups (measured: about 16% less CPU per forwarded message than the
    // multi-threaded runtime). The admin API runs on a thread of its own (`admin.rs`).
    let result = on_one_thread(async {
        events::telemetry::init("dispatcher")?;
        dispatcher::run(settings, events::shutdown::on_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dispatcher: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `dispatcher redrive`: 0 when nothing failed, 1 otherwise.
fn redrive(args: &dispatcher::redrive::RedriveArgs) -> ExitCode {
    let result = on_one_thread(async {
        // Quiet unless asked: the summary is the output.
        if std::env::var_os("RUST_LOG").is_some() {
            events::telemetry::init("dispatcher")?;
        }
        dispatcher::redrive::run(args, true, &mut std::io::stdout()).await
    });
    match result {
        Ok(summary) if summary.failed == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("dispatcher redrive: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `task` to its end on a runtime of one thread (every command's, the daemon's
/// included; see `run` for why one thread).
fn on_one_thread<T>(task: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(task)
}
