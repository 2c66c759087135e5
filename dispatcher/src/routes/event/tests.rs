//! Reading an incoming event for routing: structured and binary mode, unreadable bodies,
//! the type limit, and the lazy reader against a full parse.

use super::*;
use lapin::types::AMQPValue;
use proptest::prelude::*;
use serde_json::json;

fn structured() -> BasicProperties {
    BasicProperties::default().with_content_type("application/cloudevents+json".into())
}

fn path(p: &str) -> Vec<String> {
    p.split('.').map(str::to_owned).collect()
}

#[test]
fn a_structured_event_exposes_its_attributes_and_headers() {
    let mut headers = FieldTable::default();
    headers.insert("tenant".into(), AMQPValue::LongString("acme".into()));
    let props = structured().with_headers(headers);
    let body = br#"{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"a":{"b":2},"l":[1,{"x":"y"}]}}"#;
    let doc = EventDoc::from_amqp(&props, body).unwrap();
    assert_eq!(doc.lookup(&path("data.a.b")).unwrap().as_ref(), &json!(2));
    assert_eq!(
        doc.lookup(&path("data.l.1.x")).unwrap().as_ref(),
        &json!("y")
    );
    assert_eq!(doc.lookup(&path("data.l.7")), None);
    assert_eq!(doc.lookup(&path("data.a.b.c")), None);
    assert_eq!(doc.attribute("id").unwrap().as_ref(), &json!("1"));
    assert_eq!(doc.header("tenant"), Some(json!("acme")));
    assert_eq!(doc.header("missing"), None);
}

#[test]
fn a_repeated_member_name_at_any_depth_makes_the_body_unreadable() {
    let props = structured();
    for body in [
        r#"{"specversion":"1.0","type":"t","data":{"c":"BE"},"data":{"c":"NL"}}"#,
        r#"{"specversion":"1.0","type":"t","data":{"c":"DE","c":"FR"}}"#,
        r#"{"specversion":"1.0","type":"t","data":[{"a":{"x":1,"x":2}}]}"#,
        r#"{"specversion":"1.0","type":"t","type":"t"}"#,
        r#"{"specversion":"1.0","type":"t","id":"1","\u0069d":"2"}"#,
    ] {
        let read = Incoming::read(&props, body.as_bytes()).unwrap_err();
        assert_eq!(read.reason(), "not_json", "{body}");
        assert!(read.to_string().contains("duplicate member name"), "{read}");
        assert_eq!(
            EventDoc::from_amqp(&props, body.as_bytes()).unwrap_err(),
            read,
            "{body}"
        );
    }
}

