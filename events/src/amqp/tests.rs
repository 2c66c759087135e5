//! Queue arguments by queue type, AMQP header values as JSON, and the content header
//! frame size against what lapin encodes.

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn arg<'a>(table: &'a FieldTable, key: &str) -> Option<&'a AMQPValue> {
    table.inner().get(key)
}

#[test]
fn quorum_queues_get_a_delivery_limit_and_a_dead_letter_queue() {
    let args = queue_arguments("queue_order", QueueType::Quorum);
    assert_eq!(arg(&args, "x-queue-type"), Some(&long_string("quorum")));
    assert_eq!(arg(&args, "x-dead-letter-exchange"), Some(&long_string("")));
    assert_eq!(
        arg(&args, "x-dead-letter-routing-key"),
        Some(&long_string("queue_order.dead"))
    );
    assert_eq!(
        arg(&args, "x-delivery-limit"),
        Some(&AMQPValue::LongLongInt(DELIVERY_LIMIT))
    );
}

#[test]
fn classic_queues_dead_letter_but_have_no_delivery_limit() {
    let args = queue_arguments("queue_order", QueueType::Classic);
    assert_eq!(arg(&args, "x-queue-type"), Some(&long_string("classic")));
    assert_eq!(
        arg(&args, "x-dead-letter-routing-key"),
        Some(&long_string("queue_order.dead"))
    );
    assert_eq!(arg(&args, "x-delivery-limit"), None);
}

#[test]
fn dead_letter_queues_are_terminal() {
    let args = queue_arguments("queue_dispatch.dead", QueueType::Quorum);
    assert_eq!(args.inner().len(), 1, "{args:?}");
    assert!(is_dead_letter_queue("queue_dispatch.dead"));
    assert!(!is_dead_letter_queue("queue_dispatch"));
}

#[test]
fn amqp_header_values_convert_to_json() {
    let mut inner = FieldTable::default();
    inner.insert("k".into(), AMQPValue::Boolean(true));
    assert_eq!(amqp_to_json(&AMQPValue::LongInt(-3)), json!(-3));
    assert_eq!(
        amqp_to_json(&AMQPValue::LongString("FR".into())),
        json!("FR")
    );
    assert_eq!(
        amqp_to_json(&AMQPValue::FieldTable(inner)),
        json!({"k": true})
    );
    assert_eq!(amqp_to_json(&AMQPValue::Void), Value::Null);
}

#[test]
fn the_content_header_frame_of_bare_properties_is_22_bytes() {
    // 8 frame overhead + 12 (class, weight, body size) + 2 (empty property flags).
    assert_eq!(content_header_frame_size(&BasicProperties::default()), 22);
}

#[test]
fn each_header_adds_its_encoded_size_to_the_content_header_frame() {
    let mut headers = FieldTable::default();
    headers.insert("ab".into(), long_string("xyz"));
    let properties = BasicProperties::default().with_headers(headers);
    // 22 + table length (4) + key (1 + 2) + type tag (1) + string length (4) + 3.
    assert_eq!(
        content_header_frame_size(&properties),
        22 + 4 + 3 + 1 + 4 + 3
    );
    let properties = properties.with_message_id("12345".into());
    assert_eq!(content_header_frame_size(&properties), 37 + 1 + 5);
}

/// What lapin's own encoder writes for `properties`, plus the fixed part of the frame.
fn encoded_size(properties: &BasicProperties) -> usize {
    let encode = lapin::protocol::basic::gen_properties::<Vec<u8>>(properties);
    let written = encode(Vec::new().into()).unwrap();
    FRAME_OVERHEAD + 12 + written.write.len()
}

fn any_value() -> impl Strategy<Value = AMQPValue> {
    let leaf = prop_oneof![
        Just(AMQPValue::Void),
        any::<bool>().prop_map(AMQPValue::Boolean),
        any::<i8>().prop_map(AMQPValue::ShortShortInt),
        any::<u16>().prop_map(AMQPValue::ShortUInt),
        any::<i32>().prop_map(AMQPValue::LongInt),
        any::<i64>().prop_map(AMQPValue::LongLongInt),
        any::<f64>().prop_map(AMQPValue::Double),
        any::<u64>().prop_map(AMQPValue::Timestamp),
        (any::<u8>(), any::<u32>()).prop_map(|(scale, value)| {
            AMQPValue::DecimalValue(lapin::types::DecimalValue { scale, value })
        }),
        "[a-z]{0,40}".prop_map(|s| AMQPValue::ShortString(s.as_str().into())),
        "\\PC{0,200}".prop_map(|s| AMQPValue::LongString(s.as_str().into())),
        proptest::collection::vec(any::<u8>(), 0..50).prop_map(|b| AMQPValue::ByteArray(b.into())),
    ];
    leaf.prop_recursive(3, 40, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6)
                .prop_map(|v| AMQPValue::FieldArray(v.into())),
            proptest::collection::btree_map("[a-z-]{1,20}", inner, 0..6).prop_map(|m| {
                let mut table = FieldTable::default();
                for (k, v) in m {
                    table.insert(k.as_str().into(), v);
                }
                AMQPValue::FieldTable(table)
            }),
        ]
    })
}

proptest! {
    #[test]
    fn the_computed_size_is_what_lapin_encodes(
        headers in proptest::option::of(proptest::collection::btree_map("[a-z-]{1,30}", any_value(), 0..8)),
        strings in proptest::collection::vec(proptest::option::of("[ -~]{0,255}"), 10),
        delivery_mode in proptest::option::of(any::<u8>()),
        priority in proptest::option::of(any::<u8>()),
        timestamp in proptest::option::of(any::<u64>()),
    ) {
        let s = |i: usize| strings[i].as_deref().map(ShortString::from);
        let mut p = BasicProperties::default();
        if let Some(v) = s(0) { p = p.with_content_type(v); }
        if let Some(v) = s(1) { p = p.with_content_encoding(v); }
        if let Some(v) = s(2) { p = p.with_correlation_id(v); }
        if let Some(v) = s(3) { p = p.with_reply_to(v); }
        if let Some(v) = s(4) { p = p.with_expiration(v); }
        if let Some(v) = s(5) { p = p.with_message_id(v); }
        if let Some(v) = s(6) { p = p.with_type(v); }
        if let Some(v) = s(7) { p = p.with_user_id(v); }
        if let Some(v) = s(8) { p = p.with_app_id(v); }
        if let Some(v) = s(9) { p = p.with_cluster_id(v); }
        if let Some(v) = delivery_mode { p = p.with_delivery_mode(v); }
        if let Some(v) = priority { p = p.with_priority(v); }
        if let Some(v) = timestamp { p = p.with_timestamp(v); }
        if let Some(headers) = headers {
            let mut table = FieldTable::default();
            for (k, v) in headers {
                table.insert(k.as_str().into(), v);
            }
            p = p.with_headers(table);
        }
        prop_assert_eq!(content_header_frame_size(&p), encoded_size(&p));
    }
}
