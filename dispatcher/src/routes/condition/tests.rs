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

#[test]
fn anything_but_holds_for_a_present_value_unlike_all_listed() {
    assert!(holds("{ anything_but = \"FR\" }", json!("DE")));
    assert!(!holds("{ anything_but = \"FR\" }", json!("FR")));
    assert!(holds("{ anything_but = [\"FR\", \"BE\"] }", json!("DE")));
    assert!(!holds("{ anything_but = [\"FR\", \"BE\"] }", json!("BE")));
    assert!(
        !holds("{ anything_but = [1, 2] }", json!(2.0)),
        "numbers by value"
    );
    assert!(
        holds("{ anything_but = \"1\" }", json!(1)),
        "1 is not \"1\""
    );
}

#[test]
fn anything_but_does_not_hold_on_a_missing_or_null_value_unlike_not() {
    assert!(!holds_when_missing("{ anything_but = \"FR\" }"));
    assert!(!holds("{ anything_but = \"FR\" }", Value::Null));
    assert!(holds_when_missing("{ not = \"FR\" }"));
}

#[test]
fn anything_but_refuses_an_empty_list_and_tables() {
    assert!(refused("{ anything_but = [] }").contains("never hold"));
    assert!(refused("{ anything_but = { eq = 1 } }").contains("found a table"));
}

#[test]
fn eq_ignore_case_folds_unicode_case() {
    assert!(holds("{ eq_ignore_case = \"fr\" }", json!("FR")));
    assert!(holds("{ eq_ignore_case = \"ÉTÉ\" }", json!("été")));
    assert!(holds("{ eq_ignore_case = \"strasse\" }", json!("STRAßE")));
    assert!(!holds("{ eq_ignore_case = \"fr\" }", json!("fra")));
}

#[test]
fn eq_ignore_case_applies_to_strings_only() {
    assert!(!holds("{ eq_ignore_case = \"1\" }", json!(1)));
    assert!(!holds_when_missing("{ eq_ignore_case = \"x\" }"));
    assert!(refused("{ eq_ignore_case = 1 }").contains("takes a string"));
}

#[test]
fn in_ignore_case_accepts_any_listed_string_in_any_case() {
    assert!(holds("{ in_ignore_case = [\"fr\", \"be\"] }", json!("Be")));
    assert!(!holds("{ in_ignore_case = [\"fr\", \"be\"] }", json!("DE")));
    assert!(!holds("{ in_ignore_case = [\"1\"] }", json!(1)));
    assert!(!holds_when_missing("{ in_ignore_case = [\"x\"] }"));
}

#[test]
fn in_ignore_case_takes_a_non_empty_list_of_strings() {
    assert!(refused("{ in_ignore_case = \"fr\" }").contains("list of strings"));
    assert!(refused("{ in_ignore_case = [] }").contains("never hold"));
    assert!(refused("{ in_ignore_case = [\"a\", 1] }").contains("takes strings"));
}

#[test]
fn contains_finds_a_substring_of_a_string() {
    assert!(holds("{ contains = \"@example\" }", json!("a@example.com")));
    assert!(!holds("{ contains = \"@example\" }", json!("a@exampl.com")));
    assert!(holds("{ contains = \"é\" }", json!("café")));
    assert!(
        !holds("{ contains = \"2\" }", json!(123)),
        "not in a number"
    );
}

#[test]
fn contains_finds_an_element_of_an_array() {
    assert!(holds("{ contains = \"vip\" }", json!(["new", "vip"])));
    assert!(
        !holds("{ contains = \"vi\" }", json!(["new", "vip"])),
        "whole elements"
    );
    assert!(holds("{ contains = 2 }", json!([1, 2.0])));
    assert!(holds("{ contains = true }", json!([false, true])));
    assert!(
        !holds("{ contains = 2 }", json!([[2]])),
        "not nested arrays"
    );
    assert!(!holds("{ contains = \"x\" }", json!([])));
}

#[test]
fn contains_refuses_an_empty_string_and_lists() {
    assert!(!holds_when_missing("{ contains = \"x\" }"));
    assert!(refused("{ contains = \"\" }").contains("every string"));
    assert!(refused("{ contains = [1] }").contains("a list is not a value"));
}

#[test]
fn wildcard_matches_whole_strings() {
    assert!(holds(
        "{ wildcard = \"*@example.*\" }",
        json!("alice@example.com")
    ));
    assert!(!holds(
        "{ wildcard = \"*@example.*\" }",
        json!("alice@other.com")
    ));
    assert!(
        !holds("{ wildcard = \"a*\" }", json!("ba")),
        "anchored at both ends"
    );
    assert!(!holds("{ wildcard = \"*\" }", json!(1)), "strings only");
    assert!(!holds_when_missing("{ wildcard = \"*\" }"));
}

#[test]
fn wildcard_refuses_bad_escapes_and_non_strings() {
    assert!(refused("{ wildcard = 'a\\b' }").contains("escapes only"));
    assert!(refused("{ wildcard = 1 }").contains("takes a string"));
}

#[test]
fn cidr_accepts_ipv4_addresses_inside_the_network() {
    assert!(holds("{ cidr = \"10.0.0.0/8\" }", json!("10.1.2.3")));
    assert!(!holds("{ cidr = \"10.0.0.0/8\" }", json!("11.0.0.1")));
    assert!(holds("{ cidr = \"192.168.1.7/32\" }", json!("192.168.1.7")));
    assert!(holds("{ cidr = \"0.0.0.0/0\" }", json!("8.8.8.8")));
}

