//! The headers a replay reads (`x-dispatch-received-at`, its own end marker) and the
//! ones it writes on each copy (`x-dispatch-replay`, `x-dispatch-replayed-from`,
//! `x-dispatch-routes`).

use chrono::{DateTime, Utc};
use events::amqp::header_string;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::forward::archive::{RECEIVED_AT_HEADER, REPLAY_HEADER, REPLAYED_FROM_HEADER};
use crate::forward::context::ROUTES_HEADER;

/// Header of the end marker a replay appends to the archive stream before reading it;
/// its value is the replay id. Readers skip every marker.
pub const END_MARKER_HEADER: &str = "x-dispatch-replay-end";
/// Header the broker adds to each message read from a stream.
pub const STREAM_OFFSET_HEADER: &str = "x-stream-offset";

/// When the dispatcher received an archived event, if its copy says so.
pub fn received_at(headers: &FieldTable) -> Option<DateTime<Utc>> {
    let text = header_string(headers, RECEIVED_AT_HEADER)?;
    DateTime::parse_from_rfc3339(&text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The archived properties of a copy sent by replay `id` from `stream`, with the
/// replay headers (and `x-dispatch-routes` when `routes` is not empty), less the
/// stream's offset header.
pub fn replayed(
    properties: BasicProperties,
    id: &str,
    stream: &str,
    routes: &str,
) -> BasicProperties {
    let mut table = properties
        .headers()
        .as_ref()
        .map(|h| h.inner().clone())
        .unwrap_or_default();
    table.remove(STREAM_OFFSET_HEADER);
    let mut headers = FieldTable::from(table);
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    headers.insert(ShortString::from(REPLAY_HEADER), text(id));
    headers.insert(ShortString::from(REPLAYED_FROM_HEADER), text(stream));
    if !routes.is_empty() {
        headers.insert(ShortString::from(ROUTES_HEADER), text(routes));
    }
    properties.with_headers(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archived() -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert("x-stream-offset".into(), AMQPValue::LongLongInt(42));
        headers.insert(
            RECEIVED_AT_HEADER.into(),
            AMQPValue::LongString("2026-11-30T10:00:00.123Z".into()),
        );
        headers.insert("tenant".into(), AMQPValue::LongString("acme".into()));
        BasicProperties::default()
            .with_message_id("e-1".into())
            .with_headers(headers)
    }

    #[test]
    fn a_copy_keeps_the_archived_properties_and_gains_the_replay_headers() {
        let copy = replayed(archived(), "r-1", "dispatch.archive", "users,audit");
        let headers = copy.headers().clone().unwrap();
        assert_eq!(copy.message_id().as_ref().unwrap().as_str(), "e-1");
        assert_eq!(header_string(&headers, "tenant").as_deref(), Some("acme"));
        assert_eq!(
            header_string(&headers, REPLAY_HEADER).as_deref(),
            Some("r-1")
        );
        assert_eq!(
            header_string(&headers, REPLAYED_FROM_HEADER).as_deref(),
            Some("dispatch.archive")
        );
        assert_eq!(
            header_string(&headers, ROUTES_HEADER).as_deref(),
            Some("users,audit")
        );
        assert!(!headers.inner().contains_key(STREAM_OFFSET_HEADER));
    }

    #[test]
    fn a_copy_to_a_queue_names_no_routes() {
        let copy = replayed(BasicProperties::default(), "r-1", "s", "");
        let headers = copy.headers().clone().unwrap();
        assert!(!headers.inner().contains_key(ROUTES_HEADER));
    }

    #[test]
    fn the_receive_time_is_read_from_the_archive_header() {
        let headers = archived().headers().clone().unwrap();
        let at = received_at(&headers).unwrap();
        assert_eq!(at.to_rfc3339(), "2026-11-30T10:00:00.123+00:00");
        assert_eq!(received_at(&FieldTable::default()), None);
    }
}
