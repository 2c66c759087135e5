//! `dispatcher redrive`: moves dead-lettered events back to where they should go.
//!
//! Each dead letter is taken from the queue unacked, published with confirms to its
//! destinations, and acked only when every one of them confirmed, so a redrive that is
//! killed loses nothing (at worst an event is sent again). Where it goes:
//!
//! - by default, to the targets the current routing table gives it, less those named in
//!   its `x-dispatch-delivered-to` (a partial fan-out gets only what it missed). Only a
//!   refused publish (a letter with `x-dispatch-target`) is redriven so; others are
//!   skipped;
//! - `--to-source`: the whole event, to the table's `source` queue (routed again);
//! - `--to QUEUE`: the whole event, to that queue.
//!
//! The copy sent has the dead letter's own headers (`x-dispatch-error`, ...) taken out.
//! Letters that are skipped, that fail, or that a dry run shows, go back to the queue.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use events::AmqpSettings;
use events::amqp::{Publisher, connect_once, declare_queue};
use events::defaults;
use indicatif::{ProgressBar, ProgressStyle};
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel};

use crate::forward::letter::{Destination, TARGET_HEADER, delivered_to, without_letter_headers};
use crate::routes::condition::Path;
use crate::routes::event::{EventDoc, Incoming};
use crate::routes::{self, RoutingTable};

/// Arguments of `dispatcher redrive`.
#[derive(Debug, Clone, clap::Args)]
pub struct RedriveArgs {
    /// The dead-letter queue to read (default: the routes file's `dead_letter`).
    pub queue: Option<String>,
    /// Send each event whole to the routing table's `source` queue (routed again).
    #[arg(long = "to-source", conflicts_with = "to")]
    pub to_source: bool,
    /// Send each event whole to this queue.
    #[arg(long = "to", value_name = "QUEUE")]
    pub to: Option<String>,
    /// Move only events whose value at PATH (a `where` path, e.g. `data.country` or
    /// `headers.x-dispatch-route`) is VALUE as text (repeatable: all must hold).
    #[arg(long = "where", value_name = "PATH=VALUE", value_parser = parse_where)]
    pub filters: Vec<(String, String)>,
    /// Move at most this many events.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Show what would move, move nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// The routing table (for the default queue, the source, and the targets).
    #[arg(long = "routes", env = "ROUTES_FILE", default_value = defaults::ROUTES_FILE)]
    pub routes: PathBuf,
    /// Broker settings.
    #[command(flatten)]
    pub amqp: AmqpSettings,
}

fn parse_where(text: &str) -> Result<(String, String), String> {
    let (path, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: write a filter as PATH=VALUE"))?;
    Path::parse(path).map_err(|e| format!("`{text}`: {e}"))?;
    Ok((path.to_owned(), value.to_owned()))
}

/// What a redrive did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Published to every destination and acked (a dry run: would be).
    pub moved: u64,
    /// Left in the queue: filtered out, or with nowhere to go.
    pub skipped: u64,
    /// Left in the queue: a destination refused it.
    pub failed: u64,
}

/// Bound on connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a redrive; `progress` shows a bar on standard error, `out` gets one line per
/// event in a dry run and the summary.
pub async fn run(
    args: &RedriveArgs,
    progress: bool,
    out: &mut impl Write,
) -> anyhow::Result<Summary> {
    let table = load_table(args)?;
    let queue = match (&args.queue, &table) {
        (Some(queue), _) => queue.clone(),
        (None, Some(table)) => table.dead_letter.clone(),
        (None, None) => bail!("name the dead-letter queue, or give a routes file"),
    };
    let filters = args
        .filters
        .iter()
        .map(|(path, value)| Path::parse(path).map(|p| (p, value.clone())))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!(e))?;
    let endpoints = events::Endpoints::new(&args.amqp).context("the broker settings")?;
    let connection = connect_once(&endpoints, "dispatcher redrive", CONNECT_TIMEOUT).await?;
    let channel = connection.create_channel().await?;
    let publisher = Publisher::new(&connection).await?;
    if let Some(to) = &args.to {
        declare_queue(publisher.channel(), to, args.amqp.queue_type)
            .await
            .with_context(|| format!("declaring {to}"))?;
    }
    let waiting = channel
        .queue_declare(
            ShortString::from(queue.as_str()),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("queue {queue}"))?
        .message_count();
    let total = args
        .limit
        .map_or(u64::from(waiting), |l| l.min(u64::from(waiting)));
    let bar = progress_bar(progress, total);
    let mut redrive = Redrive {
        args,
        table: table.as_ref(),
        filters,
        channel: &channel,
        publisher: &publisher,
        summary: Summary::default(),
        held: Vec::new(),
    };
    // At most the letters waiting now: those put back stay unacked until the end, and
    // letters that arrive meanwhile wait for the next redrive.
    for _ in 0..waiting {
        if args.limit.is_some_and(|l| redrive.summary.moved >= l) {
            break;
        }
        let got = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await?;
        let Some(got) = got else { break };
        let delivery = got.delivery;
        redrive
            .one(
                delivery.delivery_tag,
                delivery.properties,
                &delivery.data,
                out,
            )
            .await?;
        bar.set_position(redrive.summary.moved);
        bar.set_message(format!(
            "skipped {}, failed {}",
            redrive.summary.skipped, redrive.summary.failed
        ));
    }
    bar.finish_and_clear();
    for tag in redrive.held {
        channel
            .basic_nack(
                tag,
                BasicNackOptions {
                    multiple: false,
                    requeue: true,
                },
            )
            .await?;
    }
    let summary = redrive.summary;
    let verb = if args.dry_run { "would move" } else { "moved" };
    writeln!(
        out,
        "{verb} {}, skipped {}, failed {} (from {queue})",
        summary.moved, summary.skipped, summary.failed
    )?;
    let _ = channel.close(200, "redriven".into()).await;
    let _ = connection.close(200, "redriven".into()).await;
    Ok(summary)
}

