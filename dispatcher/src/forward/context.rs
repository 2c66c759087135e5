//! What every delivery of one broker session shares: the [`Session`] (its publish
//! channel, the dispatcher's state, the count of awaited confirms), the names of the
//! headers the dispatcher adds, and the timeouts of the forward path.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use events::amqp::Publisher;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};

use crate::state::Shared;

/// Header naming the routes that matched (comma-separated).
pub const ROUTES_HEADER: &str = "x-dispatch-routes";
/// Header with the table generation that routed the event.
pub const GENERATION_HEADER: &str = "x-dispatch-generation";
/// Header saying why an event was dead-lettered: `<reason code>: <message>`.
pub const ERROR_HEADER: &str = "x-dispatch-error";
/// Header of a dead letter naming the original headers left out so that it fits the
/// connection's frame (comma-separated).
pub const DROPPED_HEADER: &str = "x-dispatch-dropped";

/// A confirm that takes longer than this means a stuck channel: the session is ended and
/// the broker redelivers (a safety net; confirms normally take milliseconds).
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(60);

/// What every delivery handler of one broker session needs.
#[derive(Debug)]
pub struct Session {
    /// The confirm-mode channel of the publish connection.
    pub publisher: Publisher,
    /// Tables, settings, metrics.
    pub shared: Arc<Shared>,
    /// Publishes sent whose confirm is awaited now. The session ends itself when this
    /// stays above zero while nothing settles for [`CONFIRM_TIMEOUT`] (a stuck channel).
    pub awaiting: AtomicUsize,
    /// The publish connection's negotiated frame size: no message whose content header
    /// frame is larger may be sent on it (the broker would close the connection).
    pub frame_max: u32,
}

impl Session {
    /// The state of one session, publishing on `publisher` over a connection that
    /// negotiated `frame_max`.
    pub fn new(publisher: Publisher, shared: Arc<Shared>, frame_max: u32) -> Self {
        Self {
            publisher,
            shared,
            awaiting: AtomicUsize::new(0),
            frame_max,
        }
    }
}

/// Counts one awaited confirm in [`Session::awaiting`] while it lives.
pub(super) struct Awaiting<'a>(&'a AtomicUsize);

impl<'a> Awaiting<'a> {
    pub(super) fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Awaiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A copy of the message's header table (empty when it has none).
pub(super) fn headers_of(properties: &BasicProperties) -> FieldTable {
    properties.headers().clone().unwrap_or_default()
}

/// The value of the [`GENERATION_HEADER`] for table generation `number`.
pub(super) fn generation_value(number: u64) -> AMQPValue {
    AMQPValue::LongLongInt(i64::try_from(number).unwrap_or(i64::MAX))
}
