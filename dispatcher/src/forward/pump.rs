//! The forward loop of one session: deliveries in, each routed and handed to its own
//! publishing future, fates settled into batched acks, a watchdog for stuck confirms.
//! Besides the prefetch (a count), the bodies in flight are bounded in bytes: past
//! `max_in_flight_bytes` no delivery is taken from the consumer until some settle.
//! In ordered mode one delivery is in flight at a time, so a retried publish cannot
//! overtake the next event.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use lapin::options::BasicCancelOptions;
use lapin::{Channel, Consumer};
use tokio_util::sync::CancellationToken;

use super::acker::Acker;
use super::context::{CONFIRM_TIMEOUT, Session};
use super::deliver::{self, Fate, Settled};
use super::failures::Failures;
use crate::metrics::Metrics;

/// Moves deliveries until shutdown (then drains) or a broker error.
pub(super) async fn pump(
    session: &Arc<Session>,
    channel: &Channel,
    consumer: &mut Consumer,
    failures: &mut Failures,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let metrics = &session.shared.metrics;
    let mut acker = Acker::new(ack_batch(session.shared.settings.prefetch));
    let mut in_flight = FuturesUnordered::new();
    let mut bytes = InFlightBytes::new(session.shared.settings.max_in_flight_bytes, metrics);
    let mut watchdog = tokio::time::interval(CONFIRM_TIMEOUT / 12);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_settled = Instant::now();
    let ordered = session.shared.settings.ordered;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(failure) = failures.next() => {
                if failure.breaks_session(channel, session) {
                    return Err(failure.error);
                }
            }
            Some(settled) = in_flight.next(), if !in_flight.is_empty() => {
                settle(channel, &mut acker, &mut bytes, settled, session)?;
                // Settle everything else already finished, then ack once for all.
                while let Some(Some(settled)) = in_flight.next().now_or_never() {
                    settle(channel, &mut acker, &mut bytes, settled, session)?;
                }
                last_settled = Instant::now();
                acker.maybe_ack(channel, in_flight.is_empty()).context("acking")?;
            }
            delivery = consumer.next(), if takes_more(ordered, &bytes, in_flight.is_empty()) => match delivery {
                Some(Ok(delivery)) => {
                    acker.received(delivery.delivery_tag);
                    metrics.in_flight.inc();
                    bytes.add(delivery.data.len());
                    in_flight.push(deliver::handle(session, delivery.delivery_tag, delivery.properties, delivery.data));
                }
                Some(Err(error)) => return Err(error).context("consuming"),
                None => bail!("the broker cancelled the consumer"),
            },
            due = acker.next_due() => {
                due.context("acking")?;
                acker.ack(channel).context("acking")?;
            }
            _ = watchdog.tick() => stuck(session, last_settled)?,
        }
    }
    // Shutdown: take no new deliveries, finish those in flight, ack them.
    let _ = channel
        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await;
    let deadline = tokio::time::sleep(session.shared.settings.drain_timeout);
    tokio::pin!(deadline);
    while !in_flight.is_empty() {
        tokio::select! {
            () = &mut deadline => {
                tracing::warn!(left = in_flight.len(), "drain timeout: unfinished events stay unacked and will be redelivered");
                break;
            }
            Some(failure) = failures.next() => {
                if failure.breaks_session(channel, session) {
                    return Err(failure.error);
                }
            }
            Some(settled) = in_flight.next() => settle(channel, &mut acker, &mut bytes, settled, session)?,
        }
    }
    acker.ack(channel).context("acking")?;
    acker.flush().await.context("acking")?;
    tracing::info!("consumer stopped, in-flight events settled");
    Ok(())
}

/// Whether another delivery may be taken now: in ordered mode only when none is in
/// flight, else while the bytes budget has room.
fn takes_more(ordered: bool, bytes: &InFlightBytes<'_>, idle: bool) -> bool {
    if ordered { idle } else { bytes.has_room(idle) }
}

/// How many settled deliveries one ack covers: a tenth of the prefetch, so the broker
/// always has most of the window to deliver into.
fn ack_batch(prefetch: u16) -> usize {
    usize::from(prefetch / 10).max(1)
}

/// Ends the session when confirms are awaited but nothing settled for
/// [`CONFIRM_TIMEOUT`]: the publish channel is stuck, and the broker will redeliver.
fn stuck(session: &Session, last_settled: Instant) -> anyhow::Result<()> {
    let awaiting = session.awaiting.load(std::sync::atomic::Ordering::Relaxed);
    if awaiting > 0 && last_settled.elapsed() > CONFIRM_TIMEOUT {
        bail!("no publisher confirm within {CONFIRM_TIMEOUT:?} ({awaiting} awaited)");
    }
    Ok(())
}

fn settle(
    channel: &Channel,
    acker: &mut Acker,
    bytes: &mut InFlightBytes<'_>,
    Settled {
        tag,
        bytes: size,
        fate,
    }: Settled,
    session: &Session,
) -> anyhow::Result<()> {
    session.shared.metrics.in_flight.dec();
    bytes.remove(size);
    match fate {
        Fate::Done(_) => acker.done(tag),
        // A reject would put it back behind the deliveries already taken: end the session
        // instead, so the broker returns it with them, in queue order.
        Fate::Requeue if session.shared.settings.ordered => {
            bail!(
                "ordered mode: an event could not be dead-lettered; reconnecting to keep the order"
            )
        }
        Fate::Requeue => acker.reject(channel, tag).context("rejecting a delivery")?,
        Fate::Lost(error) => return Err(error.context("publishing")),
    }
    Ok(())
}

/// The bytes of the bodies in flight, against the budget, mirrored in the gauges.
struct InFlightBytes<'a> {
    now: u64,
    budget: u64,
    metrics: &'a Metrics,
}

impl<'a> InFlightBytes<'a> {
    fn new(budget: u64, metrics: &'a Metrics) -> Self {
        metrics.in_flight_bytes.set(0);
        Self {
            now: 0,
            budget,
            metrics,
        }
    }

    /// Whether another delivery may be taken: while under the budget, or when nothing
    /// is in flight (`idle`), so that a body larger than the budget still goes through,
    /// alone. Hence at most `budget + largest body - 1` bytes are in flight.
    fn has_room(&self, idle: bool) -> bool {
        idle || self.now < self.budget
    }

    fn add(&mut self, size: usize) {
        self.now = self
            .now
            .saturating_add(u64::try_from(size).unwrap_or(u64::MAX));
        let now = i64::try_from(self.now).unwrap_or(i64::MAX);
        self.metrics.in_flight_bytes.set(now);
        if now > self.metrics.in_flight_bytes_peak.get() {
            self.metrics.in_flight_bytes_peak.set(now);
        }
    }

    fn remove(&mut self, size: usize) {
        self.now = self
            .now
            .saturating_sub(u64::try_from(size).unwrap_or(u64::MAX));
        let now = i64::try_from(self.now).unwrap_or(i64::MAX);
        self.metrics.in_flight_bytes.set(now);
    }
}
