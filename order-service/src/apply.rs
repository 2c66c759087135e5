//! The apply rules, pure: given the stored snapshot of a user (if any) and one event,
//! what happens. No I/O here, so the rules are tested as a table and by a property test.
//!
//! | stored                  | event                              | effect              |
//! |-------------------------|------------------------------------|---------------------|
//! | none                    | created / updated / deleted, v     | apply (live or tombstone at v) |
//! | any, same event id      | any                                | ignore: duplicate   |
//! | any at version s        | any with v <= s                    | ignore: stale       |
//! | live or deleted at s    | created / updated with v > s       | apply: live at v    |
//! | live or deleted at s    | deleted with v > s                 | apply: tombstone at v |
//!
//! The highest version wins, whatever its type: versions count the changes of one user
//! and only grow, so the state at the highest version is the latest state. A tombstone
//! keeps its version, so a late `user_updated` cannot bring a deleted user back; a
//! create or update with a higher version than the tombstone is a later change and
//! wins. A tombstone carries no name or email: the state after an event depends only on
//! that event, which is why any delivery order converges to the same snapshot.

use chrono::{DateTime, Utc};

use crate::event::{Change, UserEvent};

/// What this service knows about one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub user_id: i64,
    /// The version of the last applied event.
    pub version: u64,
    /// The id of the last applied event.
    pub last_event_id: String,
    /// When the user last changed, as the event said.
    pub updated_at: Option<DateTime<Utc>>,
    /// Live with its data, or deleted.
    pub state: UserState,
}

/// Whether the user exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserState {
    /// The user exists.
    Live { name: String, email: String },
    /// The user was deleted; the snapshot is a tombstone holding the version.
    Deleted,
}

impl Snapshot {
    /// Whether the user exists (is not a tombstone).
    pub fn is_live(&self) -> bool {
        matches!(self.state, UserState::Live { .. })
    }
}

/// Why an event changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// The same event was already applied (or recorded as processed).
    Duplicate,
    /// The stored version is the same or newer.
    Stale {
        /// The version already stored.
        stored: u64,
    },
}

impl Ignored {
    /// A short label for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::Stale { .. } => "stale",
        }
    }
}

/// The effect of one event on the stored snapshot, by the rules (nothing is written yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Store this snapshot (replacing the stored one).
    Apply(Snapshot),
    /// Leave the stored snapshot as it is.
    Ignore(Ignored),
}

/// The apply rules (see the module table).
pub fn effect_of(current: Option<&Snapshot>, event: &UserEvent) -> Effect {
    match current {
        Some(stored) if stored.last_event_id == event.event_id => {
            Effect::Ignore(Ignored::Duplicate)
        }
        Some(stored) if event.version <= stored.version => Effect::Ignore(Ignored::Stale {
            stored: stored.version,
        }),
        _ => Effect::Apply(snapshot_after(event)),
    }
}

