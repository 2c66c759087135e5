//! The forward loop of one session: deliveries in, each routed and handed to its own
//! publishing future, fates settled into batched acks, a watchdog for stuck confirms.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use lapin::options::BasicCancelOptions;
use lapin::{Channel, Consumer};
use tokio_util::sync::CancellationToken;

use super::deliver::{self, CONFIRM_TIMEOUT, Context, Fate};
use super::outbox::Outbox;
use super::{Failures, breaks_session};

/// Moves deliveries until shutdown (then drains) or a broker error.
pub(super) async fn pump(
    context: &Arc<Context>,
    channel: &Channel,
    consumer: &mut Consumer,
    failures: &mut Failures,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let metrics = &context.shared.metrics;
    let mut outbox = Outbox::new(ack_batch(context.shared.settings.prefetch));
    let mut in_flight = FuturesUnordered::new();
    let mut watchdog = tokio::time::interval(CONFIRM_TIMEOUT / 12);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_settled = Instant::now();
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some((error, channel_level)) = failures.next() => {
                if breaks_session(channel_level, channel, context) {
                    return Err(error);
                }
            }
            Some((tag, fate)) = in_flight.next(), if !in_flight.is_empty() => {
                settle(channel, &mut outbox, tag, fate, context)?;
                // Settle everything else already finished, then ack once for all.
                while let Some(Some((tag, fate))) = in_flight.next().now_or_never() {
                    settle(channel, &mut outbox, tag, fate, context)?;
                }
                last_settled = Instant::now();
                outbox.maybe_ack(channel, in_flight.is_empty()).context("acking")?;
            }
            delivery = consumer.next() => match delivery {
                Some(Ok(delivery)) => {
                    outbox.received(delivery.delivery_tag);
                    metrics.in_flight.inc();
                    in_flight.push(deliver::handle(context, delivery.delivery_tag, delivery.properties, delivery.data));
                }
                Some(Err(error)) => return Err(error).context("consuming"),
                None => bail!("the broker cancelled the consumer"),
            },
            due = outbox.next_due() => {
                due.context("acking")?;
                outbox.ack(channel).context("acking")?;
            }
            _ = watchdog.tick() => stuck(context, last_settled)?,
        }
    }
    // Shutdown: take no new deliveries, finish those in flight, ack them.
    let _ = channel
        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await;
    let deadline = tokio::time::sleep(context.shared.settings.drain_timeout);
    tokio::pin!(deadline);
    while !in_flight.is_empty() {
        tokio::select! {
            () = &mut deadline => {
                tracing::warn!(left = in_flight.len(), "drain timeout: unfinished events stay unacked and will be redelivered");
                break;
            }
            Some((error, channel_level)) = failures.next() => {
                if breaks_session(channel_level, channel, context) {
                    return Err(error);
                }
            }
            Some((tag, fate)) = in_flight.next() => settle(channel, &mut outbox, tag, fate, context)?,
        }
    }
    outbox.ack(channel).context("acking")?;
    outbox.flush().await.context("acking")?;
    tracing::info!("consumer stopped, in-flight events settled");
    Ok(())
}

/// How many settled deliveries one ack covers: a tenth of the prefetch, so the broker
/// always has most of the window to deliver into.
fn ack_batch(prefetch: u16) -> usize {
    usize::from(prefetch / 10).max(1)
}

/// Ends the session when confirms are awaited but nothing settled for
/// [`CONFIRM_TIMEOUT`]: the publish channel is stuck, and the broker will redeliver.
fn stuck(context: &Context, last_settled: Instant) -> anyhow::Result<()> {
    let awaiting = context.awaiting.load(std::sync::atomic::Ordering::Relaxed);
    if awaiting > 0 && last_settled.elapsed() > CONFIRM_TIMEOUT {
        bail!("no publisher confirm within {CONFIRM_TIMEOUT:?} ({awaiting} awaited)");
    }
    Ok(())
}

fn settle(
    channel: &Channel,
    outbox: &mut Outbox,
    tag: u64,
    fate: Fate,
    context: &Context,
) -> anyhow::Result<()> {
    context.shared.metrics.in_flight.dec();
    match fate {
        Fate::Done(_) => outbox.done(tag),
        Fate::Requeue => outbox
            .reject(channel, tag)
            .context("rejecting a delivery")?,
        Fate::Lost(error) => return Err(error.context("publishing")),
    }
    Ok(())
}
