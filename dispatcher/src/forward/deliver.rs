//! One delivery: read its type and route it with the running generation (both done at
//! once, when it arrives), then publish the body byte for byte to every target
//! (confirmed, retried with backoff), and say how it ended. Each message ends in
//! exactly one [`Fate`]; the session maps fates to acks.
//!
//! The future kept per in-flight delivery holds only what publishing needs: the cold
//! paths (retry, dead-letter) are boxed, and there is no per-delivery timer (the session
//! watches for confirms that stop coming, see [`Context::awaiting`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use events::amqp::{PendingConfirm, PublishError, Publisher};
use futures_util::future::join_all;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use tracing::Instrument;

use super::cold;
use super::plan::{Plan, plan};
use crate::routes::{Decision, Target};
use crate::state::{Generation, Shared};

/// Header naming the routes that matched (comma-separated).
pub const ROUTES_HEADER: &str = "x-dispatch-routes";
/// Header with the table generation that routed the event.
pub const GENERATION_HEADER: &str = "x-dispatch-generation";
/// Header saying why an event was dead-lettered: `<reason code>: <message>`.
pub const ERROR_HEADER: &str = "x-dispatch-error";

/// A confirm that takes longer than this means a stuck channel: the session is ended and
/// the broker redelivers (a safety net; confirms normally take milliseconds).
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(60);

/// How a delivery ended.
#[derive(Debug)]
pub enum Fate {
    /// Every publish it needed is confirmed: ack it.
    Done(Outcome),
    /// Not even the dead-letter publish was confirmed: reject it with requeue.
    Requeue,
    /// The broker connection failed, or a confirm never came: end the session (the
    /// broker requeues the delivery).
    Lost(anyhow::Error),
}

/// Where a settled delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// To every target of the matching routes.
    Forwarded,
    /// No route matched: to the `unrouted` queue.
    Unrouted,
    /// To the `dead_letter` queue, for this reason code.
    DeadLettered(&'static str),
}

/// What every delivery handler of one session needs.
#[derive(Debug)]
pub struct Context {
    /// The confirm-mode channel of the publish connection.
    pub publisher: Publisher,
    /// Tables, metrics.
    pub shared: Arc<Shared>,
    /// Publishes sent whose confirm is awaited now. The session ends itself when this
    /// stays above zero while nothing settles for [`CONFIRM_TIMEOUT`] (a stuck channel).
    pub awaiting: AtomicUsize,
}

impl Context {
    /// A context for one session's publish channel.
    pub fn new(publisher: Publisher, shared: Arc<Shared>) -> Self {
        Self {
            publisher,
            shared,
            awaiting: AtomicUsize::new(0),
        }
    }
}

/// Counts one awaited confirm in [`Context::awaiting`] while it lives.
struct Awaiting<'a>(&'a AtomicUsize);

impl<'a> Awaiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Awaiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why publishing to the targets failed.
pub(super) enum Failure {
    Lost(anyhow::Error),
    Refused { target: String, error: PublishError },
}

/// Reads and routes one delivery now, and returns the future that publishes it and
/// says how it ended.
pub fn handle(
    context: &Arc<Context>,
    tag: u64,
    properties: BasicProperties,
    body: Vec<u8>,
) -> impl Future<Output = (u64, Fate)> + Send + 'static {
    let started = Instant::now();
    let generation = context.shared.generation();
    let (plan, span) = plan(&generation, properties, &body);
    let context = context.clone();
    async move {
        let fate = match plan {
            Plan::Publish {
                decision,
                properties,
            } => forward(&context, &generation, &decision, properties, &body).await,
            Plan::Unreadable {
                reason,
                message,
                properties,
            } => {
                let dead =
                    cold::dead_letter(&context, &generation, reason, &message, properties, &body);
                Box::pin(dead).await
            }
        };
        let metrics = &context.shared.metrics;
        metrics.latency.observe(started.elapsed().as_secs_f64());
        if let Fate::Done(Outcome::DeadLettered(reason)) = &fate {
            metrics
                .dead_lettered
                .get_or_create(&crate::metrics::ReasonLabel {
                    reason: (*reason).to_owned(),
                })
                .inc();
        }
        (tag, fate)
    }
    .instrument(span)
}

