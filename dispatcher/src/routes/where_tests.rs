//! `where` v2 at the table level: `any`, `all` and `not` (nested), every branch's
//! verdict in `explain`, and mistakes deep inside them refused at their own position.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use serde_json::json;

use super::explain::{Check, Found};
use super::*;

fn table(text: &str) -> RoutingTable {
    load("routes.toml", text).unwrap_or_else(|e| panic!("{e}"))
}

fn errors(text: &str) -> Vec<RouteError> {
    load("routes.toml", text)
        .expect_err("the table should be refused")
        .0
}

/// The single error mentioning `needle`, as (line, column).
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

fn route_with(filter: &str) -> String {
    format!("[[route]]\nname = \"r\"\nevent = \"t\"\nwhere = {filter}\nto = [\"q\"]\n")
}

/// Whether route `r` takes `event` (a JSON object with `type = "t"` added).
fn takes(t: &RoutingTable, event: serde_json::Value) -> bool {
    let serde_json::Value::Object(mut map) = event else {
        unreachable!()
    };
    map.insert("type".into(), json!("t"));
    let doc = EventDoc::from_json(map, None);
    !t.route("t", || Ok::<_, ()>(doc)).unwrap().routes.is_empty()
}

#[test]
fn any_holds_when_one_table_holds() {
    let t = table(&route_with(
        "{ any = [{ \"data.country\" = \"FR\" }, { \"data.vip\" = true, \"data.age\" = { gte = 18 } }] }",
    ));
    assert!(takes(&t, json!({"data": {"country": "FR"}})));
    assert!(takes(&t, json!({"data": {"vip": true, "age": 30}})));
    assert!(!takes(&t, json!({"data": {"vip": true, "age": 12}})));
    assert!(!takes(&t, json!({})));
}

#[test]
fn all_holds_when_every_table_holds() {
    let t = table(&route_with(
        "{ all = [{ \"data.a\" = 1 }, { \"data.b\" = { in = [2, 3] } }] }",
    ));
    assert!(takes(&t, json!({"data": {"a": 1, "b": 3}})));
    assert!(!takes(&t, json!({"data": {"a": 1, "b": 4}})));
}

#[test]
fn not_negates_a_whole_table() {
    let t = table(&route_with(
        "{ not = { \"data.country\" = \"FR\", \"data.vip\" = true } }",
    ));
    assert!(!takes(&t, json!({"data": {"country": "FR", "vip": true}})));
    assert!(takes(&t, json!({"data": {"country": "FR", "vip": false}})));
    assert!(
        takes(&t, json!({})),
        "a missing field makes the table false"
    );
}

#[test]
fn structure_nests_and_combines_with_plain_conditions() {
    let t = table(&route_with(
        "{ source = { prefix = \"shop\" }, any = [{ not = { any = [{ \"data.a\" = 1 }, { \"data.b\" = 1 }] } }, { tenant = \"acme\" }] }",
    ));
    assert!(takes(&t, json!({"source": "shop-1", "data": {"a": 2}})));
    assert!(!takes(&t, json!({"source": "shop-1", "data": {"a": 1}})));
    assert!(takes(
        &t,
        json!({"source": "shop-1", "tenant": "acme", "data": {"a": 1}})
    ));
    assert!(!takes(&t, json!({"source": "other", "data": {"a": 2}})));
}

#[test]
fn explain_gives_every_branch_its_verdict_and_says_absent() {
    let t = table(&route_with(
        "{ any = [{ \"data.country\" = \"FR\" }, { tenant = \"acme\", \"data.vip\" = true }] }",
    ));
    let serde_json::Value::Object(map) =
        json!({"type": "t", "data": {"country": "DE", "vip": true}})
    else {
        unreachable!()
    };
    let explanation = t.explain("t", &EventDoc::from_json(map, None));
    let Verdict::ConditionFailed {
        condition, checks, ..
    } = &explanation.routes[0].1
    else {
        panic!("{explanation:?}");
    };
    assert_eq!(
        condition, "any",
        "the tree below says which branch failed how"
    );
    let any = &checks[0];
    assert_eq!((any.condition.as_str(), any.holds), ("any", false));
    let [fr, acme] = any.branches.as_slice() else {
        panic!("two branches: {any:?}");
    };
    assert!(!fr.holds && !acme.holds);
    assert_eq!(fr.branches[0].found, Some(Found::Value(json!("DE"))));
    let tenant: &Check = acme
        .branches
        .iter()
        .find(|c| c.condition.starts_with("tenant"))
        .unwrap();
    assert_eq!((tenant.holds, &tenant.found), (false, &Some(Found::Absent)));
    let vip = acme
        .branches
        .iter()
        .find(|c| c.condition.starts_with("data.vip"))
        .unwrap();
    assert!(vip.holds, "the branch's other condition is still evaluated");
    let json = serde_json::to_value(&explanation).unwrap();
    let branches = &json["routes"][0][1]["checks"][0]["branches"];
    assert_eq!(branches[0]["branches"][0]["found"], json!({"value": "DE"}));
    assert_eq!(branches[1]["branches"][1]["found"], json!("absent"));
}

