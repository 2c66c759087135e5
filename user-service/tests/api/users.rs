//! `GET`, `PATCH`, `DELETE` of one user and the paged list.

use axum::http::StatusCode;
use serde_json::Value;

use crate::{TestApp, json_request, request};

#[tokio::test]
async fn a_user_is_read_back_by_id() {
    let app = TestApp::fresh();
    let created = app.created("Ann", "ann@x.io").await;
    let reply = app
        .call(request("GET", &format!("/users/{}", created["id"])))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, created);
}

#[tokio::test]
async fn unknown_or_impossible_ids_are_a_404() {
    let app = TestApp::fresh();
    for id in [
        "999",
        "abc",
        "-1",
        "0",
        "99999999999999999999999",
        "1.5",
        "%F0%9F%98%80",
        "1e3",
    ] {
        for method in ["GET", "DELETE"] {
            let reply = app.call(request(method, &format!("/users/{id}"))).await;
            reply.assert_error(StatusCode::NOT_FOUND);
        }
        let reply = app
            .call(json_request(
                "PATCH",
                &format!("/users/{id}"),
                r#"{"name":"x"}"#,
            ))
            .await;
        reply.assert_error(StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn a_path_that_is_not_utf8_is_a_400() {
    let app = TestApp::fresh();
    let reply = app.call(request("GET", "/users/%FF%FE")).await;
    reply.assert_error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_list_pages_oldest_first_with_a_cursor() {
    let app = TestApp::fresh();
    for i in 0..5 {
        app.created(&format!("u{i}"), &format!("u{i}@x.io")).await;
    }
    let first = app.call(request("GET", "/users?limit=2")).await;
    assert_eq!(first.status, StatusCode::OK);
    let names = |page: &Value| -> Vec<String> {
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&first.body), ["u0", "u1"]);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .call(request("GET", &format!("/users?limit=2&after={cursor}")))
        .await;
    assert_eq!(names(&second.body), ["u2", "u3"]);
    let cursor = second.body["next_cursor"].as_str().unwrap().to_owned();
    let last = app
        .call(request("GET", &format!("/users?limit=2&after={cursor}")))
        .await;
    assert_eq!(names(&last.body), ["u4"]);
    assert!(last.body["next_cursor"].is_null(), "{}", last.body);
    let all = app.call(request("GET", "/users")).await;
    assert_eq!(names(&all.body).len(), 5);
}

#[tokio::test]
async fn bad_paging_parameters_are_a_400_naming_each() {
    let app = TestApp::fresh();
    let reply = app.call(request("GET", "/users?limit=-1&after=abc")).await;
    let details = reply.assert_error(StatusCode::BAD_REQUEST);
    assert!(details["limit"].is_string(), "{details}");
    assert!(details["after"].is_string(), "{details}");
    for query in [
        "limit=0",
        "limit=1001",
        "limit=",
        "limit=1&limit=2",
        "after=-5",
    ] {
        let reply = app.call(request("GET", &format!("/users?{query}"))).await;
        reply.assert_error(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn a_patch_bumps_the_version_and_emits_user_updated() {
    let app = TestApp::fresh();
    let created = app.created("Ann", "ann@x.io").await;
    let uri = format!("/users/{}", created["id"]);
    let reply = app
        .call(json_request("PATCH", &uri, r#"{"email":"ANNE@x.io"}"#))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["version"], 2);
    assert_eq!(reply.body["email"], "anne@x.io");
    assert_eq!(reply.body["name"], "Ann");
    assert_eq!(reply.body["created_at"], created["created_at"]);
    let reply = app
        .call(json_request("PATCH", &uri, r#"{"name":"Anne"}"#))
        .await;
    assert_eq!(reply.body["version"], 3);
    let events = app.outbox().await;
    let kinds: Vec<(&str, u64)> = events
        .iter()
        .map(|e| {
            (
                e.ty.as_str(),
                e.data.as_ref().unwrap()["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("user_created", 1),
            ("user_updated", 2),
            ("user_updated", 3)
        ]
    );
    assert_eq!(events[2].data.as_ref().unwrap()["name"], "Anne");
}

#[tokio::test]
async fn a_patch_to_a_taken_email_is_a_409_and_an_empty_patch_a_422() {
    let app = TestApp::fresh();
    app.created("A", "a@x.io").await;
    let b = app.created("B", "b@x.io").await;
    let uri = format!("/users/{}", b["id"]);
    let reply = app
        .call(json_request("PATCH", &uri, r#"{"email":"A@X.IO"}"#))
        .await;
    reply.assert_error(StatusCode::CONFLICT);
    let reply = app
        .call(json_request("PATCH", &uri, r#"{"email":"b@X.io"}"#))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "keeping one's own email is fine"
    );
    let reply = app.call(json_request("PATCH", &uri, "{}")).await;
    assert!(reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY)["body"].is_string());
    let reply = app
        .call(json_request("PATCH", &uri, r#"{"name":""}"#))
        .await;
    reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    let reply = app.call(json_request("PATCH", &uri, "{oops")).await;
    reply.assert_error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_delete_is_a_204_and_emits_user_deleted_with_the_next_version() {
    let app = TestApp::fresh();
    let created = app.created("Ann", "ann@x.io").await;
    let uri = format!("/users/{}", created["id"]);
    app.call(json_request("PATCH", &uri, r#"{"name":"Anne"}"#))
        .await;
    let reply = app.call(request("DELETE", &uri)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(reply.body.is_null());
    app.call(request("GET", &uri))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    app.call(request("DELETE", &uri))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    let events = app.outbox().await;
    let deleted = events.last().unwrap();
    assert_eq!(deleted.ty, "user_deleted");
    assert_eq!(
        deleted.data.as_ref().unwrap(),
        &serde_json::json!({"id": created["id"], "version": 3})
    );
    // The email is free again, and ids are never reused.
    let again = app.created("Ann", "ann@x.io").await;
    assert!(again["id"].as_i64() > created["id"].as_i64());
}
