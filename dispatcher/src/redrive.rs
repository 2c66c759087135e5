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
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel};

use crate::routes::condition::Path;
use crate::routes::event::EventDoc;
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
        let copies = match destinations::copies(self.args, self.table, &properties, body) {
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
}

fn event_id(properties: &BasicProperties) -> String {
    properties
        .message_id()
        .as_ref()
        .map_or_else(|| "(no message id)".to_owned(), |id| id.as_str().to_owned())
}

mod destinations;

#[cfg(test)]
mod tests;
