//! Request/reply behind the dispatcher. The driver is the client: it publishes
//! `quote.requested` to the dispatcher with `reply_to` and a `correlation_id`; the
//! dispatcher forwards it, properties intact, to rpc-pricing, which answers straight to
//! `reply_to`. Two ways to receive replies, 1,000 calls each: an exclusive callback queue
//! declared by the client, and RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to`, no
//! queue at all). Every reply must match its request.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use events::CloudEvent;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use serde_json::json;

use super::catalog::Demo;
use super::stage::{Names, Options, Plan, ServiceSpec, Stage, ms, with_stage};

/// Calls per way of receiving replies.
pub const CALLS: usize = 1_000;

/// The courses the client asks about, with their unit prices (in cents) as rpc-pricing
/// knows them: a reply must agree.
const CATALOG: [(&str, i64); 3] = [
    ("rust-101", 12_000),
    ("async-201", 18_000),
    ("rabbitmq-301", 24_000),
];

/// RabbitMQ's pseudo-queue for direct reply-to.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// What one way of receiving replies measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcRun {
    /// `exclusive callback queue` or `direct reply-to`.
    pub mode: &'static str,
    /// Calls made.
    pub calls: usize,
    /// Replies whose correlation id and content matched their request.
    pub matched: usize,
    /// Median round trip.
    pub p50: Duration,
    /// 99th percentile round trip.
    pub p99: Duration,
}

/// What request/reply declares and starts.
pub fn plan(names: &Names) -> Plan {
    Plan {
        source: names.of("dispatch"),
        queues: ["dispatch", "unrouted", "pricing"]
            .map(|q| names.of(q))
            .to_vec(),
        exchanges: Vec::new(),
        services: vec![ServiceSpec {
            binary: "rpc-pricing",
            label: "rpc-pricing".to_owned(),
            queue: names.of("pricing"),
            args: Vec::new(),
        }],
    }
}

/// Runs both ways, [`CALLS`] calls each.
pub async fn run(options: &Options) -> anyhow::Result<Vec<RpcRun>> {
    let names = Names::new(&options.prefix, Demo::Rpc);
    println!("rpc: {}", Demo::Rpc.about());
    with_stage(Demo::Rpc, plan(&names), options, async |stage| {
        journey(stage).await
    })
    .await
}

async fn journey(stage: &mut Stage) -> anyhow::Result<Vec<RpcRun>> {
    // An exclusive, server-named queue: only this connection may use it, and the broker
    // deletes it when the connection closes.
    let channel = stage.connection.create_channel().await?;
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let queue = channel
        .queue_declare("".into(), exclusive, FieldTable::default())
        .await?;
    let reply_to = queue.name().to_string();
    let replies = consume_replies(&channel, &reply_to).await?;
    let callback = calls(stage, "exclusive callback queue", &reply_to, replies).await?;
    let _ = channel.close(200, "ok".into()).await;

    // Direct reply-to: consume the pseudo-queue on the channel that publishes.
    let channel = stage.publisher.channel().clone();
    let replies = consume_replies(&channel, DIRECT_REPLY_TO).await?;
    let direct = calls(stage, "direct reply-to", DIRECT_REPLY_TO, replies).await?;
    println!("\nevery reply matched its request");
    Ok(vec![callback, direct])
}

/// Replies are consumed without acks: they are only worth something to the caller that
/// waits for them (and direct reply-to requires it).
async fn consume_replies(channel: &Channel, queue: &str) -> anyhow::Result<Consumer> {
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    Ok(channel
        .basic_consume(queue.into(), "".into(), no_ack, FieldTable::default())
        .await?)
}

async fn calls(
    stage: &mut Stage,
    mode: &'static str,
    reply_to: &str,
    mut replies: Consumer,
) -> anyhow::Result<RpcRun> {
    println!("\n{mode} (reply_to {reply_to}):");
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut round_trips = Vec::with_capacity(CALLS);
    for n in 0..CALLS {
        let (sku, unit) = CATALOG[n % CATALOG.len()];
        let quantity = n as u64 % 9 + 1;
        let correlation_id = format!("{run}-{n}");
        let request = CloudEvent::new(
            "rpc-client",
            "quote.requested",
            json!({"sku": sku, "quantity": quantity}),
        );
        let properties = request
            .amqp_properties()
            .with_reply_to(reply_to.into())
            .with_correlation_id(correlation_id.as_str().into());
        let started = Instant::now();
        stage
            .publisher
            .publish_to_queue(&stage.plan.source, &request.to_json_vec(), properties)
            .await
            .with_context(|| format!("call {} ({mode}) failed: publishing the request", n + 1))?;
        let reply = tokio::time::timeout(stage.options.timeout, replies.next()).await;
        let round_trip = started.elapsed();
        let delivery = match reply {
            Ok(Some(Ok(delivery))) => delivery,
            Ok(Some(Err(error))) => bail!("call {} ({mode}) failed: {error}", n + 1),
            Ok(None) => bail!(
                "call {} ({mode}) failed: the reply consumer was cancelled",
                n + 1
            ),
            Err(_) => {
                stage.fleet.check()?;
                bail!(
                    "call {} ({mode}) failed: no reply within {:?}",
                    n + 1,
                    stage.options.timeout
                )
            }
        };
        let got = delivery
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.to_string());
        ensure!(
            got.as_deref() == Some(correlation_id.as_str()),
            "call {} ({mode}): a reply with correlation id {got:?}, expected {correlation_id}",
            n + 1
        );
        let reply = CloudEvent::from_amqp(&delivery.properties, &delivery.data)
            .with_context(|| format!("call {} ({mode}): the reply is not an event", n + 1))?;
        let data = reply.data.unwrap_or_default();
        let expected = json!({"sku": sku, "quantity": quantity, "unit_price_cents": unit, "total_cents": unit * quantity as i64});
        ensure!(
            reply.ty == "quote.replied" && data == expected,
            "call {} ({mode}): reply {} {data} does not answer the request (expected {expected})",
            n + 1,
            reply.ty
        );
        if n == 0 {
            println!(
                "  call 1: quote.requested → dispatcher → rpc-pricing → quote.replied {} in {}",
                data["total_cents"],
                ms(round_trip)
            );
        }
        round_trips.push(round_trip);
    }
    round_trips.sort();
    let result = RpcRun {
        mode,
        calls: CALLS,
        matched: round_trips.len(),
        p50: percentile(&round_trips, 50),
        p99: percentile(&round_trips, 99),
    };
    println!(
        "  {} calls, {} replies matched: round trip p50 {}, p99 {}",
        result.calls,
        result.matched,
        ms(result.p50),
        ms(result.p99)
    );
    Ok(result)
}

/// The `p`th percentile of sorted durations (nearest rank).
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 50), Duration::from_millis(50));
        assert_eq!(percentile(&sorted, 99), Duration::from_millis(99));
        assert_eq!(percentile(&sorted[..1], 99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }
}
