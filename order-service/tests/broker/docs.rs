//! The API's documentation, served by the running service: `/openapi.json` is a valid
//! OpenAPI 3.1 document that lists exactly the routes the router serves and the README
//! documents, and `/docs` is served with every asset it loads, from this server only.

use std::collections::BTreeSet;

use events::testing::openapi::{
    Operation, is_external, operations, page_links, problems, readme_routes,
};
use reqwest::{Method, StatusCode, redirect};
use serde_json::Value;

use crate::{Fixture, Service, http};

/// The routes that serve the documentation itself rather than the API.
fn docs_routes() -> BTreeSet<Operation> {
    [("GET", "/openapi.json"), ("GET", "/docs")]
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .into()
}

async fn document(service: &Service) -> Value {
    let response = http()
        .get(service.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

async fn text(service: &Service, path: &str) -> (StatusCode, String) {
    let response = http().get(service.url(path)).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_and_lists_exactly_the_readme_routes() {
    let fx = Fixture::new("order.docs").await;
    let service = Service::start(&fx.queue, &fx.db()).await;
    let document = document(&service).await;
    assert_eq!(problems(&document.to_string()), Vec::<String>::new());
    assert_eq!(
        document,
        serde_json::to_value(order_service::api::openapi()).unwrap()
    );

    let readme = include_str!("../../README.md");
    let documented: BTreeSet<Operation> = readme_routes(readme)
        .difference(&docs_routes())
        .cloned()
        .collect();
    let listed = operations(&document);
    assert_eq!(
        listed, documented,
        "the document (left) and the README (right) differ"
    );
    assert!(
        readme_routes(readme).is_superset(&docs_routes()),
        "README: /openapi.json, /docs"
    );
    service.stop().await.unwrap();
    fx.cleanup().await;
}

/// The router against the document: on each documented path, a documented method is
/// served (neither a `405` nor the unknown-path `404`) and every other method is `405`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_serves_exactly_the_documented_methods() {
    let fx = Fixture::new("order.docs").await;
    let service = Service::start(&fx.queue, &fx.db()).await;
    let listed = operations(&document(&service).await);
    let paths: BTreeSet<&String> = listed.iter().map(|(_, path)| path).collect();
    assert!(paths.len() >= 7, "{paths:?}");
    for path in paths {
        let url = service.url(&path.replace("{id}", "1"));
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            let response = http().request(method.clone(), &url).send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if listed.contains(&(method.to_string(), path.clone())) {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert_ne!(body["error"], "no such endpoint", "{method} {path}");
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert!(body["error"].is_string(), "{method} {path}: {body}");
            }
        }
    }
    service.stop().await.unwrap();
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_and_everything_it_loads_come_from_this_server() {
    let fx = Fixture::new("order.docs").await;
    let service = Service::start(&fx.queue, &fx.db()).await;
    let client = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap();
    let response = client.get(service.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(response.headers()["location"], "/docs/");
    let (status, html) = text(&service, "/docs/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"<div id="swagger-ui">"#), "{html}");
    let links = page_links(&html);
    assert!(
        links.iter().any(|l| l.ends_with("swagger-ui-bundle.js")),
        "{links:?}"
    );
    for link in &links {
        assert!(!is_external(link), "the page loads {link} from elsewhere");
        let file = link.trim_start_matches("./");
        let response = http()
            .get(service.url(&format!("/docs/{file}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{link}");
        assert!(
            !response.bytes().await.unwrap().is_empty(),
            "{link} is empty"
        );
    }
    // The script that starts Swagger UI: the document from this server, no online
    // validator, and no address elsewhere.
    let (_, init) = text(&service, "/docs/swagger-initializer.js").await;
    assert!(init.contains(r#""url": "/openapi.json""#), "{init}");
    assert!(init.contains(r#""validatorUrl": "none""#), "{init}");
    assert!(
        !init.contains("http://") && !init.contains("https://"),
        "{init}"
    );
    service.stop().await.unwrap();
    fx.cleanup().await;
}
