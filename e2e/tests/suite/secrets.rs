//! No password in any output: each service runs with a wrong, distinctive broker
//! password (from `AMQP_URL`, or from `AMQP_URL_FILE`), and neither its whole output
//! nor its HTTP endpoints may show it; nor may a service that refuses a bad URL.

use std::time::Duration;

use e2e::process::binary;
use e2e::{Queues, Service, Spec};
use events::testing::{eventually, unique};

/// A broker URL with a password nobody would log by chance.
fn secret_url(password: &str) -> String {
    format!("amqp://guest:{password}@127.0.0.1:5672/%2f")
}

fn spec(name: &str, dir: &std::path::Path) -> Spec {
    let spec = Spec::new(name)
        .env("RUST_LOG", "trace")
        .env("LOG_FORMAT", "json");
    match name {
        "dispatcher" => {
            let routes = dir.join("routes.toml");
            std::fs::write(&routes, Queues::unique().routes_toml("")).unwrap();
            spec.env("ROUTES_FILE", routes.display().to_string())
                .env("DISPATCHER_ADDR", "127.0.0.1:0")
        }
        "user-service" => spec
            .env("USER_SERVICE_ADDR", "127.0.0.1:0")
            .env("USER_DB", dir.join("users.db").display().to_string()),
        _ => spec
            .env("ORDER_SERVICE_ADDR", "127.0.0.1:0")
            .env("ORDER_DB", dir.join("orders.db").display().to_string()),
    }
}

/// Runs `spec` until it has failed to log in twice, reads its endpoints, stops it, and
/// asserts that `password` shows nowhere.
async fn assert_never_shown(spec: Spec, password: &str) {
    let name = spec.name.clone();
    let mut service = Service::start(spec).await.unwrap();
    eventually(Duration::from_secs(60), "two refused logins", || async {
        let refused = service
            .logs()
            .iter()
            .filter(|line| line.contains("broker not reachable"))
            .count();
        (refused >= 2).then_some(())
    })
    .await;
    let mut paths = vec!["/healthz", "/readyz", "/metrics", "/nonexistent"];
    if name == "dispatcher" {
        paths.push("/routes");
    }
    for path in paths {
        let body = reqwest::get(service.url(path))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !body.contains(password),
            "{name} {path} shows the password: {body}"
        );
    }
    service.stop().await.unwrap();
    let logs = service.logs();
    assert!(
        logs.iter().any(|line| line.contains("guest:***@127.0.0.1")),
        "{name} names the broker, password redacted: {logs:#?}"
    );
    let leaks: Vec<&String> = logs.iter().filter(|l| l.contains(password)).collect();
    assert!(leaks.is_empty(), "{name} logged the password: {leaks:#?}");
}

#[tokio::test]
async fn no_service_shows_the_broker_password_in_its_output_or_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let password = unique("Pw-Zebra-Quartz");
    for name in ["dispatcher", "user-service"] {
        let spec = spec(name, dir.path()).env("AMQP_URL", secret_url(&password));
        assert_never_shown(spec, &password).await;
    }
    let file = dir.path().join("amqp-url");
    std::fs::write(&file, secret_url(&password)).unwrap();
    let spec = spec("order-service", dir.path())
        .env("AMQP_URL_FILE", file.display().to_string())
        .env("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f");
    assert_never_shown(spec, &password).await;
}

#[tokio::test]
async fn a_service_that_refuses_a_bad_url_does_not_quote_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let password = unique("Pw-Bad-Url");
    let bad_urls = [
        format!("http://guest:{password}@127.0.0.1:5672/%2f"),
        format!("guest:{password}@127.0.0.1:5672"),
    ];
    for url in bad_urls {
        for name in ["dispatcher", "user-service", "order-service"] {
            let spec = spec(name, dir.path());
            let output = std::process::Command::new(binary(name).unwrap())
                .env_clear()
                .envs(spec.env.iter().map(|(k, v)| (k, v)))
                .env("AMQP_URL", &url)
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(!output.status.success(), "{name} refuses {url}: {text}");
            assert!(text.contains("is not valid"), "{name} says why: {text}");
            assert!(
                !text.contains(&password),
                "{name} quoted the password: {text}"
            );
        }
    }
}
