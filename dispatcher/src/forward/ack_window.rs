//! Which deliveries of one channel can be acked: a delivery is acked only when its own
//! fate and the fates of all lower tags are settled, so one `basic.ack(multiple)` covers
//! a whole run of them. A rejected delivery (already answered on its own) is settled but
//! never named in an ack: acking a tag the broker no longer holds is a channel error.

use std::collections::BTreeMap;

/// The fate of one in-flight delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    /// To be acked.
    Done,
    /// Already rejected on its own.
    Rejected,
}

/// The in-flight delivery tags of one channel and the state of each.
#[derive(Debug, Default)]
pub struct AckWindow {
    tags: BTreeMap<u64, State>,
}

impl AckWindow {
    /// A delivery arrived.
    pub fn received(&mut self, tag: u64) {
        self.tags.insert(tag, State::Pending);
    }

    /// A delivery's publishes are confirmed: it may be acked.
    pub fn done(&mut self, tag: u64) {
        self.set(tag, State::Done);
    }

    /// A delivery was rejected on its own: it must not be acked.
    pub fn rejected(&mut self, tag: u64) {
        self.set(tag, State::Rejected);
    }

    fn set(&mut self, tag: u64, state: State) {
        if let Some(slot) = self.tags.get_mut(&tag) {
            *slot = state;
        }
    }

    /// The highest tag that may be acked with `multiple = true` now (and forgets the
    /// tags it covers), or `None` when the lowest in-flight tag is not settled.
    pub fn ackable(&mut self) -> Option<u64> {
        let mut highest = None;
        while let Some(entry) = self.tags.first_entry() {
            match entry.get() {
                State::Pending => break,
                State::Done => highest = Some(*entry.key()),
                State::Rejected => {}
            }
            entry.remove();
        }
        highest
    }

    /// Deliveries received and not yet covered by an ack.
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nothing_is_acked_while_the_lowest_tag_is_pending() {
        let mut w = AckWindow::default();
        for tag in 1..=3 {
            w.received(tag);
        }
        w.done(2);
        w.done(3);
        assert_eq!(w.ackable(), None);
        w.done(1);
        assert_eq!(w.ackable(), Some(3));
        assert!(w.is_empty());
        assert_eq!(w.ackable(), None);
    }

    #[test]
    fn acks_advance_in_runs() {
        let mut w = AckWindow::default();
        for tag in 1..=5 {
            w.received(tag);
        }
        w.done(1);
        w.done(2);
        w.done(4);
        assert_eq!(w.ackable(), Some(2));
        assert_eq!(w.len(), 3);
        w.done(3);
        assert_eq!(w.ackable(), Some(4));
    }

    #[test]
    fn settling_an_unknown_tag_changes_nothing() {
        let mut w = AckWindow::default();
        w.received(7);
        w.done(3);
        assert_eq!(w.ackable(), None);
    }

    #[test]
    fn a_rejected_tag_is_never_named_in_an_ack() {
        let mut w = AckWindow::default();
        for tag in 1..=3 {
            w.received(tag);
        }
        w.done(1);
        w.rejected(3);
        w.done(2);
        assert_eq!(w.ackable(), Some(2));
        assert!(w.is_empty(), "the rejected tag is forgotten too");
        w.received(4);
        w.rejected(4);
        assert_eq!(w.ackable(), None);
        assert!(w.is_empty());
    }

    proptest! {
        #[test]
        fn an_acked_tag_was_settled_and_so_were_all_lower_ones(order in Just((1u64..=30).collect::<Vec<_>>()).prop_shuffle()) {
            let mut w = AckWindow::default();
            for tag in 1..=30 {
                w.received(tag);
            }
            let mut settled = std::collections::BTreeSet::new();
            let mut acked_up_to = 0;
            for tag in order {
                w.done(tag);
                settled.insert(tag);
                if let Some(upto) = w.ackable() {
                    prop_assert!(upto > acked_up_to);
                    prop_assert!((1..=upto).all(|t| settled.contains(&t)));
                    acked_up_to = upto;
                }
            }
            prop_assert_eq!(acked_up_to, 30);
        }
    }
}
