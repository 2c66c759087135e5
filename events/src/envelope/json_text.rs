//! What this system accepts as JSON text: I-JSON (RFC 7493). It is UTF-8 (RFC 8259
//! requires it between systems), well-formed, and no object has two members with the
//! same name (their meaning is unspecified: some readers keep the first, some the last).
//! Every reader of an event body goes through here, so that a body means one thing, or
//! is refused, wherever it is read.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::EnvelopeError;

/// How much of a repeated member name an error quotes.
const QUOTED_NAME: usize = 64;

/// `body` as I-JSON text, or why it is not: invalid UTF-8, not JSON, or an object
/// with a repeated member name (at any depth). Each is [`EnvelopeError::NotJson`].
pub fn json_text(body: &[u8]) -> Result<&str, EnvelopeError> {
    let text = utf8_text(body)?;
    unique_members(text)?;
    Ok(text)
}

/// `body` as text, or [`EnvelopeError::NotJson`] saying where the UTF-8 breaks.
/// (`std`'s check is vectorised: it costs little next to parsing.)
pub fn utf8_text(body: &[u8]) -> Result<&str, EnvelopeError> {
    std::str::from_utf8(body).map_err(|e| {
        EnvelopeError::NotJson(format!(
            "invalid UTF-8 at byte {}: JSON text must be UTF-8 (RFC 8259)",
            e.valid_up_to()
        ))
    })
}

/// Checks that `text` is one JSON value in which no object repeats a member name.
pub fn unique_members(text: &str) -> Result<(), EnvelopeError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    Unique::deserialize(&mut deserializer)
        .and_then(|_| deserializer.end())
        .map_err(|e| EnvelopeError::NotJson(e.to_string()))
}

/// A JSON value, walked for its member names only.
struct Unique;

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut names: Vec<Cow<'de, str>> = Vec::new();
        while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
            map.next_value::<Unique>()?;
            names.push(name);
        }
        // Sorting beats a hash set for the few members of most objects, and stays
        // O(n log n) for a hostile object with very many.
        names.sort_unstable();
        match names.windows(2).find(|pair| pair[0] == pair[1]) {
            Some(pair) => Err(de::Error::custom(format_args!(
                "duplicate member name `{}` in an object (I-JSON, RFC 7493, forbids them)",
                cut(&pair[0])
            ))),
            None => Ok(Unique),
        }
    }
}

/// A member name, borrowed from the text when it has no escapes.
struct Name<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = Name<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(text)))
            }

            fn visit_str<E>(self, text: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// The start of `text`, at most [`QUOTED_NAME`] bytes, cut at a character boundary.
pub(super) fn cut(text: &str) -> &str {
    let mut end = text.len().min(QUOTED_NAME);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &[u8]) -> String {
        match json_text(text).unwrap_err() {
            EnvelopeError::NotJson(message) => message,
            other => panic!("expected not_json, got {other:?}"),
        }
    }

    #[test]
    fn well_formed_json_without_repeated_names_is_accepted() {
        for text in [
            r#"{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}"#,
            "[]",
            "\"caf\u{e9}\"",
            " 3.5 ",
            r#"{"":null,"\u0000":true}"#,
        ] {
            assert_eq!(json_text(text.as_bytes()).unwrap(), text);
        }
    }

    #[test]
    fn invalid_utf8_is_refused_with_its_position() {
        let message = refused(b"{\"type\":\"t\",\"data\":\"\xff\"}");
        assert!(message.contains("invalid UTF-8 at byte 20"), "{message}");
        // Even where a lenient reader would skip over it, inside a string.
        assert!(refused(b"[\"\xc3\"]").contains("UTF-8"));
    }

    #[test]
    fn a_repeated_member_name_is_refused_at_any_depth() {
        for text in [
            r#"{"type":"a","type":"b"}"#,
            r#"{"data":{"c":"DE","c":"FR"}}"#,
            r#"{"data":[1,{"x":{"k":1,"j":2,"k":3}}]}"#,
            r#"{"a":1,"\u0061":2}"#,
        ] {
            let message = refused(text.as_bytes());
            assert!(
                message.contains("duplicate member name"),
                "{text}: {message}"
            );
        }
    }

    #[test]
    fn a_repeated_long_name_is_quoted_cut() {
        let name = "é".repeat(100);
        let text = format!(r#"{{"{name}":1,"{name}":2}}"#);
        let message = refused(text.as_bytes());
        assert!(message.len() < 200, "{message}");
        assert!(message.contains(&"é".repeat(32)), "{message}");
    }

    #[test]
    fn an_object_with_many_members_is_checked_in_n_log_n() {
        let members: Vec<String> = (0..100_000).map(|i| format!("\"m{i}\":{i}")).collect();
        let text = format!("{{{}}}", members.join(","));
        assert!(json_text(text.as_bytes()).is_ok());
        let repeated = format!("{{{},\"m7\":0}}", members.join(","));
        assert!(refused(repeated.as_bytes()).contains("`m7`"));
    }

    #[test]
    fn malformed_json_and_trailing_text_are_refused() {
        assert!(refused(b"{\"a\":").contains("EOF"));
        assert!(refused(b"{} {}").contains("trailing"));
    }
}
