//! Where a condition looks: an attribute of the event (CloudEvents extensions
//! included), a field under `data`, an AMQP header or an AMQP property.

use std::borrow::Cow;

use serde_json::Value;

use super::super::event::EventDoc;
use super::super::file::list;

/// Where a condition looks.
#[derive(Debug, Clone, PartialEq)]
pub enum Path {
    /// An event attribute (`source`, `subject`, an extension such as `tenant`, ...) or a
    /// field under `data`, as the attribute name followed by the field names.
    Attribute(Vec<String>),
    /// `headers.<name>`: an AMQP header of the message.
    Header(String),
    /// `properties.<name>`: an AMQP property of the message.
    Property(Property),
}

/// The AMQP properties a condition can look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Property {
    AppId,
    ContentType,
    CorrelationId,
    ReplyTo,
    Priority,
    UserId,
    MessageId,
    Type,
    Timestamp,
    Expiration,
}

/// The CloudEvents attributes the specification defines; any other lowercase name is
/// an extension attribute, looked up all the same.
pub const ROOTS: &[&str] = &[
    "data",
    "source",
    "subject",
    "id",
    "type",
    "time",
    "specversion",
    "datacontenttype",
    "dataschema",
    "headers",
    "properties",
];

const PROPERTIES: &[(&str, Property)] = &[
    ("app_id", Property::AppId),
    ("content_type", Property::ContentType),
    ("correlation_id", Property::CorrelationId),
    ("reply_to", Property::ReplyTo),
    ("priority", Property::Priority),
    ("user_id", Property::UserId),
    ("message_id", Property::MessageId),
    ("type", Property::Type),
    ("timestamp", Property::Timestamp),
    ("expiration", Property::Expiration),
];

impl Property {
    /// The name after `properties.`.
    pub fn name(self) -> &'static str {
        PROPERTIES
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("", |(name, _)| name)
    }

    fn parse(name: &str) -> Result<Self, String> {
        PROPERTIES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .ok_or_else(|| {
                let names: Vec<&str> = PROPERTIES.iter().map(|(n, _)| *n).collect();
                format!(
                    "unknown AMQP property `properties.{name}`; the properties are {}",
                    list(&names)
                )
            })
    }
}

impl Path {
    /// Parses `data.x.y`, `source`, `tenant`, `headers.<name>`, `properties.<name>`.
    pub fn parse(key: &str) -> Result<Self, String> {
        let (root, rest) = key.split_once('.').unwrap_or((key, ""));
        match root {
            "headers" if rest.is_empty() => {
                Err("`headers` needs a header name: `headers.<name>`".to_owned())
            }
            "headers" => Ok(Self::Header(rest.to_owned())),
            "properties" if rest.is_empty() => Err(
                "`properties` needs a property name: `properties.<name>`, e.g. `properties.app_id`"
                    .to_owned(),
            ),
            "properties" => Property::parse(rest).map(Self::Property),
            _ => Self::attribute(key, root),
        }
    }

    fn attribute(key: &str, root: &str) -> Result<Self, String> {
        // CloudEvents names attributes with lowercase ASCII letters and digits only.
        let valid = !root.is_empty()
            && root
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(format!(
                "unknown path `{key}`: a path starts with {}, or the name of an extension \
                 attribute (lowercase letters and digits, e.g. `tenant`)",
                list(ROOTS)
            ));
        }
        let segments: Vec<String> = key.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(format!("path `{key}` has an empty field name"));
        }
        if root != "data" && segments.len() > 1 {
            return Err(format!(
                "path `{key}`: `{root}` is a plain attribute with no fields; only `data`, \
                 `headers` and `properties` have fields"
            ));
        }
        Ok(Self::Attribute(segments))
    }

    /// The value at this path in `event`, if there is one.
    pub fn lookup<'a>(&self, event: &'a EventDoc<'_>) -> Option<Cow<'a, Value>> {
        match self {
            Self::Header(name) => event.header(name).map(Cow::Owned),
            Self::Property(property) => event.property(*property).map(Cow::Owned),
            Self::Attribute(segments) => event.lookup(segments),
        }
    }
}
