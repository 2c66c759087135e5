//! `[[test]]` cases: example events and where they must go, checked by `dispatcher
//! check` and before every reload (a failing case refuses the table).

use std::convert::Infallible;

use events::envelope::check_type_length;
use lapin::types::{AMQPValue, FieldTable};
use serde_json::{Map, Value};

use super::error::Problem;
use super::event::EventDoc;
use super::file::{TargetSpec, TestSpec};
use super::table::{RoutingTable, Target};

/// Runs every case against `table`; one problem per failing case.
pub fn run(table: &RoutingTable, tests: &[TestSpec]) -> Vec<Problem> {
    tests
        .iter()
        .enumerate()
        .filter_map(|(i, test)| {
            check(table, test).err().map(|message| {
                let name = test
                    .name
                    .as_ref()
                    .map_or_else(|| format!("#{}", i + 1), |n| format!("`{n}`"));
                Problem::at(test.event.span(), format!("test {name} failed: {message}"))
            })
        })
        .collect()
}

fn check(table: &RoutingTable, test: &TestSpec) -> Result<(), String> {
    let mut attributes: Map<String, Value> = Map::new();
    let mut headers = FieldTable::default();
    for (key, value) in test.event.get_ref() {
        if key == "headers" {
            let toml::Value::Table(table) = value else {
                return Err("`headers` in a test event must be a table".to_owned());
            };
            for (name, value) in table {
                headers.insert(name.as_str().into(), to_amqp(value));
            }
        } else {
            attributes.insert(key.clone(), to_json(value));
        }
    }
    let Some(Value::String(event_type)) = attributes.get("type").cloned() else {
        return Err("the test event needs a `type` (a string)".to_owned());
    };
    // The dispatcher would dead-letter such an event before routing it.
    check_type_length(&event_type).map_err(|e| {
        format!(
            "the test event cannot be routed, the dispatcher dead-letters it ({}): {e}",
            e.reason()
        )
    })?;
    let shown = Value::Object(attributes.clone()).to_string();
    let doc = EventDoc::from_json(attributes, Some(&headers));
    let decision = match table.route(&event_type, || Ok::<_, Infallible>(doc.clone())) {
        Ok(decision) => decision,
        Err(never) => match never {},
    };
    super::shape::check_case(table, &decision, &doc, &shown)?;
    let mut actual: Vec<Target> = decision
        .targets
        .iter()
        .map(|&t| table.target(t).clone())
        .collect();
    if actual.is_empty() {
        actual.push(Target::Queue(table.unrouted.clone()));
    }
    let mut expected: Vec<Target> = test
        .expect
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
    let routes: Vec<&str> = decision
        .route_names
        .split(',')
        .filter(|n| !n.is_empty())
        .collect();
    let routes_shown = if routes.is_empty() {
        "no route matched".to_owned()
    } else {
        format!("matched routes: {}", routes.join(", "))
    };
    actual.sort();
    expected.sort();
    expected.dedup();
    if actual != expected {
        return Err(format!(
            "event {shown}: expected [{}], actual [{}] ({routes_shown})",
            join(&expected),
            join(&actual)
        ));
    }
    if let Some(expect_routes) = &test.expect_routes {
        let mut want: Vec<&str> = expect_routes.get_ref().iter().map(String::as_str).collect();
        let mut got = routes.clone();
        want.sort_unstable();
        got.sort_unstable();
        if want != got {
            return Err(format!(
                "event {shown}: expected routes [{}], actual [{}]",
                want.join(", "),
                got.join(", ")
            ));
        }
    }
    Ok(())
}

fn join(targets: &[Target]) -> String {
    targets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A TOML value as JSON (date-times become their RFC 3339 text).
pub fn to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        toml::Value::Table(table) => {
            Value::Object(table.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

fn to_amqp(value: &toml::Value) -> AMQPValue {
    match value {
        toml::Value::Integer(i) => AMQPValue::LongLongInt(*i),
        toml::Value::Float(f) => AMQPValue::Double(*f),
        toml::Value::Boolean(b) => AMQPValue::Boolean(*b),
        toml::Value::String(s) => AMQPValue::LongString(s.as_str().into()),
        other => AMQPValue::LongString(to_json(other).to_string().into()),
    }
}
