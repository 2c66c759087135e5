//! A JSON object split into its members, values left unparsed and borrowed from the
//! body, so that only what a condition compares is ever parsed.

use std::borrow::Cow;
use std::fmt;

use events::EnvelopeError;
use events::envelope::{unique_members, utf8_text};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The members of one JSON object, values unparsed, in document order.
pub(super) type Members<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

/// A structured body split into its members, if it is an I-JSON object: UTF-8, and no
/// member name repeated, at the top or in any nested object or array.
pub(super) fn read_object(body: &[u8]) -> Result<Members<'_>, EnvelopeError> {
    let text = utf8_text(body)?;
    let members = split_object(text).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
    if let Some(name) = repeated_name(&members) {
        return Err(EnvelopeError::NotJson(format!(
            "duplicate member name `{}` (I-JSON, RFC 7493, forbids them)",
            name.chars().take(64).collect::<String>()
        )));
    }
    for (_, value) in &members {
        if value.get().starts_with(['{', '[']) {
            unique_members(value.get())?;
        }
    }
    Ok(members)
}

/// A member name given twice, if any.
fn repeated_name<'m>(members: &'m Members<'_>) -> Option<&'m str> {
    // Events have about ten attributes: comparing pairs needs no allocation; a hostile
    // object with thousands of members is sorted instead.
    if members.len() <= 16 {
        return members.iter().enumerate().find_map(|(i, (name, _))| {
            members[..i]
                .iter()
                .any(|(earlier, _)| earlier == name)
                .then_some(name.as_ref())
        });
    }
    let mut names: Vec<&str> = members.iter().map(|(name, _)| name.as_ref()).collect();
    names.sort_unstable();
    names
        .windows(2)
        .find(|pair| pair[0] == pair[1])
        .map(|pair| pair[0])
}

/// A JSON string value, borrowed unless it has escapes.
pub(super) fn json_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<Key<'_>>(raw.get()).ok().map(|k| k.0)
}

/// A string borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(text)))
            }

            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// The member named `key` (the last one, were names repeated: the body was checked for
/// that when read, so there is one).
pub(super) fn last<'a>(
    members: &[(Cow<'a, str>, &'a RawValue)],
    key: &str,
) -> Option<&'a RawValue> {
    members
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
}

/// A field of an object or an element of an array, still unparsed.
pub(super) fn child<'a>(raw: &'a RawValue, segment: &str) -> Option<&'a RawValue> {
    match raw.get().as_bytes().first()? {
        b'{' => last(&split_object(raw.get()).ok()?, segment),
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(raw.get()).ok()?;
            items.get(segment.parse::<usize>().ok()?).copied()
        }
        _ => None,
    }
}

/// Splits a JSON object into its members without parsing their values.
pub(super) fn split_object(json: &str) -> Result<Members<'_>, serde_json::Error> {
    struct Split;
    impl<'de> Visitor<'de> for Split {
        type Value = Members<'de>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut members = Vec::with_capacity(map.size_hint().unwrap_or(12));
            while let Some((Key(key), value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                members.push((key, value));
            }
            Ok(members)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let members = (&mut deserializer).deserialize_map(Split)?;
    deserializer.end()?;
    Ok(members)
}
