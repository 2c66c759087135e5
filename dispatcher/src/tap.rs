//! The tap: a copy of what happened to each settled event, for `GET /tap`, `dispatcher
//! tap` and the dashboard. It never slows forwarding and never grows: with nobody
//! watching, the forward path pays one atomic load per event; with watchers, one
//! [`TapEvent`] per event goes into a fixed ring (a tokio `broadcast` channel of
//! [`CAPACITY`]), and a watcher that falls behind loses the oldest events and is told
//! how many ([`Watch::next`] yields [`Seen::Dropped`]), instead of holding anyone up.
//!
//! It also keeps the running totals per outcome that the dashboard's rates come from.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use events::TraceParent;
use lapin::BasicProperties;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::forward::deliver::{Fate, Outcome};
use crate::metrics::target_label;
use crate::routes::event::Incoming;
use crate::routes::{Decision, Target};
use crate::state::Generation;

/// Events held for watchers that are behind; past this, the oldest are dropped for them.
pub const CAPACITY: usize = 1024;
/// How long a watcher lets events gather after it emptied the ring (see [`Watch::next`]):
/// at most this much later on screen, and at most one wake-up per this.
pub const GATHER: Duration = Duration::from_millis(20);
/// A tapped body is cut to this many bytes (at a character boundary).
pub const BODY_LIMIT: usize = 4096;

/// The tap of one dispatcher.
#[derive(Debug)]
pub struct Tap {
    sender: broadcast::Sender<Arc<TapEvent>>,
    /// Watchers attached now; the forward path looks only at this.
    watchers: AtomicUsize,
    /// Cancelled when the admin API stops: every watch ends.
    closed: CancellationToken,
    /// Settled events per outcome since start.
    pub totals: Totals,
}

/// Settled events per outcome since start (what the dashboard's rates come from).
#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub forwarded: AtomicU64,
    pub unrouted: AtomicU64,
    pub dead_lettered: AtomicU64,
}

/// What the tap shows of one settled event.
#[derive(Debug, Clone, Serialize)]
pub struct TapEvent {
    /// When it was settled.
    pub time: DateTime<Utc>,
    /// Its type (empty when it could not be read).
    #[serde(rename = "type")]
    pub event_type: String,
    /// Its id (the AMQP `message_id`).
    pub id: Option<String>,
    /// The trace id of its `traceparent`.
    pub trace_id: Option<String>,
    /// The routes that matched, in file order.
    pub routes: Vec<String>,
    /// Where it went: the routes' targets, or the unrouted or dead-letter queue.
    pub targets: Vec<String>,
    /// `forwarded`, `unrouted` or `dead_lettered`.
    pub outcome: &'static str,
    /// The dead-letter reason code, when dead-lettered.
    pub reason: Option<&'static str>,
    /// From delivery to settled, in milliseconds.
    pub latency_ms: f64,
    /// The table generation that routed it.
    pub generation: u64,
    /// The body, cut to [`BODY_LIMIT`] bytes (lossy UTF-8).
    pub body: Option<String>,
    /// Whether `body` was cut.
    pub body_truncated: bool,
}

/// The outcomes a watcher may filter on.
pub const OUTCOMES: [&str; 3] = ["forwarded", "unrouted", "dead_lettered"];

/// What is read of a delivery when it arrives, while a watcher is attached.
#[derive(Debug)]
pub struct Seed {
    started: Instant,
    event_type: String,
    id: Option<String>,
    trace_id: Option<String>,
    body: String,
    body_truncated: bool,
    decision: Option<Arc<Decision>>,
}

impl Seed {
    /// Keeps the routing decision, to name the routes and targets once settled.
    pub fn with_decision(mut self, decision: &Arc<Decision>) -> Self {
        self.decision = Some(decision.clone());
        self
    }
}

