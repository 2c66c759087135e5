//! The command line: `dispatcher [run]` (the daemon), `dispatcher check [PATH]`
//! (validate and run the `[[test]]` cases) and `dispatcher explain [PATH] EVENT.json|-`
//! (each route's verdict for one event, then the targets), and `dispatcher replay`
//! (see [`crate::replay`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use events::defaults;

use crate::routes::explain::Check;
use crate::routes::{self, Explanation, RoutingTable, Verdict};
use crate::settings::Settings;

/// `dispatcher`: routes events from one queue to many by a hot-reloaded routes.toml.
#[derive(Debug, clap::Parser)]
#[command(
    name = "dispatcher",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings of `run`, also accepted without the word `run`.
    #[command(flatten)]
    pub run: Settings,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the dispatcher (the default).
    Run(Box<Settings>),
    /// Validate a routes file and run its [[test]] cases; exit 1 with every error.
    Check {
        /// The routes file.
        #[arg(env = "ROUTES_FILE", default_value = defaults::ROUTES_FILE)]
        path: PathBuf,
    },
    /// Show how one event would be routed: each route's verdict, then the targets.
    Explain {
        /// The routes file (default: ROUTES_FILE or routes.toml), then the event: a
        /// JSON CloudEvent file, or `-` for standard input.
        #[arg(num_args = 1..=2, value_names = ["PATH", "EVENT"], required = true)]
        args: Vec<String>,
        /// An AMQP header for `headers.<name>` conditions, as name=value (repeatable).
        #[arg(long = "header", value_parser = parse_header)]
        headers: Vec<(String, String)>,
        /// An AMQP property for `properties.<name>` conditions, as name=value
        /// (repeatable), e.g. `--property app_id=shop`.
        #[arg(long = "property", value_parser = parse_header)]
        properties: Vec<(String, String)>,
        /// Print the explanation as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-send archived events from the `[archive]` stream, routed by the current table.
    Replay(Box<crate::replay::ReplayArgs>),
    /// Follow a running dispatcher's events live: one line per forwarded, unrouted or
    /// dead-lettered event (`GET /tap` on its admin address).
    Tap(crate::tap::client::TapArgs),
    /// Move dead-lettered events back: to the targets they missed (default), to the
    /// source queue, or to a queue; publish with confirms, then ack the dead letter.
    Redrive(Box<crate::redrive::RedriveArgs>),
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{text}`: write a header as name=value"))
}

/// `dispatcher check`: 0 when the file is valid and its tests pass, else 1.
pub fn check(path: &Path, out: &mut impl Write, err: &mut impl Write) -> ExitCode {
    match load(path) {
        Ok((table, tests)) => {
            let _ = writeln!(
                out,
                "{}: ok: {}, {}, {} passed",
                path.display(),
                count(table.routes().len(), "route"),
                count(table.targets().len(), "target"),
                count(tests, "test"),
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            let _ = writeln!(err, "{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `dispatcher explain`: 0 with the explanation, 1 when the table or event is bad.
pub fn explain(
    args: &[String],
    headers: &[(String, String)],
    properties: &[(String, String)],
    json: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> ExitCode {
    match try_explain(args, headers, properties) {
        Ok(explanation) => {
            let _ = if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&explanation).unwrap_or_default()
                )
            } else {
                write!(out, "{}", render(&explanation))
            };
            ExitCode::SUCCESS
        }
        Err(error) => {
            let _ = writeln!(err, "{error:#}");
            ExitCode::FAILURE
        }
    }
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn load(path: &Path) -> anyhow::Result<(RoutingTable, usize)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let table = routes::load(&path.display().to_string(), &text)?;
    let tests = routes::file::parse(&text).map_or(0, |(file, _)| file.tests.len());
    Ok((table, tests))
}

fn try_explain(
    args: &[String],
    headers: &[(String, String)],
    properties: &[(String, String)],
) -> anyhow::Result<Explanation> {
    let (path, event) = match args {
        [event] => (
            std::env::var("ROUTES_FILE").unwrap_or_else(|_| defaults::ROUTES_FILE.to_owned()),
            event,
        ),
        [path, event] => (path.clone(), event),
        _ => bail!("expected [PATH] EVENT"),
    };
    let (table, _) = load(Path::new(&path))?;
    let body = if event == "-" {
        let mut body = Vec::new();
        std::io::stdin()
            .read_to_end(&mut body)
            .context("reading the event from stdin")?;
        body
    } else {
        std::fs::read(event).with_context(|| format!("cannot read {event}"))?
    };
    let mut message = routes::explain::message_properties(headers);
    for (name, value) in properties {
        let numeric = matches!(name.as_str(), "priority" | "timestamp");
        let value = match value.parse::<i64>() {
            Ok(n) if numeric => toml::Value::Integer(n),
            _ => toml::Value::String(value.clone()),
        };
        message = routes::cases::with_property(message, name, &value)
            .map_err(|e| anyhow::anyhow!("--property {name}: {e}"))?;
    }
    table.explain_message(&message, &body).map_err(|e| {
        anyhow::anyhow!(
            "the event cannot be read, the dispatcher dead-letters it ({}): {e}",
            e.reason()
        )
    })
}

/// Each condition's verdict, one per line, branches indented under it.
fn render_checks(checks: &[Check], indent: usize, text: &mut String) {
    for check in checks {
        let verdict = if check.holds { "holds" } else { "fails" };
        let found = check
            .found
            .as_ref()
            .map(|f| format!(" (found {f})"))
            .unwrap_or_default();
        text.push_str(&format!(
            "{:indent$}{verdict}  {}{found}\n",
            "", check.condition
        ));
        render_checks(&check.branches, indent + 7, text);
    }
}

/// The human form: one line per route, then the targets.
pub fn render(explanation: &Explanation) -> String {
    let width = explanation
        .routes
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    let mut text = format!("event type: {}\n", explanation.event_type);
    for (name, verdict) in &explanation.routes {
        let (says, checks) = match verdict {
            Verdict::Matched { checks } => ("matched".to_owned(), checks.as_slice()),
            Verdict::TypeMismatch => ("type does not match".to_owned(), &[][..]),
            Verdict::ConditionFailed {
                condition,
                found,
                checks,
            } => (
                match found {
                    Some(found) => format!("condition failed: {condition} (found {found})"),
                    None => format!("condition failed: {condition}"),
                },
                checks.as_slice(),
            ),
            Verdict::SkippedAfterFinal { after } => {
                (format!("skipped: route `{after}` is final"), &[][..])
            }
        };
        text.push_str(&format!("  {name:<width$}  {says}\n"));
        // One plain condition is said on the route's line; anything more is a tree.
        if checks.len() > 1 || checks.iter().any(|c| !c.branches.is_empty()) {
            render_checks(checks, width + 6, &mut text);
        }
    }
    let targets: Vec<String> = explanation
        .targets
        .iter()
        .map(ToString::to_string)
        .collect();
    if explanation.unrouted {
        text.push_str(&format!(
            "no route matched: unrouted -> {}\n",
            targets.join(", ")
        ));
    } else {
        text.push_str(&format!("targets: {}\n", targets.join(", ")));
    }
    text
}
