//! Live reload against the real broker: in-place write, rename-save, symlink swap,
//! POST /reload, deleted and recreated file, and refused edits (broken file, failing
//! [[test]]) while events keep flowing by the running table.

use crate::common::{Broker, Names, RoutesDir, Running, WAIT, header};
use events::testing::{eventually, take_one};
use serde_json::json;

/// Publishes `t` events until one arrives in `queue` (the new table is in force).
async fn flows_to(broker: &Broker, names: &Names, queue: &str) -> String {
    let channel = broker.channel().await;
    broker.publish_event(&names.source(), "t", json!({})).await;
    let got = take_one(&channel, queue, WAIT).await;
    header(&got.delivery.properties, "x-dispatch-generation").unwrap()
}

#[tokio::test]
async fn an_in_place_write_is_applied_to_the_next_event() {
    let names = Names::new("inplace");
    let routes = RoutesDir::new(&names.simple("r", "t", "one"));
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |_| {}).await;
    assert_eq!(flows_to(&broker, &names, &names.q("one")).await, "1");

    routes.write(&names.simple("r", "t", "two"));
    running.wait_generation(2).await;
    assert_eq!(flows_to(&broker, &names, &names.q("two")).await, "2");
    let (_, body) = running.get("/routes").await;
    assert_eq!(body["routes"][0]["to"][0], names.q("two"));
    assert_eq!(body["sha256"].as_str().unwrap().len(), 64);

    running.stop().await;
    broker.cleanup(&names.queues(&["one", "two"])).await;
}

#[tokio::test]
async fn a_rename_save_is_applied() {
    let names = Names::new("rename");
    let routes = RoutesDir::new(&names.simple("r", "t", "one"));
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |_| {}).await;

    routes.rename_save(&names.simple("r", "t", "two"));
    running.wait_generation(2).await;
    assert_eq!(flows_to(&broker, &names, &names.q("two")).await, "2");

    running.stop().await;
    broker.cleanup(&names.queues(&["one", "two"])).await;
}

#[tokio::test]
async fn a_kubernetes_style_symlink_swap_is_applied() {
    let names = Names::new("symlink");
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    // base/routes.toml -> ..data/routes.toml, ..data -> ..v1 (what a ConfigMap mount does).
    std::fs::create_dir(base.join("..v1")).unwrap();
    std::fs::write(base.join("..v1/routes.toml"), names.simple("r", "t", "one")).unwrap();
    std::os::unix::fs::symlink("..v1", base.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/routes.toml", base.join("routes.toml")).unwrap();
    let broker = Broker::new().await;
    let running = Running::start(&base.join("routes.toml"), |_| {}).await;

    std::fs::create_dir(base.join("..v2")).unwrap();
    std::fs::write(base.join("..v2/routes.toml"), names.simple("r", "t", "two")).unwrap();
    std::os::unix::fs::symlink("..v2", base.join("..data_tmp")).unwrap();
    std::fs::rename(base.join("..data_tmp"), base.join("..data")).unwrap();
    std::fs::remove_dir_all(base.join("..v1")).unwrap();

    running.wait_generation(2).await;
    assert_eq!(flows_to(&broker, &names, &names.q("two")).await, "2");
    running.stop().await;
    broker.cleanup(&names.queues(&["one", "two"])).await;
}

#[tokio::test]
async fn post_reload_applies_the_file_synchronously() {
    let names = Names::new("post");
    let routes = RoutesDir::new(&names.simple("r", "t", "one"));
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |_| {}).await;

    routes.write(&names.simple("r", "t", "two"));
    // The watcher may get there first: either way generation 2 runs when POST returns.
    let (status, body) = running.post("/reload").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["generation"], 2, "{body}");
    assert_eq!(running.generation().await, 2);
    let (status, body) = running.post("/reload").await;
    assert_eq!((status, body["result"].as_str()), (200, Some("unchanged")));
    assert_eq!(flows_to(&broker, &names, &names.q("two")).await, "2");

    running.stop().await;
    broker.cleanup(&names.queues(&["one", "two"])).await;
}