#[test]
fn explain_of_a_matched_route_keeps_its_checks() {
    let t = table(&route_with("{ not = { \"data.a\" = 1 } }"));
    let serde_json::Value::Object(map) = json!({"type": "t", "data": {"a": 2}}) else {
        unreachable!()
    };
    let explanation = t.explain("t", &EventDoc::from_json(map, None));
    let Verdict::Matched { checks } = &explanation.routes[0].1 else {
        panic!("{explanation:?}");
    };
    assert!(checks[0].holds && !checks[0].branches[0].holds);
}

#[test]
fn explain_reads_properties_and_binary_extensions_from_the_message() {
    let t = table(&route_with(
        "{ \"properties.app_id\" = \"shop\", tenant = { eq_ignore_case = \"ACME\" } }",
    ));
    let mut headers = FieldTable::default();
    headers.insert("ce-tenant".into(), AMQPValue::LongString("acme".into()));
    let props = BasicProperties::default()
        .with_type("t".into())
        .with_app_id("shop".into())
        .with_headers(headers);
    let explanation = t.explain_message(&props, b"{}").unwrap();
    assert!(!explanation.unrouted, "{explanation:?}");
}

#[test]
fn a_bad_regex_deep_in_any_is_refused_at_its_character() {
    // Line 4; `(` opens an unclosed group at column 43.
    let text = route_with("{ any = [{ \"data.a\" = { matches = \"x\\\\d+(y\" } }] }");
    let line = text.lines().nth(3).unwrap();
    let at = line.find("(y").unwrap() + 1;
    assert_eq!(error_at(&text, "unclosed group"), (4, at));
}

#[test]
fn a_bad_cidr_inside_not_is_refused_at_the_network() {
    let text = route_with("{ not = { ip = { cidr = [\"10.0.0.0/8\", \"10.0.0.1/8\"] } } }");
    let line = text.lines().nth(3).unwrap();
    let at = line.find("\"10.0.0.1/8\"").unwrap() + 1;
    assert_eq!(error_at(&text, "did you mean \"10.0.0.0/8\""), (4, at));
}

#[test]
fn an_unknown_operator_in_a_branch_is_refused_at_it() {
    let text = "[[route]]\nname = \"r\"\nevent = \"t\"\nto = [\"q\"]\n[route.where]\nany = [\n  { \"data.a\" = 1 },\n  { \"data.b\" = { wildcrd = \"*x\" } },\n]\n";
    assert_eq!(error_at(text, "unknown operator `wildcrd`"), (8, 28));
}

#[test]
fn structure_keys_take_tables_and_are_never_empty() {
    error_at(&route_with("{ any = [] }"), "can never hold");
    error_at(&route_with("{ all = [] }"), "always holds");
    error_at(
        &route_with("{ any = { \"data.a\" = 1 } }"),
        "takes a list of condition tables",
    );
    error_at(&route_with("{ any = [1] }"), "takes tables of conditions");
    error_at(&route_with("{ not = \"x\" }"), "takes tables of conditions");
    error_at(&route_with("{ not = {} }"), "an empty table in `not`");
}

#[test]
fn every_mistake_in_the_structure_is_reported() {
    let text = route_with(
        "{ any = [{ \"data.a\" = { matches = \"(\" } }, { \"Bad\" = 1 }], not = { ip = { cidr = \"x\" } } }",
    );
    assert_eq!(errors(&text).len(), 3, "{:#?}", errors(&text));
}

#[test]
fn a_date_time_deep_in_a_branch_is_refused_with_the_way_to_write_it() {
    let text = route_with("{ any = [{ time = { gte = 2026-01-01T00:00:00Z } }] }");
    error_at(&text, "write it as a string");
}

#[test]
fn structured_routes_show_on_one_line() {
    let t = table(&route_with(
        "{ any = [{ \"data.a\" = 1 }, { not = { tenant = { exists = true } } }] }",
    ));
    assert_eq!(
        t.routes()[0].conditions[0].to_string(),
        "any [{ data.a = 1 }, { not { tenant exists = true } }]"
    );
}

proptest::proptest! {
    #[test]
    fn any_operator_argument_is_loaded_or_refused_never_a_panic(
        op in proptest::sample::select(vec!["matches", "wildcard", "cidr", "eq_ignore_case", "contains", "anything_but"]),
        arg in "\\PC{0,12}",
        value in "\\PC{0,12}",
    ) {
        let quoted = toml::Value::String(arg).to_string();
        let text = route_with(&format!("{{ any = [{{ \"data.x\" = {{ {op} = {quoted} }} }}] }}"));
        if let Ok(t) = load("routes.toml", &text) {
            let _ = takes(&t, json!({"data": {"x": value}}));
        }
    }
}

#[test]
fn a_bad_regex_in_a_literal_or_multi_line_string_is_refused_at_its_character() {
    let text = route_with("{ \"data.a\" = { matches = 'a\\d[' } }");
    let line = text.lines().nth(3).unwrap();
    assert_eq!(
        error_at(&text, "unclosed character class"),
        (4, line.find('[').unwrap() + 1)
    );
    let text = "[[route]]\nname = \"r\"\nevent = \"t\"\nto = [\"q\"]\n[route.where]\n\"data.a\" = { matches = '''\nab)c''' }\n";
    assert_eq!(error_at(text, "unopened group"), (7, 3));
}