impl Tap {
    /// A tap with nobody watching.
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(CAPACITY);
        Self {
            sender,
            watchers: AtomicUsize::new(0),
            closed: CancellationToken::new(),
            totals: Totals::default(),
        }
    }

    /// Whether anyone watches (one atomic load: the whole cost of an unwatched tap).
    pub fn is_watched(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) > 0
    }

    /// Watchers attached now.
    pub fn watchers(&self) -> usize {
        self.watchers.load(Ordering::Relaxed)
    }

    /// What the tap needs of a delivery as it arrives, or `None` when nobody watches.
    pub fn seed(&self, properties: &BasicProperties, body: &[u8]) -> Option<Seed> {
        if !self.is_watched() {
            return None;
        }
        let event_type = Incoming::read(properties, body)
            .map(|incoming| incoming.event_type.into_owned())
            .unwrap_or_default();
        let (body, body_truncated) = cut(body);
        Some(Seed {
            started: Instant::now(),
            event_type,
            id: properties.message_id().as_ref().map(ToString::to_string),
            trace_id: TraceParent::from_amqp(properties).map(|t| t.trace_id()),
            body,
            body_truncated,
            decision: None,
        })
    }

    /// Counts a settled delivery and, when `seed` is given, shows it to the watchers.
    /// Never waits: the ring overwrites what the slowest watcher has not read.
    pub fn settled(&self, fate: &Fate, generation: &Generation, seed: Option<Seed>) {
        let Fate::Done(outcome) = fate else {
            return;
        };
        let (name, reason, total) = match outcome {
            Outcome::Forwarded => ("forwarded", None, &self.totals.forwarded),
            Outcome::Unrouted => ("unrouted", None, &self.totals.unrouted),
            Outcome::DeadLettered(reason) => {
                ("dead_lettered", Some(*reason), &self.totals.dead_lettered)
            }
        };
        total.fetch_add(1, Ordering::Relaxed);
        let Some(seed) = seed else { return };
        let table = &generation.table;
        let routes = seed.decision.as_ref().map_or_else(Vec::new, |d| {
            d.routes
                .iter()
                .map(|&r| table.routes()[r].name.clone())
                .collect()
        });
        let targets = match outcome {
            Outcome::Forwarded => seed.decision.as_ref().map_or_else(Vec::new, |d| {
                d.targets
                    .iter()
                    .map(|&t| target_label(table.target(t)))
                    .collect()
            }),
            Outcome::Unrouted => vec![target_label(&Target::Queue(table.unrouted.clone()))],
            Outcome::DeadLettered(_) => {
                vec![target_label(&Target::Queue(table.dead_letter.clone()))]
            }
        };
        let event = TapEvent {
            time: Utc::now(),
            event_type: seed.event_type,
            id: seed.id,
            trace_id: seed.trace_id,
            routes,
            targets,
            outcome: name,
            reason,
            latency_ms: seed.started.elapsed().as_secs_f64() * 1000.0,
            generation: generation.number,
            body: Some(seed.body),
            body_truncated: seed.body_truncated,
        };
        // An error only means every watcher left since the check: nothing to do.
        let _ = self.sender.send(Arc::new(event));
    }

    /// Attaches a watcher; it is detached when the [`Watch`] is dropped.
    pub fn watch(self: &Arc<Self>) -> Watch {
        let receiver = self.sender.subscribe();
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Watch {
            tap: self.clone(),
            receiver,
            drained: false,
        }
    }

    /// Ends every watch (the admin API is stopping).
    pub fn close(&self) {
        self.closed.cancel();
    }
}

impl Default for Tap {
    fn default() -> Self {
        Self::new()
    }
}

/// One watcher's view of the tap.
#[derive(Debug)]
pub struct Watch {
    tap: Arc<Tap>,
    receiver: broadcast::Receiver<Arc<TapEvent>>,
    /// Whether the ring was found empty since the last event.
    drained: bool,
}

/// What a watcher sees next.
#[derive(Debug)]
pub enum Seen {
    Event(Arc<TapEvent>),
    /// This many events were dropped for this watcher, which fell behind.
    Dropped(u64),
}

impl Watch {
    /// The next event, or `None` when the tap closed.
    ///
    /// Events are read in batches: after a wake-up, this watcher takes what is in the
    /// ring, then waits [`GATHER`] for more before it asks to be woken again. So under
    /// load the forward path wakes the admin thread about once per `GATHER`, not once
    /// per event (a cross-thread wake-up costs more than the copy).
    pub async fn next(&mut self) -> Option<Seen> {
        loop {
            match self.receiver.try_recv() {
                Ok(event) => {
                    self.drained = false;
                    return Some(Seen::Event(event));
                }
                Err(broadcast::error::TryRecvError::Lagged(n)) => return Some(Seen::Dropped(n)),
                Err(broadcast::error::TryRecvError::Closed) => return None,
                Err(broadcast::error::TryRecvError::Empty) if !self.drained => {
                    // Just emptied the ring: let the next events gather.
                    self.drained = true;
                    tokio::select! {
                        () = self.tap.closed.cancelled() => return None,
                        () = tokio::time::sleep(GATHER) => {}
                    }
                }
                Err(broadcast::error::TryRecvError::Empty) => {
                    // Nothing came for a while: sleep until the next event.
                    tokio::select! {
                        () = self.tap.closed.cancelled() => return None,
                        received = self.receiver.recv() => {
                            self.drained = false;
                            return match received {
                                Ok(event) => Some(Seen::Event(event)),
                                Err(broadcast::error::RecvError::Lagged(n)) => Some(Seen::Dropped(n)),
                                Err(broadcast::error::RecvError::Closed) => None,
                            };
                        }
                    }
                }
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.tap.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The body as text, cut to [`BODY_LIMIT`] bytes at a character boundary.
fn cut(body: &[u8]) -> (String, bool) {
    if body.len() <= BODY_LIMIT {
        return (String::from_utf8_lossy(body).into_owned(), false);
    }
    let text = String::from_utf8_lossy(&body[..BODY_LIMIT]);
    // A multi-byte character split at the limit decodes as U+FFFD: drop it.
    let text = text.strip_suffix('\u{FFFD}').unwrap_or(&text).to_owned();
    (text, true)
}

pub mod client;
pub mod filter;
#[cfg(test)]
mod tests;
