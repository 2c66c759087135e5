//! Validation and compilation of a [`RoutesFile`] into a [`RoutingTable`]: every problem
//! is collected with its position; only a table with none is built.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use events::defaults::{QUEUE_DISPATCH, QUEUE_DISPATCH_DEAD, QUEUE_UNROUTED};
use serde_spanned::Spanned;

use super::archive;
use super::condition::{Condition, read_where};
use super::error::{Problem, line_column};
use super::file::{RouteSpec, RoutesFile, TargetSpec};
use super::pattern::{self, EventMatcher};
use super::shape;
use super::table::{Decision, Route, RouteId, RoutingTable, Target, TargetId, TypeEntry};
use super::template::Template;
use super::trie::TopicTrie;

/// Longest queue or exchange name AMQP 0-9-1 allows (a short string).
const MAX_NAME: usize = 255;

/// Builds the table, or returns every problem found.
pub fn compile(file: &RoutesFile, text: &str) -> Result<RoutingTable, Vec<Problem>> {
    let mut problems = Vec::new();
    let source = queue_setting(&file.source, QUEUE_DISPATCH, "source", &mut problems);
    let unrouted = queue_setting(&file.unrouted, QUEUE_UNROUTED, "unrouted", &mut problems);
    let dead_letter = queue_setting(
        &file.dead_letter,
        QUEUE_DISPATCH_DEAD,
        "dead_letter",
        &mut problems,
    );
    if let Some(span) = [&file.unrouted, &file.dead_letter]
        .into_iter()
        .flatten()
        .find(|q| q.get_ref() == &source)
        .map(Spanned::span)
    {
        problems.push(Problem::at(
            span,
            format!("`{source}` is the source queue: sending events back to it would loop"),
        ));
    }
    let mut builder = Builder {
        text,
        source,
        targets: Vec::new(),
        keys: Vec::new(),
        target_ids: HashMap::new(),
        names: HashMap::new(),
        problems,
    };
    let routes: Vec<Route> = file
        .routes
        .iter()
        .filter_map(|spec| builder.route(spec))
        .collect();
    let archive = file.archive.as_ref().and_then(|spec| {
        let taken = [&builder.source, &unrouted, &dead_letter];
        archive::compile(spec, &taken, &builder.targets, &mut builder.problems)
    });
    if !builder.problems.is_empty() {
        return Err(builder.problems);
    }
    let mut table = index(
        builder.source,
        unrouted,
        dead_letter,
        routes,
        builder.targets,
    );
    table.archive = archive;
    table.shaping = builder.keys.iter().any(Option::is_some)
        || table.routes.iter().any(|r| !r.headers.is_empty());
    table.keys = builder.keys;
    Ok(table)
}

struct Builder<'t> {
    text: &'t str,
    source: String,
    targets: Vec<Target>,
    /// Per target: its routing key's template, when it has fields.
    keys: Vec<Option<Template>>,
    target_ids: HashMap<Target, TargetId>,
    names: HashMap<String, Range<usize>>,
    problems: Vec<Problem>,
}

