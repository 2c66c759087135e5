//! Which targets one archived event is replayed to: routed by the current table, then
//! narrowed by `--type`, `--where` and `--route`, or sent to `--to-queue`.

use lapin::BasicProperties;

use serde_spanned::Spanned;

use crate::routes::condition::node::Node;
use crate::routes::condition::{Condition, Field, Path, read_test};
use crate::routes::event::{EventDoc, Incoming};
use crate::routes::pattern::{self, EventMatcher};
use crate::routes::table::RouteId;
use crate::routes::{RoutingTable, Target};

/// The filters of one replay, checked against the table.
#[derive(Debug)]
pub struct Selection {
    event_type: Option<EventMatcher>,
    conditions: Vec<Condition>,
    /// `--route`: only these routes' targets (ids into the table).
    routes: Option<Vec<RouteId>>,
    to_queue: Option<Target>,
}

/// What to do with one archived event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Send it to these targets; `routes` names the routes that sent it there.
    Send {
        targets: Vec<Target>,
        routes: String,
    },
    /// `--type`, `--where` or `--route` left it out.
    Filtered,
    /// No route of the current table matches it.
    Unrouted,
    /// It cannot be read as an event (it was dead-lettered when it arrived).
    Unreadable,
}

impl Selection {
    /// Checks the filters: the pattern parses, each `PATH=VALUE` is a valid condition,
    /// and every `--route` names a route of `table`.
    pub fn new(
        table: &RoutingTable,
        event_type: Option<&str>,
        conditions: &[String],
        routes: &[String],
        to_queue: Option<&str>,
    ) -> anyhow::Result<Self> {
        let event_type = event_type
            .map(|text| pattern::parse(text).map_err(|e| anyhow::anyhow!("--type {text}: {e}")))
            .transpose()?;
        let conditions = conditions
            .iter()
            .map(|text| condition(text))
            .collect::<anyhow::Result<_>>()?;
        let routes = if routes.is_empty() {
            None
        } else {
            Some(route_ids(table, routes)?)
        };
        Ok(Self {
            event_type,
            conditions,
            routes,
            to_queue: to_queue.map(|q| Target::Queue(q.to_owned())),
        })
    }

    /// Where one archived event goes.
    pub fn choose(
        &self,
        table: &RoutingTable,
        properties: &BasicProperties,
        body: &[u8],
    ) -> Choice {
        let Ok(incoming) = Incoming::read(properties, body) else {
            return match &self.to_queue {
                Some(queue) if self.takes_everything() => Choice::Send {
                    targets: vec![queue.clone()],
                    routes: String::new(),
                },
                _ => Choice::Unreadable,
            };
        };
        if let Some(matcher) = &self.event_type
            && !matcher.matches(&incoming.event_type)
        {
            return Choice::Filtered;
        }
        if !self.conditions.is_empty() {
            let Ok(doc) = EventDoc::from_amqp(properties, body) else {
                return Choice::Unreadable;
            };
            if !self.conditions.iter().all(|c| c.holds(&doc)) {
                return Choice::Filtered;
            }
        }
        let Ok(decision) = table.route(&incoming.event_type, || incoming.doc.read()) else {
            return Choice::Unreadable;
        };
        let matched: Vec<RouteId> = match &self.routes {
            Some(selected) => decision
                .routes
                .iter()
                .copied()
                .filter(|r| selected.contains(r))
                .collect(),
            None => decision.routes.clone(),
        };
        let names = matched
            .iter()
            .map(|&r| table.routes()[r].name.as_str())
            .collect::<Vec<_>>()
            .join(",");
        if let Some(queue) = &self.to_queue {
            return if self.routes.is_some() && matched.is_empty() {
                Choice::Filtered
            } else {
                Choice::Send {
                    targets: vec![queue.clone()],
                    routes: names,
                }
            };
        }
        if matched.is_empty() {
            return if self.routes.is_some() && !decision.routes.is_empty() {
                Choice::Filtered
            } else {
                Choice::Unrouted
            };
        }
        let mut targets: Vec<Target> = Vec::new();
        for &route in &matched {
            for &target in &table.routes()[route].targets {
                let target = table.target(target);
                if !targets.contains(target) {
                    targets.push(target.clone());
                }
            }
        }
        Choice::Send {
            targets,
            routes: names,
        }
    }

    /// No filter at all: every event goes (to `--to-queue`).
    fn takes_everything(&self) -> bool {
        self.event_type.is_none() && self.conditions.is_empty() && self.routes.is_none()
    }
}

/// `PATH=VALUE`: equality, the value read as TOML (`3`, `true`, `"x"`) or else as text.
fn condition(text: &str) -> anyhow::Result<Condition> {
    let Some((key, value)) = text.split_once('=') else {
        anyhow::bail!("--where {text}: write it as PATH=VALUE, e.g. data.country=FR");
    };
    let key = key.trim();
    let path = Path::parse(key).map_err(|e| anyhow::anyhow!("--where {text}: {e}"))?;
    let value = value.trim();
    let literal = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table() && !v.is_array())
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let test = read_test("", key, &Spanned::new(0..0, Node::Scalar(literal)))
        .map_err(|e| anyhow::anyhow!("--where {text}: {}", e.message))?;
    Ok(Condition::Field(Field {
        key: key.to_owned(),
        path,
        test,
    }))
}

fn route_ids(table: &RoutingTable, names: &[String]) -> anyhow::Result<Vec<RouteId>> {
    names
        .iter()
        .map(|name| {
            table
                .routes()
                .iter()
                .position(|r| &r.name == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = table.routes().iter().map(|r| r.name.as_str()).collect();
                    anyhow::anyhow!(
                        "--route {name}: no such route in the table (its routes: {})",
                        known.join(", ")
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests;
