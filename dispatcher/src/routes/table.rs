//! The compiled, immutable routing table and how an event is matched against it.
//!
//! Exact types are looked up in a hash map whose entries were resolved at compile time
//! (including the patterns that match that type); other types walk the pattern trie.
//! Every matching route contributes its targets, in route (file) order, each target
//! once; a matching `final` route stops the evaluation of later routes.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::condition::Condition;
use super::event::EventDoc;
use super::pattern::EventMatcher;
use super::retry::Retry;
use super::template::Template;
use super::trie::TopicTrie;

/// Index of a route in [`RoutingTable::routes`].
pub type RouteId = usize;
/// Index of a target in [`RoutingTable::targets`].
pub type TargetId = usize;

/// Where an event is published.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum Target {
    /// A queue, through the default exchange.
    Queue(String),
    /// An existing exchange with a routing key.
    Exchange {
        exchange: String,
        routing_key: String,
    },
}

impl Target {
    /// The exchange to publish to (`""`, the default exchange, for a queue).
    pub fn exchange(&self) -> &str {
        match self {
            Self::Queue(_) => "",
            Self::Exchange { exchange, .. } => exchange,
        }
    }

    /// The routing key to publish with (the queue name for a queue).
    pub fn routing_key(&self) -> &str {
        match self {
            Self::Queue(queue) => queue,
            Self::Exchange { routing_key, .. } => routing_key,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Queue(queue) => f.write_str(queue),
            Self::Exchange {
                exchange,
                routing_key,
            } => write!(f, "exchange {exchange} (key {routing_key:?})"),
        }
    }
}

/// One compiled route.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Unique name.
    pub name: String,
    /// The `event` entries as written.
    pub events: Vec<String>,
    /// The same, parsed.
    pub matchers: Vec<EventMatcher>,
    /// All must hold.
    pub conditions: Vec<Condition>,
    /// Targets, as indexes into the table's targets.
    pub targets: Vec<TargetId>,
    /// Stop evaluating later routes when this one matched.
    pub is_final: bool,
    /// Headers added to what it sends (name, value template), in name order.
    pub headers: Vec<(String, Template)>,
    /// How a refused publish to its targets is retried (the command line fills gaps).
    pub retry: Retry,
}

/// Where one event goes: the routes that matched and the union of their targets.
/// No route: the event goes to the table's `unrouted` queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Matching routes, in file order.
    pub routes: Vec<RouteId>,
    /// Their targets, each once, in order of first appearance.
    pub targets: Vec<TargetId>,
    /// The route names joined with `,` (the `x-dispatch-routes` header).
    pub route_names: String,
}

/// What is known about one exact type at compile time.
#[derive(Debug, Clone)]
pub(super) struct TypeEntry {
    /// Routes that may match (exact and pattern), sorted, deduplicated.
    pub candidates: Box<[RouteId]>,
    /// The decision, when no candidate has conditions.
    pub decision: Option<Arc<Decision>>,
    /// The decision when the conditions of every candidate it reaches hold (the common
    /// case), shared instead of built again for each event.
    pub all_hold: Arc<Decision>,
}

/// A compiled routing table. It cannot be invalid: it is only built by
/// [`super::compile`], which refuses every problem.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    /// The queue consumed.
    pub source: String,
    /// Where events that match no route go.
    pub unrouted: String,
    /// Where events that cannot be read go.
    pub dead_letter: String,
    pub(super) routes: Vec<Route>,
    pub(super) targets: Vec<Target>,
    pub(super) exact: HashMap<String, TypeEntry>,
    pub(super) patterns: TopicTrie,
    pub(super) pattern_routes: Vec<RouteId>,
    pub(super) unrouted_decision: Arc<Decision>,
    /// The stream every consumed event is appended to, when `[archive]` is set.
    pub archive: Option<super::archive::Archive>,
    /// Per target: the template of its routing key, when it has fields.
    pub(super) keys: Vec<Option<Template>>,
    /// Whether any target's key is a template or any route has `headers`.
    pub(super) shaping: bool,
}

