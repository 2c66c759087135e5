//! `routes.toml` as written: serde types that keep the position of every value, read
//! route by route and test by test so that one bad route does not hide the others.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use super::condition::node::Node;
use super::error::Problem;
use super::retry::RetryFile;

/// The whole file, as written (nothing checked beyond the shape).
#[derive(Debug, Default)]
pub struct RoutesFile {
    /// `source`: the queue the dispatcher consumes.
    pub source: Option<Spanned<String>>,
    /// `unrouted`: where events that match no route go.
    pub unrouted: Option<Spanned<String>>,
    /// `dead_letter`: where events that cannot be read go.
    pub dead_letter: Option<Spanned<String>>,
    /// `[[route]]`, in file order.
    pub routes: Vec<RouteSpec>,
    /// `[[test]]`, in file order.
    pub tests: Vec<TestSpec>,
    /// `[archive]`: the stream every consumed event is appended to.
    pub archive: Option<Spanned<ArchiveSpec>>,
}

/// `[archive]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSpec {
    /// The stream queue (declared with `x-queue-type = stream`).
    pub stream: Spanned<String>,
    /// How long events are kept (`7d`); the stream's `x-max-age`.
    #[serde(default)]
    pub max_age: Option<Spanned<String>>,
    /// How many bytes are kept (`5GB`); the stream's `x-max-length-bytes`.
    #[serde(default)]
    pub max_bytes: Option<Spanned<String>>,
}

/// One `[[route]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Unique name, shown in logs, metrics and the `x-dispatch-routes` header.
    pub name: Spanned<String>,
    /// Event types or topic patterns.
    pub event: Spanned<EventSpec>,
    /// Conditions on the event's fields, all of which must hold (`any`, `all` and
    /// `not` combine tables of them).
    #[serde(rename = "where", default)]
    pub filter: Option<Spanned<BTreeMap<Spanned<String>, Spanned<Node>>>>,
    /// Where matching events go.
    pub to: Spanned<Vec<Spanned<TargetSpec>>>,
    /// Stop evaluating later routes when this one matched.
    #[serde(rename = "final", default)]
    pub is_final: bool,
    /// Headers added to what this route sends: name to template.
    #[serde(default)]
    pub headers: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    /// How a refused publish to this route's targets is retried.
    #[serde(default)]
    pub retry: Option<Spanned<RetryFile>>,
}

/// One `[[test]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// Optional name, shown when the test fails.
    #[serde(default)]
    pub name: Option<String>,
    /// The event, as a table: `type`, and any of `data`, `source`, `subject`, `id`,
    /// extension attributes, `headers` and `properties`.
    pub event: Spanned<toml::Table>,
    /// The targets the event must reach, exactly (order does not matter).
    #[serde(default)]
    pub expect: Option<Spanned<Vec<Spanned<TargetSpec>>>>,
    /// Targets the event must reach, among others.
    #[serde(default)]
    pub includes: Option<Spanned<Vec<Spanned<TargetSpec>>>>,
    /// Targets the event must not reach.
    #[serde(default)]
    pub excludes: Option<Spanned<Vec<Spanned<TargetSpec>>>>,
    /// Optionally, the routes that must match, exactly.
    #[serde(default)]
    pub expect_routes: Option<Spanned<Vec<String>>>,
}

/// `event = "t"` or `event = ["t", "u.*"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSpec {
    /// One type or pattern.
    One(String),
    /// Several, each with its position.
    Many(Vec<Spanned<String>>),
}

/// A `to` entry: a queue name, or an exchange with a routing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// `"queue_order"`: publish to this queue through the default exchange.
    Queue(String),
    /// `{ exchange = "x", routing_key = "k" }`.
    Exchange {
        /// An existing exchange.
        exchange: String,
        /// The routing key (empty when not given).
        routing_key: String,
    },
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "source",
    "unrouted",
    "dead_letter",
    "archive",
    "route",
    "test",
];

/// Reads `text` into a [`RoutesFile`] with the entries that could be read, and every
/// problem found in the others (a TOML syntax error stops at the first).
pub fn parse(text: &str) -> Result<(RoutesFile, Vec<Problem>), Vec<Problem>> {
    let document = DeTable::parse(text).map_err(|e| vec![toml_problem(&e)])?;
    let mut file = RoutesFile::default();
    let mut problems = Vec::new();
    for (key, value) in document.get_ref().iter() {
        let span = key.span();
        match key.get_ref().as_ref() {
            "source" => file.source = collect(value, &mut problems),
            "unrouted" => file.unrouted = collect(value, &mut problems),
            "dead_letter" => file.dead_letter = collect(value, &mut problems),
            "route" => file.routes = collect_all(value, "route", &mut problems),
            "test" => file.tests = collect_all(value, "test", &mut problems),
            "archive" => file.archive = collect(value, &mut problems),
            other => problems.push(Problem::at(
                span,
                format!(
                    "unknown key `{other}`; the top level accepts {}",
                    list(TOP_LEVEL_KEYS)
                ),
            )),
        }
    }
    Ok((file, problems))
}

