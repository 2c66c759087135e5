//! The messages of the `hostile-input` scenario: one class per way a single message has
//! stalled, looped or flooded the dispatcher, each with the ending the system promises.

use events::lapin::BasicProperties;
use events::lapin::types::{AMQPValue, FieldTable};
use serde_json::json;

/// The `type` prefix every hostile event routes by (`hostile.#` in the scenario's table).
const SOURCE: &str = "hostile-input";
/// The content type of a structured-mode event.
const STRUCTURED: &str = "application/cloudevents+json";
/// The header that pads class b's message up to the frame limit.
const PADDING_HEADER: &str = "x-padding";
/// How far under `frame_max` class b's content header frame is, counted as the AMQP spec
/// counts (the whole frame; RabbitMQ accepts 8 bytes more, as it compares only the
/// payload, measured). Less than any header the dispatcher adds: `x-dispatch-generation`
/// alone is 31 bytes.
const FRAME_MARGIN: usize = 8;
/// Words in class a's types: tens of thousands, each `x`, under 200 kB.
const LONG_TYPE_WORDS: usize = 60_000;
/// Bytes of class c's bad attribute.
const HUGE_ATTRIBUTE: usize = 3 << 20;
/// Bytes of each class d message.
pub const LARGE_BYTES: usize = 20 << 20;

/// A class of hostile input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// a: a type of tens of thousands of words, against patterns with several `#`.
    LongType,
    /// b: headers so close to `frame_max` that the dispatcher's own headers overflow it.
    NearFrameMax,
    /// c: a bad attribute of a few MB, which a naive reason would quote whole.
    HugeAttribute,
    /// d: many messages of 20 MB each (memory is bounded by bytes, not count).
    Large,
    /// e: a structured body with invalid UTF-8 inside a JSON string.
    InvalidUtf8,
    /// f: a JSON object that repeats a member name.
    RepeatedMember,
    /// g: binary mode with the SDKs' `ce-` / `ce_` header prefixes.
    CePrefix,
}

/// How a hostile message must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Forwarded to its route's target.
    Forwarded,
    /// In the dead-letter queue with `x-dispatch-error` of this reason code (any code
    /// when `None`).
    DeadLettered(Option<&'static str>),
}

impl Class {
    /// Every class, in sending order: those most likely to wedge a dispatcher last, so
    /// that a stall cannot hide how the earlier classes ended.
    pub const ALL: [Self; 7] = [
        Self::InvalidUtf8,
        Self::RepeatedMember,
        Self::CePrefix,
        Self::Large,
        Self::HugeAttribute,
        Self::NearFrameMax,
        Self::LongType,
    ];

    /// The class's letter and what it sends, for the report.
    pub fn label(self, count: usize) -> String {
        match self {
            Self::LongType => format!(
                "a) {count} types of {LONG_TYPE_WORDS} words (structured, and in a binary-mode header) vs `#.x.#.y.#`"
            ),
            Self::NearFrameMax => {
                format!("b) a content header {FRAME_MARGIN} bytes under frame_max")
            }
            Self::HugeAttribute => format!(
                "c) {count} bad attributes of {} MiB (specversion, non-string type)",
                HUGE_ATTRIBUTE >> 20
            ),
            Self::Large => format!("d) {count} × {} MiB", LARGE_BYTES >> 20),
            Self::InvalidUtf8 => format!("e) {count} bodies with invalid UTF-8 in a JSON string"),
            Self::RepeatedMember => format!("f) {count} repeated member names"),
            Self::CePrefix => format!("g) {count} binary mode with ce-type / ce_type"),
        }
    }

    /// How many messages of this class are sent (`large` for class d).
    pub fn count(self, large: usize) -> usize {
        match self {
            Self::NearFrameMax => 1,
            Self::Large => large,
            _ => 2,
        }
    }

    /// The ending the system promises for this class.
    pub fn expected(self) -> Expected {
        match self {
            Self::LongType => Expected::DeadLettered(Some("type_too_long")),
            Self::NearFrameMax => Expected::DeadLettered(Some("headers_too_large")),
            Self::HugeAttribute | Self::InvalidUtf8 | Self::RepeatedMember => {
                Expected::DeadLettered(None)
            }
            Self::Large | Self::CePrefix => Expected::Forwarded,
        }
    }
}