fn load_table(args: &RedriveArgs) -> anyhow::Result<Option<RoutingTable>> {
    let needed = args.queue.is_none() || args.to.is_none();
    if !needed {
        return Ok(None);
    }
    let path = &args.routes;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the routes file {}", path.display()))?;
    Ok(Some(routes::load(&path.display().to_string(), &text)?))
}

fn progress_bar(show: bool, total: u64) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} moved, {msg} [{elapsed}]")
    {
        bar.set_style(style);
    }
    bar
}

struct Redrive<'a> {
    args: &'a RedriveArgs,
    table: Option<&'a RoutingTable>,
    filters: Vec<(Path, String)>,
    channel: &'a Channel,
    publisher: &'a Publisher,
    summary: Summary,
    /// Letters to put back at the end.
    held: Vec<u64>,
}

/// One copy to send.
struct Resend {
    to: Destination,
    properties: BasicProperties,
}

impl Redrive<'_> {
    async fn one(
        &mut self,
        tag: u64,
        properties: BasicProperties,
        body: &[u8],
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        if !self.selected(&properties, body) {
            self.summary.skipped += 1;
            self.held.push(tag);
            return Ok(());
        }
        let copies = match self.copies(&properties, body) {
            Ok(copies) => copies,
            Err(why) => {
                let id = event_id(&properties);
                tracing::info!(event_id = %id, %why, "skipped");
                if self.args.dry_run {
                    writeln!(out, "skip {id}: {why}")?;
                }
                self.summary.skipped += 1;
                self.held.push(tag);
                return Ok(());
            }
        };
        if self.args.dry_run {
            let to: Vec<String> = copies.iter().map(|c| c.to.to_string()).collect();
            writeln!(out, "move {} -> {}", event_id(&properties), to.join(", "))?;
            self.summary.moved += 1;
            self.held.push(tag);
            return Ok(());
        }
        for copy in &copies {
            let sent = self
                .publisher
                .publish(
                    &copy.to.exchange,
                    &copy.to.routing_key,
                    body,
                    copy.properties.clone(),
                )
                .await;
            if let Err(error) = sent {
                if error.is_connection_error() {
                    return Err(error.into());
                }
                tracing::warn!(event_id = %event_id(&properties), to = %copy.to, %error, "redrive refused");
                self.summary.failed += 1;
                self.held.push(tag);
                return Ok(());
            }
        }
        self.channel
            .basic_ack(tag, BasicAckOptions::default())
            .await?;
        self.summary.moved += 1;
        Ok(())
    }

    /// Whether every `--where` filter holds.
    fn selected(&self, properties: &BasicProperties, body: &[u8]) -> bool {
        if self.filters.is_empty() {
            return true;
        }
        let Ok(doc) = EventDoc::from_amqp(properties, body) else {
            return false;
        };
        self.filters.iter().all(|(path, want)| {
            path.lookup(&doc).is_some_and(|found| match found.as_ref() {
                serde_json::Value::String(s) => s == want,
                other => serde_json::to_string(other).is_ok_and(|text| text == *want),
            })
        })
    }

    /// Where the letter goes, or why it is skipped.
    fn copies(&self, properties: &BasicProperties, body: &[u8]) -> Result<Vec<Resend>, String> {
        let clean = without_letter_headers(properties.clone());
        if let Some(to) = &self.args.to {
            return Ok(vec![Resend {
                to: Destination::queue(to),
                properties: clean,
            }]);
        }
        let table = self.table.ok_or("no routing table")?;
        if self.args.to_source {
            return Ok(vec![Resend {
                to: Destination::queue(&table.source),
                properties: clean,
            }]);
        }
        let refused = properties
            .headers()
            .as_ref()
            .is_some_and(|h| h.inner().contains_key(TARGET_HEADER));
        if !refused {
            return Err(
                "not a refused publish (no x-dispatch-target): use --to-source or --to".into(),
            );
        }
        let copies = route_again(table, &clean, body)?;
        let delivered = delivered_to(properties);
        let missing: Vec<Resend> = copies
            .into_iter()
            .filter(|c| !delivered.contains(&c.to))
            .collect();
        if missing.is_empty() {
            return Err("every target already has it (x-dispatch-delivered-to)".into());
        }
        Ok(missing)
    }
}