impl RoutingTable {
    /// The routes, in file order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Every distinct target of every route.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// One target.
    pub fn target(&self, id: TargetId) -> &Target {
        &self.targets[id]
    }

    /// Routes an event of type `event_type`. `read_event` is called only when a
    /// candidate route has conditions (the full event is needed); its error is returned.
    /// A decision known at compile time is shared, not copied.
    pub fn route<'e, E>(
        &self,
        event_type: &str,
        read_event: impl FnOnce() -> Result<EventDoc<'e>, E>,
    ) -> Result<Arc<Decision>, E> {
        if let Some(entry) = self.exact.get(event_type) {
            if let Some(decision) = &entry.decision {
                return Ok(decision.clone());
            }
            let event = read_event()?;
            // The routes `all_hold` took are the candidates `decide` reaches when every
            // condition holds; if theirs do, `decide` would build that same decision.
            let holds = |&r: &RouteId| self.routes[r].conditions.iter().all(|c| c.holds(&event));
            if entry.all_hold.routes.iter().all(holds) {
                return Ok(entry.all_hold.clone());
            }
            return Ok(Arc::new(self.decide(&entry.candidates, Some(&event))));
        }
        if self.pattern_routes.is_empty() {
            return Ok(self.unrouted_decision.clone());
        }
        let mut candidates = Vec::new();
        self.patterns.collect(event_type, &mut candidates);
        if candidates.is_empty() {
            return Ok(self.unrouted_decision.clone());
        }
        candidates.sort_unstable();
        candidates.dedup();
        let needs_event = candidates
            .iter()
            .any(|&r| !self.routes[r].conditions.is_empty());
        let event = if needs_event {
            Some(read_event()?)
        } else {
            None
        };
        Ok(Arc::new(self.decide(&candidates, event.as_ref())))
    }

    /// Applies conditions and `final` to `candidates` (sorted route ids).
    pub(super) fn decide(&self, candidates: &[RouteId], event: Option<&EventDoc<'_>>) -> Decision {
        self.decide_by(candidates, |route| {
            route
                .conditions
                .iter()
                .all(|c| event.is_some_and(|e| c.holds(e)))
        })
    }

    /// The decision over `candidates` when the conditions of the routes `holds` says
    /// hold (and only theirs).
    pub(super) fn decide_by(
        &self,
        candidates: &[RouteId],
        holds: impl Fn(&Route) -> bool,
    ) -> Decision {
        let mut decision = Decision::default();
        for &id in candidates {
            let route = &self.routes[id];
            if !holds(route) {
                continue;
            }
            decision.routes.push(id);
            for &target in &route.targets {
                if !decision.targets.contains(&target) {
                    decision.targets.push(target);
                }
            }
            if route.is_final {
                break;
            }
        }
        decision.route_names = self.route_names(&decision.routes);
        decision
    }

    fn route_names(&self, routes: &[RouteId]) -> String {
        let names: Vec<&str> = routes
            .iter()
            .map(|&r| self.routes[r].name.as_str())
            .collect();
        names.join(",")
    }

    /// Every queue this table publishes to (targets, `unrouted`, `dead_letter`), once.
    pub fn queues(&self) -> Vec<&str> {
        let mut queues: Vec<&str> = self
            .targets
            .iter()
            .filter_map(|t| match t {
                Target::Queue(q) => Some(q.as_str()),
                Target::Exchange { .. } => None,
            })
            .collect();
        queues.push(&self.unrouted);
        queues.push(&self.dead_letter);
        queues.sort_unstable();
        queues.dedup();
        queues
    }

    /// Every exchange this table publishes to, once.
    pub fn exchanges(&self) -> Vec<&str> {
        let mut exchanges: Vec<&str> = self
            .targets
            .iter()
            .filter_map(|t| match t {
                Target::Exchange { exchange, .. } => Some(exchange.as_str()),
                Target::Queue(_) => None,
            })
            .collect();
        exchanges.sort_unstable();
        exchanges.dedup();
        exchanges
    }
}
