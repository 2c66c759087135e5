//! Table-level tests: validation with positions, matching semantics, `[[test]]` cases,
//! and the indexed matcher against the plain scan of [`RoutingTable::explain`].

use std::convert::Infallible;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;

fn table(text: &str) -> RoutingTable {
    load("routes.toml", text).unwrap_or_else(|e| panic!("{e}"))
}

fn errors(text: &str) -> Vec<RouteError> {
    load("routes.toml", text)
        .expect_err("the table should be refused")
        .0
}

/// The single error mentioning `needle`, as `line:col: message`.
fn error_at(text: &str, needle: &str) -> (usize, usize) {
    let all = errors(text);
    let found: Vec<&RouteError> = all.iter().filter(|e| e.message.contains(needle)).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one error with {needle:?}: {all:#?}"
    );
    (found[0].line, found[0].column)
}

fn event(ty: &str, data: Value) -> Map<String, Value> {
    let Value::Object(map) =
        json!({"specversion": "1.0", "id": "1", "source": "s", "type": ty, "data": data})
    else {
        unreachable!()
    };
    map
}

/// Target names the indexed matcher picks, `unrouted` queue when none.
fn route(table: &RoutingTable, ty: &str, data: Value) -> Vec<String> {
    let doc = EventDoc::from_json(event(ty, data), None);
    let decision = match table.route(ty, || Ok::<_, Infallible>(doc.clone())) {
        Ok(d) => d,
        Err(never) => match never {},
    };
    if decision.targets.is_empty() {
        return vec![table.unrouted.clone()];
    }
    decision
        .targets
        .iter()
        .map(|&t| table.target(t).to_string())
        .collect()
}

const ROUTE: &str = "[[route]]\nname = \"r\"\nevent = \"a\"\nto = [\"q\"]\n";

#[test]
fn defaults_apply_when_queues_are_not_named() {
    let t = table(ROUTE);
    assert_eq!(
        (
            t.source.as_str(),
            t.unrouted.as_str(),
            t.dead_letter.as_str()
        ),
        ("queue_dispatch", "queue_unrouted", "queue_dispatch.dead")
    );
    assert_eq!(
        t.queues(),
        vec!["q", "queue_dispatch.dead", "queue_unrouted"]
    );
}

#[test]
fn empty_to_is_rejected_with_line_and_column() {
    let text = "[[route]]\nname = \"r\"\nevent = \"a\"\nto = []\n";
    assert_eq!(error_at(text, "`to` is empty"), (4, 6));
}

#[test]
fn an_empty_event_list_is_rejected() {
    let text = "[[route]]\nname = \"r\"\nevent = []\nto = [\"q\"]\n";
    assert_eq!(error_at(text, "can never match"), (3, 9));
}

#[test]
fn duplicate_names_are_rejected_at_the_second_one() {
    let text = format!("{ROUTE}{ROUTE}");
    assert_eq!(error_at(&text, "duplicate route name `r`"), (6, 8));
}

#[test]
fn an_empty_or_comma_name_is_rejected() {
    let text = "[[route]]\nname = \" \"\nevent = \"a\"\nto = [\"q\"]\n";
    assert_eq!(error_at(text, "must not be empty"), (2, 8));
    let text = "[[route]]\nname = \"a,b\"\nevent = \"a\"\nto = [\"q\"]\n";
    error_at(text, "contains `,`");
}

#[test]
fn bad_patterns_are_rejected_at_the_pattern() {
    let text = "[[route]]\nname = \"r\"\nevent = [\"ok\", \"user*\"]\nto = [\"q\"]\n";
    assert_eq!(error_at(text, "whole words"), (3, 16));
}

#[test]
fn unknown_operators_are_rejected_at_the_operator() {
    let text = "[[route]]\nname = \"r\"\nevent = \"a\"\nwhere = { \"data.x\" = { gtee = 1 } }\nto = [\"q\"]\n";
    assert_eq!(error_at(text, "unknown operator `gtee`"), (4, 31));
}

