//! The envelope of docs/architecture.md (CloudEvents 1.0): build, serialize, read it back from an
//! AMQP message in structured mode (the event is the JSON body) or binary mode (the
//! attributes are AMQP properties / `cloudEvents_*`, `ce-*` or `ce_*` headers and the
//! body is the data).
//!
//! A JSON body is read as I-JSON ([`json_text`]): UTF-8, and no repeated member names.
//! Reading never panics: every way an input can be bad is an [`EnvelopeError`] variant
//! with a message a person understands and a short [`EnvelopeError::reason`] code for
//! metrics and dead-letter headers.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

// Re-exported where they used to live, so that their callers need not change.
pub use crate::amqp::{amqp_to_json, header_string};
use crate::trace::{TRACEPARENT_HEADER, TraceParent};

mod json_text;

pub use json_text::{json_text, unique_members, utf8_text};

/// The only CloudEvents version this system speaks.
pub const SPEC_VERSION: &str = "1.0";
/// AMQP `content_type` of a structured-mode event.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";
/// `datacontenttype` of the events we emit.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// Header prefixes of binary-mode attributes, in order of precedence, each matched
/// without regard to ASCII case: `cloudEvents_` (the AMQP binding), `cloudEvents:` (its
/// AMQP 1.0 spelling, seen when messages cross a bridge), `ce_` (the Kafka binding, as
/// Kafka-to-AMQP bridges and the SDKs' Kafka modes send it) and `ce-` (the HTTP binding,
/// which the SDKs' RabbitMQ modes use).
pub const BINARY_PREFIXES: [&str; 4] = ["cloudEvents_", "cloudEvents:", "ce_", "ce-"];

/// The longest event type a router accepts, in bytes: RabbitMQ's limit on a routing
/// key (an AMQP short string), so that any event type can also be a routing key.
pub const MAX_TYPE_BYTES: usize = 255;
/// The most words (`.`-separated) an event type can have. It follows from
/// [`MAX_TYPE_BYTES`] (a word and its dot take at least one byte) and bounds the cost of
/// matching a type against topic patterns.
pub const MAX_TYPE_WORDS: usize = MAX_TYPE_BYTES / 2 + 1;
/// How much of an over-long type an error quotes.
const QUOTED_TYPE: usize = 64;

/// One event, as defined by CloudEvents 1.0 (required: `id`, `source`, `type`).
///
/// Attributes other than the ones named here (extensions such as `traceparent`) are kept
/// in [`CloudEvent::extensions`] so that reading and re-serializing an event loses nothing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CloudEvent {
    /// Always [`SPEC_VERSION`].
    pub specversion: String,
    /// Unique per event; consumers use it to drop duplicates.
    pub id: String,
    /// Who emitted the event, e.g. `user-service`.
    pub source: String,
    /// The event type, e.g. `user_created`.
    #[serde(rename = "type")]
    pub ty: String,
    /// What the event is about, e.g. the user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// When the change happened.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_time"
    )]
    pub time: Option<DateTime<Utc>>,
    /// Media type of `data`, normally `application/json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    /// The payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Extension attributes, kept as they came.
    #[serde(flatten)]
    pub extensions: BTreeMap<String, Value>,
}

/// How an incoming message carried its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The whole event is the JSON body.
    Structured,
    /// Attributes in AMQP properties/headers, the body is the data.
    Binary,
}

/// Every way an incoming message can fail to be a readable event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvelopeError {
    /// The body is not valid JSON (structured mode).
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not an object.
    #[error("body is JSON but not an object (found {0})")]
    NotAnObject(&'static str),
    /// A required attribute is absent.
    #[error("{}", missing_message(.0))]
    Missing(&'static str),
    /// `specversion` is not `1.0`.
    #[error("unsupported specversion {0:?}: only \"1.0\" is supported")]
    SpecVersion(String),
    /// An attribute has the wrong JSON type.
    #[error("attribute `{name}` must be {expected}, found {found}")]
    WrongType {
        name: String,
        expected: &'static str,
        found: &'static str,
    },
    /// A required attribute is an empty string.
    #[error("attribute `{0}` must not be empty")]
    Empty(&'static str),
    /// `time` is not an RFC 3339 timestamp.
    #[error("attribute `time` is not an RFC 3339 timestamp: {0:?}")]
    BadTime(String),
    /// `data` does not have the shape the consumer expects.
    #[error("event data does not match the expected shape: {0}")]
    Data(String),
    /// The event type is longer than [`MAX_TYPE_BYTES`].
    #[error(
        "event type of {bytes} bytes starting {start:?}: an event type is at most \
         {MAX_TYPE_BYTES} bytes (hence {MAX_TYPE_WORDS} words), like an AMQP routing key"
    )]
    TypeTooLong {
        /// Its length in bytes.
        bytes: usize,
        /// Its first bytes (at most 64, cut at a character boundary).
        start: String,
    },
}

