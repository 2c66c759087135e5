//! The view of an event that `where` conditions look at: its attributes (with `data`)
//! as JSON, and the AMQP headers of the message that carried it.

use events::EnvelopeError;
use events::envelope::{Mode, amqp_to_json, event_type, header_string, mode_of};
use lapin::BasicProperties;
use lapin::types::FieldTable;
use serde_json::{Map, Value};

/// An event as conditions see it. Built only when a candidate route has a `where`.
#[derive(Debug, Clone)]
pub struct EventDoc<'a> {
    attributes: Map<String, Value>,
    headers: Option<&'a FieldTable>,
}

const BINARY_PREFIXES: [&str; 2] = ["cloudEvents_", "cloudEvents:"];

impl<'a> EventDoc<'a> {
    /// Reads a message: the JSON body in structured mode; in binary mode the attributes
    /// from `cloudEvents_*` headers and AMQP properties, and the body as `data`.
    pub fn from_amqp(properties: &'a BasicProperties, body: &[u8]) -> Result<Self, EnvelopeError> {
        let headers = properties.headers().as_ref();
        let attributes = match mode_of(properties) {
            Mode::Structured => match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(structured_error(properties, body)),
                Err(e) => return Err(EnvelopeError::NotJson(e.to_string())),
            },
            Mode::Binary => binary_attributes(properties, body)?,
        };
        Ok(Self {
            attributes,
            headers,
        })
    }

    /// An event given as a JSON object (the structured form), with optional headers.
    pub fn from_json(attributes: Map<String, Value>, headers: Option<&'a FieldTable>) -> Self {
        Self {
            attributes,
            headers,
        }
    }

    /// A top-level attribute (`data`, `source`, ...).
    pub fn attribute(&self, name: &str) -> Option<&Value> {
        self.attributes.get(name)
    }

    /// An AMQP header, as JSON.
    pub fn header(&self, name: &str) -> Option<Value> {
        self.headers?.inner().get(name).map(amqp_to_json)
    }

    /// The event id, when it is a string.
    pub fn id(&self) -> Option<&str> {
        self.attribute("id").and_then(Value::as_str)
    }
}

/// The precise error for a structured body that parsed but is not an event object.
fn structured_error(properties: &BasicProperties, body: &[u8]) -> EnvelopeError {
    match event_type(properties, body) {
        Err(error) => error,
        Ok(_) => EnvelopeError::NotAnObject("something else"),
    }
}

fn binary_attributes(
    properties: &BasicProperties,
    body: &[u8],
) -> Result<Map<String, Value>, EnvelopeError> {
    let headers = properties.headers().as_ref();
    let attr = |name: &str| {
        headers.and_then(|h| {
            BINARY_PREFIXES
                .iter()
                .find_map(|p| header_string(h, &format!("{p}{name}")))
        })
    };
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
    if !body.is_empty() {
        let data = serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        map.insert("data".into(), data);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::AMQPValue;
    use serde_json::json;

    #[test]
    fn a_structured_event_exposes_its_attributes_and_headers() {
        let mut headers = FieldTable::default();
        headers.insert("tenant".into(), AMQPValue::LongString("acme".into()));
        let props = BasicProperties::default()
            .with_content_type("application/cloudevents+json".into())
            .with_headers(headers);
        let body =
            br#"{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"a":{"b":2}}}"#;
        let doc = EventDoc::from_amqp(&props, body).unwrap();
        assert_eq!(doc.attribute("data").unwrap()["a"]["b"], 2);
        assert_eq!(doc.header("tenant"), Some(json!("acme")));
        assert_eq!(doc.header("missing"), None);
        assert_eq!(doc.id(), Some("1"));
    }

    #[test]
    fn a_binary_event_takes_attributes_from_properties_and_data_from_the_body() {
        let props = BasicProperties::default()
            .with_type("order_placed".into())
            .with_message_id("m-1".into())
            .with_app_id("shop".into());
        let doc = EventDoc::from_amqp(&props, br#"{"total": 3}"#).unwrap();
        assert_eq!(doc.attribute("type"), Some(&json!("order_placed")));
        assert_eq!(doc.attribute("source"), Some(&json!("shop")));
        assert_eq!(doc.attribute("data"), Some(&json!({"total": 3})));
        let text = EventDoc::from_amqp(&props, b"plain").unwrap();
        assert_eq!(text.attribute("data"), Some(&json!("plain")));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_and_types_never_panic_the_reader(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            ty in proptest::option::of("\\PC{0,10}"),
        ) {
            let mut props = BasicProperties::default();
            if let Some(ty) = ty {
                props = props.with_type(ty.as_str().into());
            }
            let _ = EventDoc::from_amqp(&props, &body);
        }
    }

    #[test]
    fn unreadable_bodies_are_envelope_errors() {
        let props = BasicProperties::default();
        assert_eq!(
            EventDoc::from_amqp(&props, b"nope").unwrap_err().reason(),
            "not_json"
        );
        assert_eq!(
            EventDoc::from_amqp(&props, b"[1]").unwrap_err().reason(),
            "not_an_object"
        );
    }
}
