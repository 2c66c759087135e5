//! The view of an event that `where` conditions look at: its attributes (with `data`
//! and CloudEvents extension attributes), and the AMQP headers and properties of the
//! message that carried it.
//!
//! A structured-mode body is read lazily and without copies: one pass splits the top
//! level into members whose values stay unparsed JSON (borrowed from the body), a path
//! such as `data.country` splits `data` the same way, and only the value a condition
//! compares is parsed. That pass also yields the event type, so an event is read once
//! whether or not a route needs more than its type.
//!
//! A structured body is read by the same rules whatever the table: it must be I-JSON
//! (UTF-8, no repeated member names at any depth; see [`events::envelope::json_text`])
//! and its type at most [`events::envelope::MAX_TYPE_BYTES`] long, or the event is
//! unreadable before any route is looked at. So an event that [`Incoming::read`]
//! accepts can always be read further by [`DocSource::read`], and whether it is
//! forwarded never depends on whether a route has a `where`.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;

use events::EnvelopeError;
use events::envelope::{
    BINARY_PREFIXES, Mode, amqp_to_json, binary_attribute, binary_json, check_type_length,
    event_type, mode_of,
};
use lapin::BasicProperties;
use lapin::types::FieldTable;
use serde_json::{Map, Value};

use super::condition::Property;
use super::members::{Members, child, json_str, last, read_object, split_object};

/// An event as conditions see it. Built only when a candidate route has a `where`.
#[derive(Debug, Clone)]
pub struct EventDoc<'a> {
    attributes: Attributes<'a>,
    headers: Option<&'a FieldTable>,
    properties: Option<&'a BasicProperties>,
}

#[derive(Debug, Clone)]
enum Attributes<'a> {
    /// A structured-mode body, split lazily; `data` split on first use.
    Raw {
        members: Members<'a>,
        data: OnceCell<Option<Members<'a>>>,
    },
    /// Parsed values (binary mode, `[[test]]` events).
    Parsed(Map<String, Value>),
}

/// A delivery's event type, read once, and what building its [`EventDoc`] needs.
#[derive(Debug)]
pub struct Incoming<'a> {
    pub event_type: Cow<'a, str>,
    /// The rest of the event, read only when a route needs it.
    pub doc: DocSource<'a>,
}

/// What [`DocSource::read`] builds an [`EventDoc`] from.
pub struct DocSource<'a> {
    properties: &'a BasicProperties,
    body: &'a [u8],
    members: Option<Members<'a>>,
}

impl fmt::Debug for DocSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DocSource")
            .field("split", &self.members.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> Incoming<'a> {
    /// Reads the event type of a message, with the same rules and errors as
    /// [`events::envelope::event_type`] (including the type's length limit). A
    /// well-formed structured event takes one pass over the body (and one over its
    /// nested objects, for repeated names) and no allocation for the type; anything
    /// unusual is left to `event_type`, which gives the precise error.
    pub fn read(properties: &'a BasicProperties, body: &'a [u8]) -> Result<Self, EnvelopeError> {
        if mode_of(properties) == Mode::Binary {
            return Ok(Self {
                event_type: Cow::Owned(event_type(properties, body)?),
                doc: DocSource {
                    properties,
                    body,
                    members: None,
                },
            });
        }
        let members = match read_object(body) {
            Ok(members) => members,
            // The shared reader's error is the precise one; the two agree on what is
            // unreadable, and an unreadable structured body is never let through.
            Err(error) => return Err(event_type(properties, body).err().unwrap_or(error)),
        };
        let event_type = match structured_type(&members) {
            Some(ty) => {
                check_type_length(&ty)?;
                ty
            }
            None => Cow::Owned(event_type(properties, body)?),
        };
        Ok(Self {
            event_type,
            doc: DocSource {
                properties,
                body,
                members: Some(members),
            },
        })
    }
}

impl<'a> DocSource<'a> {
    /// The event as conditions see it (reusing the pass that read the type). A
    /// structured event that [`Incoming::read`] accepted always reads.
    pub fn read(self) -> Result<EventDoc<'a>, EnvelopeError> {
        match self.members {
            Some(members) => Ok(EventDoc::raw(members, self.properties)),
            None => EventDoc::from_amqp(self.properties, self.body),
        }
    }
}

/// The type of a structured event when it is plainly valid: `type` a non-empty string
/// and `specversion` the string `1.0` (names are unique: see [`read_object`]). `None`
/// for anything else.
fn structured_type<'a>(members: &Members<'a>) -> Option<Cow<'a, str>> {
    let member = |name: &str| members.iter().find(|(key, _)| key == name).map(|m| m.1);
    let version = json_str(member("specversion")?)?;
    let ty = json_str(member("type")?)?;
    (version == "1.0" && !ty.is_empty()).then_some(ty)
}

impl<'a> EventDoc<'a> {
    /// Reads a message: the JSON body in structured mode (I-JSON, as
    /// [`Incoming::read`] reads it); in binary mode the attributes from the binary
    /// headers (`cloudEvents_*`, `ce-*`, …) and AMQP properties, and the body as `data`.
    pub fn from_amqp(
        properties: &'a BasicProperties,
        body: &'a [u8],
    ) -> Result<Self, EnvelopeError> {
        match mode_of(properties) {
            Mode::Structured => match read_object(body) {
                Ok(members) => Ok(Self::raw(members, properties)),
                Err(error) => Err(event_type(properties, body).err().unwrap_or(error)),
            },
            Mode::Binary => Ok(Self {
                attributes: Attributes::Parsed(binary_attributes(properties, body)?),
                headers: properties.headers().as_ref(),
                properties: Some(properties),
            }),
        }
    }

