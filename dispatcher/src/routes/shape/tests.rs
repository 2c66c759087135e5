//! Shaping through whole tables: templated keys and headers compiled with their
//! positions, rendered per event, checked against `[[test]]` events; `retry` validated.

use std::convert::Infallible;

use serde_json::{Value, json};

use crate::routes::{RouteError, RoutingTable, load};

use super::*;

fn table(text: &str) -> RoutingTable {
    load("routes.toml", text).unwrap_or_else(|e| panic!("{e}"))
}

fn errors(text: &str) -> Vec<RouteError> {
    load("routes.toml", text)
        .expect_err("the table should be refused")
        .0
}

fn shaped(table: &RoutingTable, ty: &str, data: Value) -> Result<Vec<Shaped>, ShapeError> {
    let Value::Object(map) = json!({"type": ty, "source": "acme", "data": data}) else {
        unreachable!()
    };
    let doc = EventDoc::from_json(map, None);
    let decision = match table.route(ty, || Ok::<_, Infallible>(doc.clone())) {
        Ok(d) => d,
        Err(never) => match never {},
    };
    table.shape(&decision, &doc)
}

const AUDIT: &str = r#"
[[route]]
name = "audit"
event = "user.*"
to = ["q", { exchange = "audit", routing_key = "audit.{data.country|unknown}.{type}" }]
headers = { "x-route" = "audit", "x-country" = "{data.country|none}" }
retry = { attempts = 5, backoff = "200ms", max_backoff = "10s", max_age = "10m" }
"#;

#[test]
fn a_templated_key_and_headers_are_rendered_per_event() {
    let t = table(AUDIT);
    let out = shaped(&t, "user.created", json!({"country": "FR"})).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].routing_key, None, "a queue's key is its name");
    assert_eq!(out[1].routing_key.as_deref(), Some("audit.FR.user.created"));
    let headers = vec![
        ("x-country".to_owned(), "FR".to_owned()),
        ("x-route".to_owned(), "audit".to_owned()),
    ];
    assert_eq!(out[0].headers, headers);
    assert_eq!(out[1].headers, headers);
    let out = shaped(&t, "user.created", json!({})).unwrap();
    assert_eq!(
        out[1].routing_key.as_deref(),
        Some("audit.unknown.user.created")
    );
    assert_eq!(out[1].headers[0].1, "none");
}

#[test]
fn the_route_retry_table_is_kept_with_the_route() {
    let t = table(AUDIT);
    let retry = t.routes()[0].retry;
    assert_eq!(retry.attempts, Some(5));
    assert_eq!(retry.max_age, Some(std::time::Duration::from_secs(600)));
}

#[test]
fn a_static_key_needs_no_rendering() {
    let t = table(
        "[[route]]\nname = \"r\"\nevent = \"a\"\nto = [{ exchange = \"x\", routing_key = \"k\" }]\n",
    );
    let decision = t.route("a", || {
        Ok::<_, Infallible>(EventDoc::from_json(Default::default(), None))
    });
    let decision = match decision {
        Ok(d) => d,
        Err(never) => match never {},
    };
    assert!(!t.shapes(&decision));
}

#[test]
fn a_missing_field_without_default_is_a_shape_error_naming_route_and_path() {
    let t = table(
        "[[route]]\nname = \"r\"\nevent = \"a\"\nto = [{ exchange = \"x\", routing_key = \"k.{data.country}\" }]\n",
    );
    let err = shaped(&t, "a", json!({})).unwrap_err();
    assert_eq!(err.route, "r");
    assert_eq!(err.missing.path, "data.country");
    assert!(
        err.to_string().contains("routing key of exchange x"),
        "{err}"
    );
}

#[test]
fn the_first_matching_route_wins_a_header_name() {
    let t = table(
        "[[route]]\nname = \"a\"\nevent = \"t\"\nto = [\"q\"]\nheaders = { h = \"first\" }\n\
         [[route]]\nname = \"b\"\nevent = \"t\"\nto = [\"q\", \"r\"]\nheaders = { h = \"second\", g = \"{source}\" }\n",
    );
    let out = shaped(&t, "t", json!({})).unwrap();
    assert_eq!(
        out[0].headers,
        [
            ("h".to_owned(), "first".to_owned()),
            ("g".to_owned(), "acme".to_owned())
        ]
    );
    assert_eq!(
        out[1].headers,
        [
            ("g".to_owned(), "acme".to_owned()),
            ("h".to_owned(), "second".to_owned())
        ]
    );
}

#[test]
fn a_test_event_lacking_a_field_without_default_refuses_the_table() {
    let text = "[[route]]\nname = \"r\"\nevent = \"a\"\nto = [{ exchange = \"x\", routing_key = \"k.{data.country}\" }]\n\
                [[test]]\nevent = { type = \"a\", data = {} }\nexpect = [{ exchange = \"x\", routing_key = \"k.{data.country}\" }]\n";
    let all = errors(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].line, 6);
    assert!(
        all[0].message.contains("needs `data.country`"),
        "{}",
        all[0].message
    );
    assert!(
        all[0].message.contains(TEMPLATE_FIELD_MISSING),
        "{}",
        all[0].message
    );
    // With the field, the same table loads.
    table(&text.replace("data = {}", "data = { country = \"FR\" }"));
}

#[test]
fn a_bad_template_is_refused_at_its_character() {
    let text = "[[route]]\nname = \"r\"\nevent = \"a\"\nto = [{ exchange = \"x\", routing_key = \"k.{data.x\" }]\n";
    let all = errors(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    // Line 4: `to = [{ exchange = "x", routing_key = "k.{data.x" }]`; the `{` is column 42.
    assert_eq!((all[0].line, all[0].column), (4, 42), "{all:#?}");
    assert!(
        all[0].message.contains("never closed"),
        "{}",
        all[0].message
    );
}

#[test]
fn a_bad_header_template_or_a_reserved_name_is_refused_at_its_value() {
    let text = "[[route]]\nname = \"r\"\nevent = \"a\"\nto = [\"q\"]\nheaders = { a = \"}\", x-dispatch-error = \"no\" }\n";
    let all = errors(text);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!((all[0].line, all[0].column), (5, 18), "{all:#?}");
    assert!(
        all[0].message.contains("no `{` before it"),
        "{}",
        all[0].message
    );
    assert!(
        all[1].message.contains("set by the dispatcher"),
        "{}",
        all[1].message
    );
}

#[test]
fn retry_with_zero_attempts_or_a_bad_duration_is_refused_with_line_and_column() {
    let text = "[[route]]\nname = \"r\"\nevent = \"a\"\nto = [\"q\"]\nretry = { attempts = 0, max_age = \"later\" }\n";
    let all = errors(text);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!((all[0].line, all[0].column), (5, 22), "{all:#?}");
    assert!(
        all[0].message.contains("retry.attempts"),
        "{}",
        all[0].message
    );
    assert_eq!((all[1].line, all[1].column), (5, 35), "{all:#?}");
    assert!(
        all[1].message.contains("not a duration"),
        "{}",
        all[1].message
    );
}

#[test]
fn an_unknown_retry_key_is_refused() {
    let all =
        errors("[[route]]\nname = \"r\"\nevent = \"a\"\nto = [\"q\"]\nretry = { tries = 3 }\n");
    assert!(all[0].message.contains("unknown field `tries`"), "{all:#?}");
}