#[test]
fn unknown_paths_are_rejected_at_the_key() {
    let text = "[[route]]\nname = \"r\"\nevent = \"a\"\nwhere = { \"Dta.x\" = 1 }\nto = [\"q\"]\n";
    assert_eq!(error_at(text, "unknown path `Dta.x`"), (4, 11));
    // A lowercase name is an extension attribute, which has no fields.
    let text = "[[route]]\nname = \"r\"\nevent = \"a\"\nwhere = { \"dta.x\" = 1 }\nto = [\"q\"]\n";
    assert_eq!(error_at(text, "`dta` is a plain attribute"), (4, 11));
}

#[test]
fn a_route_to_the_source_queue_is_refused_as_a_loop() {
    let text = "[[route]]\nname = \"r\"\nevent = \"a\"\nto = [\"queue_dispatch\"]\n";
    assert_eq!(error_at(text, "loop"), (4, 7));
    error_at("source = \"x\"\nunrouted = \"x\"\n", "loop");
}

#[test]
fn bad_queue_and_exchange_names_are_refused() {
    error_at(
        "[[route]]\nname = \"r\"\nevent = \"a\"\nto = [\"\"]\n",
        "must not be empty",
    );
    error_at(
        "[[route]]\nname = \"r\"\nevent = \"a\"\nto = [\"amq.x\"]\n",
        "reserved",
    );
    error_at(
        "[[route]]\nname = \"r\"\nevent = \"a\"\nto = [{ exchange = \"\" }]\n",
        "default exchange",
    );
    let long = "q".repeat(256);
    error_at(
        &format!("[[route]]\nname = \"r\"\nevent = \"a\"\nto = [\"{long}\"]\n"),
        "AMQP allows 255",
    );
}

#[test]
fn every_problem_in_the_file_is_reported_in_order() {
    let text = "[[route]]\nname = \"r\"\nevent = \"a.\"\nto = []\n\n[[route]]\nname = \"r\"\nevent = \"b\"\nto = [\"q\"]\nbogus = 1\n\n[[route]]\nname = \"r\"\nevent = \"c\"\nto = [\"q\"]\n";
    let all = errors(text);
    let lines: Vec<usize> = all.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![3, 4, 10, 13], "{all:#?}");
}

#[test]
fn an_event_goes_to_the_union_of_matching_routes_each_target_once() {
    let t = table(
        r##"
[[route]]
name = "one"
event = "user_created"
to = ["a", "b"]

[[route]]
name = "two"
event = "order.*"
to = ["x"]

[[route]]
name = "three"
event = ["user_created", "#"]
to = ["b", "c", { exchange = "ex", routing_key = "k" }]
"##,
    );
    assert_eq!(
        route(&t, "user_created", json!({})),
        vec!["a", "b", "c", "exchange ex (key \"k\")"]
    );
    assert_eq!(
        route(&t, "other", json!({})),
        vec!["b", "c", "exchange ex (key \"k\")"]
    );
}

#[test]
fn final_stops_later_routes_but_keeps_earlier_ones() {
    let t = table(
        r##"
[[route]]
name = "audit"
event = "#"
to = ["audit"]

[[route]]
name = "vip"
event = "order.*"
where = { "data.vip" = true }
to = ["vip"]
final = true

[[route]]
name = "orders"
event = "order.*"
to = ["orders"]
"##,
    );
    assert_eq!(
        route(&t, "order.placed", json!({"vip": true})),
        vec!["audit", "vip"]
    );
    assert_eq!(
        route(&t, "order.placed", json!({"vip": false})),
        vec!["audit", "orders"]
    );
}

#[test]
fn conditions_must_all_hold() {
    let t = table(
        r##"
[[route]]
name = "fr-adults"
event = "user.*"
where = { "data.country" = "FR", "data.age" = { gte = 18 } }
to = ["fr"]
"##,
    );
    assert_eq!(
        route(&t, "user.created", json!({"country": "FR", "age": 20})),
        vec!["fr"]
    );
    assert_eq!(
        route(&t, "user.created", json!({"country": "FR", "age": 12})),
        vec!["queue_unrouted"]
    );
    assert_eq!(
        route(&t, "user.created", json!({"age": 30})),
        vec!["queue_unrouted"]
    );
    assert_eq!(
        route(&t, "user.created", json!("not an object")),
        vec!["queue_unrouted"]
    );
}