impl Builder<'_> {
    fn route(&mut self, spec: &RouteSpec) -> Option<Route> {
        let before = self.problems.len();
        let name = self.name(&spec.name);
        let events = spec.event.get_ref().items(spec.event.span());
        if events.is_empty() {
            self.problems.push(Problem::at(
                spec.event.span(),
                format!("route `{name}`: `event` is an empty list, so the route can never match"),
            ));
        }
        let matchers: Vec<EventMatcher> = events
            .iter()
            .filter_map(|(text, span)| {
                pattern::parse(text)
                    .map_err(|e| self.problems.push(Problem::at(span.clone(), e)))
                    .ok()
            })
            .collect();
        let conditions = self.conditions(spec);
        let targets = self.targets(&name, &spec.to);
        let headers = shape::headers(&name, spec.headers.as_ref(), self.text, &mut self.problems);
        let retry = shape::retry(spec.retry.as_ref(), &mut self.problems);
        (self.problems.len() == before).then(|| Route {
            name,
            events: events.into_iter().map(|(text, _)| text).collect(),
            matchers,
            conditions,
            targets,
            is_final: spec.is_final,
            headers,
            retry,
        })
    }

    fn name(&mut self, name: &Spanned<String>) -> String {
        let text = name.get_ref().trim().to_owned();
        if text.is_empty() {
            self.problems
                .push(Problem::at(name.span(), "a route name must not be empty"));
        } else if text.contains(',') {
            self.problems.push(Problem::at(
                name.span(),
                format!("route name `{text}` contains `,`, which separates names in the x-dispatch-routes header"),
            ));
        } else if let Some(first) = self.names.get(&text) {
            self.problems.push(Problem::at(
                name.span(),
                {
                    let (line, column) = line_column(self.text, first.start);
                    format!(
                        "duplicate route name `{text}` (first used at line {line}, column {column}); route names must be unique"
                    )
                },
            ));
        } else {
            self.names.insert(text.clone(), name.span());
        }
        text
    }

    fn conditions(&mut self, spec: &RouteSpec) -> Vec<Condition> {
        let Some(filter) = &spec.filter else {
            return Vec::new();
        };
        let entries = filter
            .get_ref()
            .iter()
            .map(|(key, value)| (key.get_ref().as_str(), key.span(), value));
        read_where(self.text, entries)
            .map_err(|problems| self.problems.extend(problems))
            .unwrap_or_default()
    }

    fn targets(&mut self, route: &str, to: &Spanned<Vec<Spanned<TargetSpec>>>) -> Vec<TargetId> {
        if to.get_ref().is_empty() {
            self.problems.push(Problem::at(
                to.span(),
                format!("route `{route}`: `to` is empty; list at least one queue or exchange"),
            ));
        }
        let mut ids = Vec::new();
        for spec in to.get_ref() {
            let Some(target) = self.target(spec) else {
                continue;
            };
            let key = match shape::routing_key(&target, spec.span(), self.text) {
                Ok(key) => key,
                Err(problem) => {
                    self.problems.push(problem);
                    continue;
                }
            };
            let next = self.targets.len();
            let id = *self.target_ids.entry(target.clone()).or_insert(next);
            if id == next {
                self.targets.push(target);
                self.keys.push(key);
            }
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    fn target(&mut self, spec: &Spanned<TargetSpec>) -> Option<Target> {
        let result = match spec.get_ref() {
            TargetSpec::Queue(queue) if queue == &self.source => Err(format!(
                "`{queue}` is the source queue: routing events back to it would loop forever"
            )),
            TargetSpec::Queue(queue) => {
                check_name(queue, "queue").map(|()| Target::Queue(queue.clone()))
            }
            TargetSpec::Exchange { exchange, .. } if exchange.is_empty() => Err(
                "`exchange = \"\"` is the default exchange: name the queue directly instead"
                    .to_owned(),
            ),
            TargetSpec::Exchange {
                exchange,
                routing_key,
            } => check_name(exchange, "exchange").map(|()| Target::Exchange {
                exchange: exchange.clone(),
                routing_key: routing_key.clone(),
            }),
        };
        result
            .map_err(|e| self.problems.push(Problem::at(spec.span(), e)))
            .ok()
    }
}

fn queue_setting(
    value: &Option<Spanned<String>>,
    default: &str,
    key: &str,
    problems: &mut Vec<Problem>,
) -> String {
    let Some(value) = value else {
        return default.to_owned();
    };
    if let Err(e) = check_name(value.get_ref(), "queue") {
        problems.push(Problem::at(value.span(), format!("`{key}`: {e}")));
    }
    value.get_ref().clone()
}

fn check_name(name: &str, what: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        Err(format!("a {what} name must not be empty"))
    } else if name.len() > MAX_NAME {
        Err(format!(
            "{what} name is {} bytes long; AMQP allows {MAX_NAME}",
            name.len()
        ))
    } else if name.starts_with("amq.") && what == "queue" {
        Err(format!(
            "queue names starting with `amq.` are reserved by the broker: `{name}`"
        ))
    } else {
        Ok(())
    }
}

/// Builds the lookup structures: a trie of patterns, and per exact type the sorted
/// candidates (exact routes plus the patterns matching that type), pre-decided when no
/// candidate has conditions.
fn index(
    source: String,
    unrouted: String,
    dead_letter: String,
    routes: Vec<Route>,
    targets: Vec<Target>,
) -> RoutingTable {
    let mut patterns = TopicTrie::default();
    let mut pattern_routes = Vec::new();
    let mut exact_routes: HashMap<String, Vec<RouteId>> = HashMap::new();
    for (id, route) in routes.iter().enumerate() {
        for matcher in &route.matchers {
            match matcher {
                EventMatcher::Exact(ty) => exact_routes.entry(ty.clone()).or_default().push(id),
                EventMatcher::Pattern(words) => {
                    patterns.insert(words, id);
                    pattern_routes.push(id);
                }
            }
        }
    }
    pattern_routes.dedup();
    let mut table = RoutingTable {
        source,
        unrouted,
        dead_letter,
        routes,
        targets,
        exact: HashMap::with_capacity(exact_routes.len()),
        patterns,
        pattern_routes,
        unrouted_decision: Arc::new(Decision::default()),
        archive: None,
        keys: Vec::new(),
        shaping: false,
    };
    let mut scratch = Vec::new();
    for (ty, mut candidates) in exact_routes {
        scratch.clear();
        table.patterns.collect(&ty, &mut scratch);
        candidates.extend_from_slice(&scratch);
        candidates.sort_unstable();
        candidates.dedup();
        let static_decision = candidates
            .iter()
            .all(|&r| table.routes[r].conditions.is_empty());
        let decision = static_decision.then(|| Arc::new(table.decide(&candidates, None)));
        let all_hold = Arc::new(table.decide_by(&candidates, |_| true));
        table.exact.insert(
            ty,
            TypeEntry {
                candidates: candidates.into_boxed_slice(),
                decision,
                all_hold,
            },
        );
    }
    table
}
