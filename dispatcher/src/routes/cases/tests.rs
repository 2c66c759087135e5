//! `[[test]]` cases: `expect`, `includes` and `excludes`, each failure at its own line
//! with the one-line change that would make it pass, and events with AMQP properties.

use super::super::{RouteError, load};

const ROUTES: &str = r#"
[[route]]
name = "orders"
event = "user_created"
to = ["queue_order"]

[[route]]
name = "welcome"
event = "user_created"
to = ["queue_email", { exchange = "audit", routing_key = "user" }]
"#;

fn with_test(test: &str) -> String {
    format!("{ROUTES}\n[[test]]\nname = \"t\"\nevent = {{ type = \"user_created\" }}\n{test}\n")
}

fn refusal(text: &str) -> RouteError {
    let mut all = load("routes.toml", text)
        .expect_err("the test should fail")
        .0;
    assert_eq!(all.len(), 1, "{all:#?}");
    all.remove(0)
}

fn passes(text: &str) {
    load("routes.toml", text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn includes_passes_when_other_routes_add_destinations() {
    passes(&with_test("includes = [\"queue_order\"]"));
    passes(&with_test(
        "includes = [\"queue_order\", { exchange = \"audit\", routing_key = \"user\" }]",
    ));
}

#[test]
fn a_missing_included_destination_is_refused_with_the_narrower_list() {
    let error = refusal(&with_test("includes = [\"queue_order\", \"queue_sms\"]"));
    assert_eq!(error.line, 15, "at the includes line");
    assert!(
        error.message.contains("does not reach [queue_sms]"),
        "{}",
        error.message
    );
    assert!(
        error
            .message
            .ends_with("if this is intended, write: includes = [\"queue_order\"]"),
        "{}",
        error.message
    );
}

#[test]
fn when_nothing_included_is_reached_the_fix_is_the_actual_list() {
    let error = refusal(&with_test("includes = [\"queue_sms\"]"));
    assert!(
        error.message.ends_with(
            "write: expect = [\"queue_email\", \"queue_order\", { exchange = \"audit\", routing_key = \"user\" }]"
        ),
        "{}",
        error.message
    );
}

#[test]
fn excludes_passes_when_none_is_reached_and_unrouted_can_be_excluded() {
    passes(&with_test("excludes = [\"queue_sms\", \"queue_unrouted\"]"));
}

#[test]
fn a_reached_excluded_destination_is_refused_with_the_rest_of_the_list() {
    let error = refusal(&with_test("excludes = [\"queue_email\", \"queue_sms\"]"));
    assert!(
        error
            .message
            .contains("reaches [queue_email], which `excludes` lists"),
        "{}",
        error.message
    );
    assert!(
        error
            .message
            .ends_with("if this is intended, write: excludes = [\"queue_sms\"]"),
        "{}",
        error.message
    );
    let error = refusal(&with_test("excludes = [\"queue_email\"]"));
    assert!(
        error.message.ends_with("delete the `excludes` line"),
        "{}",
        error.message
    );
}

#[test]
fn a_wrong_exact_list_is_refused_with_the_actual_one_to_paste() {
    let error = refusal(&with_test("expect = [\"queue_order\"]"));
    assert!(
        error.message.ends_with(
            "write: expect = [\"queue_email\", \"queue_order\", { exchange = \"audit\", routing_key = \"user\" }]"
        ),
        "{}",
        error.message
    );
}

#[test]
fn expect_includes_and_excludes_combine_and_each_is_checked() {
    passes(&with_test(
        "includes = [\"queue_order\"]\nexcludes = [\"queue_sms\"]",
    ));
    let error = refusal(&with_test(
        "includes = [\"queue_order\"]\nexcludes = [\"queue_order\"]",
    ));
    assert_eq!(error.line, 16, "the excludes line failed");
}

#[test]
fn a_test_without_any_expectation_is_refused() {
    let error = refusal(&with_test(""));
    assert!(
        error
            .message
            .contains("`includes = [...]` (at least these)"),
        "{}",
        error.message
    );
}

#[test]
fn wrong_routes_are_refused_with_the_actual_routes_to_paste() {
    let error = refusal(&with_test(
        "includes = [\"queue_order\"]\nexpect_routes = [\"orders\"]",
    ));
    assert!(
        error
            .message
            .ends_with("write: expect_routes = [\"orders\", \"welcome\"]"),
        "{}",
        error.message
    );
}

#[test]
fn a_test_event_may_carry_amqp_properties_and_headers() {
    let text = r#"
[[route]]
name = "from-shop"
event = "t"
where = { "properties.app_id" = "shop", "properties.priority" = { gte = 5 }, "headers.x" = 1 }
to = ["q"]

[[test]]
event = { type = "t", properties = { app_id = "shop", priority = 9 }, headers = { x = 1 } }
expect = ["q"]

[[test]]
event = { type = "t", properties = { app_id = "shop", priority = 1 }, headers = { x = 1 } }
excludes = ["q"]
"#;
    passes(text);
}

#[test]
fn bad_test_event_properties_are_refused() {
    let bad = |props: &str| {
        refusal(&format!(
            "{ROUTES}\n[[test]]\nevent = {{ type = \"user_created\", properties = {props} }}\nincludes = [\"queue_order\"]\n"
        ))
        .message
    };
    assert!(bad("{ appid = \"x\" }").contains("unknown AMQP property `appid`"));
    assert!(bad("{ priority = 300 }").contains("from 0 to 255"));
    assert!(bad("{ app_id = 1 }").contains("takes a string"));
    assert!(bad("1").contains("must be a table"));
}
