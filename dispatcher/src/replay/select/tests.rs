use lapin::BasicProperties;
use serde_json::json;

use super::*;
use crate::routes;

const TABLE: &str = r#"
[[route]]
name = "users"
event = ["user_created", "user_deleted"]
to = ["queue_order"]

[[route]]
name = "audit"
event = "user.*"
to = ["queue_audit", "queue_order"]

[[route]]
name = "french"
event = "user_created"
where = { "data.country" = "FR" }
to = ["queue_fr"]
"#;

fn table() -> RoutingTable {
    routes::load("t.toml", TABLE).unwrap()
}

fn event(ty: &str, data: serde_json::Value) -> (BasicProperties, Vec<u8>) {
    let envelope = events::envelope::CloudEvent::new("test", ty, data);
    (envelope.amqp_properties(), envelope.to_json_vec())
}

fn choose(selection: &Selection, ty: &str, data: serde_json::Value) -> Choice {
    let (properties, body) = event(ty, data);
    selection.choose(&table(), &properties, &body)
}

fn selection(ty: Option<&str>, wheres: &[&str], routes: &[&str], queue: Option<&str>) -> Selection {
    let wheres: Vec<String> = wheres.iter().map(|s| (*s).to_owned()).collect();
    let routes: Vec<String> = routes.iter().map(|s| (*s).to_owned()).collect();
    Selection::new(&table(), ty, &wheres, &routes, queue).unwrap()
}

fn queues(names: &[&str]) -> Vec<Target> {
    names
        .iter()
        .map(|n| Target::Queue((*n).to_owned()))
        .collect()
}

#[test]
fn without_filters_an_event_goes_where_the_current_table_routes_it() {
    let all = selection(None, &[], &[], None);
    assert_eq!(
        choose(&all, "user_created", json!({"country": "FR"})),
        Choice::Send {
            targets: queues(&["queue_order", "queue_fr"]),
            routes: "users,french".to_owned()
        }
    );
    assert_eq!(choose(&all, "order_placed", json!({})), Choice::Unrouted);
}

#[test]
fn route_limits_the_targets_to_those_of_the_named_routes() {
    let fr = selection(None, &[], &["french"], None);
    assert_eq!(
        choose(&fr, "user_created", json!({"country": "FR"})),
        Choice::Send {
            targets: queues(&["queue_fr"]),
            routes: "french".to_owned()
        }
    );
    assert_eq!(
        choose(&fr, "user_created", json!({"country": "DE"})),
        Choice::Filtered
    );
    assert_eq!(choose(&fr, "order_placed", json!({})), Choice::Unrouted);
}

#[test]
fn type_and_where_filter_before_routing() {
    let only = selection(Some("user_deleted"), &["data.id=3"], &[], None);
    assert_eq!(
        choose(&only, "user_created", json!({"id": 3})),
        Choice::Filtered
    );
    assert_eq!(
        choose(&only, "user_deleted", json!({"id": 4})),
        Choice::Filtered
    );
    assert!(matches!(
        choose(&only, "user_deleted", json!({"id": 3})),
        Choice::Send { .. }
    ));
    let text = selection(Some("user.*"), &["data.name=Alice"], &[], None);
    assert!(matches!(
        choose(&text, "user.renamed", json!({"name": "Alice"})),
        Choice::Send { .. }
    ));
}

#[test]
fn to_queue_sends_every_selected_event_to_that_queue() {
    let one = selection(None, &[], &[], Some("replayed"));
    assert_eq!(
        choose(&one, "order_placed", json!({})),
        Choice::Send {
            targets: queues(&["replayed"]),
            routes: String::new()
        }
    );
    let unreadable = one.choose(&table(), &BasicProperties::default(), b"not json");
    assert_eq!(
        unreadable,
        Choice::Send {
            targets: queues(&["replayed"]),
            routes: String::new()
        }
    );
}

#[test]
fn an_unreadable_event_is_skipped_when_routing() {
    let all = selection(None, &[], &[], None);
    assert_eq!(
        all.choose(&table(), &BasicProperties::default(), b"{"),
        Choice::Unreadable
    );
}

#[test]
fn bad_filters_are_refused_with_what_to_write() {
    let t = table();
    let error = Selection::new(&t, None, &[], &["nope".to_owned()], None).unwrap_err();
    assert!(
        error.to_string().contains("users, audit, french"),
        "{error}"
    );
    let error = Selection::new(&t, None, &["data.x".to_owned()], &[], None).unwrap_err();
    assert!(error.to_string().contains("PATH=VALUE"), "{error}");
    let error = Selection::new(&t, None, &["nowhere.x=1".to_owned()], &[], None).unwrap_err();
    assert!(error.to_string().contains("--where"), "{error}");
    assert!(Selection::new(&t, Some("a..b"), &[], &[], None).is_err());
}
