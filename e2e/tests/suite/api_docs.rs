//! The `/docs` pages of user-service and order-service in a real headless Chromium:
//! Swagger UI, served from the binary, renders every operation of the service's own
//! `/openapi.json` (no CDN: the page's assets come from the service). Screenshots land
//! in `target/screenshots/`.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::{Browser, Options, System};
use serde_json::{Value, json};

/// The (path, method) pairs the service's OpenAPI document describes.
async fn documented(http: &reqwest::Client, base: &str) -> BTreeSet<(String, String)> {
    let document: Value = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = document["paths"].as_object().expect("a paths object");
    paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flat_map(|ops| ops.keys())
                .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
                .map(move |m| (path.clone(), m.clone()))
        })
        .collect()
}

/// The (path, method) pairs Swagger UI shows, once it shows `expected` of them.
async fn shown(browser: &Browser, expected: usize) -> BTreeSet<(String, String)> {
    let script = "return Array.from(document.querySelectorAll('.opblock')).map(b => { \
        const path = b.querySelector('.opblock-summary-path'); \
        const method = b.querySelector('.opblock-summary-method'); \
        return [path ? path.getAttribute('data-path') : '', \
                method ? method.textContent.toLowerCase() : '']; })";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let value = browser.execute(script, vec![]).await.unwrap();
        let seen: BTreeSet<(String, String)> = serde_json::from_value(value).unwrap_or_default();
        if seen.len() >= expected || tokio::time::Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_docs_pages_of_both_services_list_every_documented_operation() {
    let system = System::start(Options::default()).await.unwrap();
    let orders = system.orders.as_ref().expect("order-service runs");
    let browser = Browser::start().await.unwrap();
    for (name, service) in [("user-service", &system.users), ("order-service", orders)] {
        let origin = service.url("");
        let expected = documented(&system.http, &origin).await;
        assert!(expected.len() >= 5, "{name} documents {expected:?}");
        browser.goto(&service.url("/docs/")).await.unwrap();
        let seen = shown(&browser, expected.len()).await;
        assert_eq!(
            seen, expected,
            "{name}: /docs lists what /openapi.json documents"
        );
        // Every script and stylesheet the page loaded came from the service itself.
        let loaded = browser
            .execute(
                "return performance.getEntriesByType('resource').map(e => e.name)",
                vec![],
            )
            .await
            .unwrap();
        let loaded: Vec<String> = serde_json::from_value(loaded).unwrap();
        assert!(!loaded.is_empty(), "{name}: the page loaded its assets");
        for url in &loaded {
            assert!(
                url.starts_with(&origin),
                "{name}: /docs loaded {url}, not from {origin}; all loaded: {}",
                json!(loaded)
            );
        }
        browser.screenshot(&format!("docs-{name}")).await.unwrap();
    }
    browser.close().await.unwrap();
}
