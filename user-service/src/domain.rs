//! The rules of a user: what a name and an email may be (parse, don't validate), how a
//! request body becomes a valid change with every field's problem collected, and the
//! events a change emits.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use events::defaults::{USER_CREATED, USER_DELETED, USER_UPDATED};
use events::envelope::json_kind;
use events::{CloudEvent, TraceParent};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

/// The `source` of every event this service emits.
pub const SOURCE: &str = "user-service";
/// The longest name accepted, in characters (not bytes), after trimming and Unicode
/// normalisation (NFC).
pub const NAME_MAX_CHARS: usize = 100;
/// The longest email accepted, in characters (RFC 5321's path limit), after
/// normalisation and lowercasing.
pub const EMAIL_MAX_CHARS: usize = 254;
/// The longest local part (before the `@`) accepted, in characters.
const LOCAL_MAX_CHARS: usize = 64;

/// A user's display name: trimmed, in Unicode Normalization Form C, 1 to
/// [`NAME_MAX_CHARS`] characters, at least one visible character, no control or
/// bidirectional control characters. Any other Unicode is welcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    /// Parses a name as a person typed it. A refused character is named, with its
    /// position in the trimmed name (counting characters from 1).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if let Some(found) = text::first_refused(trimmed, char::is_control) {
            return Err(format!("must not contain control characters: {found}"));
        }
        if let Some(found) = text::first_refused(trimmed, text::is_bidi_control) {
            return Err(format!(
                "must not contain bidirectional control characters: {found}"
            ));
        }
        if trimmed.chars().all(text::is_invisible) {
            let first = text::first_refused(trimmed, text::is_invisible).unwrap_or_default();
            return Err(format!(
                "must contain a visible character, not only invisible ones such as {first}"
            ));
        }
        let name = text::nfc(trimmed);
        let chars = name.chars().count();
        if chars > NAME_MAX_CHARS {
            return Err(format!(
                "must be at most {NAME_MAX_CHARS} characters (got {chars})"
            ));
        }
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address of a sane shape (`local@domain.tld`), stored in Unicode
/// Normalization Form C and lowercased so that uniqueness is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses an address as a person typed it. Lengths are those of the stored form:
    /// lowercasing can lengthen a string (`İ` becomes two code points). A refused
    /// character is named, with its position in the trimmed address.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if let Some(found) = text::first_refused(trimmed, |c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "must not contain spaces or control characters: {found}"
            ));
        }
        let hidden = |c| text::is_invisible(c) || text::is_bidi_control(c);
        if let Some(found) = text::first_refused(trimmed, hidden) {
            return Err(format!("must not contain invisible characters: {found}"));
        }
        let email = text::nfc(&trimmed.to_lowercase());
        let chars = email.chars().count();
        if chars > EMAIL_MAX_CHARS {
            return Err(format!(
                "must be at most {EMAIL_MAX_CHARS} characters once lowercased (got {chars})"
            ));
        }
        let shape = || "must look like name@example.com".to_owned();
        let (local, domain) = email.split_once('@').ok_or_else(shape)?;
        if local.is_empty() || domain.contains('@') || !domain_is_sane(domain) {
            return Err(shape());
        }
        let local_chars = local.chars().count();
        if local_chars > LOCAL_MAX_CHARS {
            return Err(format!(
                "the part before @ must be at most {LOCAL_MAX_CHARS} characters once lowercased (got {local_chars})"
            ));
        }
        Ok(Self(email))
    }

    /// The lowercased address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// At least two dot-separated labels of letters, digits, inner hyphens and the combining
/// marks that follow a letter (`i̇`, the lowercase of `İ`, is `i` and a combining dot).
fn domain_is_sane(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && !label.starts_with(text::is_mark)
                && label
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || text::is_mark(c))
        })
}

/// The JSON body of `POST /users` and `PATCH /users/{id}` as it arrived: each known field
/// kept as raw JSON (so a wrong type is a field problem, not a parse failure), unknown
/// fields collected to be refused by name.
#[derive(Debug, Default, Deserialize)]
pub struct UserFields {
    #[serde(default, deserialize_with = "present")]
    name: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    email: Option<Value>,
    #[serde(flatten)]
    unknown: Map<String, Value>,
}

/// Keeps an explicit `null` as `Some(Null)`, so it is reported rather than ignored.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// Every problem of a request body, by field name: the `details` of a `422`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(BTreeMap<String, String>);

