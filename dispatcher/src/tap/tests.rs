#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use lapin::BasicProperties;

use super::filter::{TapFilter, TapQuery};
use super::*;
use crate::metrics::Metrics;
use crate::routes::load;

const TABLE: &str = r#"
source = "t.source"
unrouted = "t.unrouted"
dead_letter = "t.dead"

[[route]]
name = "users"
event = "user.created"
to = ["t.users", "t.audit"]
"#;

fn generation() -> Generation {
    Generation::new(
        3,
        load("routes.toml", TABLE).unwrap(),
        "00".into(),
        &Metrics::new(),
    )
}

fn properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type(events::envelope::CONTENT_TYPE.into())
        .with_message_id("e-1".into())
}

const EVENT: &[u8] =
    br#"{"specversion":"1.0","id":"e-1","source":"/t","type":"user.created","data":{}}"#;

#[test]
fn an_unwatched_tap_reads_nothing_and_only_counts() {
    let tap = Tap::new();
    assert!(tap.seed(&properties(), EVENT).is_none());
    tap.settled(&Fate::Done(Outcome::Unrouted), &generation(), None);
    tap.settled(&Fate::Requeue, &generation(), None);
    assert_eq!(tap.totals.unrouted.load(Ordering::Relaxed), 1);
    assert_eq!(tap.totals.forwarded.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_watcher_sees_type_id_routes_targets_and_outcome() {
    let tap = Arc::new(Tap::new());
    let mut watch = tap.watch();
    let generation = generation();
    let decision = generation
        .table
        .route::<()>("user.created", || unreachable!("no condition to read"))
        .unwrap();
    let seed = tap
        .seed(&properties(), EVENT)
        .unwrap()
        .with_decision(&decision);
    tap.settled(&Fate::Done(Outcome::Forwarded), &generation, Some(seed));
    let Some(Seen::Event(event)) = watch.next().await else {
        panic!("expected an event")
    };
    assert_eq!(event.event_type, "user.created");
    assert_eq!(event.id.as_deref(), Some("e-1"));
    assert_eq!(event.routes, ["users"]);
    assert_eq!(event.targets, ["t.users", "t.audit"]);
    assert_eq!(event.outcome, "forwarded");
    assert_eq!(event.generation, 3);
    assert_eq!(event.body.as_deref().map(str::as_bytes), Some(EVENT));
}

#[tokio::test]
async fn a_watcher_that_falls_behind_is_told_how_many_it_lost() {
    let tap = Arc::new(Tap::new());
    let mut watch = tap.watch();
    let generation = generation();
    for _ in 0..CAPACITY + 10 {
        let seed = tap.seed(&properties(), EVENT);
        tap.settled(&Fate::Done(Outcome::Unrouted), &generation, seed);
    }
    let Some(Seen::Dropped(n)) = watch.next().await else {
        panic!("expected a dropped notice")
    };
    assert_eq!(n, 10);
    let Some(Seen::Event(event)) = watch.next().await else {
        panic!("expected the oldest kept event")
    };
    assert_eq!(event.targets, ["t.unrouted"]);
}

#[tokio::test]
async fn dropping_the_watch_detaches_it_and_closing_ends_it() {
    let tap = Arc::new(Tap::new());
    let watch = tap.watch();
    assert!(tap.is_watched());
    drop(watch);
    assert!(!tap.is_watched());
    let mut watch = tap.watch();
    tap.close();
    assert!(watch.next().await.is_none());
}

#[test]
fn a_body_is_cut_to_the_limit_at_a_character_boundary() {
    assert_eq!(cut(b"short"), ("short".to_owned(), false));
    let mut long = vec![b'a'; BODY_LIMIT - 1];
    long.extend_from_slice("é and more".as_bytes());
    let (text, truncated) = cut(&long);
    assert!(truncated);
    assert_eq!(text.len(), BODY_LIMIT - 1);
    assert!(text.bytes().all(|b| b == b'a'));
}

fn event(event_type: &str, routes: &[&str], outcome: &'static str) -> TapEvent {
    TapEvent {
        time: Utc::now(),
        event_type: event_type.to_owned(),
        id: None,
        trace_id: None,
        routes: routes.iter().map(ToString::to_string).collect(),
        targets: Vec::new(),
        outcome,
        reason: None,
        latency_ms: 0.0,
        generation: 1,
        body: None,
        body_truncated: false,
    }
}

#[test]
fn filters_on_route_type_pattern_and_outcome_all_hold() {
    let filter = TapFilter::parse(TapQuery {
        route: Some("users".into()),
        event_type: Some("user.*".into()),
        outcome: Some("forwarded".into()),
        body: false,
    })
    .unwrap();
    assert!(filter.admits(&event("user.created", &["users"], "forwarded")));
    assert!(!filter.admits(&event("user.created.v2", &["users"], "forwarded")));
    assert!(!filter.admits(&event("user.created", &["audit"], "forwarded")));
    assert!(!filter.admits(&event("user.created", &["users"], "unrouted")));
    let everything = TapFilter::parse(TapQuery::default()).unwrap();
    assert!(everything.admits(&event("x", &[], "dead_lettered")));
}

#[test]
fn a_bad_pattern_or_outcome_is_refused_with_a_sentence() {
    let bad_type = TapQuery {
        event_type: Some("user.**".into()),
        ..TapQuery::default()
    };
    assert!(
        TapFilter::parse(bad_type)
            .unwrap_err()
            .contains("whole words")
    );
    let bad_outcome = TapQuery {
        outcome: Some("lost".into()),
        ..TapQuery::default()
    };
    let error = TapFilter::parse(bad_outcome).unwrap_err();
    assert!(
        error.contains("forwarded, unrouted, dead_lettered"),
        "{error}"
    );
}
