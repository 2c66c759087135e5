//! Why an event goes where it goes: each route's verdict, in file order, computed by a
//! plain scan of every route. `dispatcher explain` prints it, and the tests use it as
//! the reference that the indexed matcher must agree with.

use events::EnvelopeError;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use serde::Serialize;
use serde_json::Value;

use super::event::{EventDoc, Incoming};
use super::table::{RoutingTable, Target};

/// One route's verdict for one event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The type and every condition matched: the route's targets are used.
    Matched,
    /// No `event` entry matches the type.
    TypeMismatch,
    /// The type matched but this condition did not hold.
    ConditionFailed {
        /// The condition, e.g. `data.country = "FR"`.
        condition: String,
        /// The value found at its path (`None`: the path is missing).
        found: Option<Value>,
    },
    /// Not evaluated: an earlier matching route is `final`.
    SkippedAfterFinal {
        /// That route.
        after: String,
    },
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
        let mut table = FieldTable::default();
        for (name, value) in headers {
            table.insert(
                name.as_str().into(),
                AMQPValue::LongString(value.as_str().into()),
            );
        }
        let properties = BasicProperties::default()
            .with_content_type(events::envelope::CONTENT_TYPE.into())
            .with_headers(table);
        self.explain_message(&properties, body)
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
            } else if let Some(failed) = route.conditions.iter().find(|c| !c.holds(event)) {
                Verdict::ConditionFailed {
                    condition: failed.to_string(),
                    found: failed.path.lookup(event).map(|v| v.into_owned()),
                }
            } else {
                for &id in &route.targets {
                    let target = self.target(id);
                    if !targets.contains(target) {
                        targets.push(target.clone());
                    }
                }
                if route.is_final {
                    stopped_by = Some(&route.name);
                }
                Verdict::Matched
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
