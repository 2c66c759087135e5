//! Hostile and foreign input through a real broker: bodies that are not I-JSON and
//! over-long types are dead-lettered with one reason whether or not the route they
//! would take has a `where`, and binary-mode events made by the Python `cloudevents`
//! SDK (`ce-`, `ce_` and `cloudEvents_` headers, published with pika) are routed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Broker, Names, RoutesDir, Running, WAIT, header};
use events::lapin::BasicProperties;
use events::lapin::types::AMQPValue;
use events::testing::{amqp_url, eventually, take_one};
use serde_json::{Value, json};

/// One route without a `where` (type `plain`) and one with (type `filtered`).
fn both_kinds_of_route(names: &Names) -> String {
    format!(
        "{}[[route]]\nname = \"plain\"\nevent = \"plain\"\nto = [{out:?}]\n\n\
         [[route]]\nname = \"filtered\"\nevent = \"filtered\"\nwhere = {{ \"data.n\" = {{ exists = true }} }}\nto = [{out:?}]\n\n\
         [[route]]\nname = \"hashes\"\nevent = \"#.x.#\"\nto = [{out:?}]\n",
        names.header(),
        out = names.q("out"),
    )
}

fn structured() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/cloudevents+json".into())
        .with_message_id("hostile".into())
}

#[tokio::test]
async fn unreadable_bodies_and_long_types_are_dead_lettered_whatever_the_route() {
    let names = Names::new("reading");
    let routes = RoutesDir::new(&both_kinds_of_route(&names));
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |_| {}).await;

    let long_type = vec!["x"; 30_000].join(".");
    let mut cases: Vec<(Vec<u8>, &str)> = Vec::new();
    for ty in ["plain", "filtered"] {
        let mut bad_utf8 = format!(
            r#"{{"specversion":"1.0","id":"1","source":"s","type":"{ty}","data":{{"n":"?"}}}}"#
        )
        .into_bytes();
        let at = bad_utf8.iter().rposition(|&b| b == b'?').unwrap();
        bad_utf8[at] = 0xff;
        cases.push((bad_utf8, "not_json: "));
        let repeated = format!(
            r#"{{"specversion":"1.0","id":"1","source":"s","type":"{ty}","data":{{"n":1,"n":2}}}}"#
        );
        cases.push((repeated.into_bytes(), "not_json: "));
    }
    let long = format!(r#"{{"specversion":"1.0","id":"1","source":"s","type":"{long_type}"}}"#);
    assert!(long.len() < 200_000);
    cases.push((long.into_bytes(), "type_too_long: "));
    for (body, _) in &cases {
        broker
            .publish_raw(&names.source(), body, structured())
            .await;
    }
    // Good events of both kinds still flow after the bad ones.
    for ty in ["plain", "filtered"] {
        broker
            .publish_event(&names.source(), ty, json!({"n": 1}))
            .await;
    }

    let channel = broker.channel().await;
    for (body, reason) in &cases {
        let got = take_one(&channel, &names.dead(), WAIT).await;
        assert_eq!(&got.delivery.data, body, "the body is kept byte for byte");
        let error = header(&got.delivery.properties, "x-dispatch-error").unwrap();
        assert!(
            error.starts_with(reason),
            "{error:?} should start with {reason:?}"
        );
        assert!(error.len() < 1_000, "the reason quotes little: {error}");
    }
    for _ in 0..2 {
        let got = take_one(&channel, &names.q("out"), WAIT).await;
        let routes = header(&got.delivery.properties, "x-dispatch-routes").unwrap();
        assert!(["plain", "filtered"].contains(&routes.as_str()), "{routes}");
    }
    eventually(WAIT, "the dead letters counted by reason", || async {
        let metrics = running.metrics().await;
        [
            "dispatcher_events_dead_lettered_total{reason=\"not_json\"} 4",
            "dispatcher_events_dead_lettered_total{reason=\"type_too_long\"} 1",
        ]
        .iter()
        .all(|line| metrics.contains(line))
        .then_some(())
    })
    .await;

    running.stop().await;
    broker.cleanup(&names.queues(&["out"])).await;
}

/// A virtualenv with the packages of `tests/python/requirements.txt`, made once under
/// the target folder (as the bench makes its own); a failure says what is missing.
fn python_env() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let requirements = manifest.join("tests/python/requirements.txt");
    let venv = manifest.join("../target/cloudevents-venv");
    let stamp = venv.join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).unwrap();
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return venv;
    }
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 is needed for this test (with its venv module)");
    assert!(
        status.success(),
        "python3 -m venv failed: install python3-venv"
    );
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "pip could not install {}: this test needs PyPI",
        requirements.display()
    );
    std::fs::write(&stamp, wanted).unwrap();
    venv
}

#[tokio::test]
async fn binary_events_from_the_python_cloudevents_sdk_are_routed() {
    // Made before the dispatcher starts: the first run installs the packages.
    let venv = tokio::task::spawn_blocking(python_env).await.unwrap();
    let names = Names::new("python-sdk");
    let routes = RoutesDir::new(&names.simple("sdk", "sdk.user.*", "out"));
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |_| {}).await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/publish_binary.py");
    let source = names.source();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(venv.join("bin/python"))
            .arg(script)
            .args([&amqp_url(), &source, "sdk.user.created"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the SDK script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let published: Vec<(String, Option<String>)> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (binding, id) = line.split_once(' ').unwrap();
            (binding.to_owned(), Some(id.to_owned()))
        })
        .collect();
    let bindings: Vec<&str> = published.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(bindings, ["rabbitmq", "kafka", "amqp"]);

    // Each event reaches the target (in whatever order), routed by `sdk`, with the
    // SDK's headers kept.
    let channel = broker.channel().await;
    let mut received = Vec::new();
    for _ in &published {
        let got = take_one(&channel, &names.q("out"), WAIT).await;
        let data: Value = serde_json::from_slice(&got.delivery.data).unwrap();
        let binding = data["binding"].as_str().unwrap().to_owned();
        let prefix = match binding.as_str() {
            "rabbitmq" => "ce-",
            "kafka" => "ce_",
            _ => "cloudEvents_",
        };
        let id = attribute(&got.delivery.properties, &format!("{prefix}id"));
        let routes = header(&got.delivery.properties, "x-dispatch-routes");
        assert_eq!(routes.as_deref(), Some("sdk"), "{binding}");
        received.push((binding, id));
    }
    received.sort();
    let mut published = published;
    published.sort();
    assert_eq!(received, published);
    let metrics = eventually(WAIT, "the three events counted as routed", || async {
        let metrics = running.metrics().await;
        metrics
            .contains("dispatcher_events_routed_total{route=\"sdk\"} 3")
            .then_some(metrics)
    })
    .await;
    assert!(!metrics.contains("dead_lettered_total{"), "{metrics}");

    running.stop().await;
    broker.cleanup(&names.queues(&["out"])).await;
}

/// A header as text, whether sent as a string or as UTF-8 bytes.
fn attribute(properties: &BasicProperties, name: &str) -> Option<String> {
    match properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::ByteArray(bytes) => String::from_utf8(bytes.as_slice().to_vec()).ok(),
        _ => header(properties, name),
    }
}