#[test]
fn cidr_accepts_ipv6_and_ipv4_mapped_addresses() {
    assert!(holds("{ cidr = \"2001:db8::/32\" }", json!("2001:db8::1")));
    assert!(!holds("{ cidr = \"2001:db8::/32\" }", json!("2001:db9::1")));
    assert!(holds("{ cidr = \"10.0.0.0/8\" }", json!("::ffff:10.0.0.1")));
    assert!(!holds("{ cidr = \"2001:db8::/32\" }", json!("10.0.0.1")));
}

#[test]
fn cidr_takes_a_list_of_networks() {
    let nets = "{ cidr = [\"10.0.0.0/8\", \"fd00::/8\"] }";
    assert!(holds(nets, json!("fd12::1")));
    assert!(holds(nets, json!("10.9.9.9")));
    assert!(!holds(nets, json!("172.16.0.1")));
}

#[test]
fn cidr_is_false_for_anything_but_an_address() {
    for value in [
        json!("not an ip"),
        json!("10.0.0.1/32"),
        json!("fe80::1%eth0"),
        json!(167772161),
    ] {
        assert!(!holds("{ cidr = \"0.0.0.0/0\" }", value.clone()), "{value}");
    }
    assert!(!holds_when_missing("{ cidr = \"0.0.0.0/0\" }"));
}

#[test]
fn cidr_refuses_networks_that_are_not_networks() {
    let err = refused("{ cidr = \"10.0.0.1/8\" }");
    assert!(err.contains("did you mean \"10.0.0.0/8\""), "{err}");
    assert!(refused("{ cidr = \"10.0.0.1\" }").contains("\"10.0.0.1/32\""));
    assert!(refused("{ cidr = \"::1\" }").contains("\"::1/128\""));
    assert!(refused("{ cidr = \"10.0.0.0/33\" }").contains("not a network"));
    assert!(refused("{ cidr = \"ten\" }").contains("not a network"));
    assert!(refused("{ cidr = [] }").contains("never hold"));
}

#[test]
fn matches_searches_a_regular_expression_in_strings() {
    assert!(holds(
        "{ matches = '^user_(created|updated)$' }",
        json!("user_created")
    ));
    assert!(!holds(
        "{ matches = '^user_(created|updated)$' }",
        json!("user_deleted")
    ));
    assert!(
        holds("{ matches = '\\d{3}' }", json!("ab123")),
        "unanchored"
    );
    assert!(!holds("{ matches = '.*' }", json!(1)), "strings only");
    assert!(!holds_when_missing("{ matches = '.*' }"));
}

#[test]
fn matches_refuses_a_bad_expression_and_one_too_big() {
    let err = refused("{ matches = '(unclosed' }");
    assert!(err.contains("bad regular expression"), "{err}");
    assert!(err.contains("unclosed group"), "{err}");
    let err = refused("{ matches = '(?:\\w{200}){200}' }");
    assert!(err.contains("over the limit"), "{err}");
    assert!(refused("{ matches = 1 }").contains("takes a string"));
}

#[test]
fn properties_paths_name_a_known_amqp_property() {
    assert_eq!(
        Path::parse("properties.app_id").unwrap(),
        Path::Property(Property::AppId)
    );
    assert_eq!(Property::Timestamp.name(), "timestamp");
    let err = Path::parse("properties.appid").unwrap_err();
    assert!(
        err.contains("`app_id`") && err.contains("`expiration`"),
        "{err}"
    );
    assert!(
        Path::parse("properties")
            .unwrap_err()
            .contains("property name")
    );
}

#[test]
fn any_lowercase_top_level_name_is_an_extension_attribute() {
    assert_eq!(
        Path::parse("tenant").unwrap(),
        Path::Attribute(vec!["tenant".into()])
    );
    assert!(Path::parse("partitionkey").is_ok());
    assert!(
        Path::parse("tenant_id")
            .unwrap_err()
            .contains("unknown path")
    );
    assert!(
        Path::parse("tenant.x")
            .unwrap_err()
            .contains("plain attribute")
    );
}

#[test]
fn paths_find_extension_attributes_and_properties() {
    let props = lapin::BasicProperties::default()
        .with_app_id("shop".into())
        .with_priority(7)
        .with_timestamp(1_700_000_000)
        .with_correlation_id("c-1".into());
    let Value::Object(map) = json!({"type": "t", "tenant": "acme"}) else {
        unreachable!()
    };
    let doc = EventDoc::from_json(map, None).with_properties(&props);
    let at = |p: &str| Path::parse(p).unwrap().lookup(&doc).map(|v| v.into_owned());
    assert_eq!(at("tenant"), Some(json!("acme")));
    assert_eq!(at("partitionkey"), None);
    assert_eq!(at("properties.app_id"), Some(json!("shop")));
    assert_eq!(at("properties.priority"), Some(json!(7)));
    assert_eq!(at("properties.timestamp"), Some(json!(1_700_000_000)));
    assert_eq!(at("properties.correlation_id"), Some(json!("c-1")));
    assert_eq!(at("properties.reply_to"), None);
}

#[test]
fn new_operators_display_as_written() {
    assert_eq!(
        test("{ anything_but = [1, 2] }").to_string(),
        "anything but [1, 2]"
    );
    assert_eq!(
        test("{ eq_ignore_case = \"a\" }").to_string(),
        "= \"a\" ignoring case"
    );
    assert_eq!(
        test("{ wildcard = \"*@x\" }").to_string(),
        "wildcard \"*@x\""
    );
    assert_eq!(
        test("{ cidr = \"10.0.0.0/8\" }").to_string(),
        "cidr \"10.0.0.0/8\""
    );
    assert_eq!(test("{ matches = \"^a\" }").to_string(), "matches \"^a\"");
    assert_eq!(test("{ contains = \"v\" }").to_string(), "contains \"v\"");
}
