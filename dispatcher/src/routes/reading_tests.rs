//! One reading of a message whatever the table: a structured body is readable or not,
//! with one reason, whether no route has a `where`, one does, or `dispatcher explain`
//! reads it; and the type limit applies before any matching.

use std::sync::Arc;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use proptest::prelude::*;

use super::event::Incoming;
use super::table::Decision;
use super::*;

fn table(text: &str) -> RoutingTable {
    load("routes.toml", text).unwrap_or_else(|e| panic!("{e}"))
}

/// The three kinds of table a body can meet: exact type without `where`, exact type
/// with a `where`, and a pattern with a `where`.
fn tables() -> [(&'static str, RoutingTable); 3] {
    [
        (
            "no where",
            table("[[route]]\nname = \"r\"\nevent = \"t\"\nto = [\"q\"]\n"),
        ),
        (
            "where",
            table(
                "[[route]]\nname = \"r\"\nevent = \"t\"\nwhere = { \"data.n\" = { exists = true } }\nto = [\"q\"]\n",
            ),
        ),
        (
            "pattern and where",
            table(
                "[[route]]\nname = \"r\"\nevent = \"#\"\nwhere = { \"source\" = { exists = false } }\nto = [\"q\"]\n",
            ),
        ),
    ]
}

/// The targets (the `unrouted` queue when none), or the dead-letter reason.
type Fate = Result<Vec<String>, &'static str>;

fn targets(table: &RoutingTable, decision: &Decision) -> Vec<String> {
    if decision.targets.is_empty() {
        return vec![table.unrouted.clone()];
    }
    let mut names: Vec<String> = decision
        .targets
        .iter()
        .map(|&t| table.target(t).to_string())
        .collect();
    names.sort();
    names
}

/// What the forwarder does with a delivery (`forward::plan`): read the type, route,
/// read the rest only when a candidate route has a `where`.
fn live(table: &RoutingTable, properties: &BasicProperties, body: &[u8]) -> Fate {
    let decision: Result<Arc<Decision>, _> = Incoming::read(properties, body)
        .and_then(|incoming| table.route(&incoming.event_type, || incoming.doc.read()));
    decision.map(|d| targets(table, &d)).map_err(|e| e.reason())
}

/// What `dispatcher explain` says about the same message.
fn explained(table: &RoutingTable, properties: &BasicProperties, body: &[u8]) -> Fate {
    table
        .explain_message(properties, body)
        .map(|e| {
            let mut names: Vec<String> = e.targets.iter().map(ToString::to_string).collect();
            names.sort();
            names
        })
        .map_err(|e| e.reason())
}

fn structured() -> BasicProperties {
    BasicProperties::default().with_content_type("application/cloudevents+json".into())
}

/// The fate of `body` in every table and in `explain`, checked to be one.
fn one_fate(properties: &BasicProperties, body: &[u8]) -> Fate {
    let [(_, first), ..] = tables();
    let fate = live(&first, properties, body);
    for (kind, table) in tables() {
        let here = live(&table, properties, body);
        assert_eq!(
            here.is_err(),
            fate.is_err(),
            "{kind}: {here:?} vs {fate:?} for {}",
            String::from_utf8_lossy(body)
        );
        if let Err(reason) = here {
            assert_eq!(Err(reason), fate, "{kind}");
        }
        assert_eq!(
            explained(&table, properties, body),
            here,
            "{kind}: explain disagrees"
        );
    }
    fate
}

#[test]
fn a_readable_event_is_routed_by_every_table_and_explained_alike() {
    let body = br#"{"specversion":"1.0","id":"1","type":"t","data":{"n":1}}"#;
    assert_eq!(one_fate(&structured(), body), Ok(vec!["q".to_owned()]));
}

#[test]
fn invalid_utf8_in_a_string_is_not_json_in_every_path() {
    let bodies: [&[u8]; 3] = [
        b"{\"specversion\":\"1.0\",\"type\":\"t\",\"data\":{\"n\":\"\xff\xfe\"}}",
        b"{\"specversion\":\"1.0\",\"type\":\"t\",\"subject\":\"\xed\xa0\x80\"}",
        b"{\"specversion\":\"1.0\",\"type\":\"t\",\"x\":[\"\xc3\"]}",
    ];
    for body in bodies {
        assert_eq!(one_fate(&structured(), body), Err("not_json"));
        // Also without a content type (a plain JSON body).
        assert_eq!(one_fate(&BasicProperties::default(), body), Err("not_json"));
    }
}

#[test]
fn a_repeated_member_name_is_not_json_in_every_path() {
    for body in [
        r#"{"specversion":"1.0","type":"t","data":{"n":1,"n":2}}"#,
        r#"{"specversion":"1.0","type":"t","data":{"n":1},"data":{"n":2}}"#,
        r#"{"specversion":"1.0","type":"t","type":"t"}"#,
        r#"{"specversion":"1.0","type":"t","data":[[{"k":1,"k":1}]]}"#,
    ] {
        assert_eq!(
            one_fate(&structured(), body.as_bytes()),
            Err("not_json"),
            "{body}"
        );
    }
}

#[test]
fn a_json_array_is_not_an_object_in_every_path() {
    assert_eq!(
        one_fate(&structured(), br#"["1.0","t"]"#),
        Err("not_an_object")
    );
}

#[test]
fn an_over_long_type_is_dead_lettered_before_any_matching_in_every_path() {
    let long = vec!["x"; 30_000].join(".");
    let body = format!(r#"{{"specversion":"1.0","type":"{long}"}}"#);
    assert_eq!(
        one_fate(&structured(), body.as_bytes()),
        Err("type_too_long")
    );
    let over = "t".repeat(256);
    let body = format!(r#"{{"specversion":"1.0","type":"{over}"}}"#);
    assert_eq!(
        one_fate(&structured(), body.as_bytes()),
        Err("type_too_long")
    );
}

#[test]
fn a_binary_event_with_ce_headers_is_routed_in_every_path() {
    let mut headers = FieldTable::default();
    for (name, value) in [("ce-type", "t"), ("ce-id", "1"), ("ce-specversion", "1.0")] {
        headers.insert(name.into(), AMQPValue::LongString(value.into()));
    }
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_headers(headers);
    assert_eq!(one_fate(&props, br#"{"n":1}"#), Ok(vec!["q".to_owned()]));
}

#[test]
fn a_test_case_with_an_over_long_type_refuses_the_table_at_the_case() {
    let over = "t".repeat(256);
    let text = format!(
        "[[route]]\nname = \"r\"\nevent = \"#\"\nto = [\"q\"]\n\n[[test]]\nevent = {{ type = \"{over}\" }}\nexpect = [\"q\"]\n"
    );
    let errors = load("routes.toml", &text).expect_err("refused").0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].line, errors[0].column), (7, 9));
    assert!(
        errors[0].message.contains("type_too_long"),
        "{}",
        errors[0].message
    );
}

#[test]
fn a_route_whose_type_could_never_fit_is_refused_at_the_entry() {
    let text = format!(
        "[[route]]\nname = \"r\"\nevent = [\"ok\", \"{}\"]\nto = [\"q\"]\n",
        "t".repeat(256)
    );
    let errors = load("routes.toml", &text).expect_err("refused").0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].line, errors[0].column), (3, 16));
    assert!(
        errors[0].message.contains("could never match"),
        "{}",
        errors[0].message
    );
}

/// A valid event body with `noise` spliced in at `at`.
fn spliced(noise: &[u8], at: prop::sample::Index, data: &str) -> Vec<u8> {
    let mut body = format!(r#"{{"specversion":"1.0","type":"t","data":{data}}}"#).into_bytes();
    let at = at.index(body.len() + 1);
    body.splice(at..at, noise.iter().copied());
    body
}

proptest! {
    #[test]
    fn whatever_the_bytes_every_table_and_explain_agree(
        noise in proptest::collection::vec(prop_oneof![
            Just(b'"'), Just(b','), Just(b'{'), Just(b'}'), Just(b'\xff'), Just(b'\xc3'),
            Just(b'a'), Just(b':'), Just(b'['),
        ], 0..4),
        at in any::<prop::sample::Index>(),
        data in prop_oneof![
            Just(r#"{"n":1}"#), Just(r#"{"n":"é","m":[1,{"a":2}]}"#), Just("[]"), Just("\"x\""),
        ],
    ) {
        let body = spliced(&noise, at, data);
        let _ = one_fate(&structured(), &body);
    }
}
