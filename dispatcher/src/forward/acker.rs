//! Sends the acks and rejects of one consume channel. They never stall the forward loop: a
//! frame is queued in the client at once (so frames keep the order of the calls), and
//! the send is awaited alongside the other work only to notice a failure. Acks are
//! batched: one `basic.ack(multiple)` once [`Acker::batch`] deliveries have settled,
//! when nothing is left in flight, or [`ACK_DELAY`] after the first unacked settle,
//! whichever comes first. Each ack costs the broker work, so fewer is faster; the delay
//! bounds how long a settled delivery waits for its ack.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use tokio::time::{Instant, Sleep};

use super::ack_window::AckWindow;

/// The longest a settled delivery waits for its ack while others are in flight.
pub const ACK_DELAY: Duration = Duration::from_millis(20);

type Sending = Pin<Box<dyn Future<Output = Result<(), lapin::Error>> + Send>>;

/// Acks and rejects of one channel, and the window that says what may be acked.
pub struct Acker {
    window: AckWindow,
    sending: FuturesUnordered<Sending>,
    /// Deliveries settled since the last ack.
    unacked: usize,
    /// Ack once this many deliveries have settled.
    batch: usize,
    /// When the oldest unacked settle must be acked; `None` while nothing waits.
    due: Option<Instant>,
    timer: Pin<Box<Sleep>>,
}

impl std::fmt::Debug for Acker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acker")
            .field("window", &self.window)
            .field("sending", &self.sending.len())
            .field("unacked", &self.unacked)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl Acker {
    /// An acker that acks every `batch` settled deliveries (at least 1).
    pub fn new(batch: usize) -> Self {
        Self {
            window: AckWindow::default(),
            sending: FuturesUnordered::new(),
            unacked: 0,
            batch: batch.max(1),
            due: None,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// A delivery arrived.
    pub fn received(&mut self, tag: u64) {
        self.window.received(tag);
    }

    /// A delivery's publishes are confirmed: it will be acked.
    pub fn done(&mut self, tag: u64) {
        self.window.done(tag);
        self.unacked += 1;
        if self.due.is_none() {
            let due = Instant::now() + ACK_DELAY;
            self.timer.as_mut().reset(due);
            self.due = Some(due);
        }
    }

    /// Rejects a delivery with requeue now.
    pub fn reject(&mut self, channel: &Channel, tag: u64) -> Result<(), lapin::Error> {
        let channel = channel.clone();
        self.window.rejected(tag);
        self.queue(async move {
            channel
                .basic_reject(tag, BasicRejectOptions { requeue: true })
                .await
        })
    }

    /// Acks what can be acked, if a batch is full or `idle` (nothing in flight).
    pub fn maybe_ack(&mut self, channel: &Channel, idle: bool) -> Result<(), lapin::Error> {
        if self.unacked >= self.batch || (idle && self.unacked > 0) {
            self.ack(channel)?;
        }
        Ok(())
    }

    /// Acks everything that can be acked now.
    pub fn ack(&mut self, channel: &Channel) -> Result<(), lapin::Error> {
        self.unacked = 0;
        self.due = None;
        match self.window.ackable() {
            Some(tag) => {
                let channel = channel.clone();
                self.queue(async move {
                    channel
                        .basic_ack(tag, BasicAckOptions { multiple: true })
                        .await
                })
            }
            None => Ok(()),
        }
    }

    /// Resolves with `Ok` when the ack delay of the oldest unacked settle has passed
    /// (then call [`Acker::ack`]), or with the first failure to send an ack or a
    /// reject. Pending otherwise.
    pub async fn next_due(&mut self) -> Result<(), lapin::Error> {
        std::future::poll_fn(|cx| {
            while let Poll::Ready(Some(result)) = self.sending.poll_next_unpin(cx) {
                result?;
            }
            if self.due.is_some() && self.timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            Poll::Pending
        })
        .await
    }

    /// Waits until every ack and reject was sent.
    pub async fn flush(&mut self) -> Result<(), lapin::Error> {
        while let Some(result) = self.sending.next().await {
            result?;
        }
        Ok(())
    }

    fn queue(
        &mut self,
        send: impl Future<Output = Result<(), lapin::Error>> + Send + 'static,
    ) -> Result<(), lapin::Error> {
        self.sending.push(Box::pin(send));
        // The first poll queues the frame in the client, in call order; what is left
        // is waiting for the write, which `next_due` and `flush` watch.
        while let Some(Some(result)) = self.sending.next().now_or_never() {
            result?;
        }
        Ok(())
    }
}
