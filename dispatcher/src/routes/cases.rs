//! `[[test]]` cases: example events and where they must go, checked by `dispatcher
//! check` and before every reload (a failing case refuses the table).
//!
//! A case says `expect` (exactly these destinations), `includes` (at least these) or
//! `excludes` (none of these), or several of them. A failing case is reported at the
//! line that failed, with the one-line change that would make it pass, for when the new
//! routing is what was intended.

use std::convert::Infallible;
use std::ops::Range;

use events::envelope::check_type_length;
use serde_json::Value;
use serde_spanned::Spanned;

use super::error::Problem;
use super::event::EventDoc;
use super::file::{TargetSpec, TestSpec};
use super::table::{RoutingTable, Target};
use event::read_event;
pub use event::{to_json, with_property};

/// Runs every case against `table`; one problem per failing case.
pub fn run(table: &RoutingTable, tests: &[TestSpec]) -> Vec<Problem> {
    tests
        .iter()
        .enumerate()
        .filter_map(|(i, test)| {
            check(table, test).err().map(|(span, message)| {
                let name = test
                    .name
                    .as_ref()
                    .map_or_else(|| format!("#{}", i + 1), |n| format!("`{n}`"));
                Problem::at(span, format!("test {name} failed: {message}"))
            })
        })
        .collect()
}

/// Where an event went, as a test compares it.
struct Outcome {
    /// The destinations, sorted (the `unrouted` queue when no route matched).
    targets: Vec<Target>,
    /// The matched routes.
    routes: Vec<String>,
}

type Failure = (Range<usize>, String);

