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
use lapin::types::AMQPValue;
use tracing::Instrument;

use super::archive;
use super::context::{CONFIRM_TIMEOUT, Session};
use super::dead_letter::dead_letter_properties;
use super::letter::{
    ATTEMPTS_HEADER, DELIVERED_TO_HEADER, Destination, FIRST_FAILED_AT_HEADER, ROUTE_HEADER,
    TARGET_HEADER, delivered_value,
};
use super::plan::{Plan, TargetCopy, plan};
use super::publish::{Failure, Outgoing, publish};
use super::quote::{QUOTE_LIMIT, bounded};
use crate::routes::Decision;
use crate::routes::table::TargetId;
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
            copies,
        } => {
            let copies = copies.as_deref();
            forward(session, generation, &decision, properties, copies, body).await
        }
        Plan::DeadLetter {
            reason,
            message,
            properties,
            route,
        } => {
            let mut extra = Vec::new();
            if let Some(route) = route {
                extra.push((ROUTE_HEADER, AMQPValue::LongString(route.as_str().into())));
            }
            let dead = dead_letter(
                session,
                generation,
                (reason, &message),
                extra,
                properties,
                body,
            );
            Box::pin(dead).await
        }
    }
}

async fn forward(
    session: &Session,
    generation: &Generation,
    decision: &Decision,
    properties: BasicProperties,
    copies: Option<&[TargetCopy]>,
    body: &[u8],
) -> Fate {
    let table = &generation.table;
    let defaults = session.shared.settings.retry_policy();
    let send = |i: usize, target: TargetId| {
        let plain = table.target(target);
        let copy = copies.and_then(|c| c.get(i));
        let retry = table.route_of(decision, target).map_or(defaults, |r| {
            table.routes()[r].retry.with_defaults(&defaults)
        });
        Outgoing {
            exchange: plain.exchange(),
            routing_key: copy
                .and_then(|c| c.routing_key.as_deref())
                .unwrap_or(plain.routing_key()),
            properties: copy
                .and_then(|c| c.properties.as_ref())
                .unwrap_or(&properties),
            policy: retry,
        }
    };
    let published = match decision.targets.as_slice() {
        [] => {
            let unrouted = [Outgoing {
                exchange: "",
                routing_key: &table.unrouted,
                properties: &properties,
                policy: defaults,
            }];
            match publish(session, &unrouted, body).await {
                Ok(()) => {
                    session.shared.metrics.unrouted.inc();
                    tracing::debug!(generation = generation.number, "unrouted");
                    return Fate::Done(Outcome::Unrouted);
                }
                Err(failure) => Err((failure, unrouted.map(|s| Sent::of(&s)).to_vec())),
            }
        }
        [one] => {
            let sends = [send(0, *one)];
            publish(session, &sends, body)
                .await
                .map_err(|f| (f, sends.iter().map(Sent::of).collect()))
        }
        many => {
            let sends: Vec<Outgoing<'_>> =
                many.iter().enumerate().map(|(i, &t)| send(i, t)).collect();
            publish(session, &sends, body)
                .await
                .map_err(|f| (f, sends.iter().map(Sent::of).collect()))
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
        Err((failure, sent)) => {
            let failed = Box::pin(failed(
                session, generation, decision, failure, &sent, properties, body,
            ));
            failed.await
        }
    }
}

/// Where one send went, kept for the dead letter of a refused fan-out.
#[derive(Clone)]
struct Sent {
    /// The target in its header form.
    text: String,
    /// The target as log lines and reasons show it.
    shown: String,
}

impl Sent {
    fn of(send: &Outgoing<'_>) -> Self {
        let shown = if send.exchange.is_empty() {
            send.routing_key.to_owned()
        } else {
            format!("exchange {} (key {:?})", send.exchange, send.routing_key)
        };
        Self {
            text: Destination::text(send.exchange, send.routing_key),
            shown,
        }
    }
}

/// A refused publish: dead-letter the event, saying where it did and did not go; a lost
/// connection: end the session.
async fn failed(
    session: &Session,
    generation: &Generation,
    decision: &Decision,
    failure: Failure,
    sent: &[Sent],
    properties: BasicProperties,
    body: &[u8],
) -> Fate {
    let refused = match failure {
        Failure::Lost(error) => return Fate::Lost(error),
        Failure::Refused(refused) => refused,
    };
    let table = &generation.table;
    let target = sent.get(refused.index).map_or("", |s| s.text.as_str());
    let shown = sent.get(refused.index).map_or("", |s| s.shown.as_str());
    let message = format!(
        "publishing to {shown} failed after {} attempt{}: {}",
        refused.attempts,
        if refused.attempts == 1 { "" } else { "s" },
        refused.error
    );
    let delivered: Vec<String> = refused
        .delivered
        .iter()
        .filter_map(|&i| sent.get(i).map(|s| s.text.clone()))
        .collect();
    let mut extra = vec![
        (TARGET_HEADER, AMQPValue::LongString(target.into())),
        (
            ATTEMPTS_HEADER,
            AMQPValue::LongLongInt(i64::from(refused.attempts)),
        ),
        (
            FIRST_FAILED_AT_HEADER,
            AMQPValue::LongString(refused.first_failed_at.to_rfc3339().into()),
        ),
        (DELIVERED_TO_HEADER, delivered_value(&delivered)),
    ];
    let route = decision
        .targets
        .get(refused.index)
        .and_then(|&t| table.route_of(decision, t));
    if let Some(route) = route {
        let name = table.routes()[route].name.as_str();
        extra.push((ROUTE_HEADER, AMQPValue::LongString(name.into())));
    }
    let reason = refused.error.reason();
    Box::pin(dead_letter(
        session,
        generation,
        (reason, &message),
        extra,
        properties,
        body,
    ))
    .await
}

/// Sends the original message to `dead_letter` with the reason in a header.
async fn dead_letter(
    session: &Session,
    generation: &Generation,
    (reason, message): (&'static str, &str),
    extra: Vec<(&'static str, AMQPValue)>,
    properties: BasicProperties,
    body: &[u8],
) -> Fate {
    let event_id = properties.message_id().as_ref().map(|id| id.to_string());
    let letter = dead_letter_properties(
        properties,
        (reason, message),
        &extra,
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
    let sends = [Outgoing {
        exchange: "",
        routing_key: &generation.table.dead_letter,
        properties: &properties,
        policy: session.shared.settings.retry_policy(),
    }];
    let published = publish(session, &sends, body);
    match tokio::time::timeout(CONFIRM_TIMEOUT, published).await {
        Err(_) => Fate::Lost(anyhow::anyhow!(
            "no publisher confirm within {CONFIRM_TIMEOUT:?}"
        )),
        Ok(Ok(())) => Fate::Done(Outcome::DeadLettered(reason)),
        Ok(Err(Failure::Lost(error))) => Fate::Lost(error),
        Ok(Err(Failure::Refused(refused))) => {
            let error = refused.error;
            let target = &generation.table.dead_letter;
            tracing::error!(%target, %error, "dead-letter publish refused; the event is requeued");
            session.shared.metrics.requeued.inc();
            Fate::Requeue
        }
    }
}