#[test]
fn an_object_with_many_members_is_checked_for_repeats_too() {
    let props = structured();
    let members: Vec<String> = (0..50).map(|i| format!(r#""m{i}":{i}"#)).collect();
    let body = format!(
        r#"{{"specversion":"1.0","type":"t",{}}}"#,
        members.join(",")
    );
    assert!(Incoming::read(&props, body.as_bytes()).is_ok());
    let repeated = body.replacen("\"m49\"", "\"m3\"", 1);
    let err = Incoming::read(&props, repeated.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("`m3`"), "{err}");
}

#[test]
fn invalid_utf8_anywhere_in_a_structured_body_makes_it_unreadable() {
    let props = structured();
    let bodies: [&[u8]; 3] = [
        b"{\"specversion\":\"1.0\",\"type\":\"t\",\"data\":{\"name\":\"\xff\"}}",
        b"{\"specversion\":\"1.0\",\"type\":\"t\",\"subject\":\"\xc3\"}",
        b"{\"specversion\":\"1.0\",\"type\":\"t\xe9\"}",
    ];
    for body in bodies {
        let err = Incoming::read(&props, body).unwrap_err();
        assert_eq!(err.reason(), "not_json");
        assert!(err.to_string().contains("invalid UTF-8"), "{err}");
        assert_eq!(EventDoc::from_amqp(&props, body).unwrap_err(), err);
    }
}

#[test]
fn a_type_over_the_limit_is_refused_before_any_route_is_looked_at() {
    let props = structured();
    let long = vec!["x"; 20_000].join(".");
    let body = format!(r#"{{"specversion":"1.0","type":"{long}"}}"#);
    let err = Incoming::read(&props, body.as_bytes()).unwrap_err();
    assert_eq!(err.reason(), "type_too_long");
    let at_limit = "y".repeat(events::envelope::MAX_TYPE_BYTES);
    let body = format!(r#"{{"specversion":"1.0","type":"{at_limit}"}}"#);
    assert_eq!(
        Incoming::read(&props, body.as_bytes()).unwrap().event_type,
        at_limit
    );
    // With escapes, the decoded type counts.
    let escaped = format!(
        r#"{{"specversion":"1.0","type":"{}"}}"#,
        "\\u0078".repeat(256)
    );
    let err = Incoming::read(&props, escaped.as_bytes()).unwrap_err();
    assert_eq!(err.reason(), "type_too_long");
    let mut headers = FieldTable::default();
    headers.insert(
        "ce-type".into(),
        AMQPValue::LongString(long.as_str().into()),
    );
    let binary = BasicProperties::default().with_headers(headers);
    assert_eq!(
        Incoming::read(&binary, b"").unwrap_err().reason(),
        "type_too_long"
    );
}

#[test]
fn a_binary_event_takes_attributes_from_properties_and_data_from_the_body() {
    let props = BasicProperties::default()
        .with_type("order_placed".into())
        .with_message_id("m-1".into())
        .with_app_id("shop".into());
    let doc = EventDoc::from_amqp(&props, br#"{"total": 3}"#).unwrap();
    assert_eq!(
        doc.attribute("type").as_deref(),
        Some(&json!("order_placed"))
    );
    assert_eq!(doc.attribute("source").as_deref(), Some(&json!("shop")));
    assert_eq!(doc.attribute("data").as_deref(), Some(&json!({"total": 3})));
    let text = EventDoc::from_amqp(&props, b"plain").unwrap();
    assert_eq!(text.attribute("data").as_deref(), Some(&json!("plain")));
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

#[test]
fn a_well_formed_structured_event_is_read_in_one_pass_without_copying_its_type() {
    let props = structured();
    let body = br#"{"specversion":"1.0","type":"user_created","data":{"n":1}}"#;
    let incoming = Incoming::read(&props, body).unwrap();
    assert!(matches!(incoming.event_type, Cow::Borrowed("user_created")));
    let doc = incoming.doc.read().unwrap();
    assert_eq!(doc.lookup(&path("data.n")).unwrap().as_ref(), &json!(1));
}

#[test]
fn odd_structured_events_get_the_shared_readers_verdict() {
    let props = structured();
    let bodies: [&[u8]; 13] = [
        br#"{"specversion":"1.0","type":"a","type":"b"}"#,
        br#"["1.0","t"]"#,
        b"{\"specversion\":\"1.0\",\"type\":\"t\",\"x\":\"\xff\"}",
        br#"{"specversion":"1.0","type":"t","data":{"a":1,"a":2}}"#,
        br#"{"specversion":"1.0","type":"t"} trailing"#,
        br#"{"specversion":"1.0","type":""}"#,
        br#"{"specversion":"0.3","type":"a"}"#,
        br#"{"type":"a"}"#,
        br#"{"specversion":"1.0","type":null}"#,
        br#"{"specversion":"1.0","type":7}"#,
        br#"{"specversion":"1.0","t\u0079pe":"esc\"aped"}"#,
        br#"[1]"#,
        b"nope",
    ];
    for body in bodies {
        let ours = Incoming::read(&props, body).map(|i| i.event_type.into_owned());
        assert_eq!(
            ours,
            event_type(&props, body),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn a_binary_event_type_comes_from_the_properties() {
    let props = BasicProperties::default().with_type("order_placed".into());
    let incoming = Incoming::read(&props, b"plain").unwrap();
    assert_eq!(incoming.event_type, "order_placed");
    let doc = incoming.doc.read().unwrap();
    assert_eq!(doc.attribute("data").as_deref(), Some(&json!("plain")));
}

/// A JSON value a few levels deep, with repeated keys possible.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i32>().prop_map(|n| n.to_string()),
        (-1e6f64..1e6).prop_map(|f| f.to_string()),
        "[a-c\"\\\\é]{0,4}".prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec(("[abc]", inner), 0..4).prop_map(|v| {
                let members: Vec<String> = v.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

proptest! {
    #[test]
    fn the_lazy_reader_finds_what_a_full_parse_finds(
        data in json_text(),
        keys in proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c"), Just("0"), Just("1")], 0..4),
    ) {
        let body = format!(r#"{{"specversion":"1.0","type":"t","data":{data}}}"#);
        let props = structured();
        let read = Incoming::read(&props, body.as_bytes());
        // The lazy reader refuses exactly what the shared I-JSON check refuses.
        let checked = events::envelope::json_text(body.as_bytes());
        prop_assert_eq!(read.is_ok(), checked.is_ok());
        prop_assume!(read.is_ok());
        let lazy = EventDoc::from_amqp(&props, body.as_bytes()).unwrap();
        let full: Map<String, Value> = serde_json::from_str(&body).unwrap();
        let parsed = EventDoc::from_json(full, None);
        let mut p = vec!["data".to_owned()];
        p.extend(keys.iter().map(|k| (*k).to_owned()));
        prop_assert_eq!(lazy.lookup(&p), parsed.lookup(&p));
    }

    #[test]
    fn arbitrary_bytes_and_types_never_panic_the_reader(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        ty in proptest::option::of("\\PC{0,10}"),
    ) {
        let mut props = BasicProperties::default();
        if let Some(ty) = ty {
            props = props.with_type(ty.as_str().into());
        }
        let _ = EventDoc::from_amqp(&props, &body);
        if let Ok(incoming) = Incoming::read(&props, &body) {
            let _ = incoming.doc.read();
        }
    }

    #[test]
    fn an_accepted_structured_event_always_reads_further(
        data in json_text(),
        noise in proptest::collection::vec(any::<u8>(), 0..3),
        at in any::<prop::sample::Index>(),
    ) {
        // A valid event with a few bytes spliced in somewhere: whatever the result,
        // the type reader and the full reader agree, so no table can tell them apart.
        let mut body = format!(r#"{{"specversion":"1.0","type":"t","data":{data}}}"#).into_bytes();
        let at = at.index(body.len() + 1);
        body.splice(at..at, noise);
        let props = structured();
        match Incoming::read(&props, &body) {
            Ok(incoming) => prop_assert!(incoming.doc.read().is_ok()),
            Err(error) => prop_assert_eq!(event_type(&props, &body).err(), Some(error)),
        }
    }
}

#[test]
fn a_binary_event_exposes_its_extension_attributes_by_any_binding_prefix() {
    let mut headers = FieldTable::default();
    headers.insert("ce-tenant".into(), AMQPValue::LongString("acme".into()));
    headers.insert(
        "cloudEvents_PartitionKey".into(),
        AMQPValue::LongString("p-7".into()),
    );
    headers.insert(
        "cloudEvents:tenant".into(),
        AMQPValue::LongString("first".into()),
    );
    headers.insert("x-other".into(), AMQPValue::LongString("no".into()));
    let props = BasicProperties::default()
        .with_type("order_placed".into())
        .with_headers(headers);
    let doc = EventDoc::from_amqp(&props, b"{}").unwrap();
    assert_eq!(
        doc.attribute("partitionkey").as_deref(),
        Some(&json!("p-7"))
    );
    // `cloudEvents:` comes before `ce-`, as for every attribute.
    assert_eq!(doc.attribute("tenant").as_deref(), Some(&json!("first")));
    assert_eq!(doc.attribute("x-other"), None);
    assert_eq!(doc.attribute("other"), None);
}

#[test]
fn amqp_properties_are_read_from_the_message() {
    let props = structured()
        .with_reply_to("replies".into())
        .with_expiration("60000".into())
        .with_user_id("guest".into());
    let body = br#"{"specversion":"1.0","type":"t","tenant":"acme"}"#;
    let doc = EventDoc::from_amqp(&props, body).unwrap();
    assert_eq!(doc.property(Property::ReplyTo), Some(json!("replies")));
    assert_eq!(doc.property(Property::Expiration), Some(json!("60000")));
    assert_eq!(doc.property(Property::UserId), Some(json!("guest")));
    assert_eq!(
        doc.property(Property::ContentType),
        Some(json!("application/cloudevents+json"))
    );
    assert_eq!(doc.property(Property::Priority), None);
    assert_eq!(doc.attribute("tenant").as_deref(), Some(&json!("acme")));
}
