//! Which tapped events one watcher wants: `?route=`, `?type=` (a topic pattern, as in
//! routes.toml), `?outcome=`, and whether it wants the bodies (`?body=true`).

use serde::Deserialize;

use super::{OUTCOMES, TapEvent};
use crate::routes::pattern::{self, EventMatcher};

/// The query string of `GET /tap`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapQuery {
    /// Only events that this route matched.
    pub route: Option<String>,
    /// Only events whose type matches this pattern (`user.*`, `order.#`).
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// Only events with this outcome: `forwarded`, `unrouted` or `dead_lettered`.
    pub outcome: Option<String>,
    /// Include the body, cut to 4 kB.
    #[serde(default)]
    pub body: bool,
}

/// A parsed [`TapQuery`].
#[derive(Debug)]
pub struct TapFilter {
    route: Option<String>,
    event_type: Option<EventMatcher>,
    outcome: Option<&'static str>,
    /// Whether the watcher wants the bodies.
    pub body: bool,
}

impl TapFilter {
    /// Parses the query; the error is a sentence for the caller.
    pub fn parse(query: TapQuery) -> Result<Self, String> {
        let event_type = query
            .event_type
            .as_deref()
            .map(pattern::parse)
            .transpose()?;
        let outcome = query
            .outcome
            .as_deref()
            .map(|given| {
                OUTCOMES.into_iter().find(|o| *o == given).ok_or_else(|| {
                    format!(
                        "unknown outcome `{given}`: use one of {}",
                        OUTCOMES.join(", ")
                    )
                })
            })
            .transpose()?;
        Ok(Self {
            route: query.route,
            event_type,
            outcome,
            body: query.body,
        })
    }

    /// Whether the watcher wants `event`.
    pub fn admits(&self, event: &TapEvent) -> bool {
        self.route
            .as_ref()
            .is_none_or(|route| event.routes.contains(route))
            && self
                .event_type
                .as_ref()
                .is_none_or(|matcher| matcher.matches(&event.event_type))
            && self.outcome.is_none_or(|outcome| outcome == event.outcome)
    }
}