#[test]
fn an_exact_type_whose_conditions_all_hold_shares_one_decision_and_others_are_decided_apart() {
    let t = table(
        r##"
[[route]]
name = "fr"
event = "user_created"
where = { "data.country" = "FR" }
to = ["fr"]

[[route]]
name = "adults"
event = "user_created"
where = { "data.age" = { gte = 18 } }
final = true
to = ["adults"]

[[route]]
name = "after-final"
event = "user_created"
to = ["late"]
"##,
    );
    let decide = |data: Value| {
        let doc = EventDoc::from_json(event("user_created", data), None);
        match t.route("user_created", || Ok::<_, Infallible>(doc.clone())) {
            Ok(d) => d,
            Err(never) => match never {},
        }
    };
    let first = decide(json!({"country": "FR", "age": 20}));
    let second = decide(json!({"country": "FR", "age": 30}));
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(first.route_names, "fr,adults");
    assert_eq!(
        route(&t, "user_created", json!({"country": "DE", "age": 20})),
        vec!["adults"]
    );
    assert_eq!(
        route(&t, "user_created", json!({"country": "FR", "age": 12})),
        vec!["fr", "late"]
    );
    assert_eq!(route(&t, "user_created", json!({"age": 12})), vec!["late"]);
}

#[test]
fn an_exact_type_without_conditions_is_decided_without_reading_the_event() {
    let t = table(ROUTE);
    let decision = t
        .route("a", || Err::<EventDoc<'_>, &str>("must not be called"))
        .unwrap();
    assert_eq!(decision.route_names, "r");
    let unrouted = t
        .route("zzz", || Err::<EventDoc<'_>, &str>("nor here"))
        .unwrap();
    assert!(unrouted.routes.is_empty());
}

#[test]
fn the_event_is_read_only_when_a_candidate_has_conditions() {
    let t = table(
        "[[route]]\nname = \"r\"\nevent = \"a\"\nwhere = { subject = \"1\" }\nto = [\"q\"]\n",
    );
    assert_eq!(
        t.route("a", || Err::<EventDoc<'_>, &str>("read"))
            .unwrap_err(),
        "read"
    );
}

#[test]
fn passing_test_cases_let_the_table_load() {
    table(
        r##"
[[route]]
name = "fr"
event = "user.*"
where = { "data.country" = "FR", "headers.x-tenant" = "acme" }
to = ["fr"]

[[test]]
name = "french"
event = { type = "user.created", data = { country = "FR" }, headers = { x-tenant = "acme" } }
expect = ["fr"]
expect_routes = ["fr"]

[[test]]
event = { type = "user.created", data = { country = "DE" } }
expect = ["queue_unrouted"]
"##,
    );
}

#[test]
fn a_failing_test_case_refuses_the_table_and_shows_event_expected_and_actual() {
    let text = "[[route]]\nname = \"r\"\nevent = \"a\"\nto = [\"q\"]\n\n[[test]]\nname = \"wrong\"\nevent = { type = \"a\" }\nexpect = [\"other\"]\n";
    let all = errors(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    // At the line to change, which the message writes out.
    assert_eq!((all[0].line, all[0].column), (9, 10));
    let message = &all[0].message;
    for part in [
        "test `wrong` failed",
        "{\"type\":\"a\"}",
        "expected [other]",
        "actual [q]",
        "matched routes: r",
        "if this is intended, write: expect = [\"q\"]",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
}

#[test]
fn a_test_case_can_check_the_matched_routes() {
    let text = format!(
        "{ROUTE}\n[[test]]\nevent = {{ type = \"a\" }}\nexpect = [\"q\"]\nexpect_routes = [\"x\"]\n"
    );
    error_at(&text, "expected routes [x], actual [r]");
}

#[test]
fn a_test_event_needs_a_type() {
    let text = format!("{ROUTE}\n[[test]]\nevent = {{ data = {{}} }}\nexpect = [\"q\"]\n");
    error_at(&text, "needs a `type`");
}

#[test]
fn ten_thousand_routes_compile_and_match_by_index() {
    let mut text = String::new();
    for i in 0..10_000 {
        text.push_str(&format!(
            "[[route]]\nname = \"r{i}\"\nevent = \"type_{i}\"\nto = [\"q{}\"]\n",
            i % 50
        ));
    }
    let t = table(&text);
    assert_eq!(route(&t, "type_9999", json!({})), vec!["q49"]);
    assert_eq!(route(&t, "type_10000", json!({})), vec!["queue_unrouted"]);
}

#[test]
fn the_repository_routes_file_is_valid() {
    let text = include_str!("../../../routes.toml");
    let t = table(text);
    for ty in ["user_created", "user_updated", "user_deleted"] {
        assert_eq!(route(&t, ty, json!({})), vec!["queue_order"]);
    }
}

// --- the indexed matcher agrees with a plain scan of every route ----------------------

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("c".to_owned()),
        Just(String::new())
    ]
}

fn pattern_word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("a".to_owned()),
        2 => Just("b".to_owned()),
        1 => Just("c".to_owned()),
        2 => Just("*".to_owned()),
        2 => Just("#".to_owned()),
    ]
}

/// Events, target numbers, an optional `data.n >= x` condition, `final`.
type RouteCase = (Vec<String>, Vec<u8>, Option<i64>, bool);

prop_compose! {
    fn route_spec()(
        events in prop::collection::vec(prop::collection::vec(pattern_word(), 1..4), 1..3),
        targets in prop::collection::vec(0u8..5, 1..3),
        condition in prop::option::of(0i64..3),
        is_final in prop::bool::weighted(0.2),
    ) -> RouteCase {
        (events.into_iter().map(|w| w.join(".")).collect(), targets, condition, is_final)
    }
}

fn render(routes: &[RouteCase]) -> String {
    let mut text = String::new();
    for (i, (events, targets, condition, is_final)) in routes.iter().enumerate() {
        let events: Vec<String> = events.iter().map(|e| format!("{e:?}")).collect();
        let targets: Vec<String> = targets.iter().map(|t| format!("\"q{t}\"")).collect();
        text.push_str(&format!(
            "[[route]]\nname = \"r{i}\"\nevent = [{}]\nto = [{}]\nfinal = {is_final}\n",
            events.join(", "),
            targets.join(", ")
        ));
        if let Some(n) = condition {
            text.push_str(&format!("where = {{ \"data.n\" = {{ gte = {n} }} }}\n"));
        }
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn the_index_agrees_with_a_plain_scan(
        routes in prop::collection::vec(route_spec(), 1..12),
        types in prop::collection::vec(prop::collection::vec(word(), 1..5), 1..6),
        n in 0i64..4,
    ) {
        let t = table(&render(&routes));
        for words in types {
            let ty = words.join(".");
            let doc = EventDoc::from_json(event(&ty, json!({"n": n})), None);
            let indexed = route(&t, &ty, json!({"n": n}));
            let naive: Vec<String> = t.explain(&ty, &doc).targets.iter().map(ToString::to_string).collect();
            prop_assert_eq!(indexed, naive, "type {:?}", ty);
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_loader(text in "\\PC{0,200}") {
        let _ = load("routes.toml", &text);
    }

    #[test]
    fn arbitrary_route_like_text_never_panics_the_loader(
        name in "[a-z,]{0,5}",
        event in "[a-z.*#]{0,8}",
        key in "[a-z.]{0,10}",
        op in "(gt|gte|in|not|prefix|exists|zz)",
    ) {
        let text = format!("[[route]]\nname = {name:?}\nevent = {event:?}\nwhere = {{ {key:?} = {{ {op} = 1 }} }}\nto = [\"q\"]\n");
        let _ = load("routes.toml", &text);
    }
}