fn check(table: &RoutingTable, test: &TestSpec) -> Result<(), Failure> {
    let at_event = |m: String| (test.event.span(), m);
    let (attributes, properties) = read_event(test.event.get_ref()).map_err(at_event)?;
    let Some(Value::String(event_type)) = attributes.get("type").cloned() else {
        return Err(at_event(
            "the test event needs a `type` (a string)".to_owned(),
        ));
    };
    // The dispatcher would dead-letter such an event before routing it.
    check_type_length(&event_type).map_err(|e| {
        at_event(format!(
            "the test event cannot be routed, the dispatcher dead-letters it ({}): {e}",
            e.reason()
        ))
    })?;
    if test.expect.is_none() && test.includes.is_none() && test.excludes.is_none() {
        return Err(at_event(
            "a test says where its event goes: `expect = [...]` (exactly these), \
             `includes = [...]` (at least these) or `excludes = [...]` (none of these)"
                .to_owned(),
        ));
    }
    let shown = Value::Object(attributes.clone()).to_string();
    let doc = EventDoc::from_json(attributes, None).with_properties(&properties);
    let outcome = route(table, &event_type, doc, &shown).map_err(at_event)?;
    let fail = |span: Range<usize>, m: String| (span, format!("event {shown}: {m}"));
    if let Some(expect) = &test.expect {
        expect_exactly(expect, &outcome).map_err(|m| fail(expect.span(), m))?;
    }
    if let Some(includes) = &test.includes {
        expect_included(includes, &outcome).map_err(|m| fail(includes.span(), m))?;
    }
    if let Some(excludes) = &test.excludes {
        expect_excluded(excludes, &outcome).map_err(|m| fail(excludes.span(), m))?;
    }
    if let Some(expect_routes) = &test.expect_routes {
        let mut want: Vec<&str> = expect_routes.get_ref().iter().map(String::as_str).collect();
        let mut got: Vec<&str> = outcome.routes.iter().map(String::as_str).collect();
        want.sort_unstable();
        got.sort_unstable();
        if want != got {
            let fix = got
                .iter()
                .map(|r| toml_string(r))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(fail(
                expect_routes.span(),
                format!(
                    "expected routes [{}], actual [{}]; if this is intended, write: expect_routes = [{fix}]",
                    want.join(", "),
                    got.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Routes the event as the dispatcher would; refuses it when a template of a target it
/// reaches lacks a field (the dispatcher would dead-letter it).
fn route(
    table: &RoutingTable,
    event_type: &str,
    doc: EventDoc<'_>,
    shown: &str,
) -> Result<Outcome, String> {
    let decision = match table.route(event_type, || Ok::<_, Infallible>(doc.clone())) {
        Ok(decision) => decision,
        Err(never) => match never {},
    };
    super::shape::check_case(table, &decision, &doc, shown)?;
    let mut targets: Vec<Target> = decision
        .targets
        .iter()
        .map(|&t| table.target(t).clone())
        .collect();
    if targets.is_empty() {
        targets.push(Target::Queue(table.unrouted.clone()));
    }
    targets.sort();
    Ok(Outcome {
        targets,
        routes: decision
            .route_names
            .split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

fn expect_exactly(
    expect: &Spanned<Vec<Spanned<TargetSpec>>>,
    outcome: &Outcome,
) -> Result<(), String> {
    let expected = targets(expect);
    if expected == outcome.targets {
        return Ok(());
    }
    Err(format!(
        "expected [{}], actual [{}] ({}); if this is intended, write: expect = [{}]",
        join(&expected),
        join(&outcome.targets),
        outcome.routes_shown(),
        toml_list(&outcome.targets)
    ))
}

fn expect_included(
    includes: &Spanned<Vec<Spanned<TargetSpec>>>,
    outcome: &Outcome,
) -> Result<(), String> {
    let wanted = targets(includes);
    let (kept, missing): (Vec<Target>, Vec<Target>) = wanted
        .into_iter()
        .partition(|t| outcome.targets.contains(t));
    if missing.is_empty() {
        return Ok(());
    }
    let fix = if kept.is_empty() {
        format!("expect = [{}]", toml_list(&outcome.targets))
    } else {
        format!("includes = [{}]", toml_list(&kept))
    };
    Err(format!(
        "does not reach [{}], which `includes` lists; actual [{}] ({}); if this is intended, write: {fix}",
        join(&missing),
        join(&outcome.targets),
        outcome.routes_shown()
    ))
}

fn expect_excluded(
    excludes: &Spanned<Vec<Spanned<TargetSpec>>>,
    outcome: &Outcome,
) -> Result<(), String> {
    let unwanted = targets(excludes);
    let (reached, kept): (Vec<Target>, Vec<Target>) = unwanted
        .into_iter()
        .partition(|t| outcome.targets.contains(t));
    if reached.is_empty() {
        return Ok(());
    }
    let fix = if kept.is_empty() {
        "delete the `excludes` line".to_owned()
    } else {
        format!("write: excludes = [{}]", toml_list(&kept))
    };
    Err(format!(
        "reaches [{}], which `excludes` lists; actual [{}] ({}); if this is intended, {fix}",
        join(&reached),
        join(&outcome.targets),
        outcome.routes_shown()
    ))
}

impl Outcome {
    fn routes_shown(&self) -> String {
        if self.routes.is_empty() {
            "no route matched".to_owned()
        } else {
            format!("matched routes: {}", self.routes.join(", "))
        }
    }
}

/// The targets a test names, sorted and each once.
fn targets(specs: &Spanned<Vec<Spanned<TargetSpec>>>) -> Vec<Target> {
    let mut targets: Vec<Target> = specs
        .get_ref()
        .iter()
        .map(|t| match t.get_ref() {
            TargetSpec::Queue(q) => Target::Queue(q.clone()),
            TargetSpec::Exchange {
                exchange,
                routing_key,
            } => Target::Exchange {
                exchange: exchange.clone(),
                routing_key: routing_key.clone(),
            },
        })
        .collect();
    targets.sort();
    targets.dedup();
    targets
}

fn join(targets: &[Target]) -> String {
    targets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Targets as they are written in `to`, for a line the user can paste.
fn toml_list(targets: &[Target]) -> String {
    targets
        .iter()
        .map(|t| match t {
            Target::Queue(q) => toml_string(q),
            Target::Exchange {
                exchange,
                routing_key,
            } if routing_key.is_empty() => format!("{{ exchange = {} }}", toml_string(exchange)),
            Target::Exchange {
                exchange,
                routing_key,
            } => format!(
                "{{ exchange = {}, routing_key = {} }}",
                toml_string(exchange),
                toml_string(routing_key)
            ),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

mod event;

#[cfg(test)]
mod tests;
