//! The dispatcher's dashboard in a real headless Chromium: the routes are shown, a
//! created user raises its route's count and shows in the live tail, a broken save shows
//! its error with file:line:col until a good save clears it, and the explain box gives
//! each route's verdict. Screenshots land in `target/screenshots/`.

use e2e::{Browser, Options, System};
use events::testing::unique;

/// A routes file whose last route has a bad `to`, and the line of that `to`.
fn broken(system: &System) -> (String, usize) {
    let text = system
        .queues
        .routes_toml("\n[[route]]\nname = \"broken\"\nevent = \"audit.*\"\nto = 5\n");
    let line = text.lines().position(|l| l == "to = 5").unwrap() + 1;
    (text, line)
}

fn count(text: &str) -> u64 {
    text.trim().parse().unwrap_or(0)
}

#[tokio::test]
async fn the_dashboard_shows_routes_counts_reload_errors_and_explains_an_event() {
    let system = System::start(Options {
        with_orders: false,
        ..Options::default()
    })
    .await
    .unwrap();
    let browser = Browser::start().await.unwrap();
    browser.goto(&system.dispatcher.url("/")).await.unwrap();

    // The routes table, from GET /routes.
    let routes = browser
        .wait_for_text("#routes tbody", "the user-snapshots route", |t| {
            t.contains("user-snapshots")
        })
        .await
        .unwrap();
    assert!(routes.contains(&system.queues.order), "{routes}");
    assert_eq!(browser.text("#generation").await.unwrap(), "1");
    let count_cell = "#routes tr[data-route='user-snapshots'] .count";
    let before = count(&browser.text(count_cell).await.unwrap());
    browser
        .wait_for_text("#tail-status", "the tap attached", |t| t == "following")
        .await
        .unwrap();

    // Created users raise the route's count and show in the live tail.
    const USERS: u64 = 10;
    for n in 0..USERS {
        let email = format!("{}@example.com", unique("dash"));
        system
            .create_user(&format!("Dashboard Dora {n}"), &email)
            .await
            .unwrap();
    }
    browser
        .wait_for_text(count_cell, "the count risen by every user", |t| {
            count(t) >= before + USERS
        })
        .await
        .unwrap();
    let tail = browser
        .wait_for_text("#tail", "the created user", |t| t.contains("user_created"))
        .await
        .unwrap();
    assert!(tail.contains("forwarded"), "{tail}");
    browser
        .wait_for_text("#rate-now", "a rate", |t| t.contains("/s"))
        .await
        .unwrap();
    browser.screenshot("dashboard").await.unwrap();

    // A broken save: the error with its line, in the red box; the table stays.
    let (text, line) = broken(&system);
    std::fs::write(&system.routes, text).unwrap();
    let error = browser
        .wait_for_text("#reload-error", "the reload error", |t| {
            t.contains(&format!("routes.toml:{line}:"))
        })
        .await
        .unwrap();
    assert!(error.contains("Reload refused"), "{error}");
    assert_eq!(browser.text("#generation").await.unwrap(), "1");
    browser.screenshot("dashboard-reload-error").await.unwrap();

    // A good save clears it and shows the new generation and route.
    let fixed = system.queues.routes_toml(&format!(
        "\n[[route]]\nname = \"audit\"\nevent = \"audit.*\"\nto = [\"{}\"]\n",
        system.queues.tap
    ));
    std::fs::write(&system.routes, fixed).unwrap();
    browser
        .wait_for_text("#generation", "generation 2", |t| t == "2")
        .await
        .unwrap();
    browser
        .wait_for_text("#routes tbody", "the new route", |t| t.contains("audit"))
        .await
        .unwrap();
    let shown: bool = browser
        .execute(
            "return getComputedStyle(document.querySelector('#reload-error')).display !== 'none'",
            vec![],
        )
        .await
        .unwrap()
        .as_bool()
        .unwrap();
    assert!(!shown, "the reload error is still shown after a good save");

    // The explain box: each route's verdict and the targets, from POST /explain.
    let event = r#"{"specversion":"1.0","id":"x-1","source":"/t","type":"user_created","data":{}}"#;
    browser.fill("#explain-event", event).await.unwrap();
    browser.click("#explain-button").await.unwrap();
    let verdict = browser
        .wait_for_text(
            "#explain-result tr[data-route='user-snapshots']",
            "the verdict",
            |t| t.contains("matched"),
        )
        .await
        .unwrap();
    assert!(verdict.contains("user-snapshots"), "{verdict}");
    let audit = browser
        .text("#explain-result tr[data-route='audit']")
        .await
        .unwrap();
    assert!(audit.contains("type mismatch"), "{audit}");
    let targets = browser
        .text("#explain-result .explain-targets")
        .await
        .unwrap();
    assert!(targets.contains(&system.queues.order), "{targets}");
    browser.screenshot("dashboard-explain").await.unwrap();

    browser.close().await.unwrap();
    system.shutdown().await.unwrap();
}
