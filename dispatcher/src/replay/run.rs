//! One replay: append an end marker to the archive stream (so "the end as it was at
//! start" is exact, whatever the clocks), read the stream from `--from` (a timestamp
//! offset spec) until that marker, and publish each selected event with confirms.
//! It never waits for new events: the marker is already in the stream when reading
//! starts. Interrupted, it leaves what was confirmed published; consumers are
//! idempotent, so running it again is harmless.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context as _, bail};
use events::Endpoints;
use events::amqp::{Publisher, connect_once, declare_queue, header_string};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressStyle};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection};

use super::headers::{END_MARKER_HEADER, received_at, replayed};
use super::select::{Choice, Selection};
use super::{ReplayArgs, Summary, interval_of};
use crate::routes::{self, Archive, RoutingTable};

/// The stream is entered this much before `--from` (its timestamps are the broker's
/// clock, at chunk granularity); events received before `--from` are then skipped by
/// their `x-dispatch-received-at`.
const SEEK_SLACK: Duration = Duration::from_secs(60);
/// Stream messages delivered ahead of their acks.
const PREFETCH: u16 = 1000;
/// Acks are sent once per this many deliveries (`multiple`).
const ACK_EVERY: u64 = 200;
/// Publishes awaiting their confirms at most.
const MAX_PENDING: usize = 1000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a replay; `progress` shows a progress bar (only when stderr is a terminal).
pub async fn replay(args: &ReplayArgs, progress: bool) -> anyhow::Result<Summary> {
    let path = args.routes.display().to_string();
    let text =
        std::fs::read_to_string(&args.routes).with_context(|| format!("cannot read {path}"))?;
    let table = routes::load(&path, &text)?;
    let Some(archive) = table.archive.clone() else {
        bail!("{path} has no [archive] table: there is no archive stream to replay from");
    };
    let selection = Selection::new(
        &table,
        args.event_type.as_deref(),
        &args.conditions,
        &args.routes_named,
        args.to_queue.as_deref(),
    )?;
    let endpoints = Endpoints::new(&args.amqp).context("the broker settings")?;
    let connection = connect_once(&endpoints, "dispatcher replay", CONNECT_TIMEOUT)
        .await
        .context("connecting to the broker")?;
    let bar = if progress && std::io::stderr().is_terminal() {
        spinner()
    } else {
        ProgressBar::hidden()
    };
    let reader = Reader {
        args,
        table: &table,
        archive: &archive,
        selection: &selection,
        id: uuid::Uuid::now_v7().to_string(),
        bar: &bar,
    };
    let result = reader.run(&connection).await;
    bar.finish_and_clear();
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        connection.close(200, "replay done".into()),
    )
    .await;
    result
}

fn spinner() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed_precise} {msg} ({per_sec})")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

struct Reader<'a> {
    args: &'a ReplayArgs,
    table: &'a RoutingTable,
    archive: &'a Archive,
    selection: &'a Selection,
    id: String,
    bar: &'a ProgressBar,
}

type Confirming = std::pin::Pin<
    Box<dyn std::future::Future<Output = (String, Result<(), events::amqp::PublishError>)> + Send>,
>;

