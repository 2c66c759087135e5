//! Bad input: unreadable messages mixed with good events into the dispatcher's queue,
//! and random, malformed, huge HTTP requests to user-service. Nothing may crash, every
//! bad message must reach the dead-letter queue with a reason, every good one its target.

use std::collections::BTreeSet;
use std::time::Duration;

use events::amqp::{Publisher, connect_once};
use events::lapin::BasicProperties;
use events::lapin::options::{BasicAckOptions, BasicGetOptions};
use events::{CloudEvent, envelope::header_string};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;

use super::{Row, Scale, inject::all_serving};
use crate::broker::PrivateBroker;
use crate::stream::tally;
use crate::system::{Options, System};

fn options(broker: &PrivateBroker) -> Options {
    Options {
        amqp_url: broker.url(),
        rust_log: "info".to_owned(),
        with_orders: true,
        poll_interval: None,
        ..Options::default()
    }
}

/// One unreadable message: random bytes, or JSON that is not a readable event.
fn bad_message(rng: &mut StdRng, i: usize) -> Vec<u8> {
    match i % 6 {
        0 | 1 => (0..rng.random_range(0..512)).map(|_| rng.random::<u8>()).collect(),
        2 => format!("{{\"specversion\":\"1.0\",\"id\":\"{i}\",\"source\":\"fuzz\"").into_bytes(),
        3 => format!("{{\"specversion\":\"1.0\",\"id\":\"{i}\",\"source\":\"fuzz\",\"data\":{{}}}}").into_bytes(),
        4 => format!("{{\"specversion\":\"0.3\",\"id\":\"{i}\",\"source\":\"fuzz\",\"type\":\"user_created\"}}").into_bytes(),
        _ => format!("[{i}, {{\"type\": 7}}]").into_bytes(),
    }
}

fn good_event(id: i64) -> CloudEvent {
    CloudEvent::new(
        "fault-suite",
        "user_created",
        json!({"id": id, "name": format!("Good {id}"), "email": format!("good.{id}@example.com"),
               "version": 1, "updated_at": "2026-11-22T10:00:00Z"}),
    )
    .with_subject(id.to_string())
}

