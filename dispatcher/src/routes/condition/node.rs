//! A `where` value as written, with the position of every value in it, so that a
//! mistake deep inside `any = [{ ... }]` is reported at its own line and column.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_spanned::Spanned;

/// How the TOML reader hands a date-time to a visitor: a one-entry table.
const DATETIME_KEY: &str = "$__toml_private_datetime";

/// A TOML value whose nested values keep their spans.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A string, number, boolean or date-time.
    Scalar(toml::Value),
    /// `[...]`.
    Array(Vec<Spanned<Node>>),
    /// `{ ... }`, in file order.
    Table(Vec<(String, Spanned<Node>)>),
}

impl Node {
    /// The kind of value, as an error message says it.
    pub fn type_str(&self) -> &'static str {
        match self {
            Self::Scalar(value) => value.type_str(),
            Self::Array(_) => "array",
            Self::Table(_) => "table",
        }
    }

    /// The same value without positions.
    pub fn to_toml(&self) -> toml::Value {
        match self {
            Self::Scalar(value) => value.clone(),
            Self::Array(items) => {
                toml::Value::Array(items.iter().map(|i| i.get_ref().to_toml()).collect())
            }
            Self::Table(entries) => toml::Value::Table(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.get_ref().to_toml()))
                    .collect(),
            ),
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Scalar(toml::Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

/// A node with the span a test builds it at (positions in tests are not checked).
#[cfg(test)]
pub fn unspanned(value: &toml::Value) -> Spanned<Node> {
    let node = match value {
        toml::Value::Array(items) => Node::Array(items.iter().map(unspanned).collect()),
        toml::Value::Table(table) => Node::Table(
            table
                .iter()
                .map(|(k, v)| (k.clone(), unspanned(v)))
                .collect(),
        ),
        other => Node::Scalar(other.clone()),
    };
    Spanned::new(0..0, node)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Scalar(toml::Value::Boolean(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Scalar(toml::Value::Integer(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        i64::try_from(v)
            .map(|v| Node::Scalar(toml::Value::Integer(v)))
            .map_err(|_| E::custom(format!("{v} is out of range for a TOML integer")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Scalar(toml::Value::Float(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Scalar(toml::Value::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Scalar(toml::Value::String(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == DATETIME_KEY {
                let text: String = map.next_value()?;
                let datetime = text.parse().map_err(de::Error::custom)?;
                return Ok(Node::Scalar(toml::Value::Datetime(datetime)));
            }
            entries.push((key, map.next_value::<Spanned<Node>>()?));
        }
        Ok(Node::Table(entries))
    }
}
