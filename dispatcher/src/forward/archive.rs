//! The archive copy of a delivery: with `[archive]` set, every consumed event (routed,
//! unrouted or unreadable alike) is appended to the archive stream, its body byte for
//! byte and every property kept, plus `x-dispatch-received-at`. The copy is published
//! alongside the targets' and is part of the confirmed set: the source is acked only
//! when the archive and every target confirmed. An event that a replay sent (it carries
//! `x-dispatch-replay`) is never archived again.

use std::future::Future;

use chrono::{SecondsFormat, Utc};
use events::amqp::content_header_frame_size;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, ShortString};

use super::context::{Session, headers_of};
use super::deliver::Fate;
use super::publish::{Failure, Outgoing, publish};
use crate::routes::Target;
use crate::state::Generation;

/// Header of an archived copy: when the dispatcher received the event (RFC 3339, UTC,
/// milliseconds).
pub const RECEIVED_AT_HEADER: &str = "x-dispatch-received-at";
/// Header of a replayed copy: the id of the replay that sent it.
pub const REPLAY_HEADER: &str = "x-dispatch-replay";
/// Header of a replayed copy: the archive stream it was read from.
pub const REPLAYED_FROM_HEADER: &str = "x-dispatch-replayed-from";

/// What to append to the archive for one delivery.
#[derive(Debug)]
pub(super) struct ArchiveCopy {
    stream: Target,
    properties: BasicProperties,
}

/// The archive copy of a delivery, or `None` when the table has no archive or the
/// event was sent by a replay.
pub(super) fn copy(
    generation: &Generation,
    properties: &BasicProperties,
    frame_max: u32,
) -> Option<ArchiveCopy> {
    let archive = generation.table.archive.as_ref()?;
    if is_replayed(properties) {
        return None;
    }
    let mut headers = headers_of(properties);
    headers.insert(
        ShortString::from(RECEIVED_AT_HEADER),
        AMQPValue::LongString(
            Utc::now()
                .to_rfc3339_opts(SecondsFormat::Millis, true)
                .into(),
        ),
    );
    let with_time = properties.clone().with_headers(headers);
    // A copy that would not fit the connection's frame keeps the properties it came
    // with (they fitted when it arrived), without the receive time.
    let properties = if content_header_frame_size(&with_time)
        <= usize::try_from(frame_max).unwrap_or(usize::MAX)
    {
        with_time
    } else {
        properties.clone()
    };
    Some(ArchiveCopy {
        stream: Target::Queue(archive.stream.clone()),
        properties,
    })
}

/// Whether a replay sent this event (it carries [`REPLAY_HEADER`]).
pub fn is_replayed(properties: &BasicProperties) -> bool {
    properties
        .headers()
        .as_ref()
        .is_some_and(|h| h.inner().contains_key(REPLAY_HEADER))
}

/// Runs `routed` (the publishes to the targets or the dead-letter queue) and the
/// archive publish together; the delivery is done only when both are.
pub(super) async fn alongside(
    session: &Session,
    generation: &Generation,
    copy: ArchiveCopy,
    routed: impl Future<Output = Fate>,
    body: &[u8],
) -> Fate {
    let stream = [Outgoing {
        exchange: copy.stream.exchange(),
        routing_key: copy.stream.routing_key(),
        properties: &copy.properties,
        policy: session.shared.settings.retry_policy(),
    }];
    let archived = publish(session, &stream, body);
    let (fate, archived) = futures_util::future::join(routed, archived).await;
    match archived {
        Ok(()) => {
            if let Some(counter) = &generation.counters.archived {
                counter.inc();
            }
            fate
        }
        // A refused archive publish (the stream was deleted, or the broker nacks) ends
        // the session: the broker redelivers the event, and the new session declares
        // the stream again. Requeueing alone would loop on a stream that is gone.
        Err(Failure::Refused(refused)) => Fate::Lost(anyhow::anyhow!(
            "the archive stream {} refused the event: {}",
            copy.stream,
            refused.error
        )),
        Err(Failure::Lost(error)) => Fate::Lost(error),
    }
}