/// The snapshot an event leaves when it wins: a function of the event alone.
fn snapshot_after(event: &UserEvent) -> Snapshot {
    let state = match &event.change {
        Change::Upsert { name, email } => UserState::Live {
            name: name.clone(),
            email: email.clone(),
        },
        Change::Delete => UserState::Deleted,
    };
    Snapshot {
        user_id: event.user_id,
        version: event.version,
        last_event_id: event.event_id.clone(),
        updated_at: event.updated_at,
        state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::UserEventType;
    use proptest::prelude::*;

    fn upsert(id: &str, version: u64, name: &str) -> UserEvent {
        UserEvent {
            event_id: id.to_owned(),
            ty: if version == 1 {
                UserEventType::Created
            } else {
                UserEventType::Updated
            },
            user_id: 7,
            version,
            change: Change::Upsert {
                name: name.to_owned(),
                email: format!("{name}@example.com"),
            },
            updated_at: None,
            time: None,
        }
    }

    fn delete(id: &str, version: u64) -> UserEvent {
        UserEvent {
            event_id: id.to_owned(),
            ty: UserEventType::Deleted,
            user_id: 7,
            version,
            change: Change::Delete,
            updated_at: None,
            time: None,
        }
    }

    fn live(id: &str, version: u64, name: &str) -> Snapshot {
        snapshot_after(&upsert(id, version, name))
    }

    fn tombstone(id: &str, version: u64) -> Snapshot {
        snapshot_after(&delete(id, version))
    }

    /// Folds events through `effect_of`, as the store does.
    fn replay<'a>(events: impl IntoIterator<Item = &'a UserEvent>) -> Option<Snapshot> {
        events.into_iter().fold(None, |current, event| {
            match effect_of(current.as_ref(), event) {
                Effect::Apply(next) => Some(next),
                Effect::Ignore(_) => current,
            }
        })
    }

    #[test]
    fn the_apply_rules_table() {
        let apply = |s: Snapshot| Effect::Apply(s);
        let stale = |stored| Effect::Ignore(Ignored::Stale { stored });
        #[rustfmt::skip]
        let table: Vec<(&str, Option<Snapshot>, UserEvent, Effect)> = vec![
            ("create", None, upsert("e1", 1, "ann"), apply(live("e1", 1, "ann"))),
            ("update newer", Some(live("e1", 1, "ann")), upsert("e2", 2, "bob"), apply(live("e2", 2, "bob"))),
            ("update skipping versions", Some(live("e1", 1, "ann")), upsert("e5", 5, "eve"), apply(live("e5", 5, "eve"))),
            ("update stale", Some(live("e3", 3, "cat")), upsert("e2", 2, "bob"), stale(3)),
            ("update same version, other id", Some(live("e2", 2, "bob")), upsert("x2", 2, "zed"), stale(2)),
            ("duplicate id", Some(live("e2", 2, "bob")), upsert("e2", 2, "bob"), Effect::Ignore(Ignored::Duplicate)),
            ("delete newer", Some(live("e2", 2, "bob")), delete("e3", 3), apply(tombstone("e3", 3))),
            ("delete then late update", Some(tombstone("e3", 3)), upsert("e2", 2, "bob"), stale(3)),
            ("delete then late create", Some(tombstone("e3", 3)), upsert("e1", 1, "ann"), stale(3)),
            ("duplicate delete", Some(tombstone("e3", 3)), delete("e3", 3), Effect::Ignore(Ignored::Duplicate)),
            ("create after delete with a higher version", Some(tombstone("e3", 3)), upsert("e4", 4, "dan"), apply(live("e4", 4, "dan"))),
            ("delete before its create arrives", None, delete("e3", 3), apply(tombstone("e3", 3))),
            ("stale delete", Some(live("e4", 4, "dan")), delete("e3", 3), stale(4)),
        ];
        for (name, current, event, expected) in table {
            assert_eq!(
                effect_of(current.as_ref(), &event),
                expected,
                "case: {name}"
            );
        }
    }

    #[test]
    fn a_tombstone_is_not_live_and_a_snapshot_is() {
        assert!(live("e1", 1, "ann").is_live());
        assert!(!tombstone("e2", 2).is_live());
    }

    /// A user's history: versions 1..=n, each a create/update or a delete.
    fn history() -> impl Strategy<Value = Vec<UserEvent>> {
        proptest::collection::vec((any::<bool>(), "[a-z]{1,8}"), 1..12).prop_map(|steps| {
            steps
                .into_iter()
                .enumerate()
                .map(|(i, (is_delete, name))| {
                    let version = i as u64 + 1;
                    let id = format!("e{version}");
                    if is_delete && version > 1 {
                        delete(&id, version)
                    } else {
                        upsert(&id, version, &name)
                    }
                })
                .collect()
        })
    }

    /// The history, some events repeated (redeliveries), in any order.
    fn shuffled_with_duplicates() -> impl Strategy<Value = (Vec<UserEvent>, Vec<UserEvent>)> {
        history().prop_flat_map(|events| {
            let n = events.len();
            let extra = proptest::collection::vec(0..n, 0..n * 2);
            (Just(events), extra).prop_flat_map(|(events, extra)| {
                let mut delivered = events.clone();
                delivered.extend(extra.into_iter().map(|i| events[i].clone()));
                (Just(events), Just(delivered).prop_shuffle())
            })
        })
    }

    proptest! {
        #[test]
        fn any_order_with_duplicates_converges_to_the_in_order_state(
            (in_order, delivered) in shuffled_with_duplicates()
        ) {
            let expected = replay(&in_order);
            prop_assert_eq!(replay(&delivered), expected.clone());
            // And the in-order state is the last event's.
            let last = in_order.last().map(snapshot_after);
            prop_assert_eq!(expected, last);
        }
    }
}
