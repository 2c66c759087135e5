//! `GET /`, `GET /tap`, `GET /stats` and `POST /explain` through the router, no socket.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use lapin::BasicProperties;
use tower::ServiceExt;

use crate::admin::router;
use crate::forward::deliver::{Fate, Outcome};
use crate::settings::Settings;
use crate::state::Shared;

const TABLE: &str = r#"
source = "live.source"
unrouted = "live.unrouted"
dead_letter = "live.dead"

[[route]]
name = "french-users"
event = "user.*"
where = { "data.country" = "FR" }
to = ["live.fr"]

[[route]]
name = "users"
event = "user.created"
to = ["live.users"]
"#;

const EVENT: &str = r#"{"specversion":"1.0","id":"e-7","source":"/t","type":"user.created","data":{"country":"DE"}}"#;
const TOKEN: &str = "live-admin-token-42";

fn shared(token: Option<&str>) -> Arc<Shared> {
    let settings = Settings::with_routes("routes.toml");
    let endpoints = events::Endpoints::new(&settings.amqp).unwrap();
    let table = crate::routes::load("routes.toml", TABLE).unwrap();
    let token = token.map(|t| t.parse().unwrap());
    Arc::new(Shared::new(settings, endpoints, table, "00".to_owned()).with_admin_token(token))
}

async fn send(shared: &Arc<Shared>, request: Request<Body>) -> (StatusCode, String, String) {
    let response = router(shared.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn post(path: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn explain_answers_what_dispatcher_explain_json_prints() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    let event = dir.path().join("event.json");
    std::fs::write(&routes, TABLE).unwrap();
    std::fs::write(&event, EVENT).unwrap();
    let args = [routes.display().to_string(), event.display().to_string()];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    crate::cli::explain(&args, &[], &[], true, &mut out, &mut err);
    let printed: serde_json::Value = serde_json::from_slice(&out).unwrap();

    let (status, _, body) = send(&shared(None), post("/explain", EVENT)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answered: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answered, printed);
    assert_eq!(answered["routes"][0][1]["verdict"], "condition_failed");
    assert_eq!(answered["routes"][1][1]["verdict"], "matched");
    assert_eq!(answered["targets"], serde_json::json!(["live.users"]));
}

#[tokio::test]
async fn explain_takes_headers_and_refuses_an_unreadable_event_with_its_reason() {
    let shared = shared(None);
    let (status, _, body) = send(&shared, post("/explain?header=x-tenant=a%3Db", EVENT)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = send(&shared, post("/explain?header=novalue", EVENT)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _, body) = send(&shared, post("/explain", "{not json")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["details"]["reason"], "not_json", "{body}");
}

#[tokio::test]
async fn with_a_token_set_tap_stats_and_explain_refuse_a_request_without_it() {
    let shared = shared(Some(TOKEN));
    for request in [get("/tap"), get("/stats"), post("/explain", EVENT)] {
        let path = request.uri().to_string();
        let (status, _, body) = send(&shared, request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(!body.contains(TOKEN), "{body}");
    }
    let request = Request::get("/stats")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&shared, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn the_dashboard_page_is_served_without_a_token_and_holds_no_data() {
    let shared = shared(Some(TOKEN));
    let (status, content_type, body) = send(&shared, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(body.contains("<title>dispatcher</title>"));
    assert!(!body.contains("live.source"));
    assert!(
        !body.contains("http://") && !body.contains("https://"),
        "no external asset"
    );
}

#[tokio::test]
async fn a_bad_tap_filter_is_a_400_that_says_why() {
    let shared = shared(None);
    let (status, _, body) = send(&shared, get("/tap?outcome=lost")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("dead_lettered"), "{body}");
    let (status, _, body) = send(&shared, get("/tap?colour=red")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// Reads SSE frames from a streaming body until one contains `needle`.
async fn read_until(body: &mut Body, needle: &str) -> String {
    let mut seen = String::new();
    while !seen.contains(needle) {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
            .await
            .expect("an SSE frame within 10 s")
            .expect("the stream goes on")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            seen.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    seen
}

#[tokio::test]
async fn the_tap_streams_the_events_its_filter_admits_and_counts_them_in_stats() {
    let shared = shared(None);
    let response = router(shared.clone())
        .oneshot(get("/tap?outcome=unrouted&body=true"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    read_until(&mut body, "event: ready").await;
    assert_eq!(shared.tap.watchers(), 1);

    let generation = shared.generation();
    let properties = BasicProperties::default()
        .with_content_type(events::envelope::CONTENT_TYPE.into())
        .with_message_id("e-7".into());
    let tap = &shared.tap;
    let seed = tap.seed(&properties, EVENT.as_bytes());
    tap.settled(&Fate::Done(Outcome::Forwarded), &generation, seed);
    let other = EVENT.replace("user.created", "order.placed");
    let seed = tap.seed(&properties, other.as_bytes());
    tap.settled(&Fate::Done(Outcome::Unrouted), &generation, seed);

    let seen = read_until(&mut body, "event: tap").await;
    let data = seen.split("data: ").last().unwrap().trim();
    let event: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        event["type"], "order.placed",
        "the forwarded one is filtered out"
    );
    assert_eq!(event["outcome"], "unrouted");
    assert_eq!(event["targets"], serde_json::json!(["live.unrouted"]));
    assert!(event["body"].as_str().unwrap().contains("order.placed"));

    let (_, _, stats) = send(&shared, get("/stats")).await;
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["forwarded"], 1);
    assert_eq!(stats["unrouted"], 1);
    assert_eq!(stats["tap_watchers"], 1);
    drop(body);
    assert_eq!(shared.tap.watchers(), 0);
}
