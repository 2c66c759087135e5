//! The real binary with an admin token from a file: guarded endpoints refuse a request
//! without it, the probes stay open, and the token appears nowhere in its output.

use crate::spawned::Dispatcher;

const TOKEN: &str = "Kp4-distinctive-admin-token-Wq8";

#[tokio::test]
async fn the_binary_guards_routes_and_reload_with_the_token_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = events::testing::unique("admin-token");
    let routes = dir.path().join("routes.toml");
    std::fs::write(
        &routes,
        format!(
            "source = \"{prefix}.source\"\nunrouted = \"{prefix}.unrouted\"\n\
             dead_letter = \"{prefix}.dead\"\n"
        ),
    )
    .unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let token_path = token_file.to_str().unwrap();
    let dispatcher = Dispatcher::start(
        &routes,
        &[],
        &[
            ("DISPATCHER_ADMIN_TOKEN_FILE", token_path),
            // The file wins over the variable.
            ("DISPATCHER_ADMIN_TOKEN", "the-losing-token"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let refused = client.post(dispatcher.url("/reload")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
    let losing = client
        .get(dispatcher.url("/routes"))
        .bearer_auth("the-losing-token")
        .send()
        .await
        .unwrap();
    assert_eq!(losing.status(), 401);
    let allowed = client
        .get(dispatcher.url("/routes"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    let reloaded = client
        .post(dispatcher.url("/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_ne!(reloaded.status(), 401);
    for open in ["/healthz", "/metrics"] {
        let status = client
            .get(dispatcher.url(open))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{open}");
    }
    let output = dispatcher.output();
    assert!(
        output.contains("/reload"),
        "the requests are logged: {output}"
    );
    assert!(!output.contains(TOKEN), "the token leaked: {output}");
    let connection = events::testing::broker().await;
    let queues = ["source", "unrouted", "dead"].map(|q| format!("{prefix}.{q}"));
    let names: Vec<&str> = queues.iter().map(String::as_str).collect();
    events::testing::delete_queues(&connection, &names).await;
}

#[test]
fn help_names_the_token_settings_but_never_shows_the_token() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dispatcher"))
        .args(["run", "--help"])
        .env("DISPATCHER_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("DISPATCHER_ADMIN_TOKEN_FILE"), "{help}");
    assert!(!help.contains(TOKEN), "{help}");
}
