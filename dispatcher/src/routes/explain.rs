//! Why an event goes where it goes: each route's verdict, in file order, computed by a
//! plain scan of every route. `dispatcher explain` prints it, and the tests use it as
//! the reference that the indexed matcher must agree with. Every condition of a route
//! whose type matched is evaluated, every branch of `any`, `all` and `not` included,
//! and each one's verdict is kept, with the value found (or "absent").

use std::fmt;

use events::EnvelopeError;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use serde::Serialize;
use serde_json::Value;

use super::condition::{Condition, display};
use super::event::{EventDoc, Incoming};
use super::table::{RoutingTable, Target};

/// One route's verdict for one event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The type and every condition matched: the route's targets are used.
    Matched {
        /// Each condition's verdict (none when the route has no `where`).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        checks: Vec<Check>,
    },
    /// No `event` entry matches the type.
    TypeMismatch,
    /// The type matched but this condition did not hold.
    ConditionFailed {
        /// The first condition that failed, e.g. `data.country = "FR"`.
        condition: String,
        /// The value found at its path (for a condition on one path).
        #[serde(skip_serializing_if = "Option::is_none")]
        found: Option<Found>,
        /// Each condition's verdict.
        checks: Vec<Check>,
    },
    /// Not evaluated: an earlier matching route is `final`.
    SkippedAfterFinal {
        /// That route.
        after: String,
    },
}

/// What a condition found at its path.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Found {
    /// This value (JSON `null` included).
    Value(Value),
    /// Nothing: the path is not in the event.
    Absent,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value(value) => write!(f, "{value}"),
            Self::Absent => f.write_str("absent"),
        }
    }
}

/// One condition's verdict, with its branches' verdicts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// The condition (`data.country = "FR"`, `any`, `all`, `not`), or for a branch of
    /// `any` / `all` its table.
    pub condition: String,
    /// Whether it holds.
    pub holds: bool,
    /// For a condition on one path, what was there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<Found>,
    /// For `any`, `all` and `not`, the verdict of each table (for a table, of each
    /// condition in it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<Check>,
}

/// Every route's verdict and the resulting targets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub event_type: String,
    /// `(route name, verdict)` in file order.
    pub routes: Vec<(String, Verdict)>,
    /// The union of the matched routes' targets, each once; the `unrouted` queue when
    /// no route matched.
    pub targets: Vec<Target>,
    /// Whether no route matched.
    pub unrouted: bool,
}

impl RoutingTable {
    /// Reads a message as the forwarder reads a delivery ([`Incoming::read`]), then
    /// explains it: what this refuses is exactly what the dispatcher dead-letters, with
    /// the same reason.
    pub fn explain_message(
        &self,
        properties: &BasicProperties,
        body: &[u8],
    ) -> Result<Explanation, EnvelopeError> {
        let incoming = Incoming::read(properties, body)?;
        let event_type = incoming.event_type.clone();
        let doc = incoming.doc.read()?;
        Ok(self.explain(&event_type, &doc))
    }

    /// [`Self::explain_message`] for a structured-mode event `body` with these AMQP
    /// headers (for `headers.<name>` conditions), as `dispatcher explain` and
    /// `POST /explain` take it.
    pub fn explain_event(
        &self,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Explanation, EnvelopeError> {
        self.explain_message(&message_properties(headers), body)
    }

    /// Evaluates every route against the event, without the index.
    pub fn explain(&self, event_type: &str, event: &EventDoc<'_>) -> Explanation {
        let mut routes = Vec::with_capacity(self.routes.len());
        let mut targets = Vec::new();
        let mut stopped_by: Option<&str> = None;
        for route in &self.routes {
            let verdict = if let Some(after) = stopped_by {
                Verdict::SkippedAfterFinal {
                    after: after.to_owned(),
                }
            } else if !route.matchers.iter().any(|m| m.matches(event_type)) {
                Verdict::TypeMismatch
            } else if let (checks, Some(failed)) = check_all(&route.conditions, event) {
                Verdict::ConditionFailed {
                    condition: failed.condition.clone(),
                    found: failed.found.clone(),
                    checks,
                }
            } else {
                let (checks, _) = check_all(&route.conditions, event);
                for &id in &route.targets {
                    let target = self.target(id);
                    if !targets.contains(target) {
                        targets.push(target.clone());
                    }
                }
                if route.is_final {
                    stopped_by = Some(&route.name);
                }
                Verdict::Matched { checks }
            };
            routes.push((route.name.clone(), verdict));
        }
        let unrouted = targets.is_empty();
        if unrouted {
            targets.push(Target::Queue(self.unrouted.clone()));
        }
        Explanation {
            event_type: event_type.to_owned(),
            routes,
            targets,
            unrouted,
        }
    }
}

/// Every condition's verdict, and the first that failed.
fn check_all(conditions: &[Condition], event: &EventDoc<'_>) -> (Vec<Check>, Option<Check>) {
    let checks: Vec<Check> = conditions.iter().map(|c| check(c, event)).collect();
    let failed = checks.iter().find(|c| !c.holds).cloned();
    (checks, failed)
}

/// A table of conditions as one verdict: it holds when all of them do.
fn check_table(conditions: &[Condition], event: &EventDoc<'_>) -> Check {
    let (branches, failed) = check_all(conditions, event);
    Check {
        condition: display::table(conditions),
        holds: failed.is_none(),
        found: None,
        branches,
    }
}

fn check(condition: &Condition, event: &EventDoc<'_>) -> Check {
    let tables = |tables: &[Vec<Condition>]| -> Vec<Check> {
        tables.iter().map(|t| check_table(t, event)).collect()
    };
    let (name, holds, branches) = match condition {
        Condition::Field(field) => {
            let found = field.path.lookup(event);
            return Check {
                condition: field.to_string(),
                holds: field.test.holds(found.as_deref()),
                found: Some(found.map_or(Found::Absent, |v| Found::Value(v.into_owned()))),
                branches: Vec::new(),
            };
        }
        Condition::Any(any) => {
            let branches = tables(any);
            ("any", branches.iter().any(|b| b.holds), branches)
        }
        Condition::All(all) => {
            let branches = tables(all);
            ("all", branches.iter().all(|b| b.holds), branches)
        }
        Condition::Not(table) => {
            let inner = check_table(table, event);
            ("not", !inner.holds, vec![inner])
        }
    };
    Check {
        condition: name.to_owned(),
        holds,
        found: None,
        branches,
    }
}

/// The properties of a structured-mode message carrying these AMQP headers, as
/// `dispatcher explain` and `POST /explain` build it.
pub fn message_properties(headers: &[(String, String)]) -> BasicProperties {
    let mut table = FieldTable::default();
    for (name, value) in headers {
        table.insert(
            name.as_str().into(),
            AMQPValue::LongString(value.as_str().into()),
        );
    }
    BasicProperties::default()
        .with_content_type(events::envelope::CONTENT_TYPE.into())
        .with_headers(table)
}