fn collect<T: for<'de> Deserialize<'de>>(
    value: &Spanned<DeValue<'_>>,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    T::deserialize(value.clone().into_deserializer())
        .map_err(|e| problems.push(toml_problem(&e)))
        .ok()
}

/// `[[route]]` / `[[test]]`: an array of tables, each read on its own.
fn collect_all<T: for<'de> Deserialize<'de>>(
    value: &Spanned<DeValue<'_>>,
    what: &str,
    problems: &mut Vec<Problem>,
) -> Vec<T> {
    let Some(items) = value.get_ref().as_array() else {
        problems.push(Problem::at(
            value.span(),
            format!("`{what}` must be an array of tables: write each one as [[{what}]]"),
        ));
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            if !item.get_ref().is_table() {
                problems.push(Problem::at(
                    item.span(),
                    format!(
                        "each `{what}` must be a table, found {}",
                        item.get_ref().type_str()
                    ),
                ));
                return None;
            }
            let before = problems.len();
            let item = collect(item, problems);
            for problem in &mut problems[before..] {
                if problem.message.starts_with("missing field") {
                    problem.message.push_str(&format!(" in this [[{what}]]"));
                }
            }
            item
        })
        .collect()
}

fn toml_problem(error: &toml::de::Error) -> Problem {
    Problem {
        span: error.span(),
        message: friendly(error.message()),
    }
}

/// serde says "invalid type: X, expected Y"; say "expected Y, found X" in the file's words.
fn friendly(message: &str) -> String {
    let message = message.trim_end();
    let Some(rest) = message.strip_prefix("invalid type: ") else {
        return message.to_owned();
    };
    let Some((found, expected)) = rest.split_once(", expected ") else {
        return message.to_owned();
    };
    let expected = match expected {
        "a sequence" => "a list [..]",
        "a boolean" => "true or false",
        "a map" => "a table { .. }",
        other => other,
    };
    format!("expected {expected}, found {found}")
}

/// `a`, `b` or `c`, with backticks.
pub fn list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => format!("`{one}`"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(|i| format!("`{i}`")).collect();
            format!("{} or `{last}`", init.join(", "))
        }
    }
}

impl<'de> Deserialize<'de> for EventSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EventVisitor;
        impl<'de> Visitor<'de> for EventVisitor {
            type Value = EventSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event type or pattern, or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EventSpec, E> {
                Ok(EventSpec::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EventSpec, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    items.push(item);
                }
                Ok(EventSpec::Many(items))
            }
        }
        deserializer.deserialize_any(EventVisitor)
    }
}

impl<'de> Deserialize<'de> for TargetSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TargetVisitor;
        impl<'de> Visitor<'de> for TargetVisitor {
            type Value = TargetSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a queue name, or a table { exchange = \"...\", routing_key = \"...\" }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TargetSpec, E> {
                Ok(TargetSpec::Queue(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TargetSpec, A::Error> {
                let mut exchange = None;
                let mut routing_key = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "exchange" => exchange = Some(map.next_value::<String>()?),
                        "routing_key" => routing_key = Some(map.next_value::<String>()?),
                        other => {
                            return Err(de::Error::custom(format!(
                                "unknown key `{other}` in a target; expected `exchange` or `routing_key`"
                            )));
                        }
                    }
                }
                let exchange = exchange.ok_or_else(|| {
                    de::Error::custom(
                        "a target table needs `exchange` (and may have `routing_key`)",
                    )
                })?;
                Ok(TargetSpec::Exchange {
                    exchange,
                    routing_key: routing_key.unwrap_or_default(),
                })
            }
        }
        deserializer.deserialize_any(TargetVisitor)
    }
}

impl EventSpec {
    /// Each type or pattern with the span to blame for it (`whole` for the single form).
    pub fn items(&self, whole: Range<usize>) -> Vec<(String, Range<usize>)> {
        match self {
            Self::One(one) => vec![(one.clone(), whole)],
            Self::Many(many) => many
                .iter()
                .map(|item| (item.get_ref().clone(), item.span()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests;