fn missing_message(name: &str) -> String {
    match name {
        "type" => "missing event type: no `type` attribute in the JSON body, \
                   and no AMQP `type` property or `cloudEvents_type` (or `ce-type`) header"
            .to_owned(),
        other => format!("missing required attribute `{other}`"),
    }
}

impl EnvelopeError {
    /// A short, stable code for metrics labels and `x-*-error` headers.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "not_json",
            Self::NotAnObject(_) => "not_an_object",
            Self::Missing("type") => "missing_type",
            Self::Missing(_) => "missing_attribute",
            Self::SpecVersion(_) => "bad_specversion",
            Self::WrongType { .. } => "wrong_type",
            Self::Empty(_) => "empty_attribute",
            Self::BadTime(_) => "bad_time",
            Self::Data(_) => "bad_data",
            Self::TypeTooLong { .. } => "type_too_long",
        }
    }
}

impl CloudEvent {
    /// A new event with a fresh time-ordered id (UUIDv7), `time` = now and JSON data.
    pub fn new(source: impl Into<String>, ty: impl Into<String>, data: Value) -> Self {
        Self {
            specversion: SPEC_VERSION.to_owned(),
            id: uuid::Uuid::now_v7().to_string(),
            source: source.into(),
            ty: ty.into(),
            subject: None,
            time: Some(Utc::now()),
            datacontenttype: Some(DATA_CONTENT_TYPE.to_owned()),
            data: Some(data),
            extensions: BTreeMap::new(),
        }
    }

