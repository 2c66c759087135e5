//! The headers that say why an event was dead-lettered after a refused publish, and
//! the one text form of a target in them, which `dispatcher redrive` reads back.
//!
//! A target is written as in `routes.toml`'s `to`: a queue as its name, an exchange as
//! `{ exchange = "audit", routing_key = "audit.fr" }` (the routing key as rendered for
//! that event).

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldArray, FieldTable, ShortString};

use super::context::{DROPPED_HEADER, ERROR_HEADER};

/// The route whose target refused the event (the first matched route listing it).
pub const ROUTE_HEADER: &str = "x-dispatch-route";
/// The target that refused the event.
pub const TARGET_HEADER: &str = "x-dispatch-target";
/// How many publishes to that target were tried, the first included.
pub const ATTEMPTS_HEADER: &str = "x-dispatch-attempts";
/// When the first publish of the event was refused (RFC 3339, UTC).
pub const FIRST_FAILED_AT_HEADER: &str = "x-dispatch-first-failed-at";
/// The targets that did confirm the event (an array of targets).
pub const DELIVERED_TO_HEADER: &str = "x-dispatch-delivered-to";

/// Every header a dead letter may carry that the event did not: what redrive takes
/// out again before sending the event back.
pub const LETTER_HEADERS: &[&str] = &[
    ERROR_HEADER,
    DROPPED_HEADER,
    ROUTE_HEADER,
    TARGET_HEADER,
    ATTEMPTS_HEADER,
    FIRST_FAILED_AT_HEADER,
    DELIVERED_TO_HEADER,
];

/// A publish destination: the exchange (`""` for a queue) and the routing key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination {
    pub exchange: String,
    pub routing_key: String,
}

impl Destination {
    /// A queue, through the default exchange.
    pub fn queue(name: &str) -> Self {
        Self {
            exchange: String::new(),
            routing_key: name.to_owned(),
        }
    }

    /// The text form (see the module documentation).
    pub fn text(exchange: &str, routing_key: &str) -> String {
        if exchange.is_empty() {
            return routing_key.to_owned();
        }
        format!(
            "{{ exchange = {}, routing_key = {} }}",
            toml::Value::String(exchange.to_owned()),
            toml::Value::String(routing_key.to_owned())
        )
    }

    /// Reads the text form back (`None` when it is not one).
    pub fn parse(text: &str) -> Option<Self> {
        if !text.trim_start().starts_with('{') {
            return (!text.is_empty()).then(|| Self::queue(text));
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Exchange {
            exchange: String,
            #[serde(default)]
            routing_key: String,
        }
        #[derive(serde::Deserialize)]
        struct Wrap {
            t: Exchange,
        }
        let wrap: Wrap = toml::from_str(&format!("t = {text}")).ok()?;
        (!wrap.t.exchange.is_empty()).then_some(Self {
            exchange: wrap.t.exchange,
            routing_key: wrap.t.routing_key,
        })
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&Self::text(&self.exchange, &self.routing_key))
    }
}

/// The destinations in a dead letter's `x-dispatch-delivered-to` (none when absent).
pub fn delivered_to(properties: &BasicProperties) -> Vec<Destination> {
    let Some(AMQPValue::FieldArray(items)) = properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(DELIVERED_TO_HEADER))
    else {
        return Vec::new();
    };
    items
        .as_slice()
        .iter()
        .filter_map(|item| match item {
            AMQPValue::LongString(s) => Destination::parse(&String::from_utf8_lossy(s.as_bytes())),
            AMQPValue::ShortString(s) => Destination::parse(s.as_str()),
            _ => None,
        })
        .collect()
}

/// The `x-dispatch-delivered-to` value for `destinations`.
pub fn delivered_value(destinations: &[String]) -> AMQPValue {
    let items: Vec<AMQPValue> = destinations
        .iter()
        .map(|d| AMQPValue::LongString(d.as_str().into()))
        .collect();
    AMQPValue::FieldArray(FieldArray::from(items))
}

/// The properties without the headers a dead letter added ([`LETTER_HEADERS`]).
pub fn without_letter_headers(properties: BasicProperties) -> BasicProperties {
    let Some(headers) = properties.headers().as_ref() else {
        return properties;
    };
    let mut kept = headers.inner().clone();
    for name in LETTER_HEADERS {
        kept.remove(&ShortString::from(*name));
    }
    properties.with_headers(FieldTable::from(kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_is_written_as_its_name_and_read_back() {
        assert_eq!(Destination::text("", "queue_order"), "queue_order");
        assert_eq!(
            Destination::parse("queue_order"),
            Some(Destination::queue("queue_order"))
        );
    }

    #[test]
    fn an_exchange_is_written_as_in_routes_toml_and_read_back() {
        let text = Destination::text("audit", "audit.\"fr\".{x}");
        assert!(
            text.starts_with(r#"{ exchange = "audit", routing_key = "#),
            "{text}"
        );
        assert_eq!(
            Destination::parse(&text),
            Some(Destination {
                exchange: "audit".into(),
                routing_key: "audit.\"fr\".{x}".into()
            })
        );
    }

    #[test]
    fn garbage_is_not_a_destination() {
        assert_eq!(Destination::parse(""), None);
        assert_eq!(Destination::parse("{ nope"), None);
        assert_eq!(Destination::parse("{ exchange = \"\" }"), None);
    }

    #[test]
    fn delivered_to_round_trips_and_letter_headers_come_off() {
        let mut headers = FieldTable::default();
        headers.insert(
            DELIVERED_TO_HEADER.into(),
            delivered_value(&["q1".into(), Destination::text("x", "k")]),
        );
        headers.insert(
            ERROR_HEADER.into(),
            AMQPValue::LongString("nacked: no".into()),
        );
        headers.insert("x-tenant".into(), AMQPValue::LongString("acme".into()));
        let properties = BasicProperties::default().with_headers(headers);
        assert_eq!(
            delivered_to(&properties),
            [
                Destination::queue("q1"),
                Destination {
                    exchange: "x".into(),
                    routing_key: "k".into()
                }
            ]
        );
        let clean = without_letter_headers(properties);
        let names: Vec<&str> = clean
            .headers()
            .as_ref()
            .map(|h| h.inner().keys().map(ShortString::as_str).collect())
            .unwrap_or_default();
        assert_eq!(names, ["x-tenant"]);
    }
}
