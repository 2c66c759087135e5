//! The properties a dead letter is published with, made to fit the connection.
//!
//! A dead letter is the original message, body byte for byte, with its properties and
//! headers, plus `x-dispatch-error` (`<reason>: <message>`, the message cut to
//! [`QUOTE_LIMIT`] bytes) and `x-dispatch-generation`. When that copy's content header
//! would not fit the connection's `frame_max`, the largest original headers are left
//! out until it fits, and `x-dispatch-dropped` names them. If it still would not fit
//! with every original header left out (only possible when the other properties are
//! large and the frame small), only the identifying properties are kept (`message_id`,
//! `type`, `app_id`, `content_type`, `timestamp`, `delivery_mode`) and the reason is cut
//! to [`SHORT_QUOTE_LIMIT`]: that last form is smaller than the smallest `frame_max` a
//! connection may have, so a dead letter can always be sent.

use std::collections::BTreeMap;

use events::amqp::content_header_frame_size;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, ShortString};

use super::context::{DROPPED_HEADER, ERROR_HEADER, GENERATION_HEADER, generation_value};
use super::letter::LETTER_HEADERS;
use super::quote::{QUOTE_LIMIT, bounded};

/// How much of the reason and of the dropped names the smallest dead letter keeps.
pub const SHORT_QUOTE_LIMIT: usize = 256;

/// Most bytes the `x-dispatch-dropped` entry takes in a header table when its list of
/// names is `names` bytes long: key, type tag, length, and the list (cut to
/// [`QUOTE_LIMIT`] plus the suffix of [`bounded`]).
fn dropped_entry_size(names: usize) -> usize {
    1 + DROPPED_HEADER.len() + 1 + 4 + names.min(QUOTE_LIMIT + 48)
}

/// A dead letter's properties, and how many original headers they leave out.
#[derive(Debug)]
pub(super) struct DeadLetter {
    pub properties: BasicProperties,
    pub dropped: usize,
}

/// The properties to dead-letter a message with, fitting `frame_max`.
/// `extra` are the headers that say more about a refused publish (see
/// [`super::letter`]); they are never left out.
pub(super) fn dead_letter_properties(
    properties: BasicProperties,
    (reason, message): (&str, &str),
    extra: &[(&str, AMQPValue)],
    generation: u64,
    frame_max: u32,
) -> DeadLetter {
    let limit = usize::try_from(frame_max).unwrap_or(usize::MAX);
    let error = format!("{reason}: {}", bounded(message, QUOTE_LIMIT));
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(ERROR_HEADER.into(), long_string(&error));
    headers.insert(GENERATION_HEADER.into(), generation_value(generation));
    for (name, value) in extra {
        headers.insert((*name).into(), value.clone());
    }
    let full = properties.with_headers(headers);
    let size = content_header_frame_size(&full);
    if size <= limit {
        return DeadLetter {
            properties: full,
            dropped: 0,
        };
    }
    without_large_headers(&full, size, limit)
        .unwrap_or_else(|| smallest(&full, (reason, message), extra, generation))
}

/// Leaves out the largest original headers until the copy fits; `None` when it would
/// not fit even without all of them.
fn without_large_headers(full: &BasicProperties, size: usize, limit: usize) -> Option<DeadLetter> {
    let headers = full.headers().as_ref()?;
    let mut kept: BTreeMap<ShortString, AMQPValue> = headers.inner().clone();
    let mut originals: Vec<(usize, ShortString)> = kept
        .iter()
        .filter(|(name, _)| !is_ours(name.as_str()))
        .map(|(name, value)| (entry_size(name, value), name.clone()))
        .collect();
    originals.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
    let mut remaining = size;
    let mut names = 0;
    let mut dropped = Vec::new();
    for (entry, name) in originals {
        if !dropped.is_empty() && remaining + dropped_entry_size(names) <= limit {
            break;
        }
        kept.remove(&name);
        remaining = remaining.saturating_sub(entry);
        names += name.as_str().len() + usize::from(!dropped.is_empty());
        dropped.push(name);
    }
    if dropped.is_empty() || remaining + dropped_entry_size(names) > limit {
        return None;
    }
    let names = dropped_names(&dropped, QUOTE_LIMIT);
    kept.insert(DROPPED_HEADER.into(), long_string(&names));
    let properties = full.clone().with_headers(FieldTable::from(kept));
    (content_header_frame_size(&properties) <= limit).then_some(DeadLetter {
        properties,
        dropped: dropped.len(),
    })
}

