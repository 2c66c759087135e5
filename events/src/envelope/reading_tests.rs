//! Reading rules added for hostile input: the binary header prefixes, the type limit,
//! and one verdict for a JSON body whichever reader reads it.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, ByteArray, FieldTable};
use serde_json::json;

use super::*;

fn headers(pairs: &[(&str, AMQPValue)]) -> BasicProperties {
    let mut table = FieldTable::default();
    for (k, v) in pairs {
        table.insert((*k).into(), v.clone());
    }
    BasicProperties::default().with_headers(table)
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(value.into())
}

/// A binary event whose attributes all use `prefix`.
fn binary_with(prefix: &str) -> BasicProperties {
    headers(&[
        (&format!("{prefix}type"), text("user.created")),
        (&format!("{prefix}id"), text("e-1")),
        (&format!("{prefix}source"), text("py")),
        (&format!("{prefix}specversion"), text("1.0")),
        (&format!("{prefix}time"), text("2026-11-22T10:00:00Z")),
    ])
    .with_content_type("application/json".into())
}

#[test]
fn every_binary_prefix_in_any_case_carries_the_attributes() {
    for prefix in [
        "cloudEvents_",
        "cloudEvents:",
        "cloudevents_",
        "CLOUDEVENTS:",
        "ce-",
        "Ce-",
        "CE-",
        "ce_",
        "Ce_",
        "CE_",
    ] {
        let props = binary_with(prefix);
        assert_eq!(mode_of(&props), Mode::Binary, "{prefix}");
        assert_eq!(
            event_type(&props, b"{}").unwrap(),
            "user.created",
            "{prefix}"
        );
        let event = CloudEvent::from_amqp(&props, br#"{"n":1}"#).unwrap();
        assert_eq!(
            (event.id.as_str(), event.source.as_str()),
            ("e-1", "py"),
            "{prefix}"
        );
        assert_eq!(event.data, Some(json!({"n": 1})), "{prefix}");
        assert_eq!(event.time.unwrap().timestamp(), 1_795_341_600, "{prefix}");
    }
}

#[test]
fn a_prefix_must_be_followed_by_the_attribute_name_exactly() {
    for key in [
        "cetype",
        "ce-type-x",
        "x-ce-type",
        "ce-",
        "ce--type",
        "c-type",
    ] {
        let props = headers(&[(key, text("t"))]);
        let table = props.headers().as_ref().unwrap();
        assert_eq!(binary_attribute(table, "type"), None, "{key}");
        assert_eq!(mode_of(&props), Mode::Structured, "{key}");
    }
}

#[test]
fn the_amqp_prefix_wins_over_the_http_one() {
    let props = headers(&[
        ("ce-type", text("from_http")),
        ("cloudEvents_type", text("from_amqp")),
    ]);
    assert_eq!(event_type(&props, b"").unwrap(), "from_amqp");
}

#[test]
fn a_header_sent_as_utf8_bytes_is_read_as_text() {
    // pika sends Python `bytes` (what the SDKs' Kafka mode makes) as a byte array.
    let props = headers(&[
        (
            "ce_type",
            AMQPValue::ByteArray(ByteArray::from(b"order.placed".to_vec())),
        ),
        (
            "ce_id",
            AMQPValue::ByteArray(ByteArray::from(b"\xff".to_vec())),
        ),
    ]);
    assert_eq!(event_type(&props, b"").unwrap(), "order.placed");
    // Bytes that are not UTF-8 are no attribute.
    assert_eq!(
        CloudEvent::from_amqp(&props.with_app_id("a".into()), b"").unwrap_err(),
        EnvelopeError::Missing("id")
    );
}

#[test]
fn a_type_up_to_the_limit_is_read_and_one_byte_more_is_refused() {
    let at_limit = "a".repeat(MAX_TYPE_BYTES);
    let props = headers(&[("ce-type", text(&at_limit))]);
    assert_eq!(event_type(&props, b"").unwrap(), at_limit);

    let over = "é".repeat(MAX_TYPE_BYTES / 2 + 1);
    let body = format!(r#"{{"specversion":"1.0","type":"{over}"}}"#);
    let err = event_type(&BasicProperties::default(), body.as_bytes()).unwrap_err();
    assert_eq!(err.reason(), "type_too_long");
    assert_eq!(
        err,
        EnvelopeError::TypeTooLong {
            bytes: over.len(),
            start: "é".repeat(32),
        }
    );
    assert!(err.to_string().contains("at most 255 bytes"), "{err}");
}

#[test]
fn the_message_of_a_huge_type_stays_short() {
    let huge = vec!["x"; 60_000].join(".");
    let err = check_type_length(&huge).unwrap_err();
    assert!(err.to_string().len() < 300, "{err}");
    assert_eq!(MAX_TYPE_WORDS, 128);
}

#[test]
fn a_json_array_is_not_an_event_even_when_its_items_would_fit() {
    // A struct reader would take `["1.0","t"]` as specversion and type.
    let none = BasicProperties::default();
    assert_eq!(
        event_type(&none, br#"["1.0","t"]"#).unwrap_err(),
        EnvelopeError::NotAnObject("an array")
    );
    assert_eq!(
        event_type(&none, b" \n\"t\"").unwrap_err(),
        EnvelopeError::NotAnObject("a string")
    );
}

#[test]
fn invalid_utf8_in_an_unread_attribute_is_refused_by_every_reader() {
    let body = b"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\",\"data\":{\"n\":\"\xff\"}}";
    let none = BasicProperties::default();
    for err in [
        event_type(&none, body).unwrap_err(),
        CloudEvent::from_json(body).unwrap_err(),
    ] {
        assert_eq!(err.reason(), "not_json");
        assert!(err.to_string().contains("UTF-8"), "{err}");
    }
}

#[test]
fn a_repeated_member_is_refused_by_every_reader_at_any_depth() {
    let none = BasicProperties::default();
    for body in [
        r#"{"specversion":"1.0","id":"1","source":"s","type":"t","type":"t"}"#,
        r#"{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"c":"DE","c":"FR"}}"#,
    ] {
        for err in [
            event_type(&none, body.as_bytes()).unwrap_err(),
            CloudEvent::from_json(body.as_bytes()).unwrap_err(),
        ] {
            assert_eq!(err.reason(), "not_json", "{body}");
            assert!(err.to_string().contains("duplicate member name"), "{err}");
        }
    }
}

#[test]
fn binary_data_with_a_repeated_member_is_text_not_json() {
    let props = BasicProperties::default()
        .with_type("t".into())
        .with_message_id("m".into())
        .with_app_id("a".into());
    let body = br#"{"c":"DE","c":"FR"}"#;
    let event = CloudEvent::from_amqp(&props, body).unwrap();
    assert_eq!(
        event.data,
        Some(Value::String(String::from_utf8_lossy(body).into()))
    );
    assert_eq!(binary_json(br#"{"c":"DE"}"#), Some(json!({"c": "DE"})));
}