impl Reader<'_> {
    async fn run(&self, connection: &Connection) -> anyhow::Result<Summary> {
        let stream = self.archive.stream.as_str();
        let mut summary = Summary {
            id: self.id.clone(),
            stream: stream.to_owned(),
            dry_run: self.args.dry_run,
            ..Summary::default()
        };
        let channel = connection.create_channel().await?;
        check_stream(&channel, stream).await?;
        let publisher = Publisher::new(connection)
            .await
            .context("opening the publish channel")?;
        if let (Some(queue), false) = (&self.args.to_queue, self.args.dry_run) {
            declare_queue(publisher.channel(), queue, self.args.amqp.queue_type)
                .await
                .with_context(|| format!("declaring --to-queue {queue}"))?;
        }
        self.append_end_marker(&publisher).await?;
        let mut deliveries = self.consume(&channel).await?;
        let mut pending: FuturesUnordered<Confirming> = FuturesUnordered::new();
        let mut pace = self.args.rate.map(|rate| {
            let mut pace = tokio::time::interval(interval_of(rate));
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            pace
        });
        let (from, to) = (self.args.from, self.args.to);
        let mut taken = 0u64;
        loop {
            let delivery = match deliveries.next().await {
                Some(delivery) => delivery.context("reading the archive stream")?,
                None => bail!("the broker cancelled the stream consumer"),
            };
            taken += 1;
            if taken.is_multiple_of(ACK_EVERY) {
                channel
                    .basic_ack(delivery.delivery_tag, BasicAckOptions { multiple: true })
                    .await
                    .context("acking the stream")?;
            }
            let headers = delivery.properties.headers().clone().unwrap_or_default();
            if let Some(marker) = header_string(&headers, END_MARKER_HEADER) {
                if marker == self.id {
                    break;
                }
                continue;
            }
            match received_at(&headers) {
                Some(at) if at < from => continue,
                Some(at) if to.is_some_and(|to| at > to) => {
                    if to.is_some_and(|to| at > to + SEEK_SLACK) {
                        break;
                    }
                    continue;
                }
                _ => {}
            }
            summary.read += 1;
            match self
                .selection
                .choose(self.table, &delivery.properties, &delivery.data)
            {
                Choice::Send { targets, routes } => {
                    for target in &targets {
                        *summary.sent.entry(target.to_string()).or_default() += 1;
                    }
                    if self.args.dry_run {
                        continue;
                    }
                    if let Some(pace) = &mut pace {
                        pace.tick().await;
                    }
                    let properties =
                        replayed(delivery.properties, &self.id, &self.archive.stream, &routes);
                    for target in targets {
                        while pending.len() >= MAX_PENDING {
                            confirmed(pending.next().await)?;
                        }
                        let sent = publisher
                            .send(
                                target.exchange(),
                                target.routing_key(),
                                &delivery.data,
                                properties.clone(),
                            )
                            .await
                            .with_context(|| format!("publishing to {target}"))?;
                        let label = target.to_string();
                        pending.push(Box::pin(async move { (label, sent.wait().await) }));
                    }
                }
                Choice::Filtered => summary.filtered += 1,
                Choice::Unrouted => summary.unrouted += 1,
                Choice::Unreadable => summary.unreadable += 1,
            }
            self.bar.set_message(format!(
                "read {}, sent {}",
                summary.read,
                summary.sent.values().sum::<u64>()
            ));
        }
        while let Some(result) = pending.next().await {
            confirmed(Some(result))?;
        }
        Ok(summary)
    }

    /// Appends this replay's end marker to the stream, confirmed: reading stops there.
    async fn append_end_marker(&self, publisher: &Publisher) -> anyhow::Result<()> {
        let mut headers = FieldTable::default();
        headers.insert(
            ShortString::from(END_MARKER_HEADER),
            AMQPValue::LongString(LongString::from(self.id.as_str())),
        );
        let marker = BasicProperties::default()
            .with_headers(headers)
            .with_delivery_mode(2);
        publisher
            .publish_to_queue(&self.archive.stream, b"", marker)
            .await
            .context("appending the end marker to the archive stream")
    }

    async fn consume(&self, channel: &Channel) -> anyhow::Result<lapin::Consumer> {
        channel
            .basic_qos(PREFETCH, BasicQosOptions::default())
            .await
            .context("setting the prefetch")?;
        let seek = self.args.from - chrono::Duration::from_std(SEEK_SLACK)?;
        let mut arguments = FieldTable::default();
        arguments.insert(
            ShortString::from("x-stream-offset"),
            AMQPValue::Timestamp(u64::try_from(seek.timestamp()).unwrap_or(0)),
        );
        channel
            .basic_consume(
                self.archive.stream.as_str().into(),
                format!("replay-{}", self.id).as_str().into(),
                BasicConsumeOptions::default(),
                arguments,
            )
            .await
            .with_context(|| format!("reading the archive stream {}", self.archive.stream))
    }
}

/// The stream must exist (a passive declare on a throw-away channel).
async fn check_stream(channel: &Channel, stream: &str) -> anyhow::Result<()> {
    channel
        .queue_declare(
            stream.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map(|_| ())
        .with_context(|| {
            format!(
                "the archive stream `{stream}` is not on the broker: a dispatcher running with this [archive] declares it"
            )
        })
}

fn confirmed(
    result: Option<(String, Result<(), events::amqp::PublishError>)>,
) -> anyhow::Result<()> {
    match result {
        Some((target, Err(error))) => {
            Err(error).with_context(|| format!("publishing to {target} was not confirmed"))
        }
        _ => Ok(()),
    }
}
