//! Watching a journey: the driver consumes one of the demo's queues (a journal that the
//! routing table copies events to, or the queue a journey ends in) and waits for each
//! expected event, with a deadline, failing early when a process died. Every event seen
//! is one [`Hop`], printed as it arrives with its time since the start.

use std::time::{Duration, Instant};

use anyhow::bail;
use events::CloudEvent;
use events::envelope::header_string;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use serde_json::Value;

use super::fleet::Fleet;
use super::stage::{Stage, ms};

/// One step of a journey, as the driver saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    /// Time since the journey started.
    pub at: Duration,
    /// Who emitted the event (its `source`).
    pub by: String,
    /// The event type.
    pub event: String,
    /// The dispatcher routes that carried it (`x-dispatch-routes`), if it came through one.
    pub routes: String,
    /// The event's data.
    pub data: Value,
}

/// Events seen but not waited for yet, at most this many (the oldest are dropped).
const BUFFERED: usize = 1_000;

/// The driver's consumer on one queue.
#[derive(Debug)]
pub struct Journal {
    channel: Channel,
    consumer: Consumer,
    started: Instant,
    queue: String,
    /// Events that arrived before they were waited for, with their hop.
    early: Vec<(CloudEvent, Hop)>,
}

impl Journal {
    /// Starts consuming `queue` (manual acks); times count from now.
    pub async fn open(stage: &Stage, queue: &str) -> anyhow::Result<Self> {
        let channel = stage.connection.create_channel().await?;
        let consumer = channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(Self {
            channel,
            consumer,
            started: Instant::now(),
            queue: queue.to_owned(),
            early: Vec::new(),
        })
    }

    /// Restarts the clock: the journey starts now.
    pub fn start_clock(&mut self) {
        self.started = Instant::now();
    }

    /// Time since the journey started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits for the first event for which `wanted` holds. Other events are kept for a
    /// later wait (they may arrive out of order). `hop` names the step in the error.
    pub async fn wait_for(
        &mut self,
        hop: &str,
        timeout: Duration,
        fleet: &mut Fleet,
        wanted: impl Fn(&CloudEvent) -> bool,
    ) -> anyhow::Result<Hop> {
        if let Some(index) = self.early.iter().position(|(event, _)| wanted(event)) {
            return Ok(self.early.remove(index).1);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Err(error) = fleet.check() {
                bail!("{hop} failed: {error:#}");
            }
            let next = tokio::time::timeout(Duration::from_millis(250), self.consumer.next());
            let delivery = match tokio::select! {
                next = next => next,
                () = tokio::time::sleep_until(deadline) => {
                    bail!("{hop} failed: it did not show in {} within {timeout:?}", self.queue)
                }
            } {
                Err(_) => continue,
                Ok(Some(Ok(delivery))) => delivery,
                Ok(Some(Err(error))) => bail!("{hop} failed: the broker connection broke: {error}"),
                Ok(None) => bail!(
                    "{hop} failed: the broker cancelled the consumer of {}",
                    self.queue
                ),
            };
            let at = self.started.elapsed();
            delivery.acker.ack(BasicAckOptions::default()).await?;
            let Ok(event) = CloudEvent::from_amqp(&delivery.properties, &delivery.data) else {
                continue;
            };
            let routes = delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|h| header_string(h, "x-dispatch-routes"))
                .unwrap_or_default();
            let seen = Hop {
                at,
                by: event.source.clone(),
                event: event.ty.clone(),
                routes,
                data: event.data.clone().unwrap_or(Value::Null),
            };
            if wanted(&event) {
                return Ok(seen);
            }
            if self.early.len() == BUFFERED {
                self.early.remove(0);
            }
            self.early.push((event, seen));
        }
    }

    /// Stops consuming.
    pub async fn close(self) {
        let _ = self.channel.close(200, "ok".into()).await;
    }
}

/// Prints the column titles of [`print_hop`]'s lines; `last` names the last column.
pub fn print_header(who: &str, last: &str) {
    println!(
        "\n  {:>3} {:>9}  {:>10}  {who:<20} {:<24} {last}",
        "", "at", "+ before", "event"
    );
}

/// Prints hop `n`: its time, the time since `before`, who emitted what, the routes that
/// carried it, and `note`.
pub fn print_hop(n: usize, hop: &Hop, before: Duration, note: &str) {
    println!(
        "  {:>3} {:>9}  +{:>9}  {:<20} {:<24} {}{note}",
        format!("{n}."),
        ms(hop.at),
        ms(hop.at.saturating_sub(before)),
        hop.by,
        hop.event,
        hop.routes.replace(',', ", "),
    );
}