/// Bad and good messages interleaved into the dispatch queue.
pub async fn dispatcher_bad_input(broker: &PrivateBroker, scale: Scale) -> anyhow::Result<Row> {
    let system = System::start(options(broker)).await?;
    let connection = connect_once(
        &broker.endpoints(),
        "fault-bad-input",
        Duration::from_secs(10),
    )
    .await?;
    let publisher = Publisher::new(&connection).await?;
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut good = BTreeSet::new();
    let mut pending = Vec::new();
    for i in 0..scale.bad_messages {
        let body = bad_message(&mut rng, i);
        pending.push(
            publisher
                .send(
                    "",
                    &system.queues.dispatch,
                    &body,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?,
        );
        if i % 10 == 0 {
            let id = 2_000_000_000 + i64::try_from(i)?;
            let event = good_event(id);
            pending.push(
                publisher
                    .send(
                        "",
                        &system.queues.dispatch,
                        &event.to_json_vec(),
                        event.amqp_properties(),
                    )
                    .await?,
            );
            good.insert(id);
        }
        if pending.len() >= 500 {
            for p in pending.drain(..) {
                p.wait().await?;
            }
        }
    }
    for p in pending {
        p.wait().await?;
    }
    let result = tally(&system, &good, Duration::from_secs(120)).await?;
    let (dead, with_reason) = count_dead_letters(&system, scale.bad_messages).await?;
    let serving = all_serving(&system).await;
    system.shutdown().await?;
    let verdict = if dead == scale.bad_messages && with_reason == dead {
        "ok"
    } else {
        "FAILED"
    };
    Ok(Row {
        scenario: "bad-input".into(),
        sent: good.len() + scale.bad_messages,
        lost: result.lost + scale.bad_messages.saturating_sub(dead),
        duplicates: result.duplicates,
        serving,
        notes: format!(
            "{} unreadable messages → {dead} in the dead-letter queue, {with_reason} with x-dispatch-error ({verdict}); {} good events routed",
            scale.bad_messages,
            good.len() - result.lost
        ),
    })
}

/// Waits for `expected` dead letters; returns (count, how many carry a reason header).
async fn count_dead_letters(system: &System, expected: usize) -> anyhow::Result<(usize, usize)> {
    let connection =
        connect_once(&system.endpoints(), "fault-dead", Duration::from_secs(10)).await?;
    let channel = connection.create_channel().await?;
    let (mut count, mut with_reason) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while count < expected && tokio::time::Instant::now() < deadline {
        match channel
            .basic_get(
                system.queues.dead().as_str().into(),
                BasicGetOptions::default(),
            )
            .await?
        {
            Some(message) => {
                message
                    .delivery
                    .acker
                    .ack(BasicAckOptions::default())
                    .await?;
                count += 1;
                let reason = message
                    .delivery
                    .properties
                    .headers()
                    .as_ref()
                    .and_then(|h| header_string(h, "x-dispatch-error"));
                if reason.is_some_and(|r| !r.is_empty()) {
                    with_reason += 1;
                }
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let _ = connection.close(200, "ok".into()).await;
    Ok((count, with_reason))
}

/// Random requests to user-service: no 5xx, no crash.
pub async fn http_fuzz(broker: &PrivateBroker, scale: Scale) -> anyhow::Result<Row> {
    let mut system = System::start(options(broker)).await?;
    let mut rng = StdRng::seed_from_u64(0xf022);
    // A connection per request: a server that answers without reading a body closes the
    // connection, and a pooled client would blame the next request for it.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()?;
    let (mut server_errors, mut transport_errors) = (0usize, 0usize);
    let mut examples = Vec::new();
    let mut transport_examples = Vec::new();
    for i in 0..scale.fuzz_requests {
        let request = random_request(&system, &client, &mut rng, i);
        match request.send().await {
            Ok(response) if response.status().is_server_error() => {
                server_errors += 1;
                if examples.len() < 3 {
                    examples.push(format!("request #{i}: {}", response.status()));
                }
            }
            Ok(_) => {}
            Err(error) => {
                transport_errors += 1;
                if transport_examples.len() < 3 {
                    transport_examples.push(format!("request #{i}: {error:?}"));
                }
            }
        }
    }
    let alive = system.users.exited().is_none();
    let serving = alive && all_serving(&system).await;
    system.shutdown().await?;
    let verdict = if server_errors == 0 && alive {
        "ok"
    } else {
        "FAILED"
    };
    Ok(Row {
        scenario: "http-fuzz".into(),
        sent: scale.fuzz_requests,
        lost: 0,
        duplicates: 0,
        serving,
        notes: format!(
            "{} random requests: {server_errors} 5xx {examples:?}, {transport_errors} transport errors \
             {transport_examples:?}, \
             process alive: {alive} ({verdict})",
            scale.fuzz_requests
        ),
    })
}

fn random_request(
    system: &System,
    client: &reqwest::Client,
    rng: &mut StdRng,
    i: usize,
) -> reqwest::RequestBuilder {
    const METHODS: [&str; 8] = [
        "GET", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "HEAD", "FOO",
    ];
    let paths = [
        "/users".to_owned(),
        format!("/users/{}", rng.random::<i64>()),
        "/users/abc".to_owned(),
        "/users/99999999999999999999999".to_owned(),
        "/users/1".to_owned(),
        format!(
            "/users?limit={}&after={}",
            rng.random::<i32>(),
            rng.random::<u16>()
        ),
        "/users?limit=abc&after=%ff".to_owned(),
        "/%ff%fe/..%2f".to_owned(),
        "/metrics".to_owned(),
        format!("/{}", "a".repeat(rng.random_range(0..5000))),
    ];
    let method =
        reqwest::Method::from_bytes(METHODS[rng.random_range(0..METHODS.len())].as_bytes())
            .unwrap_or(reqwest::Method::GET);
    let path = &paths[rng.random_range(0..paths.len())];
    let body: Vec<u8> = match rng.random_range(0..8) {
        0 => (0..rng.random_range(0..2048))
            .map(|_| rng.random::<u8>())
            .collect(),
        1 => vec![b'{'; 100_000],
        2 => "[".repeat(10_000).into_bytes(),
        3 => json!({"name": 5, "email": ["x"]}).to_string().into_bytes(),
        4 => json!({"name": "\u{0}\u{202e}\u{fffd}", "email": format!("{i}@x.io")})
            .to_string()
            .into_bytes(),
        5 => vec![b'x'; 200_000],
        6 => json!({"name": "x".repeat(200), "email": "not-an-email"})
            .to_string()
            .into_bytes(),
        _ => json!({"name": format!("Fuzz {i}"), "email": format!("fuzz{i}@example.com")})
            .to_string()
            .into_bytes(),
    };
    let content_types = [
        "application/json",
        "text/plain",
        "application/json; charset=utf-16",
        "",
        "multipart/form-data; boundary=x",
    ];
    let mut request = client
        .request(method, system.users.url(path))
        .header(
            "content-type",
            content_types[rng.random_range(0..content_types.len())],
        )
        .body(body);
    if rng.random_bool(0.3) {
        request = request.header("idempotency-key", "k".repeat(rng.random_range(0..3000)));
    }
    if rng.random_bool(0.3) {
        request = request.header("traceparent", "00-zz-garbage-01");
    }
    request
}
