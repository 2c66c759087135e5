//! The envelope: JSON round trips and the documented shape, each refused attribute,
//! structured and binary mode over AMQP properties, and readers that never panic.

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn sample() -> CloudEvent {
    CloudEvent::new(
        "user-service",
        "user_created",
        json!({"id": 42, "name": "Alice", "email": "alice@example.com", "version": 1}),
    )
    .with_subject("42")
}

fn headers(pairs: &[(&str, &str)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in pairs {
        table.insert((*k).into(), AMQPValue::LongString((*v).into()));
    }
    table
}

#[test]
fn an_event_round_trips_through_json() {
    let event = sample().with_traceparent(&TraceParent::new_root());
    let back = CloudEvent::from_json(&event.to_json_vec()).unwrap();
    // `time` is serialized at microsecond precision.
    assert_eq!(
        back.time.unwrap().timestamp_micros(),
        event.time.unwrap().timestamp_micros()
    );
    assert_eq!(
        CloudEvent { time: None, ..back },
        CloudEvent {
            time: None,
            ..event
        }
    );
}

#[test]
fn serialized_event_has_the_documented_shape() {
    let value: Value = serde_json::from_slice(&sample().to_json_vec()).unwrap();
    assert_eq!(value["specversion"], "1.0");
    assert_eq!(value["type"], "user_created");
    assert_eq!(value["source"], "user-service");
    assert_eq!(value["subject"], "42");
    assert_eq!(value["datacontenttype"], "application/json");
    assert_eq!(value["data"]["version"], 1);
    assert!(value["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        uuid::Uuid::parse_str(value["id"].as_str().unwrap())
            .unwrap()
            .get_version_num(),
        7
    );
}

#[test]
fn new_events_get_distinct_ids() {
    assert_ne!(sample().id, sample().id);
}

#[test]
fn unknown_attributes_are_kept_as_extensions() {
    let body = br#"{"specversion":"1.0","id":"1","source":"s","type":"t","partitionkey":"p"}"#;
    let event = CloudEvent::from_json(body).unwrap();
    assert_eq!(event.extensions["partitionkey"], "p");
    let again: Value = serde_json::from_slice(&event.to_json_vec()).unwrap();
    assert_eq!(again["partitionkey"], "p");
}

#[test]
fn a_body_that_is_not_json_is_refused() {
    let err = CloudEvent::from_json(b"hello {").unwrap_err();
    assert!(matches!(err, EnvelopeError::NotJson(_)), "{err:?}");
    assert_eq!(err.reason(), "not_json");
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn json_that_is_not_an_object_is_refused() {
    assert_eq!(
        CloudEvent::from_json(b"[1,2]").unwrap_err(),
        EnvelopeError::NotAnObject("an array")
    );
    assert_eq!(
        CloudEvent::from_json(b"\"x\"").unwrap_err(),
        EnvelopeError::NotAnObject("a string")
    );
}

#[test]
fn json_without_type_is_refused_with_a_helpful_message() {
    let err = CloudEvent::from_json(br#"{"specversion":"1.0","id":"1","source":"s"}"#).unwrap_err();
    assert_eq!(err, EnvelopeError::Missing("type"));
    assert_eq!(err.reason(), "missing_type");
    assert!(err.to_string().contains("cloudEvents_type"), "{err}");
    let err = CloudEvent::from_json(b"{}").unwrap_err();
    assert_eq!(err, EnvelopeError::Missing("type"));
}

#[test]
fn a_wrong_specversion_is_refused() {
    let err = CloudEvent::from_json(br#"{"specversion":"0.3","id":"1","source":"s","type":"t"}"#)
        .unwrap_err();
    assert_eq!(err, EnvelopeError::SpecVersion("0.3".into()));
    assert_eq!(err.reason(), "bad_specversion");
}

#[test]
fn a_missing_specversion_is_refused() {
    let err = CloudEvent::from_json(br#"{"id":"1","source":"s","type":"t"}"#).unwrap_err();
    assert_eq!(err, EnvelopeError::Missing("specversion"));
}

#[test]
fn missing_id_and_source_are_refused() {
    let err =
        CloudEvent::from_json(br#"{"specversion":"1.0","source":"s","type":"t"}"#).unwrap_err();
    assert_eq!(err, EnvelopeError::Missing("id"));
    let err = CloudEvent::from_json(br#"{"specversion":"1.0","id":"1","type":"t"}"#).unwrap_err();
    assert_eq!(err, EnvelopeError::Missing("source"));
}

#[test]
fn a_type_that_is_not_a_string_is_refused() {
    let err = CloudEvent::from_json(br#"{"specversion":"1.0","id":"1","source":"s","type":7}"#)
        .unwrap_err();
    assert_eq!(
        err,
        EnvelopeError::WrongType {
            name: "type".into(),
            expected: "a string",
            found: "a number"
        }
    );
}

#[test]
fn an_empty_type_is_refused() {
    let err = CloudEvent::from_json(br#"{"specversion":"1.0","id":"1","source":"s","type":""}"#)
        .unwrap_err();
    assert_eq!(err, EnvelopeError::Empty("type"));
}

#[test]
fn a_bad_time_is_refused() {
    let err = CloudEvent::from_json(
        br#"{"specversion":"1.0","id":"1","source":"s","type":"t","time":"yesterday"}"#,
    )
    .unwrap_err();
    assert_eq!(err, EnvelopeError::BadTime("yesterday".into()));
}

#[test]
fn structured_mode_is_chosen_by_content_type_even_with_a_type_property() {
    let event = sample();
    let props = event.amqp_properties();
    assert_eq!(mode_of(&props), Mode::Structured);
    let back = CloudEvent::from_amqp(&props, &event.to_json_vec()).unwrap();
    assert_eq!(back.id, event.id);
    assert_eq!(back.data, event.data);
}

#[test]
fn amqp_properties_follow_the_documented_contract() {
    let tp = TraceParent::new_root();
    let event = sample().with_traceparent(&tp);
    let props = event.amqp_properties();
    assert_eq!(
        props.content_type().as_ref().unwrap().as_str(),
        CONTENT_TYPE
    );
    assert_eq!(props.message_id().as_ref().unwrap().as_str(), event.id);
    assert_eq!(props.kind().as_ref().unwrap().as_str(), "user_created");
    assert_eq!(props.app_id().as_ref().unwrap().as_str(), "user-service");
    assert_eq!(*props.delivery_mode(), Some(2));
    assert!(props.timestamp().unwrap() > 1_700_000_000);
    let headers = props.headers().as_ref().unwrap();
    assert_eq!(
        header_string(headers, "traceparent").unwrap(),
        tp.to_string()
    );
}

#[test]
fn binary_mode_reads_the_type_from_the_amqp_type_property() {
    let props = BasicProperties::default()
        .with_type("order_placed".into())
        .with_message_id("m-1".into())
        .with_app_id("shop".into())
        .with_content_type("application/json".into());
    assert_eq!(mode_of(&props), Mode::Binary);
    let event = CloudEvent::from_amqp(&props, br#"{"total": 3}"#).unwrap();
    assert_eq!(event.ty, "order_placed");
    assert_eq!(event.id, "m-1");
    assert_eq!(event.source, "shop");
    assert_eq!(event.data, Some(json!({"total": 3})));
    assert_eq!(
        event_type(&props, b"not json at all").unwrap(),
        "order_placed"
    );
}

#[test]
fn binary_mode_reads_the_underscore_header_spelling() {
    let props = BasicProperties::default().with_headers(headers(&[
        ("cloudEvents_type", "user_created"),
        ("cloudEvents_id", "e-1"),
        ("cloudEvents_source", "legacy"),
        ("cloudEvents_specversion", "1.0"),
        ("cloudEvents_subject", "42"),
        ("cloudEvents_time", "2026-11-22T10:00:00Z"),
    ]));
    let event = CloudEvent::from_amqp(&props, b"plain text").unwrap();
    assert_eq!(event.ty, "user_created");
    assert_eq!(event.id, "e-1");
    assert_eq!(event.subject.as_deref(), Some("42"));
    assert_eq!(
        event.time.unwrap().to_rfc3339(),
        "2026-11-22T10:00:00+00:00"
    );
    assert_eq!(event.data, Some(Value::String("plain text".into())));
}

#[test]
fn binary_mode_reads_the_colon_header_spelling() {
    let props = BasicProperties::default().with_headers(headers(&[
        ("cloudEvents:type", "user_deleted"),
        ("cloudEvents:id", "e-2"),
        ("cloudEvents:source", "bridge"),
    ]));
    assert_eq!(event_type(&props, b"").unwrap(), "user_deleted");
    let event = CloudEvent::from_amqp(&props, b"").unwrap();
    assert_eq!(
        (event.ty.as_str(), event.source.as_str()),
        ("user_deleted", "bridge")
    );
    assert_eq!(event.data, None);
}

#[test]
fn a_binary_header_wins_over_the_type_property() {
    let props = BasicProperties::default()
        .with_type("from_property".into())
        .with_headers(headers(&[("cloudEvents_type", "from_header")]));
    assert_eq!(event_type(&props, b"").unwrap(), "from_header");
}

#[test]
fn binary_mode_refuses_a_wrong_specversion_header() {
    let props = BasicProperties::default()
        .with_type("t".into())
        .with_headers(headers(&[("cloudEvents_specversion", "0.3")]));
    let err = CloudEvent::from_amqp(&props, b"{}").unwrap_err();
    assert_eq!(err, EnvelopeError::SpecVersion("0.3".into()));
}

#[test]
fn binary_mode_without_an_id_is_refused() {
    let props = BasicProperties::default()
        .with_type("t".into())
        .with_app_id("a".into());
    assert_eq!(
        CloudEvent::from_amqp(&props, b"{}").unwrap_err(),
        EnvelopeError::Missing("id")
    );
}

#[test]
fn the_fast_type_reader_agrees_with_the_full_reader_on_errors() {
    let none = BasicProperties::default();
    assert!(matches!(
        event_type(&none, b"\xff\xfe").unwrap_err(),
        EnvelopeError::NotJson(_)
    ));
    assert_eq!(
        event_type(&none, b"42").unwrap_err(),
        EnvelopeError::NotAnObject("a number")
    );
    assert_eq!(
        event_type(&none, br#"{"specversion":"1.0"}"#).unwrap_err(),
        EnvelopeError::Missing("type")
    );
    assert_eq!(
        event_type(&none, br#"{"specversion":"2.0","type":"t"}"#).unwrap_err(),
        EnvelopeError::SpecVersion("2.0".into())
    );
    assert!(matches!(
        event_type(&none, br#"{"specversion":"1.0","type":["t"]}"#).unwrap_err(),
        EnvelopeError::WrongType { .. }
    ));
    assert_eq!(
        event_type(&none, br#"{"specversion":"1.0","type":"t\u00e9"}"#).unwrap(),
        "t\u{e9}"
    );
}

#[test]
fn data_as_reports_a_shape_mismatch() {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct User {
        id: i64,
        missing_field: String,
    }
    let err = sample().data_as::<User>().unwrap_err();
    assert!(
        matches!(err, EnvelopeError::Data(ref m) if m.contains("missing_field")),
        "{err}"
    );
}

proptest! {
    #[test]
    fn any_event_round_trips(
        source in "[a-z-]{1,20}",
        ty in "[a-z_.]{1,20}",
        subject in proptest::option::of("[0-9]{1,6}"),
        name in "\\PC{0,30}",
        version in 1u64..1000,
    ) {
        let mut event = CloudEvent::new(source, ty, json!({"name": name, "version": version}));
        event.subject = subject;
        event.time = None;
        let back = CloudEvent::from_json(&event.to_json_vec()).unwrap();
        prop_assert_eq!(back, event);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_readers(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let props = BasicProperties::default();
        let _ = CloudEvent::from_amqp(&props, &body);
        let _ = event_type(&props, &body);
    }
}
