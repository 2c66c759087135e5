//! HTTP fuzzing through the router: random methods, paths, queries, headers and bodies
//! never produce a 500 (or a panic), and every error is a JSON error body.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::TestApp;

fn method() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS",
    ])
}

fn path() -> impl Strategy<Value = String> {
    let segment = "([a-zA-Z0-9._~-]|%[0-9A-F]{2}){0,24}";
    prop_oneof![
        Just("/users".to_owned()),
        segment.prop_map(|s| format!("/users/{s}")),
        (segment, segment).prop_map(|(a, b)| format!("/users?limit={a}&after={b}")),
        (-5i64..5, prop::num::i64::ANY).prop_map(|(a, b)| format!("/users/{a}{b}")),
        segment.prop_map(|s| format!("/{s}")),
        Just("/readyz".to_owned()),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        "\\PC{0,120}".prop_map(String::into_bytes),
        ("\\PC{0,150}", "\\PC{0,60}", any::<i64>()).prop_map(|(name, email, n)| {
            format!(
                r#"{{"name":{},"email":{},"n":{n}}}"#,
                serde_json::json!(name),
                serde_json::json!(email)
            )
            .into_bytes()
        }),
        prop::sample::select(vec![
            r#"{"name":"a","email":"a@b.co"}"#.as_bytes().to_vec(),
            br#"{"name":{"deep":[[[[[]]]]]},"email":true}"#.to_vec(),
            br#"{"name":"\ud800","email":"a@b.co"}"#.to_vec(),
            br#"{"name":1e999,"email":"a@b.co"}"#.to_vec(),
            vec![b'['; 5000],
        ]),
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..80)
}

#[test]
fn no_request_gets_a_500_and_every_error_is_json() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(async { TestApp::fresh() });
    let content_type = prop::sample::select(vec![
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/problem+json",
        "",
    ]);
    let strategy = (
        method(),
        path(),
        body(),
        content_type,
        header_value(),
        header_value(),
    );
    let mut runner = TestRunner::new(Config {
        cases: 600,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &strategy,
            |(method, path, body, content_type, key, trace)| {
                let mut builder = Request::builder().method(method).uri(path.as_str());
                if !content_type.is_empty() {
                    builder = builder.header("content-type", content_type);
                }
                if let Ok(key) = axum::http::HeaderValue::from_bytes(&key) {
                    builder = builder.header("idempotency-key", key);
                }
                if let Ok(trace) = axum::http::HeaderValue::from_bytes(&trace) {
                    builder = builder.header("traceparent", trace);
                }
                let Ok(request) = builder.body(Body::from(body)) else {
                    return Ok(());
                };
                let reply = runtime.block_on(app.call(request));
                prop_assert!(
                    reply.status < StatusCode::INTERNAL_SERVER_ERROR,
                    "{method} {path}: {} {}",
                    reply.status,
                    reply.body
                );
                if reply.status.is_client_error() && method != "HEAD" {
                    prop_assert!(
                        reply.body["error"].is_string(),
                        "{method} {path}: {}",
                        reply.body
                    );
                }
                Ok(())
            },
        )
        .unwrap();
}
