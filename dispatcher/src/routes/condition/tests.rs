//! Conditions: each operator on each JSON type, missing values, refused operators and
//! values with a hint, paths into the event, and how conditions print.

use serde_json::{Value, json};

use super::*;

#[derive(serde::Deserialize)]
struct One {
    v: serde_spanned::Spanned<node::Node>,
}

fn parse(toml_value: &str) -> Result<Test, String> {
    let text = format!("v = {toml_value}");
    let one: One = toml::from_str(&text).unwrap();
    read_test(&text, "v", &one.v).map_err(|p| p.message)
}

fn test(toml_value: &str) -> Test {
    parse(toml_value).unwrap()
}

fn refused(toml_value: &str) -> String {
    parse(toml_value).unwrap_err()
}

fn holds(toml_value: &str, value: Value) -> bool {
    test(toml_value).holds(Some(&value))
}

fn holds_when_missing(toml_value: &str) -> bool {
    test(toml_value).holds(None)
}

#[test]
fn a_literal_means_equality_by_type_and_value() {
    assert!(holds("\"FR\"", json!("FR")));
    assert!(!holds("\"FR\"", json!("fr")));
    assert!(holds("18", json!(18)));
    assert!(holds("18", json!(18.0)), "numbers compare by value");
    assert!(holds("1.5", json!(1.5)));
    assert!(!holds("18", json!("18")), "a string is not a number");
    assert!(holds("true", json!(true)));
    assert!(!holds("true", json!(1)));
    assert!(holds("{ eq = \"x\" }", json!("x")));
}

#[test]
fn in_accepts_any_listed_value() {
    assert!(holds("{ in = [\"FR\", \"BE\"] }", json!("BE")));
    assert!(!holds("{ in = [\"FR\", \"BE\"] }", json!("DE")));
    assert!(holds("{ in = [1, 2] }", json!(2)));
    assert!(refused("{ in = [] }").contains("never hold"));
    assert!(refused("{ in = \"FR\" }").contains("list"));
}

#[test]
fn prefix_and_suffix_apply_to_strings_only() {
    assert!(holds("{ prefix = \"user_\" }", json!("user_created")));
    assert!(!holds("{ prefix = \"user_\" }", json!("order_created")));
    assert!(holds(
        "{ suffix = \"@example.com\" }",
        json!("a@example.com")
    ));
    assert!(!holds("{ suffix = \"1\" }", json!(1)));
    assert!(refused("{ prefix = 1 }").contains("takes a string"));
}

#[test]
fn exists_checks_presence_and_null_counts_as_absent() {
    assert!(holds("{ exists = true }", json!(0)));
    assert!(!holds("{ exists = true }", Value::Null));
    assert!(!holds_when_missing("{ exists = true }"));
    assert!(holds_when_missing("{ exists = false }"));
    assert!(!holds("{ exists = false }", json!("x")));
    assert!(refused("{ exists = \"yes\" }").contains("true or false"));
}

#[test]
fn comparisons_work_on_numbers_and_on_strings() {
    assert!(holds("{ gte = 18 }", json!(18)));
    assert!(!holds("{ gt = 18 }", json!(18)));
    assert!(holds("{ gt = 18 }", json!(18.5)));
    assert!(holds("{ lt = 0.5 }", json!(0)));
    assert!(holds("{ lte = 10 }", json!(10)));
    assert!(!holds("{ lte = 10 }", json!(11)));
    assert!(holds(
        "{ gte = \"2026-01-01\" }",
        json!("2026-11-22T10:00:00Z")
    ));
    assert!(
        !holds("{ gt = 1 }", json!("2")),
        "a string is not compared with a number"
    );
    assert!(holds("{ gte = 18, lt = 65 }", json!(30)));
    assert!(!holds("{ gte = 18, lt = 65 }", json!(70)));
    assert!(refused("{ gt = true }").contains("not booleans"));
}

#[test]
fn big_integers_compare_exactly() {
    assert!(holds("9007199254740993", json!(9_007_199_254_740_993_i64)));
    assert!(!holds("9007199254740993", json!(9_007_199_254_740_992_i64)));
}

#[test]
fn not_negates_a_value_or_an_operator_table() {
    assert!(holds("{ not = \"FR\" }", json!("DE")));
    assert!(!holds("{ not = \"FR\" }", json!("FR")));
    assert!(holds("{ not = { in = [1, 2] } }", json!(3)));
    assert!(holds_when_missing("{ not = \"FR\" }"), "not(false) holds");
    assert!(!holds_when_missing("{ exists = true, not = \"FR\" }"));
}

#[test]
fn a_missing_value_fails_every_test_but_exists_false_and_not() {
    for t in [
        "\"x\"",
        "{ in = [\"x\"] }",
        "{ prefix = \"x\" }",
        "{ suffix = \"x\" }",
        "{ gt = 1 }",
        "{ exists = true }",
    ] {
        assert!(!holds_when_missing(t), "{t}");
    }
}

#[test]
fn unknown_operators_are_refused_with_the_list_and_a_hint() {
    let err = refused("{ gtee = 1 }");
    assert!(err.contains("unknown operator `gtee`"), "{err}");
    assert!(err.contains("`gte`"), "{err}");
    assert!(err.contains("quote the whole path"), "{err}");
}

#[test]
fn values_that_are_not_literals_are_refused() {
    assert!(refused("[1, 2]").contains("{ in = [...] }"));
    assert!(refused("1979-05-27T07:32:00Z").contains("as a string"));
    assert!(refused("{}").contains("empty condition table"));
}

#[test]
fn paths_start_with_a_known_attribute() {
    assert_eq!(
        Path::parse("data.a.b").unwrap(),
        Path::Attribute(vec!["data".into(), "a".into(), "b".into()])
    );
    assert_eq!(
        Path::parse("headers.x-tenant").unwrap(),
        Path::Header("x-tenant".into())
    );
    assert_eq!(
        Path::parse("headers.cloudEvents:type").unwrap(),
        Path::Header("cloudEvents:type".into())
    );
    assert!(Path::parse("Data.a").unwrap_err().contains("unknown path"));
    assert!(Path::parse("headers").unwrap_err().contains("header name"));
    assert!(Path::parse("data..a").unwrap_err().contains("empty field"));
    assert!(
        Path::parse("source.x")
            .unwrap_err()
            .contains("plain attribute")
    );
}

#[test]
fn paths_find_fields_array_items_and_headers() {
    let mut headers = lapin::types::FieldTable::default();
    headers.insert("n".into(), lapin::types::AMQPValue::LongInt(5));
    let map = json!({"type": "t", "subject": "42", "data": {"items": [{"sku": "a"}]}});
    let Value::Object(map) = map else {
        unreachable!()
    };
    let doc = EventDoc::from_json(map, Some(&headers));
    let at = |p: &str| Path::parse(p).unwrap().lookup(&doc).map(|v| v.into_owned());
    assert_eq!(at("data.items.0.sku"), Some(json!("a")));
    assert_eq!(at("data.items.1.sku"), None);
    assert_eq!(at("data.items.x"), None);
    assert_eq!(at("subject"), Some(json!("42")));
    assert_eq!(at("data.items.0.sku.deeper"), None);
    assert_eq!(at("headers.n"), Some(json!(5)));
    assert_eq!(at("headers.none"), None);
}

#[test]
fn conditions_display_as_written() {
    assert_eq!(test("{ gte = 18 }").to_string(), ">= 18");
    assert_eq!(
        test("{ not = { in = [\"a\"] } }").to_string(),
        "not (in [\"a\"])"
    );
}
