//! The API's documentation: `/openapi.json` is a valid OpenAPI 3.1 document that lists
//! exactly the routes the router serves and the README documents, and `/docs` is served
//! with every asset it loads, from this server only.

use std::collections::BTreeSet;

use axum::http::{StatusCode, header};
use events::testing::openapi::{
    Operation, is_external, operations, page_links, problems, readme_routes,
};
use serde_json::Value;

use crate::{TestApp, request};

/// The routes that serve the documentation itself rather than the API.
fn docs_routes() -> BTreeSet<Operation> {
    [("GET", "/openapi.json"), ("GET", "/docs")]
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .into()
}

async fn document(app: &TestApp) -> Value {
    let reply = app.call(request("GET", "/openapi.json")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
    reply.body
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let app = TestApp::fresh();
    let document = document(&app).await;
    assert_eq!(problems(&document.to_string()), Vec::<String>::new());
    assert_eq!(
        document,
        serde_json::to_value(user_service::api::openapi()).unwrap()
    );
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_the_readme_documents() {
    let app = TestApp::fresh();
    let listed = operations(&document(&app).await);
    let readme = include_str!("../../README.md");
    let documented: BTreeSet<Operation> = readme_routes(readme)
        .difference(&docs_routes())
        .cloned()
        .collect();
    assert_eq!(
        listed, documented,
        "the document (left) and the README (right) differ"
    );
    assert!(
        readme_routes(readme).is_superset(&docs_routes()),
        "README: /openapi.json, /docs"
    );
}

/// The router against the document: on each documented path, a documented method is
/// served (neither a `405` nor the unknown-path `404`) and every other method is `405`.
#[tokio::test]
async fn the_router_serves_exactly_the_documented_methods() {
    let app = TestApp::fresh();
    app.created("A", "a@x.io").await;
    let listed = operations(&document(&app).await);
    let paths: BTreeSet<&String> = listed.iter().map(|(_, path)| path).collect();
    assert!(paths.len() >= 5, "{paths:?}");
    for path in paths {
        let uri = path.replace("{id}", "1");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let reply = app.call(request(method, &uri)).await;
            if listed.contains(&(method.to_owned(), path.clone())) {
                assert_ne!(
                    reply.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
                assert_ne!(reply.body["error"], "no such endpoint", "{method} {path}");
            } else {
                reply.assert_error(StatusCode::METHOD_NOT_ALLOWED);
            }
        }
    }
}

#[tokio::test]
async fn the_docs_page_and_everything_it_loads_come_from_this_server() {
    let app = TestApp::fresh();
    let reply = app.call(request("GET", "/docs")).await;
    assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(reply.headers[header::LOCATION], "/docs/");
    let page = app.call(request("GET", "/docs/")).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.body.as_str().expect("an HTML page");
    assert!(html.contains(r#"<div id="swagger-ui">"#), "{html}");
    let links = page_links(html);
    assert!(
        links.iter().any(|l| l.ends_with("swagger-ui-bundle.js")),
        "{links:?}"
    );
    for link in &links {
        assert!(!is_external(link), "the page loads {link} from elsewhere");
        let file = link.trim_start_matches("./");
        let asset = app.call(request("GET", &format!("/docs/{file}"))).await;
        assert_eq!(asset.status, StatusCode::OK, "{link}");
        assert_ne!(asset.body, Value::Null, "{link} is empty");
    }
    // The script that starts Swagger UI: the document from this server, no online
    // validator, and no address elsewhere.
    let init = app
        .call(request("GET", "/docs/swagger-initializer.js"))
        .await;
    let init = init.body.as_str().expect("a script");
    assert!(init.contains(r#""url": "/openapi.json""#), "{init}");
    assert!(init.contains(r#""validatorUrl": "none""#), "{init}");
    assert!(
        !init.contains("http://") && !init.contains("https://"),
        "{init}"
    );
}