#[tokio::test]
async fn a_broken_edit_is_refused_while_events_keep_flowing_by_the_old_table() {
    let names = Names::new("broken");
    let routes = RoutesDir::new(&names.simple("r", "t", "one"));
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |_| {}).await;

    routes.write(&format!(
        "{}[[route]]\nname = \"r\"\nevent = \"t\"\nto = []\n",
        names.header()
    ));
    let error = eventually(WAIT, "the refused reload on /routes", || async {
        let (_, body) = running.get("/routes").await;
        let error = body["last_reload_error"].clone();
        (!error.is_null()).then_some(error)
    })
    .await;
    let first = &error["errors"][0];
    assert_eq!(
        (first["line"].as_u64(), first["column"].as_u64()),
        (Some(8), Some(6)),
        "{error}"
    );
    assert!(
        first["message"].as_str().unwrap().contains("`to` is empty"),
        "{error}"
    );
    assert_eq!(running.generation().await, 1);
    assert_eq!(flows_to(&broker, &names, &names.q("one")).await, "1");
    let (status, body) = running.post("/reload").await;
    assert_eq!(status, 422, "{body}");

    // Fixing the file clears the error.
    routes.write(&names.simple("r", "t", "two"));
    running.wait_generation(2).await;
    assert!(running.get("/routes").await.1["last_reload_error"].is_null());

    running.stop().await;
    broker.cleanup(&names.queues(&["one", "two"])).await;
}

#[tokio::test]
async fn a_failing_test_case_refuses_the_reload() {
    let names = Names::new("failingtest");
    let routes = RoutesDir::new(&names.simple("r", "t", "one"));
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |_| {}).await;

    routes.write(&format!(
        "{}\n[[test]]\nevent = {{ type = \"t\" }}\nexpect = [{:?}]\n",
        names.simple("r", "t", "two"),
        names.q("one")
    ));
    let (status, body) = running.post("/reload").await;
    assert_eq!(status, 422, "{body}");
    let reason = body["details"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("failed") && reason.contains("actual"),
        "{reason}"
    );
    assert_eq!(running.generation().await, 1);
    assert_eq!(flows_to(&broker, &names, &names.q("one")).await, "1");

    running.stop().await;
    broker.cleanup(&names.queues(&["one", "two"])).await;
}

#[tokio::test]
async fn a_deleted_file_keeps_the_running_table_and_recreating_it_reloads() {
    let names = Names::new("deleted");
    let routes = RoutesDir::new(&names.simple("r", "t", "one"));
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |_| {}).await;

    std::fs::remove_file(&routes.path).unwrap();
    let (status, _) = running.post("/reload").await;
    assert_eq!(status, 404);
    assert_eq!(flows_to(&broker, &names, &names.q("one")).await, "1");

    routes.write(&names.simple("r", "t", "two"));
    running.wait_generation(2).await;
    assert_eq!(flows_to(&broker, &names, &names.q("two")).await, "2");

    running.stop().await;
    broker.cleanup(&names.queues(&["one", "two"])).await;
}

#[tokio::test]
async fn polling_picks_up_changes_the_watcher_cannot_see() {
    let names = Names::new("poll");
    // The watched directory holds only a symlink to a file elsewhere: editing that file
    // sends no event to the watcher (like a bind mount), so only polling can see it.
    let elsewhere = RoutesDir::new(&names.simple("r", "t", "one"));
    let watched = tempfile::tempdir().unwrap();
    let link = watched.path().join("routes.toml");
    std::os::unix::fs::symlink(&elsewhere.path, &link).unwrap();
    let broker = Broker::new().await;
    let running = Running::start(&link, |s| {
        s.poll_interval = Some(std::time::Duration::from_millis(200));
    })
    .await;
    elsewhere.write(&names.simple("r", "t", "two"));
    running.wait_generation(2).await;
    let metrics = running.metrics().await;
    assert!(
        metrics.contains("dispatcher_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dispatcher_routes_generation 2"),
        "{metrics}"
    );
    assert_eq!(flows_to(&broker, &names, &names.q("two")).await, "2");
    running.stop().await;
    broker.cleanup(&names.queues(&["one", "two"])).await;
}

#[tokio::test]
async fn a_storm_of_saves_gives_few_reloads_and_the_last_content_wins() {
    let names = Names::new("storm");
    let routes = RoutesDir::new(&names.simple("r", "t", "one"));
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |_| {}).await;

    // 50 saves in about 2 s, alternating targets, ending on `two`.
    let mut last = String::new();
    for i in 0..50 {
        let target = if i % 2 == 0 { "one" } else { "two" };
        last = format!("# save {i}\n{}", names.simple("r", "t", target));
        routes.write(&last);
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
    let sha256 = dispatcher::reload::sha256_hex(&last);
    let body = eventually(WAIT, "the last save to be running", || async {
        let (_, body) = running.get("/routes").await;
        (body["sha256"] == sha256.as_str()).then_some(body)
    })
    .await;
    let generation = body["generation"].as_u64().unwrap();
    // Debouncing: a reload 200 ms after a pause, or 2 s into a burst. Normally 2 or 3
    // reloads; the bound leaves room for a loaded machine stretching the 40 ms gaps.
    assert!(generation <= 25, "{generation} generations for 50 saves");
    assert_eq!(
        flows_to(&broker, &names, &names.q("two")).await,
        generation.to_string()
    );
    running.stop().await;
    broker.cleanup(&names.queues(&["one", "two"])).await;
}
