//! One delivery, from arrival to its fate: read its type and route it with the running
//! generation (both done at once, when it arrives), then publish the body byte for byte
//! to every target (see [`super::publish`]), or dead-letter it, and say how it ended.
//! With an archive, a copy goes to the archive stream alongside (see [`super::archive`]).
//! Each message ends in exactly one [`Fate`]; the session maps fates to acks.
//!
//! The future kept per in-flight delivery holds only what publishing needs: the rare
//! paths (retry, dead-letter) are boxed where they are called, and there is no
//! per-delivery timer (the session watches for confirms that stop coming, see
//! [`Session::awaiting`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use lapin::BasicProperties;
use tracing::Instrument;

use super::archive;
use super::context::{CONFIRM_TIMEOUT, Session};
use super::dead_letter::dead_letter_properties;
use super::plan::{Plan, plan};
use super::publish::{Failure, publish};
use super::quote::{QUOTE_LIMIT, bounded};
use crate::routes::{Decision, Target};
use crate::state::Generation;

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

/// A delivery that reached its fate.
#[derive(Debug)]
pub struct Settled {
    /// Its delivery tag on the consume channel.
    pub tag: u64,
    /// The size of its body, counted in the bytes in flight until now.
    pub bytes: usize,
    pub fate: Fate,
}

/// Reads and routes one delivery now, and returns the future that publishes it and
/// says how it ended.
pub fn handle(
    session: &Arc<Session>,
    tag: u64,
    properties: BasicProperties,
    body: Vec<u8>,
) -> impl Future<Output = Settled> + Send + 'static {
    let started = Instant::now();
    let generation = session.shared.generation();
    let bytes = body.len();
    let archive = archive::copy(&generation, &properties, session.frame_max);
    let seed = session.shared.tap.seed(&properties, &body);
    let (plan, span) = plan(&generation, properties, &body, session.frame_max);
    let seed = match (&plan, seed) {
        (Plan::Publish { decision, .. }, Some(seed)) => Some(seed.with_decision(decision)),
        (_, seed) => seed,
    };
    let session = session.clone();
    async move {
        let routed = settle_plan(&session, &generation, plan, &body);
        let fate = match archive {
            None => routed.await,
            // Boxed: only an archiving dispatcher pays for the larger future.
            Some(copy) => {
                Box::pin(archive::alongside(
                    &session,
                    &generation,
                    copy,
                    routed,
                    &body,
                ))
                .await
            }
        };
        let metrics = &session.shared.metrics;
        metrics.latency.observe(started.elapsed().as_secs_f64());
        if let Fate::Done(Outcome::DeadLettered(reason)) = &fate {
            metrics
                .dead_lettered
                .get_or_create(&crate::metrics::ReasonLabel {
                    reason: (*reason).to_owned(),
                })
                .inc();
        }
        session.shared.tap.settled(&fate, &generation, seed);
        Settled { tag, bytes, fate }
    }
    .instrument(span)
}

/// Publishes as planned: to the targets, or to the dead-letter queue.
async fn settle_plan(session: &Session, generation: &Generation, plan: Plan, body: &[u8]) -> Fate {
    match plan {
        Plan::Publish {
            decision,
            properties,
        } => forward(session, generation, &decision, properties, body).await,
        Plan::DeadLetter {
            reason,
            message,
            properties,
        } => {
            let dead = dead_letter(session, generation, reason, &message, properties, body);
            Box::pin(dead).await
        }
    }
}

async fn forward(
    session: &Session,
    generation: &Generation,
    decision: &Decision,
    properties: BasicProperties,
    body: &[u8],
) -> Fate {
    let table = &generation.table;
    let published = match decision.targets.as_slice() {
        [] => {
            let unrouted = Target::Queue(table.unrouted.clone());
            match publish(session, &[&unrouted], body, &properties).await {
                Ok(()) => {
                    session.shared.metrics.unrouted.inc();
                    tracing::debug!(generation = generation.number, "unrouted");
                    return Fate::Done(Outcome::Unrouted);
                }
                Err(failure) => Err(failure),
            }
        }
        [one] => publish(session, &[table.target(*one)], body, &properties).await,
        many => {
            let targets: Vec<&Target> = many.iter().map(|&t| table.target(t)).collect();
            publish(session, &targets, body, &properties).await
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
        Err(failure) => Box::pin(failed(session, generation, failure, properties, body)).await,
    }
}

/// A refused publish: dead-letter the event; a lost connection: end the session.
async fn failed(
    session: &Session,
    generation: &Generation,
    failure: Failure,
    properties: BasicProperties,
    body: &[u8],
) -> Fate {
    match failure {
        Failure::Lost(error) => Fate::Lost(error),
        Failure::Refused { target, error } => {
            let message = format!("publishing to {target} failed: {error}");
            Box::pin(dead_letter(
                session,
                generation,
                error.reason(),
                &message,
                properties,
                body,
            ))
            .await
        }
    }
}

/// Sends the original message to `dead_letter` with the reason in a header.
async fn dead_letter(
    session: &Session,
    generation: &Generation,
    reason: &'static str,
    message: &str,
    properties: BasicProperties,
    body: &[u8],
) -> Fate {
    let event_id = properties.message_id().as_ref().map(|id| id.to_string());
    let letter = dead_letter_properties(
        properties,
        reason,
        message,
        generation.number,
        session.frame_max,
    );
    tracing::warn!(
        reason,
        error = %bounded(message, QUOTE_LIMIT),
        event_id,
        dropped_headers = letter.dropped,
        "event dead-lettered"
    );
    let properties = letter.properties;
    let target = Target::Queue(generation.table.dead_letter.clone());
    let targets = [&target];
    let published = publish(session, &targets, body, &properties);
    match tokio::time::timeout(CONFIRM_TIMEOUT, published).await {
        Err(_) => Fate::Lost(anyhow::anyhow!(
            "no publisher confirm within {CONFIRM_TIMEOUT:?}"
        )),
        Ok(Ok(())) => Fate::Done(Outcome::DeadLettered(reason)),
        Ok(Err(Failure::Lost(error))) => Fate::Lost(error),
        Ok(Err(Failure::Refused { target, error })) => {
            tracing::error!(%target, %error, "dead-letter publish refused; the event is requeued");
            session.shared.metrics.requeued.inc();
            Fate::Requeue
        }
    }
}
