//! Events as this service reads them: a [`CloudEvent`] of type `user_created`,
//! `user_updated` or `user_deleted` turned into a typed [`UserEvent`], a payment event
//! into a [`PaymentEvent`] (both an [`Incoming`]), or a [`Poison`] saying exactly why it
//! cannot be applied (the reason goes to the dead-letter header).

use chrono::{DateTime, Utc};
use events::defaults::{USER_CREATED, USER_DELETED, USER_UPDATED};
use events::{CloudEvent, EnvelopeError};
use serde::Deserialize;

use crate::payment::{PAYMENT_FAILED, PAYMENT_SUCCEEDED, PaymentEvent};
use crate::status::Refusal;

/// One event this service applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A user changed: the snapshot follows.
    User(UserEvent),
    /// The saga's payment answered: the order follows.
    Payment(PaymentEvent),
}

impl Incoming {
    /// Reads either kind, by the event's type.
    pub fn from_cloud_event(event: &CloudEvent) -> Result<Self, Poison> {
        match event.ty.as_str() {
            PAYMENT_SUCCEEDED | PAYMENT_FAILED => {
                PaymentEvent::from_cloud_event(event).map(Self::Payment)
            }
            _ => UserEvent::from_cloud_event(event).map(Self::User),
        }
    }

    /// The CloudEvents `id`.
    pub fn event_id(&self) -> &str {
        match self {
            Self::User(event) => &event.event_id,
            Self::Payment(event) => &event.event_id,
        }
    }
}

/// The three user event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserEventType {
    /// `user_created`.
    Created,
    /// `user_updated`.
    Updated,
    /// `user_deleted`.
    Deleted,
}

impl UserEventType {
    /// The CloudEvents `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => USER_CREATED,
            Self::Updated => USER_UPDATED,
            Self::Deleted => USER_DELETED,
        }
    }

    fn parse(ty: &str) -> Option<Self> {
        match ty {
            USER_CREATED => Some(Self::Created),
            USER_UPDATED => Some(Self::Updated),
            USER_DELETED => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// What an event says about the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Created or updated: the user's current name and email.
    Upsert {
        /// The user's name.
        name: String,
        /// The user's email.
        email: String,
    },
    /// Deleted.
    Delete,
}

/// One user event, checked and typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEvent {
    /// The CloudEvents `id`, unique per event (the dedupe key).
    pub event_id: String,
    /// The event type.
    pub ty: UserEventType,
    /// The user the event is about.
    pub user_id: i64,
    /// The user's version after this change (counts from 1, per user).
    pub version: u64,
    /// What changed.
    pub change: Change,
    /// When the user last changed: `data.updated_at`, else the event's `time`.
    pub updated_at: Option<DateTime<Utc>>,
    /// The event's `time` attribute (for the snapshot lag metric).
    pub time: Option<DateTime<Utc>>,
}

/// Why a message cannot be applied. Never retried: it goes to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Poison {
    /// Not a readable CloudEvent (not JSON, missing attributes, ...).
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// A CloudEvent of a type this service does not handle.
    #[error(
        "unknown event type {0:?}: expected user_created, user_updated, user_deleted, \
         payment_succeeded or payment_failed"
    )]
    UnknownType(String),
    /// `data` is missing fields, has wrong types or impossible values.
    #[error("bad event data: {0}")]
    BadData(String),
    /// The event's `subject` names another user than `data.id`.
    #[error("subject {subject:?} does not match data.id {id}")]
    SubjectMismatch {
        /// The `subject` attribute.
        subject: String,
        /// `data.id`.
        id: i64,
    },
    /// The store refused to apply it even alone (not a transient failure).
    #[error("the store refused the event: {0}")]
    ApplyFailed(String),
    /// A payment event the order's state machine refuses (see [`crate::status`]).
    #[error(transparent)]
    Refused(#[from] Refusal),
}

impl Poison {
    /// A short, stable code for the `x-order-error` header and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Envelope(error) => error.reason(),
            Self::UnknownType(_) => "unknown_type",
            Self::BadData(_) => "bad_data",
            Self::SubjectMismatch { .. } => "subject_mismatch",
            Self::ApplyFailed(_) => "apply_failed",
            Self::Refused(refusal) => refusal.reason(),
        }
    }
}

/// `data` of `user_created` / `user_updated`. Unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct UpsertData {
    id: i64,
    name: String,
    email: String,
    version: u64,
    #[serde(default)]
    updated_at: Option<DateTime<Utc>>,
}

/// `data` of `user_deleted`. Unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct DeleteData {
    id: i64,
    version: u64,
}