async fn forward(
    context: &Context,
    generation: &Generation,
    decision: &Decision,
    properties: BasicProperties,
    body: &[u8],
) -> Fate {
    let table = &generation.table;
    let published = match decision.targets.as_slice() {
        [] => {
            let unrouted = Target::Queue(table.unrouted.clone());
            match publish(context, &[&unrouted], body, &properties).await {
                Ok(()) => {
                    context.shared.metrics.unrouted.inc();
                    tracing::debug!(generation = generation.number, "unrouted");
                    return Fate::Done(Outcome::Unrouted);
                }
                Err(failure) => Err(failure),
            }
        }
        [one] => publish(context, &[table.target(*one)], body, &properties).await,
        many => {
            let targets: Vec<&Target> = many.iter().map(|&t| table.target(t)).collect();
            publish(context, &targets, body, &properties).await
        }
    };
    match published {
        Ok(()) => {
            for &route in &decision.routes {
                generation.counters.routes[route].inc();
            }
            for &target in &decision.targets {
                generation.counters.targets[target].inc();
            }
            tracing::debug!(
                routes = %decision.route_names,
                targets = decision.targets.len(),
                generation = generation.number,
                "forwarded"
            );
            Fate::Done(Outcome::Forwarded)
        }
        Err(failure) => {
            Box::pin(cold::failed(context, generation, failure, properties, body)).await
        }
    }
}

async fn send(
    context: &Context,
    target: &Target,
    body: &[u8],
    properties: BasicProperties,
) -> Result<PendingConfirm, Failure> {
    context
        .publisher
        .send(target.exchange(), target.routing_key(), body, properties)
        .await
        .map_err(|e| Failure::Lost(e.into()))
}

/// Sends to every target, then waits for every confirm; a nacked or returned publish is
/// retried alone with doubling backoff.
pub(super) async fn publish(
    context: &Context,
    targets: &[&Target],
    body: &[u8],
    properties: &BasicProperties,
) -> Result<(), Failure> {
    if let [target] = targets {
        let sent = send(context, target, body, properties.clone()).await?;
        let awaiting = Awaiting::new(&context.awaiting);
        let result = sent.wait().await;
        drop(awaiting);
        return confirmed(context, target, body, properties, result).await;
    }
    let mut pending = Vec::with_capacity(targets.len());
    for target in targets {
        pending.push(
            send(context, target, body, properties.clone())
                .await?
                .wait(),
        );
    }
    let awaiting = Awaiting::new(&context.awaiting);
    let results = join_all(pending).await;
    drop(awaiting);
    for (target, result) in targets.iter().zip(results) {
        confirmed(context, target, body, properties, result).await?;
    }
    Ok(())
}

/// Maps one confirm to the outcome, retrying a refusal.
async fn confirmed(
    context: &Context,
    target: &Target,
    body: &[u8],
    properties: &BasicProperties,
    result: Result<(), PublishError>,
) -> Result<(), Failure> {
    match result {
        Ok(()) => Ok(()),
        Err(error) if error.is_connection_error() => Err(Failure::Lost(error.into())),
        Err(error) => Box::pin(cold::retry(context, target, body, properties, error)).await,
    }
}

pub(super) fn headers_of(properties: &BasicProperties) -> FieldTable {
    properties.headers().clone().unwrap_or_default()
}

/// The value of the [`GENERATION_HEADER`] for table generation `number`.
pub(super) fn generation_value(number: u64) -> AMQPValue {
    AMQPValue::LongLongInt(i64::try_from(number).unwrap_or(i64::MAX))
}
