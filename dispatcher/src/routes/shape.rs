//! Shaping what a route sends: templated routing keys of exchange targets and a route's
//! `headers`, compiled with the table ([`routing_key`], [`headers`], [`retry`]) and
//! rendered per event ([`RoutingTable::shape`]) only when a decision needs it.

use std::collections::BTreeMap;
use std::ops::Range;

use serde_spanned::Spanned;

use super::error::Problem;
use super::event::EventDoc;
use super::retry::{Retry, RetryFile};
use super::table::{Decision, RouteId, RoutingTable, Target, TargetId};
use super::template::{MissingField, Template, TemplateError};

/// Reason code of an event whose template needs a field it lacks (no default given).
pub const TEMPLATE_FIELD_MISSING: &str = "template_field_missing";

/// Prefix of the headers the dispatcher sets itself: a route may not add them.
const RESERVED_PREFIX: &str = "x-dispatch-";

/// Longest header name AMQP allows (a short string).
const MAX_HEADER_NAME: usize = 255;

/// One publish of a forwarded event to one target, as its routes shape it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shaped {
    pub target: TargetId,
    /// The rendered routing key, when the target's is a template.
    pub routing_key: Option<String>,
    /// The headers its routes add (name, value), in name order.
    pub headers: Vec<(String, String)>,
}

/// A template of a matched route needs a field the event lacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route `{route}`: the {what} {missing}")]
pub struct ShapeError {
    /// The route whose template failed.
    pub route: String,
    /// `routing key of exchange audit` or `header x-tenant`.
    pub what: String,
    pub missing: MissingField,
}

/// The routing key template of `target`: `None` for a queue, or a key without fields.
pub(super) fn routing_key(
    target: &Target,
    span: Range<usize>,
    text: &str,
) -> Result<Option<Template>, Problem> {
    let Target::Exchange { routing_key, .. } = target else {
        return Ok(None);
    };
    let template = Template::parse(routing_key).map_err(|e| {
        let at = string_offset(text, &span, routing_key, &e);
        Problem::at(at, format!("`routing_key` template: {}", e.message))
    })?;
    Ok((!template.is_static()).then_some(template))
}

/// A route's `headers`, each value compiled; problems at the name or the value.
pub(super) fn headers(
    route: &str,
    spec: Option<&Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    text: &str,
    problems: &mut Vec<Problem>,
) -> Vec<(String, Template)> {
    let Some(spec) = spec else {
        return Vec::new();
    };
    let mut headers = Vec::new();
    for (name, value) in spec.get_ref() {
        let shown = name.get_ref();
        if shown.is_empty() || shown.len() > MAX_HEADER_NAME {
            problems.push(Problem::at(
                name.span(),
                format!("route `{route}`: a header name must be 1 to {MAX_HEADER_NAME} bytes"),
            ));
            continue;
        }
        if shown.to_ascii_lowercase().starts_with(RESERVED_PREFIX) {
            problems.push(Problem::at(
                name.span(),
                format!("route `{route}`: header `{shown}`: names starting with `{RESERVED_PREFIX}` are set by the dispatcher"),
            ));
            continue;
        }
        match Template::parse(value.get_ref()) {
            Ok(template) => headers.push((shown.clone(), template)),
            Err(e) => {
                let at = string_offset(text, &value.span(), value.get_ref(), &e);
                problems.push(Problem::at(
                    at,
                    format!("header `{shown}` template: {}", e.message),
                ));
            }
        }
    }
    headers
}

/// A route's `retry`, validated.
pub(super) fn retry(spec: Option<&Spanned<RetryFile>>, problems: &mut Vec<Problem>) -> Retry {
    let Some(spec) = spec else {
        return Retry::default();
    };
    Retry::compile(spec.get_ref()).unwrap_or_else(|more| {
        problems.extend(more);
        Retry::default()
    })
}

/// Where in the file the template error is: inside the quoted string when it is written
/// plainly (no escapes), else at the value (or the target table) holding it.
fn string_offset(
    text: &str,
    span: &Range<usize>,
    template: &str,
    e: &TemplateError,
) -> Range<usize> {
    let quoted = format!("\"{template}\"");
    let found = text
        .get(span.clone())
        .and_then(|value| value.find(&quoted))
        .map(|i| span.start + i + 1 + e.offset);
    match found {
        Some(at) => at..at + 1,
        None => span.clone(),
    }
}

impl RoutingTable {
    /// Whether any route shapes what it sends (a templated key or `headers`): only then
    /// does the forwarder keep the event it read for rendering.
    pub fn has_shaping(&self) -> bool {
        self.shaping
    }

    /// Whether `decision` sends anything shaped (a templated key or a route's headers).
    pub fn shapes(&self, decision: &Decision) -> bool {
        decision
            .targets
            .iter()
            .any(|&t| self.keys.get(t).is_some_and(Option::is_some))
            || decision
                .routes
                .iter()
                .any(|&r| !self.routes[r].headers.is_empty())
    }

    /// The first matched route (file order) that lists `target`.
    pub fn route_of(&self, decision: &Decision, target: TargetId) -> Option<RouteId> {
        decision
            .routes
            .iter()
            .copied()
            .find(|&r| self.routes[r].targets.contains(&target))
    }

    /// Renders, for each target of `decision`, its routing key and the headers of the
    /// matched routes that list it (the first such route, in file order, wins a name).
    pub fn shape(
        &self,
        decision: &Decision,
        event: &EventDoc<'_>,
    ) -> Result<Vec<Shaped>, ShapeError> {
        let mut out = Vec::with_capacity(decision.targets.len());
        for &target in &decision.targets {
            let routing_key = match self.keys.get(target).and_then(Option::as_ref) {
                Some(template) => Some(template.render(event).map_err(|missing| {
                    let route = self
                        .route_of(decision, target)
                        .map_or("", |r| &self.routes[r].name);
                    ShapeError {
                        route: route.to_owned(),
                        what: format!(
                            "routing key of exchange {}",
                            self.targets[target].exchange()
                        ),
                        missing,
                    }
                })?),
                None => None,
            };
            let mut headers: Vec<(String, String)> = Vec::new();
            for &id in &decision.routes {
                let route = &self.routes[id];
                if !route.targets.contains(&target) {
                    continue;
                }
                for (name, template) in &route.headers {
                    if headers.iter().any(|(n, _)| n == name) {
                        continue;
                    }
                    let value = template.render(event).map_err(|missing| ShapeError {
                        route: route.name.clone(),
                        what: format!("header {name}"),
                        missing,
                    })?;
                    headers.push((name.clone(), value));
                }
            }
            out.push(Shaped {
                target,
                routing_key,
                headers,
            });
        }
        Ok(out)
    }
}

/// For a `[[test]]` case: an event the dispatcher would dead-letter because a template
/// of a matched route needs a field it lacks refuses the table.
pub(super) fn check_case(
    table: &RoutingTable,
    decision: &Decision,
    event: &EventDoc<'_>,
    shown: &str,
) -> Result<(), String> {
    if !table.shapes(decision) {
        return Ok(());
    }
    table.shape(decision, event).map(drop).map_err(|e| {
        format!(
            "event {shown}: {e}; the dispatcher would dead-letter it ({TEMPLATE_FIELD_MISSING})"
        )
    })
}

#[cfg(test)]
mod tests;
