//! Poison messages: what a message that cannot be applied becomes in `<queue>.dead`: the
//! original body and properties, plus headers saying why.

use events::amqp::{PendingConfirm, PublishError, Publisher, dead_letter_queue};
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable, LongString};

use crate::event::Poison;

/// Header carrying the short reason code (`not_json`, `unknown_type`, `bad_data`, ...).
pub const ERROR_HEADER: &str = "x-order-error";
/// Header carrying the full error message, for a person.
pub const DETAIL_HEADER: &str = "x-order-error-detail";
/// Header naming the queue the message was consumed from.
pub const QUEUE_HEADER: &str = "x-order-queue";
/// Longest detail kept in a header, in bytes.
const MAX_DETAIL: usize = 1000;

/// Sends `delivery` to `<queue>.dead` with the reason headers; await the returned
/// confirmation before settling the original message.
pub async fn send(
    publisher: &Publisher,
    queue: &str,
    delivery: &Delivery,
    poison: &Poison,
) -> Result<PendingConfirm, PublishError> {
    let properties = properties(&delivery.properties, queue, poison);
    publisher
        .send("", &dead_letter_queue(queue), &delivery.data, properties)
        .await
}

/// The original properties, persistent, with the reason headers added.
fn properties(original: &BasicProperties, queue: &str, poison: &Poison) -> BasicProperties {
    let mut headers = original.headers().clone().unwrap_or_default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    headers.insert(ERROR_HEADER.into(), text(poison.reason()));
    headers.insert(DETAIL_HEADER.into(), text(&truncate(&poison.to_string())));
    headers.insert(QUEUE_HEADER.into(), text(queue));
    original
        .clone()
        .with_delivery_mode(events::amqp::PERSISTENT)
        .with_headers(headers)
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_DETAIL {
        return text.to_owned();
    }
    let mut end = MAX_DETAIL;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The headers of a dead-lettered message, for tests and tools.
pub fn reason_of(headers: &FieldTable) -> Option<String> {
    events::envelope::header_string(headers, ERROR_HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::envelope::header_string;

    #[test]
    fn the_reason_headers_are_added_and_the_original_ones_kept() {
        let mut original_headers = FieldTable::default();
        original_headers.insert("traceparent".into(), AMQPValue::LongString("tp".into()));
        let original = BasicProperties::default()
            .with_message_id("m-1".into())
            .with_headers(original_headers);
        let poison = Poison::UnknownType("user_renamed".into());
        let props = properties(&original, "queue_order", &poison);
        let headers = props.headers().as_ref().unwrap();
        assert_eq!(reason_of(headers).as_deref(), Some("unknown_type"));
        assert!(
            header_string(headers, DETAIL_HEADER)
                .unwrap()
                .contains("user_renamed")
        );
        assert_eq!(
            header_string(headers, QUEUE_HEADER).as_deref(),
            Some("queue_order")
        );
        assert_eq!(header_string(headers, "traceparent").as_deref(), Some("tp"));
        assert_eq!(props.message_id().as_ref().unwrap().as_str(), "m-1");
        assert_eq!(*props.delivery_mode(), Some(2));
    }

    #[test]
    fn long_details_are_truncated_on_a_character_boundary() {
        let long = "é".repeat(MAX_DETAIL);
        let short = truncate(&long);
        assert!(short.len() <= MAX_DETAIL + '…'.len_utf8());
        assert!(short.ends_with('…'));
    }
}
