//! Numbered events for the ordered-mode scenario: a producer that publishes
//! `user_created` events straight into the source queue on one channel, each confirmed
//! before the next (so the queue holds them in number order), and the check that their
//! first arrivals at a target keep that order.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use events::amqp::Publisher;
use events::{CloudEvent, Endpoints};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The first sequence number: far above any id user-service assigns in a run, so the
/// snapshots these events create on order-service are theirs alone.
pub const FIRST: i64 = 1_000_000_000;

/// How first arrivals and repeats fell, in arrival order. Pure: fed one id at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderCheck {
    seen: BTreeSet<i64>,
    highest: Option<i64>,
    /// Arrivals of an id already seen (redeliveries): allowed, reported.
    pub duplicates: usize,
    /// First arrivals below an earlier first arrival, as `(id, the higher id before it)`.
    pub out_of_order: Vec<(i64, i64)>,
}

impl OrderCheck {
    /// The check of a whole arrival sequence.
    pub fn of(arrivals: impl IntoIterator<Item = i64>) -> Self {
        let mut check = Self::default();
        arrivals.into_iter().for_each(|id| check.observe(id));
        check
    }

    /// Records one arrival.
    pub fn observe(&mut self, id: i64) {
        if !self.seen.insert(id) {
            self.duplicates += 1;
            return;
        }
        match self.highest {
            Some(highest) if id < highest => self.out_of_order.push((id, highest)),
            _ => self.highest = Some(id),
        }
    }

    /// Whether every first arrival came after all lower ones.
    pub fn in_order(&self) -> bool {
        self.out_of_order.is_empty()
    }

    /// How many distinct ids arrived.
    pub fn distinct(&self) -> usize {
        self.seen.len()
    }
}

/// Publishes numbered `user_created` events into one queue at a steady rate.
#[derive(Debug)]
pub struct SequencedProducer {
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<Published>>,
}

/// What a [`SequencedProducer`] published.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// The ids the broker confirmed.
    pub confirmed: BTreeSet<i64>,
    /// Publishes the broker did not confirm (none expected: no node is lost meanwhile).
    pub unconfirmed: u64,
}

impl SequencedProducer {
    /// Connects to `endpoints` and starts publishing ids `FIRST`, `FIRST + 1`, … to
    /// `queue` at `rate` per second.
    pub async fn start(endpoints: &Endpoints, queue: &str, rate: u32) -> anyhow::Result<Self> {
        let connection =
            events::amqp::connect_once(endpoints, "fault-sequence", Duration::from_secs(10))
                .await
                .context("connecting the sequenced producer")?;
        let publisher = Publisher::new(&connection).await?;
        let (stop, queue) = (CancellationToken::new(), queue.to_owned());
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut published = Published::default();
            let mut ticker =
                tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
            for id in FIRST.. {
                tokio::select! {
                    () = token.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                let event = numbered(id);
                // Confirmed before the next is sent: the queue's order is the ids' order.
                match publisher
                    .publish_to_queue(&queue, &event.to_json_vec(), event.amqp_properties())
                    .await
                {
                    Ok(()) => {
                        published.confirmed.insert(id);
                    }
                    Err(_) => published.unconfirmed += 1,
                }
            }
            let _ = connection.close(200, "ok".into()).await;
            Ok(published)
        });
        Ok(Self { stop, task })
    }

    /// Stops after the publish in progress; what was published.
    pub async fn stop(self) -> anyhow::Result<Published> {
        self.stop.cancel();
        self.task.await.context("the sequenced producer panicked")?
    }
}

/// The `user_created` event of user `id`, shaped as user-service publishes it (without
/// `updated_at`: order-service then takes the event's `time`).
fn numbered(id: i64) -> CloudEvent {
    CloudEvent::new(
        "/fault-suite",
        "user_created",
        json!({
            "id": id,
            "name": format!("Sequence {id}"),
            "email": format!("sequence.{id}@example.com"),
            "version": 1,
        }),
    )
    .with_subject(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_in_order_pass_with_no_duplicates() {
        let check = OrderCheck::of([1, 2, 3, 4]);
        assert!(check.in_order());
        assert_eq!((check.duplicates, check.distinct()), (0, 4));
    }

    #[test]
    fn a_replay_of_earlier_ids_after_a_failover_counts_as_duplicates_not_disorder() {
        let check = OrderCheck::of([1, 2, 3, 4, 3, 4, 5, 6]);
        assert!(check.in_order());
        assert_eq!((check.duplicates, check.distinct()), (2, 6));
    }

    #[test]
    fn a_first_arrival_below_an_earlier_one_is_out_of_order() {
        let check = OrderCheck::of([1, 2, 4, 3, 5]);
        assert!(!check.in_order());
        assert_eq!(check.out_of_order, vec![(3, 4)]);
    }

    #[test]
    fn a_gap_alone_is_not_disorder_the_missing_id_is_a_loss_for_the_tally() {
        let check = OrderCheck::of([1, 2, 4, 5]);
        assert!(check.in_order());
        assert_eq!(check.distinct(), 4);
    }

    #[test]
    fn every_late_first_arrival_is_reported_against_the_highest_before_it() {
        let check = OrderCheck::of([10, 7, 8, 11, 9, 9]);
        assert_eq!(check.out_of_order, vec![(7, 10), (8, 10), (9, 11)]);
        assert_eq!(check.duplicates, 1);
    }

    #[test]
    fn no_arrival_is_in_order() {
        let check = OrderCheck::of([]);
        assert!(check.in_order());
        assert_eq!(check.distinct(), 0);
    }

    #[test]
    fn a_numbered_event_is_a_user_created_event_carrying_its_id() {
        let event = numbered(FIRST + 7);
        assert_eq!(event.ty, "user_created");
        let data = event.data.unwrap_or_default();
        assert_eq!(data["id"], FIRST + 7);
        assert_eq!(data["version"], 1);
    }
}