impl Problems {
    fn add(&mut self, field: &str, problem: impl Into<String>) {
        self.0.insert(field.to_owned(), problem.into());
    }

    /// As a JSON object `{"field": "problem", …}`.
    pub fn to_json(&self) -> Value {
        json!(self.0)
    }

    fn into_result<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, Self> {
        match value() {
            Some(value) if self.0.is_empty() => Ok(value),
            _ => Err(self),
        }
    }
}

/// A valid new user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub name: UserName,
    pub email: Email,
}

/// A valid change to a user: at least one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPatch {
    /// The new name, if it changes.
    pub name: Option<UserName>,
    /// The new email, if it changes.
    pub email: Option<Email>,
}

impl UserFields {
    /// A new user, or every problem: missing fields, wrong types, invalid values,
    /// unknown fields.
    pub fn into_new_user(self) -> Result<NewUser, Problems> {
        let mut problems = self.unknown_problems();
        let name = required(&mut problems, "name", self.name, UserName::parse);
        let email = required(&mut problems, "email", self.email, Email::parse);
        problems.into_result(|| {
            Some(NewUser {
                name: name?,
                email: email?,
            })
        })
    }

    /// A patch, or every problem; a body with neither field is a problem too.
    pub fn into_patch(self) -> Result<UserPatch, Problems> {
        let mut problems = self.unknown_problems();
        if self.name.is_none() && self.email.is_none() {
            problems.add("body", "give `name`, `email` or both");
        }
        let name = optional(&mut problems, "name", self.name, UserName::parse);
        let email = optional(&mut problems, "email", self.email, Email::parse);
        problems.into_result(|| Some(UserPatch { name, email }))
    }

    fn unknown_problems(&self) -> Problems {
        let mut problems = Problems::default();
        for field in self.unknown.keys() {
            problems.add(field, "unknown field: only `name` and `email` are accepted");
        }
        problems
    }
}

fn required<T>(
    problems: &mut Problems,
    field: &str,
    value: Option<Value>,
    parse: fn(&str) -> Result<T, String>,
) -> Option<T> {
    if value.is_none() {
        problems.add(field, "is required");
    }
    optional(problems, field, value, parse)
}

fn optional<T>(
    problems: &mut Problems,
    field: &str,
    value: Option<Value>,
    parse: fn(&str) -> Result<T, String>,
) -> Option<T> {
    let result = match value? {
        Value::String(text) => parse(&text),
        other => Err(format!("must be a string (got {})", json_kind(&other))),
    };
    result.map_err(|problem| problems.add(field, problem)).ok()
}

/// A stored user, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "id": 1, "name": "Alice", "email": "alice@example.com", "version": 1,
    "created_at": "2026-11-22T10:00:00.123456Z", "updated_at": "2026-11-22T10:00:00.123456Z"
}))]
pub struct User {
    /// Assigned by the database, never reused.
    #[schema(minimum = 1)]
    pub id: i64,
    /// The trimmed name, in NFC.
    pub name: String,
    /// The lowercased email, in NFC.
    pub email: String,
    /// Counts the changes of this user from 1.
    #[schema(minimum = 1)]
    pub version: u64,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// A timestamp as stored and returned: RFC 3339, UTC, microseconds.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The `user_created` event of a user just inserted.
pub fn created_event(user: &User, at: DateTime<Utc>, trace: &TraceParent) -> CloudEvent {
    event(USER_CREATED, user.id, user_data(user), at, trace)
}

/// The `user_updated` event of a user just changed.
pub fn updated_event(user: &User, at: DateTime<Utc>, trace: &TraceParent) -> CloudEvent {
    event(USER_UPDATED, user.id, user_data(user), at, trace)
}

/// The `user_deleted` event; `version` is the user's version after the delete.
pub fn deleted_event(id: i64, version: u64, at: DateTime<Utc>, trace: &TraceParent) -> CloudEvent {
    let data = json!({ "id": id, "version": version });
    event(USER_DELETED, id, data, at, trace)
}

fn user_data(user: &User) -> Value {
    json!({
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "version": user.version,
        "updated_at": user.updated_at,
    })
}

fn event(ty: &str, id: i64, data: Value, at: DateTime<Utc>, trace: &TraceParent) -> CloudEvent {
    let mut event = CloudEvent::new(SOURCE, ty, data)
        .with_subject(id.to_string())
        .with_traceparent(trace);
    event.time = Some(at);
    event
}

#[path = "domain_text.rs"]
mod text;

#[cfg(test)]
mod tests;