/// The copies the dispatcher would send for this event with `table`.
fn route_again(
    table: &RoutingTable,
    properties: &BasicProperties,
    body: &[u8],
) -> Result<Vec<Resend>, String> {
    let incoming = Incoming::read(properties, body).map_err(|e| e.to_string())?;
    let event_type = incoming.event_type.clone();
    let decision = table
        .route(&event_type, || incoming.doc.read())
        .map_err(|e| e.to_string())?;
    if decision.targets.is_empty() {
        return Ok(vec![Resend {
            to: Destination::queue(&table.unrouted),
            properties: properties.clone(),
        }]);
    }
    let doc = EventDoc::from_amqp(properties, body).map_err(|e| e.to_string())?;
    let shaped = table.shape(&decision, &doc).map_err(|e| e.to_string())?;
    Ok(shaped
        .into_iter()
        .map(|one| {
            let target = table.target(one.target);
            let to = Destination {
                exchange: target.exchange().to_owned(),
                routing_key: one
                    .routing_key
                    .unwrap_or_else(|| target.routing_key().to_owned()),
            };
            let mut headers = properties.headers().clone().unwrap_or_default();
            for (name, value) in one.headers {
                headers.insert(
                    name.as_str().into(),
                    AMQPValue::LongString(value.as_str().into()),
                );
            }
            Resend {
                to,
                properties: properties.clone().with_headers(headers),
            }
        })
        .collect())
}

fn event_id(properties: &BasicProperties) -> String {
    properties
        .message_id()
        .as_ref()
        .map_or_else(|| "(no message id)".to_owned(), |id| id.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_is_a_path_and_a_value() {
        assert_eq!(
            parse_where("headers.x-dispatch-route=audit"),
            Ok(("headers.x-dispatch-route".into(), "audit".into()))
        );
        assert!(
            parse_where("data.country")
                .unwrap_err()
                .contains("PATH=VALUE")
        );
        assert!(parse_where("data..x=1").is_err());
    }

    fn parse(args: &[&str]) -> Result<RedriveArgs, clap::Error> {
        use clap::Parser;
        let cli =
            crate::cli::Cli::try_parse_from(["dispatcher", "redrive"].iter().chain(args).copied())?;
        match cli.command {
            Some(crate::cli::Command::Redrive(args)) => Ok(*args),
            other => panic!("not a redrive: {other:?}"),
        }
    }

    #[test]
    fn the_command_line_takes_a_queue_a_destination_and_filters() {
        let args = parse(&[
            "q.dead",
            "--to",
            "parked",
            "--where",
            "data.country=FR",
            "--limit",
            "10",
            "--dry-run",
        ])
        .unwrap();
        assert_eq!(args.queue.as_deref(), Some("q.dead"));
        assert_eq!(args.to.as_deref(), Some("parked"));
        assert_eq!(args.filters, [("data.country".into(), "FR".into())]);
        assert_eq!(args.limit, Some(10));
        assert!(args.dry_run && !args.to_source);
    }

    #[test]
    fn to_source_and_to_a_queue_exclude_each_other_and_a_bad_filter_is_refused() {
        assert!(parse(&["--to-source", "--to", "q"]).is_err());
        let err = parse(&["--where", "nope"]).unwrap_err().to_string();
        assert!(err.contains("PATH=VALUE"), "{err}");
    }

    fn table() -> RoutingTable {
        routes::load(
            "routes.toml",
            "[[route]]\nname = \"r\"\nevent = \"t\"\nto = [\"a\", { exchange = \"x\", routing_key = \"k.{data.c}\" }]\nheaders = { h = \"{data.c}\" }\n",
        )
        .unwrap()
    }

    #[test]
    fn an_event_is_routed_again_with_its_templates() {
        let body = br#"{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"c":"fr"}}"#;
        let properties = BasicProperties::default();
        let copies = route_again(&table(), &properties, body).unwrap();
        let to: Vec<String> = copies.iter().map(|c| c.to.to_string()).collect();
        assert_eq!(to, ["a", r#"{ exchange = "x", routing_key = "k.fr" }"#]);
        let h = events::amqp::header_string(copies[1].properties.headers().as_ref().unwrap(), "h");
        assert_eq!(h.as_deref(), Some("fr"));
    }

    #[test]
    fn an_unreadable_event_cannot_be_routed_again() {
        let err = route_again(&table(), &BasicProperties::default(), b"not json").err();
        assert!(err.is_some());
    }
}