/// The smallest dead letter: identifying properties, a short reason, no original header.
fn smallest(
    properties: &BasicProperties,
    (reason, message): (&str, &str),
    extra: &[(&str, AMQPValue)],
    generation: u64,
) -> DeadLetter {
    let originals: Vec<ShortString> = properties
        .headers()
        .as_ref()
        .map(|h| {
            h.inner()
                .keys()
                .filter(|name| !is_ours(name.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let error = format!("{reason}: {}", bounded(message, SHORT_QUOTE_LIMIT));
    let mut headers = FieldTable::default();
    headers.insert(ERROR_HEADER.into(), long_string(&error));
    headers.insert(GENERATION_HEADER.into(), generation_value(generation));
    headers.insert(
        DROPPED_HEADER.into(),
        long_string(&dropped_names(&originals, SHORT_QUOTE_LIMIT)),
    );
    for (name, value) in extra {
        headers.insert((*name).into(), value.clone());
    }
    let mut kept = BasicProperties::default().with_headers(headers);
    if let Some(id) = properties.message_id() {
        kept = kept.with_message_id(id.clone());
    }
    if let Some(kind) = properties.kind() {
        kept = kept.with_type(kind.clone());
    }
    if let Some(app) = properties.app_id() {
        kept = kept.with_app_id(app.clone());
    }
    if let Some(content_type) = properties.content_type() {
        kept = kept.with_content_type(content_type.clone());
    }
    if let Some(timestamp) = properties.timestamp() {
        kept = kept.with_timestamp(*timestamp);
    }
    if let Some(mode) = properties.delivery_mode() {
        kept = kept.with_delivery_mode(*mode);
    }
    DeadLetter {
        properties: kept,
        dropped: originals.len(),
    }
}

fn is_ours(name: &str) -> bool {
    name == GENERATION_HEADER || LETTER_HEADERS.contains(&name)
}

/// The names, comma-separated, cut to `limit` bytes.
fn dropped_names(names: &[ShortString], limit: usize) -> String {
    let all: Vec<&str> = names.iter().map(ShortString::as_str).collect();
    bounded(&all.join(","), limit).into_owned()
}

/// Bytes one entry takes in an encoded header table.
fn entry_size(name: &ShortString, value: &AMQPValue) -> usize {
    let mut one = FieldTable::default();
    one.insert(name.clone(), value.clone());
    let empty =
        content_header_frame_size(&BasicProperties::default().with_headers(FieldTable::default()));
    content_header_frame_size(&BasicProperties::default().with_headers(one)) - empty
}

fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(text.into())
}

#[cfg(test)]
mod tests {
    use events::amqp::MIN_FRAME_MAX;
    use proptest::prelude::*;

    use super::*;

    fn header(properties: &BasicProperties, name: &str) -> Option<String> {
        events::amqp::header_string(properties.headers().as_ref()?, name)
    }

    fn with_headers(sizes: &[(&str, usize)]) -> BasicProperties {
        let mut headers = FieldTable::default();
        for (name, size) in sizes {
            headers.insert((*name).into(), long_string(&"v".repeat(*size)));
        }
        BasicProperties::default()
            .with_message_id("m-1".into())
            .with_headers(headers)
    }

    fn short(n: usize) -> ShortString {
        "s".repeat(n).as_str().into()
    }

    #[test]
    fn a_dead_letter_that_fits_keeps_every_header_and_property() {
        let letter = dead_letter_properties(
            with_headers(&[("a", 10)]),
            ("not_json", "bad"),
            &[],
            3,
            8192,
        );
        assert_eq!(letter.dropped, 0);
        let p = &letter.properties;
        assert_eq!(header(p, "a").as_deref(), Some("vvvvvvvvvv"));
        assert_eq!(header(p, ERROR_HEADER).as_deref(), Some("not_json: bad"));
        assert_eq!(header(p, DROPPED_HEADER), None);
        assert_eq!(
            p.message_id().as_ref().map(ShortString::as_str),
            Some("m-1")
        );
    }

    #[test]
    fn the_largest_headers_are_left_out_until_the_copy_fits_and_are_named() {
        let original = with_headers(&[("big", 6000), ("bigger", 7000), ("small", 10)]);
        let letter = dead_letter_properties(original, ("headers_too_large", "why"), &[], 1, 10_000);
        let p = &letter.properties;
        assert!(content_header_frame_size(p) <= 10_000);
        assert_eq!(letter.dropped, 1);
        assert_eq!(header(p, DROPPED_HEADER).as_deref(), Some("bigger"));
        assert!(header(p, "big").is_some() && header(p, "small").is_some());
        assert_eq!(
            header(p, ERROR_HEADER).as_deref(),
            Some("headers_too_large: why")
        );
        assert_eq!(
            p.message_id().as_ref().map(ShortString::as_str),
            Some("m-1")
        );
    }

    #[test]
    fn a_huge_reason_is_cut_in_the_error_header() {
        let message = "x".repeat(3_000_000);
        let letter = dead_letter_properties(
            BasicProperties::default(),
            ("bad_specversion", &message),
            &[],
            1,
            131_072,
        );
        let error = header(&letter.properties, ERROR_HEADER).unwrap_or_default();
        assert!(error.len() < QUOTE_LIMIT + 64, "{} bytes", error.len());
        assert!(error.ends_with("(3000000 bytes in all)"), "{error}");
    }

    #[test]
    fn when_no_header_can_make_it_fit_only_the_identifying_properties_stay() {
        // Thirty headers with long names: the list of them alone takes a kilobyte.
        let names: Vec<String> = (0..30).map(|i| format!("{i:0>200}")).collect();
        let pairs: Vec<(&str, usize)> = names.iter().map(|n| (n.as_str(), 10)).collect();
        let original = with_headers(&pairs)
            .with_message_id(short(255))
            .with_type(short(255))
            .with_reply_to(short(255))
            .with_correlation_id(short(255))
            .with_user_id(short(255))
            .with_cluster_id(short(255))
            .with_expiration(short(255))
            .with_content_encoding(short(255))
            .with_app_id(short(255))
            .with_content_type(short(255));
        let message = "x".repeat(100_000);
        let letter = dead_letter_properties(
            original,
            ("headers_too_large", &message),
            &[],
            1,
            MIN_FRAME_MAX,
        );
        let p = &letter.properties;
        assert!(content_header_frame_size(p) <= MIN_FRAME_MAX as usize);
        assert_eq!(p.message_id().as_ref(), Some(&short(255)));
        assert_eq!(p.reply_to(), &None);
        let listed = header(p, DROPPED_HEADER).unwrap_or_default();
        assert!(listed.starts_with(&names[0]), "{listed}");
        assert!(listed.len() < SHORT_QUOTE_LIMIT + 48, "{listed}");
        assert_eq!(letter.dropped, 30);
        let error = header(p, ERROR_HEADER).unwrap_or_default();
        assert!(error.starts_with("headers_too_large: xxx"), "{error}");
    }

    proptest! {
        #[test]
        fn a_dead_letter_always_fits_the_frame(
            sizes in proptest::collection::vec(0usize..40_000, 0..12),
            strings in 0usize..=255,
            message_len in 0usize..20_000,
            frame_max in MIN_FRAME_MAX..200_000,
        ) {
            let names: Vec<String> = (0..sizes.len()).map(|i| format!("h{i}")).collect();
            let pairs: Vec<(&str, usize)> = names.iter().map(String::as_str).zip(sizes).collect();
            let original = with_headers(&pairs)
                .with_reply_to(short(strings))
                .with_correlation_id(short(strings))
                .with_app_id(short(strings));
            let message = "é".repeat(message_len);
            let letter = dead_letter_properties(original, ("headers_too_large", &message), &[], 7, frame_max);
            prop_assert!(content_header_frame_size(&letter.properties) <= frame_max as usize);
            prop_assert!(header(&letter.properties, ERROR_HEADER).is_some());
        }
    }
}