    /// Sets `subject`.
    #[must_use]
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Records the trace that caused this event (the CloudEvents distributed-tracing
    /// extension); [`CloudEvent::amqp_properties`] also puts it in the `traceparent` header.
    #[must_use]
    pub fn with_traceparent(mut self, traceparent: &TraceParent) -> Self {
        self.extensions.insert(
            TRACEPARENT_HEADER.to_owned(),
            Value::String(traceparent.to_string()),
        );
        self
    }

    /// The trace recorded with [`CloudEvent::with_traceparent`], if any and well-formed.
    pub fn traceparent(&self) -> Option<TraceParent> {
        match self.extensions.get(TRACEPARENT_HEADER) {
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
    }

    /// The structured-mode JSON body.
    pub fn to_json_vec(&self) -> Vec<u8> {
        // Serializing this struct cannot fail: every field is a string, a timestamp or a
        // `serde_json::Value` (whose keys are strings); an empty body would be dead-lettered
        // by any reader rather than lost silently.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a structured-mode event from a JSON body (I-JSON: see [`json_text`]).
    pub fn from_json(body: &[u8]) -> Result<Self, EnvelopeError> {
        let text = json_text(body)?;
        let value: Value =
            serde_json::from_str(text).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
        match value {
            Value::Object(map) => Self::from_map(map),
            other => Err(EnvelopeError::NotAnObject(json_kind(&other))),
        }
    }

    /// Reads an event from an AMQP message, in structured or binary mode (see [`mode_of`]).
    pub fn from_amqp(properties: &BasicProperties, body: &[u8]) -> Result<Self, EnvelopeError> {
        match mode_of(properties) {
            Mode::Structured => Self::from_json(body),
            Mode::Binary => Self::from_binary(properties, body),
        }
    }

    /// Deserializes `data` into the consumer's type.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, EnvelopeError> {
        let data = self.data.clone().ok_or(EnvelopeError::Missing("data"))?;
        serde_json::from_value(data).map_err(|e| EnvelopeError::Data(e.to_string()))
    }

    /// AMQP properties of docs/architecture.md for publishing this event in structured mode:
    /// content type, message id, type, timestamp, app id, persistent, `traceparent` header.
    pub fn amqp_properties(&self) -> BasicProperties {
        let timestamp = self.time.unwrap_or_else(Utc::now).timestamp().max(0);
        let mut headers = FieldTable::default();
        if let Some(tp) = self.traceparent() {
            headers.insert(
                TRACEPARENT_HEADER.into(),
                AMQPValue::LongString(tp.to_string().into()),
            );
        }
        BasicProperties::default()
            .with_content_type(CONTENT_TYPE.into())
            .with_message_id(self.id.as_str().into())
            .with_type(self.ty.as_str().into())
            .with_timestamp(u64::try_from(timestamp).unwrap_or_default())
            .with_app_id(self.source.as_str().into())
            .with_delivery_mode(crate::amqp::PERSISTENT)
            .with_headers(headers)
    }

    fn from_map(mut map: Map<String, Value>) -> Result<Self, EnvelopeError> {
        // The type first: it is what a reader needs to route anything.
        let ty = take_string(&mut map, "type")?.ok_or(EnvelopeError::Missing("type"))?;
        let specversion =
            take_string(&mut map, "specversion")?.ok_or(EnvelopeError::Missing("specversion"))?;
        check_specversion(&specversion)?;
        let id = required(take_string(&mut map, "id")?, "id")?;
        let source = required(take_string(&mut map, "source")?, "source")?;
        let ty = non_empty(ty, "type")?;
        let subject = take_string(&mut map, "subject")?;
        let time = take_string(&mut map, "time")?
            .map(|t| parse_time(&t))
            .transpose()?;
        let datacontenttype = take_string(&mut map, "datacontenttype")?;
        let data = map.remove("data");
        Ok(Self {
            specversion,
            id,
            source,
            ty,
            subject,
            time,
            datacontenttype,
            data,
            extensions: map.into_iter().collect(),
        })
    }

    fn from_binary(properties: &BasicProperties, body: &[u8]) -> Result<Self, EnvelopeError> {
        let headers = properties.headers().as_ref();
        let attr = |name: &str| headers.and_then(|h| binary_attribute(h, name));
        if let Some(version) = attr("specversion") {
            check_specversion(&version)?;
        }
        let ty = attr("type")
            .or_else(|| short(properties.kind()))
            .ok_or(EnvelopeError::Missing("type"))?;
        let ty = non_empty(ty, "type")?;
        let id = attr("id")
            .or_else(|| short(properties.message_id()))
            .ok_or(EnvelopeError::Missing("id"))?;
        let source = attr("source")
            .or_else(|| short(properties.app_id()))
            .ok_or(EnvelopeError::Missing("source"))?;
        let time = match attr("time") {
            Some(t) => Some(parse_time(&t)?),
            None => properties
                .timestamp()
                .and_then(|secs| i64::try_from(secs).ok())
                .and_then(|secs| Utc.timestamp_opt(secs, 0).single()),
        };
        let datacontenttype = attr("datacontenttype").or_else(|| short(properties.content_type()));
        let data = binary_data(body);
        let mut extensions = BTreeMap::new();
        if let Some(tp) = headers.and_then(|h| header_string(h, TRACEPARENT_HEADER)) {
            extensions.insert(TRACEPARENT_HEADER.to_owned(), Value::String(tp));
        }
        Ok(Self {
            specversion: SPEC_VERSION.to_owned(),
            id: non_empty(id, "id")?,
            source: non_empty(source, "source")?,
            ty,
            subject: attr("subject"),
            time,
            datacontenttype,
            data,
            extensions,
        })
    }
}

/// Decides how a message carries its event: structured when its content type says
/// `application/cloudevents…`; binary when it names a type in AMQP metadata (the `type`
/// property or a type header under any of the binary prefixes, such as
/// `cloudEvents_type` or `ce-type`); otherwise structured,
/// so that a plain JSON body with a `type` attribute is read too.
pub fn mode_of(properties: &BasicProperties) -> Mode {
    let content_type = properties.content_type().as_ref().map(|c| c.as_str());
    if content_type.is_some_and(|c| c.starts_with("application/cloudevents")) {
        return Mode::Structured;
    }
    let header_type = properties
        .headers()
        .as_ref()
        .and_then(|h| binary_attribute(h, "type"));
    if header_type.is_some() || properties.kind().is_some() {
        Mode::Binary
    } else {
        Mode::Structured
    }
}

/// The event type of a message without building the whole event: cheap enough for a
/// router's hot path (no allocation for the body's other attributes). A router's
/// reader, it also refuses a type longer than [`MAX_TYPE_BYTES`].
pub fn event_type(properties: &BasicProperties, body: &[u8]) -> Result<String, EnvelopeError> {
    let ty = any_event_type(properties, body)?;
    check_type_length(&ty)?;
    Ok(ty)
}

/// [`EnvelopeError::TypeTooLong`] when `ty` is longer than [`MAX_TYPE_BYTES`].
pub fn check_type_length(ty: &str) -> Result<(), EnvelopeError> {
    if ty.len() <= MAX_TYPE_BYTES {
        return Ok(());
    }
    let mut end = QUOTED_TYPE;
    while !ty.is_char_boundary(end) {
        end -= 1;
    }
    Err(EnvelopeError::TypeTooLong {
        bytes: ty.len(),
        start: ty[..end].to_owned(),
    })
}

fn any_event_type(properties: &BasicProperties, body: &[u8]) -> Result<String, EnvelopeError> {
    match mode_of(properties) {
        Mode::Binary => {
            let from_header = properties
                .headers()
                .as_ref()
                .and_then(|h| binary_attribute(h, "type"));
            let ty = from_header
                .or_else(|| short(properties.kind()))
                .ok_or(EnvelopeError::Missing("type"))?;
            non_empty(ty, "type")
        }
        Mode::Structured => structured_type(body),
    }
}

fn structured_type(body: &[u8]) -> Result<String, EnvelopeError> {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(borrow, default)]
        specversion: Option<std::borrow::Cow<'a, str>>,
        #[serde(rename = "type", borrow, default)]
        ty: Option<std::borrow::Cow<'a, str>>,
    }
    let text = json_text(body)?;
    // A struct also deserializes from an array: only an object is an event.
    let start = text.trim_start_matches([' ', '\t', '\n', '\r']);
    if !start.starts_with('{') {
        let value: Value =
            serde_json::from_str(text).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
        return Err(EnvelopeError::NotAnObject(json_kind(&value)));
    }
    let head: Head<'_> = serde_json::from_str(text).map_err(|e| classify_json_error(text, e))?;
    let ty = head.ty.ok_or(EnvelopeError::Missing("type"))?;
    let version = head
        .specversion
        .ok_or(EnvelopeError::Missing("specversion"))?;
    check_specversion(&version)?;
    non_empty(ty.into_owned(), "type")
}

