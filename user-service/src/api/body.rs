//! The request body as one JSON document with a single reading: an object that names a
//! member twice, at any depth, is refused (I-JSON, RFC 7493) rather than read as its last
//! value, as the dispatcher refuses it too.

use std::fmt;

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use events::http::{ApiError, JsonBody};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value, json};

/// The longest member name or path quoted back in an error, in characters.
const QUOTED_MAX_CHARS: usize = 100;

/// A JSON request body in which no object repeats a member name. Rejections are JSON
/// errors: those of [`JsonBody`] (400, 413), and 400 naming a repeated member.
#[derive(Debug, Clone)]
pub struct StrictJson(pub Value);

impl<S: Send + Sync> FromRequest<S> for StrictJson {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let JsonBody(raw) = JsonBody::<Box<RawValue>>::from_request(req, state).await?;
        parse_unique(raw.get()).map(Self).map_err(|problem| {
            ApiError::new(StatusCode::BAD_REQUEST, "repeated member name in JSON body")
                .with_details(json!({ "body": problem }))
        })
    }
}

/// Parses `text` as JSON, refusing an object that names a member twice; the error names
/// the member by its path (`data.tags[2].name`) and says where the repeat is.
pub fn parse_unique(text: &str) -> Result<Value, String> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = Unique {
        path: String::new(),
    }
    .deserialize(&mut deserializer)
    .map_err(|e| e.to_string())?;
    deserializer.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// Builds a [`Value`] like serde_json's own, with the path to the value being read.
struct Unique {
    path: String,
}

impl Unique {
    fn member(&self, name: &str) -> Self {
        let path = if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        };
        Self { path }
    }

    fn element(&self, index: usize) -> Self {
        Self {
            path: format!("{}[{index}]", self.path),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Unique {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.element(items.len()))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let child = self.member(&name);
            if members.contains_key(&name) {
                return Err(de::Error::custom(format!(
                    "the member `{}` appears more than once; JSON objects must not repeat a member name (I-JSON, RFC 7493)",
                    quoted(&child.path)
                )));
            }
            let value = map.next_value_seed(child)?;
            members.insert(name, value);
        }
        Ok(Value::Object(members))
    }
}

/// `text` cut to [`QUOTED_MAX_CHARS`] characters (`…` marks a cut).
fn quoted(text: &str) -> String {
    if text.chars().count() <= QUOTED_MAX_CHARS {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(QUOTED_MAX_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_without_repeats_reads_as_serde_json_reads_it() {
        let text =
            r#"{"name":"A","email":"a@b.co","n":[1,-2,3.5,null,true,{"x":{}}],"s":"\u00e9"}"#;
        let expected: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parse_unique(text).unwrap(), expected);
    }

    #[test]
    fn a_repeated_top_level_member_is_named() {
        let err = parse_unique(r#"{"name":"A","email":"a@b.co","name":"B"}"#).unwrap_err();
        assert!(
            err.starts_with("the member `name` appears more than once"),
            "{err}"
        );
        assert!(err.contains("line 1 column"), "{err}");
    }

    #[test]
    fn a_repeat_at_any_depth_is_named_by_its_path() {
        let err = parse_unique(r#"{"a":[{"b":1},{"c":{"d":1,"d":2}}]}"#).unwrap_err();
        assert!(err.contains("`a[1].c.d`"), "{err}");
    }

    #[test]
    fn the_same_name_in_different_objects_is_not_a_repeat() {
        assert!(parse_unique(r#"{"a":{"x":1},"b":{"x":1},"x":[{"x":1},{"x":2}]}"#).is_ok());
    }

    #[test]
    fn names_that_differ_only_once_unescaped_are_a_repeat() {
        let err = parse_unique(r#"{"name":"A","n\u0061me":"B"}"#).unwrap_err();
        assert!(err.contains("`name`"), "{err}");
    }

    #[test]
    fn a_long_member_name_is_cut_in_the_error() {
        let long = "k".repeat(5000);
        let err = parse_unique(&format!(r#"{{"{long}":1,"{long}":2}}"#)).unwrap_err();
        assert!(err.len() < 400, "{} bytes", err.len());
        assert!(err.contains('…'), "{err}");
    }

    #[test]
    fn malformed_and_trailing_text_are_still_errors() {
        assert!(parse_unique(r#"{"a":1"#).is_err());
        assert!(parse_unique(r#"{"a":1} x"#).is_err());
        assert!(parse_unique(&"[".repeat(10_000)).is_err());
    }
}