    /// An event given as a JSON object (the structured form), with optional headers.
    pub fn from_json(attributes: Map<String, Value>, headers: Option<&'a FieldTable>) -> Self {
        Self {
            attributes: Attributes::Parsed(attributes),
            headers,
            properties: None,
        }
    }

    /// The same event carried with these AMQP properties (and their headers), as a
    /// `[[test]]` event gives them.
    pub fn with_properties(self, properties: &'a BasicProperties) -> Self {
        Self {
            headers: properties.headers().as_ref(),
            properties: Some(properties),
            ..self
        }
    }

    fn raw(members: Members<'a>, properties: &'a BasicProperties) -> Self {
        Self {
            attributes: Attributes::Raw {
                members,
                data: OnceCell::new(),
            },
            headers: properties.headers().as_ref(),
            properties: Some(properties),
        }
    }

    /// The value at `path`: a top-level attribute (`data`, `source`, ...) followed by
    /// field names or array indexes. Only that value is parsed.
    pub fn lookup(&self, path: &[String]) -> Option<Cow<'_, Value>> {
        let (first, rest) = path.split_first()?;
        self.lookup_in(first, rest)
    }

    /// A top-level attribute (`data`, `source`, ...).
    pub fn attribute(&self, name: &str) -> Option<Cow<'_, Value>> {
        self.lookup_in(name, &[])
    }

    fn lookup_in(&self, first: &str, rest: &[String]) -> Option<Cow<'_, Value>> {
        match &self.attributes {
            Attributes::Parsed(map) => {
                let mut value = map.get(first)?;
                for segment in rest {
                    value = match value {
                        Value::Object(map) => map.get(segment)?,
                        Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                        _ => return None,
                    };
                }
                Some(Cow::Borrowed(value))
            }
            Attributes::Raw { members, data } => {
                let mut raw = last(members, first)?;
                let mut rest = rest;
                if first == "data"
                    && let Some((segment, tail)) = rest.split_first()
                {
                    // `data` is what conditions look into: split it once per event.
                    let fields = data.get_or_init(|| split_object(raw.get()).ok());
                    raw = match fields {
                        Some(fields) => last(fields, segment)?,
                        None => child(raw, segment)?,
                    };
                    rest = tail;
                }
                for segment in rest {
                    raw = child(raw, segment)?;
                }
                serde_json::from_str(raw.get()).ok().map(Cow::Owned)
            }
        }
    }

    /// An AMQP header, as JSON.
    pub fn header(&self, name: &str) -> Option<Value> {
        self.headers?.inner().get(name).map(amqp_to_json)
    }

    /// An AMQP property, as JSON: a string, or a number for `priority` and `timestamp`
    /// (seconds since the Unix epoch).
    pub fn property(&self, property: Property) -> Option<Value> {
        let p = self.properties?;
        let short = |v: &Option<lapin::types::ShortString>| {
            v.as_ref().map(|s| Value::String(s.as_str().to_owned()))
        };
        match property {
            Property::AppId => short(p.app_id()),
            Property::ContentType => short(p.content_type()),
            Property::CorrelationId => short(p.correlation_id()),
            Property::ReplyTo => short(p.reply_to()),
            Property::UserId => short(p.user_id()),
            Property::MessageId => short(p.message_id()),
            Property::Type => short(p.kind()),
            Property::Expiration => short(p.expiration()),
            Property::Priority => (*p.priority()).map(Value::from),
            Property::Timestamp => (*p.timestamp()).map(Value::from),
        }
    }
}

fn binary_attributes(
    properties: &BasicProperties,
    body: &[u8],
) -> Result<Map<String, Value>, EnvelopeError> {
    let headers = properties.headers().as_ref();
    let attr = |name: &str| headers.and_then(|h| binary_attribute(h, name));
    let short = |v: &Option<lapin::types::ShortString>| v.as_ref().map(|s| s.as_str().to_owned());
    let mut map = Map::new();
    map.insert("type".into(), Value::String(event_type(properties, body)?));
    let pairs = [
        ("id", attr("id").or_else(|| short(properties.message_id()))),
        (
            "source",
            attr("source").or_else(|| short(properties.app_id())),
        ),
        ("subject", attr("subject")),
        ("time", attr("time")),
        ("specversion", attr("specversion")),
        (
            "datacontenttype",
            attr("datacontenttype").or_else(|| short(properties.content_type())),
        ),
        ("dataschema", attr("dataschema")),
    ];
    for (name, value) in pairs {
        if let Some(value) = value {
            map.insert(name.into(), Value::String(value));
        }
    }
    // Extension attributes (`ce-tenant`, `cloudEvents_partitionkey`, ...), each read
    // by the same precedence of prefixes as the attributes above.
    for key in headers.into_iter().flat_map(|h| h.inner().keys()) {
        let key = key.as_str();
        let name = BINARY_PREFIXES.iter().find_map(|prefix| {
            let head = key.get(..prefix.len())?;
            head.eq_ignore_ascii_case(prefix)
                .then(|| key[prefix.len()..].to_ascii_lowercase())
        });
        if let Some(name) = name.filter(|n| !n.is_empty() && !map.contains_key(n))
            && let Some(value) = attr(&name)
        {
            map.insert(name, Value::String(value));
        }
    }
    if !body.is_empty() {
        let data = binary_json(body)
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(body).into_owned()));
        map.insert("data".into(), data);
    }
    Ok(map)
}

#[cfg(test)]
mod tests;