/// Distinguishes "not JSON" from "JSON of the wrong shape" for the fast path's errors.
fn classify_json_error(text: &str, error: serde_json::Error) -> EnvelopeError {
    match serde_json::from_str::<Value>(text) {
        Err(_) => EnvelopeError::NotJson(error.to_string()),
        Ok(Value::Object(mut map)) => {
            // An object whose `type` or `specversion` is not a string.
            for name in ["type", "specversion"] {
                if let Err(e) = take_string(&mut map, name) {
                    return e;
                }
            }
            EnvelopeError::NotJson(error.to_string())
        }
        Ok(other) => EnvelopeError::NotAnObject(json_kind(&other)),
    }
}

fn check_specversion(version: &str) -> Result<(), EnvelopeError> {
    if version == SPEC_VERSION {
        Ok(())
    } else {
        Err(EnvelopeError::SpecVersion(version.to_owned()))
    }
}

fn take_string(map: &mut Map<String, Value>, name: &str) -> Result<Option<String>, EnvelopeError> {
    match map.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(EnvelopeError::WrongType {
            name: name.to_owned(),
            expected: "a string",
            found: json_kind(&other),
        }),
    }
}

fn required(value: Option<String>, name: &'static str) -> Result<String, EnvelopeError> {
    non_empty(value.ok_or(EnvelopeError::Missing(name))?, name)
}

fn non_empty(value: String, name: &'static str) -> Result<String, EnvelopeError> {
    if value.is_empty() {
        Err(EnvelopeError::Empty(name))
    } else {
        Ok(value)
    }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, EnvelopeError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| EnvelopeError::BadTime(text.to_owned()))
}

fn serialize_time<S: Serializer>(time: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match time {
        Some(t) => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true)),
        None => s.serialize_none(),
    }
}

fn binary_data(body: &[u8]) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    binary_json(body).or_else(|| {
        std::str::from_utf8(body)
            .ok()
            .map(|s| Value::String(s.to_owned()))
    })
}

/// A binary-mode body as JSON data, when it is I-JSON text ([`json_text`]); a body that
/// is not (say, with a repeated member name) is data of another kind.
pub fn binary_json(body: &[u8]) -> Option<Value> {
    serde_json::from_str(json_text(body).ok()?).ok()
}

fn short(value: &Option<lapin::types::ShortString>) -> Option<String> {
    value.as_ref().map(|s| s.as_str().to_owned())
}

/// A binary-mode attribute (`type`, `id`, …) from the headers, under the first of the
/// binary prefixes that has it (`cloudEvents_`, `cloudEvents:`, `ce_`, `ce-`), in any
/// ASCII case (`Ce-Type`, `CE_TYPE`). Its value is a string, or bytes that are UTF-8.
pub fn binary_attribute(headers: &FieldTable, name: &str) -> Option<String> {
    BINARY_PREFIXES.iter().find_map(|prefix| {
        headers.inner().iter().find_map(|(key, value)| {
            let key = key.as_str().as_bytes();
            let named = key.len() == prefix.len() + name.len()
                && key[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
                && key[prefix.len()..].eq_ignore_ascii_case(name.as_bytes());
            if !named {
                return None;
            }
            match value {
                AMQPValue::ByteArray(bytes) => String::from_utf8(bytes.as_slice().to_vec()).ok(),
                AMQPValue::LongString(s) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
                _ => None,
            }
        })
    })
}

/// What kind of JSON value `value` is, as an error message says it: `null`, `a boolean`,
/// `a number`, `a string`, `an array` or `an object`.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod reading_tests;

#[cfg(test)]
mod tests;