impl UserEvent {
    /// Reads a user event out of a CloudEvent.
    pub fn from_cloud_event(event: &CloudEvent) -> Result<Self, Poison> {
        let ty =
            UserEventType::parse(&event.ty).ok_or_else(|| Poison::UnknownType(event.ty.clone()))?;
        let bad = |e: EnvelopeError| match e {
            EnvelopeError::Data(message) => Poison::BadData(message),
            EnvelopeError::Missing(_) => Poison::BadData("missing `data`".to_owned()),
            other => Poison::Envelope(other),
        };
        let (user_id, version, change, updated_at) = match ty {
            UserEventType::Created | UserEventType::Updated => {
                let data: UpsertData = event.data_as().map_err(bad)?;
                let change = Change::Upsert {
                    name: data.name,
                    email: data.email,
                };
                (data.id, data.version, change, data.updated_at)
            }
            UserEventType::Deleted => {
                let data: DeleteData = event.data_as().map_err(bad)?;
                (data.id, data.version, Change::Delete, None)
            }
        };
        check_version(version)?;
        check_subject(event.subject.as_deref(), user_id)?;
        Ok(Self {
            event_id: event.id.clone(),
            ty,
            user_id,
            version,
            change,
            updated_at: updated_at.or(event.time),
            time: event.time,
        })
    }
}

fn check_version(version: u64) -> Result<(), Poison> {
    // SQLite integers are i64; versions count from 1.
    if version == 0 || i64::try_from(version).is_err() {
        return Err(Poison::BadData(format!(
            "data.version must be between 1 and {}, found {version}",
            i64::MAX
        )));
    }
    Ok(())
}

fn check_subject(subject: Option<&str>, id: i64) -> Result<(), Poison> {
    match subject {
        Some(subject) if subject.parse::<i64>().ok() != Some(id) => Err(Poison::SubjectMismatch {
            subject: subject.to_owned(),
            id,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(ty: &str, data: serde_json::Value) -> CloudEvent {
        CloudEvent::new("user-service", ty, data).with_subject("42")
    }

    #[test]
    fn a_created_event_is_read_and_unknown_data_fields_are_ignored() {
        let e = event(
            "user_created",
            json!({"id": 42, "name": "Alice", "email": "a@example.com", "version": 1,
                   "updated_at": "2026-11-22T10:00:00Z", "shoe_size": 38}),
        );
        let user = UserEvent::from_cloud_event(&e).unwrap();
        assert_eq!(user.ty, UserEventType::Created);
        assert_eq!((user.user_id, user.version), (42, 1));
        assert_eq!(user.event_id, e.id);
        assert_eq!(
            user.change,
            Change::Upsert {
                name: "Alice".into(),
                email: "a@example.com".into()
            }
        );
        assert_eq!(
            user.updated_at.unwrap().to_rfc3339(),
            "2026-11-22T10:00:00+00:00"
        );
    }

    #[test]
    fn updated_at_falls_back_to_the_event_time() {
        let e = event(
            "user_updated",
            json!({"id": 42, "name": "A", "email": "a@example.com", "version": 2}),
        );
        let user = UserEvent::from_cloud_event(&e).unwrap();
        assert_eq!(user.updated_at, e.time);
    }

    #[test]
    fn a_deleted_event_needs_only_id_and_version() {
        let user =
            UserEvent::from_cloud_event(&event("user_deleted", json!({"id": 42, "version": 3})))
                .unwrap();
        assert_eq!(user.change, Change::Delete);
        assert_eq!(user.version, 3);
    }

    #[test]
    fn bad_events_are_poison_with_a_precise_reason() {
        let cases = [
            (event("user_renamed", json!({})), "unknown_type"),
            (
                event("user_created", json!({"id": 42, "version": 1})),
                "bad_data",
            ),
            (
                event("user_deleted", json!({"id": "42", "version": 1})),
                "bad_data",
            ),
            (
                event("user_deleted", json!({"id": 42, "version": 0})),
                "bad_data",
            ),
            (
                event("user_deleted", json!({"id": 42, "version": -1})),
                "bad_data",
            ),
            (
                event("user_deleted", json!({"id": 42, "version": u64::MAX})),
                "bad_data",
            ),
            (
                event("user_deleted", json!({"id": 7, "version": 1})),
                "subject_mismatch",
            ),
        ];
        for (e, reason) in cases {
            let err = UserEvent::from_cloud_event(&e).unwrap_err();
            assert_eq!(err.reason(), reason, "{err}");
        }
        let mut no_data = event("user_deleted", json!({}));
        no_data.data = None;
        assert_eq!(
            UserEvent::from_cloud_event(&no_data).unwrap_err().reason(),
            "bad_data"
        );
    }

    #[test]
    fn an_event_without_subject_is_accepted() {
        let mut e = event("user_deleted", json!({"id": 5, "version": 2}));
        e.subject = None;
        assert_eq!(UserEvent::from_cloud_event(&e).unwrap().user_id, 5);
    }
}