/// The `n`th message of `class` (its AMQP `message_id` is `id`), for a connection whose
/// negotiated frame size is `frame_max`.
pub fn build(class: Class, n: usize, id: &str, frame_max: usize) -> (BasicProperties, Vec<u8>) {
    let structured = BasicProperties::default()
        .with_message_id(id.into())
        .with_content_type(STRUCTURED.into())
        .with_delivery_mode(2);
    match (class, n) {
        (Class::LongType, 0) => (structured, event(id, &long_type(), b"{}")),
        (Class::LongType, _) => binary(id, &[("cloudEvents_type", &long_type())], b"{}"),
        (Class::NearFrameMax, _) => {
            let padding = padding_len(frame_max, id);
            let headers = table(&[(PADDING_HEADER, &"p".repeat(padding))]);
            let body = event(id, "hostile.headers", b"{}");
            (structured.with_headers(headers), body)
        }
        (Class::HugeAttribute, 0) => {
            let version = format!("1.0{}", "v".repeat(HUGE_ATTRIBUTE));
            let body = json!({"specversion": version, "id": id, "source": SOURCE,
                              "type": "hostile.attribute"});
            (structured, body.to_string().into_bytes())
        }
        (Class::HugeAttribute, _) => {
            let ty = json!({"huge": "t".repeat(HUGE_ATTRIBUTE)});
            let body = json!({"specversion": "1.0", "id": id, "source": SOURCE, "type": ty});
            (structured, body.to_string().into_bytes())
        }
        (Class::Large, _) => {
            let data = json!({"blob": "b".repeat(LARGE_BYTES)}).to_string();
            (structured, event(id, "hostile.large", data.as_bytes()))
        }
        (Class::InvalidUtf8, n) => {
            // 0x80 and 0xFF are never UTF-8: in a string value, then in a member name.
            let data: &[u8] = if n == 0 {
                b"{\"name\":\"Zo\x80\xff\"}"
            } else {
                b"{\"Zo\x80\xff\":1}"
            };
            (structured, event(id, "hostile.utf8", data))
        }
        (Class::RepeatedMember, 0) => {
            let body = format!(
                r#"{{"specversion":"1.0","id":"{id}","source":"{SOURCE}","type":"hostile.repeat","type":"hostile.other","data":{{}}}}"#
            );
            (structured, body.into_bytes())
        }
        (Class::RepeatedMember, _) => (
            structured,
            event(id, "hostile.repeat", br#"{"country":"DE","country":"FR"}"#),
        ),
        (Class::CePrefix, n) => {
            let sep = if n == 0 { '-' } else { '_' };
            let attribute = |name: &str| format!("ce{sep}{name}");
            let headers = [
                (attribute("specversion"), "1.0"),
                (attribute("type"), "hostile.binary"),
                (attribute("id"), id),
                (attribute("source"), SOURCE),
            ];
            let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let (properties, body) = binary(id, &pairs, br#"{"binary":true}"#);
            (
                properties.with_content_type("application/json".into()),
                body,
            )
        }
    }
}

/// A structured-mode event with `data` given as JSON text (raw bytes, so that they can
/// be invalid).
fn event(id: &str, ty: &str, data: &[u8]) -> Vec<u8> {
    let head =
        format!(r#"{{"specversion":"1.0","id":"{id}","source":"{SOURCE}","type":"{ty}","data":"#);
    [head.as_bytes(), data, b"}"].concat()
}

/// A binary-mode message: attributes in `headers`, `body` the data.
fn binary(id: &str, headers: &[(&str, &str)], body: &[u8]) -> (BasicProperties, Vec<u8>) {
    let properties = BasicProperties::default()
        .with_message_id(id.into())
        .with_delivery_mode(2)
        .with_headers(table(headers));
    (properties, body.to_vec())
}

fn table(pairs: &[(&str, &str)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in pairs {
        table.insert((*name).into(), AMQPValue::LongString((*value).into()));
    }
    table
}

/// `x.x.x…`: [`LONG_TYPE_WORDS`] words, every prefix a candidate for each `#`.
fn long_type() -> String {
    vec!["x"; LONG_TYPE_WORDS].join(".")
}

/// The padding header's length that puts class b's content header frame
/// [`FRAME_MARGIN`] bytes under `frame_max`. The frame is: type, channel and size (7
/// bytes), class, weight and body size (12), property flags (2), `content-type` (1 + its
/// length), the header table (4, then per entry 1 + name, 1 for the value's type and 4 +
/// the value), `delivery-mode` (1), `message-id` (1 + its length), and the end octet (1).
fn padding_len(frame_max: usize, id: &str) -> usize {
    let fixed = 7
        + 12
        + 2
        + (1 + STRUCTURED.len())
        + 4
        + (1 + PADDING_HEADER.len())
        + 1
        + 4
        + 1
        + (1 + id.len())
        + 1;
    frame_max.saturating_sub(FRAME_MARGIN + fixed)
}
