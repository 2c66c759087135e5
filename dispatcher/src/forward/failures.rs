//! Errors of a session's two connections, as they happen. A closed publish connection
//! does not always fail the confirms already awaited, so the session listens for them.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use lapin::{Channel, Connection, Event};

use super::context::Session;

/// An error one of the session's connections reported.
#[derive(Debug)]
pub(super) struct ConnectionFailure {
    /// What failed, with the connection (`consume` or `publish`) in its context.
    pub error: anyhow::Error,
    /// Whether the broker closed only a channel, not the connection.
    pub channel_level: bool,
}

impl ConnectionFailure {
    /// Whether it ends the session: any connection-level error, and a channel-level one
    /// only when it closed one of ours (a reload's passive declare of a missing exchange
    /// fails a throw-away channel, not the session).
    pub fn breaks_session(&self, consume: &Channel, session: &Session) -> bool {
        !self.channel_level
            || !consume.status().connected()
            || !session.publisher.channel().status().connected()
    }
}

/// The failures of both connections of a session, in the order they happen.
pub(super) type Failures = Pin<Box<dyn Stream<Item = ConnectionFailure> + Send>>;

/// Listens to both connections of a session.
pub(super) fn connection_failures(consume: &Connection, publish: &Connection) -> Failures {
    Box::pin(futures_util::stream::select(
        failures_of(consume, "consume"),
        failures_of(publish, "publish"),
    ))
}

fn failures_of(
    connection: &Connection,
    which: &'static str,
) -> impl Stream<Item = ConnectionFailure> + Send + 'static {
    connection.events_listener().filter_map(move |event| {
        futures_util::future::ready(match event {
            Event::Error(error) => {
                let channel_level = error.is_amqp_soft_error();
                let error = anyhow::Error::new(error).context(format!("{which} connection failed"));
                Some(ConnectionFailure {
                    error,
                    channel_level,
                })
            }
            Event::ConnectionBlocked(reason) => {
                tracing::warn!(connection = which, %reason, "broker blocked the connection");
                None
            }
            Event::ConnectionUnblocked => {
                tracing::info!(connection = which, "broker unblocked the connection");
                None
            }
            _ => None,
        })
    })
}
