//! Rough numbers for order-service against the real broker, in-process, on a temporary
//! database and a throw-away queue:
//!
//! 1. drain: preload N user events into the queue, start the service, time until every
//!    event is applied or ignored (events/s);
//! 2. steady: publish at R events/s for D seconds, each for a new user, and time from
//!    before the publish until `GET /users/{id}` shows it (p50, p99, max).
//!
//! `cargo run --release -p order-service --example measure -- [N] [R] [D]`
//! (defaults 20000, 500, 10). Needs the broker at `AMQP_URL`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use events::amqp::{Publisher, declare_queue};
use events::testing::{amqp_url, broker, delete_queues, queue_type, unique};
use events::{AmqpSettings, CloudEvent};
use order_service::Settings;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn event(id: i64, version: u64) -> CloudEvent {
    CloudEvent::new(
        "user-service",
        if version == 1 {
            "user_created"
        } else {
            "user_updated"
        },
        json!({"id": id, "name": format!("user {id}"), "email": format!("u{id}@example.com"),
               "version": version, "updated_at": "2026-11-22T10:00:00Z"}),
    )
    .with_subject(id.to_string())
}

async fn metric(client: &reqwest::Client, base: &str, prefix: &str) -> f64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numeric arguments"))
        .collect();
    let n = args.first().copied().unwrap_or(20_000);
    let rate = args.get(1).copied().unwrap_or(500);
    let seconds = args.get(2).copied().unwrap_or(10);

    let connection = broker().await;
    let publisher = Publisher::new(&connection).await.unwrap();
    let queue = unique("order.measure");
    declare_queue(publisher.channel(), &queue, queue_type())
        .await
        .unwrap();

    // 1. drain: N events over N/10 users, 10 versions each.
    let users = i64::try_from((n / 10).max(1)).unwrap();
    let mut pending = VecDeque::new();
    for i in 0..n {
        let id = i64::try_from(i).unwrap() % users + 1;
        let version = i / u64::try_from(users).unwrap() + 1;
        let e = event(id, version);
        pending.push_back(
            publisher
                .send("", &queue, &e.to_json_vec(), e.amqp_properties())
                .await
                .unwrap(),
        );
        if pending.len() >= 1000 {
            pending.pop_front().unwrap().wait().await.unwrap();
        }
    }
    for confirm in pending {
        confirm.wait().await.unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let listener = events::http::bind("127.0.0.1:0", "order-service")
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut settings = Settings::defaults_with(AmqpSettings {
        url: amqp_url(),
        queue_type: queue_type(),
        ..AmqpSettings::default()
    });
    settings.db = dir.path().join("orders.db");
    settings.queue.clone_from(&queue);
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let service = tokio::spawn(order_service::serve(listener, settings, shutdown.clone()));
    let client = reqwest::Client::new();
    loop {
        let done = metric(&client, &base, "order_events_applied_total").await
            + metric(&client, &base, "order_events_ignored_total").await;
        if done >= n as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let batches = metric(&client, &base, "order_apply_batch_size_count").await;
    println!(
        "drain: {n} events in {:.2?} = {:.0} events/s ({batches} transactions, {:.1} events each)",
        took,
        n as f64 / took.as_secs_f64(),
        n as f64 / batches
    );

    // 2. steady rate, new users (ids above the drained ones), publish -> visible.
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<(i64, Instant)>();
    let publishing = tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        for i in 0..total {
            tick.tick().await;
            let id = users + 1 + i64::try_from(i).unwrap();
            let e = event(id, 1);
            let at = Instant::now();
            publisher
                .publish("", &queue, &e.to_json_vec(), e.amqp_properties())
                .await
                .unwrap();
            sent_tx.send((id, at)).unwrap();
        }
        queue
    });
    let mut latencies = Vec::with_capacity(usize::try_from(total).unwrap());
    let mut waiting: VecDeque<(i64, Instant)> = VecDeque::new();
    while latencies.len() < latencies.capacity() {
        while let Ok(sent) = sent_rx.try_recv() {
            waiting.push_back(sent);
        }
        let Some(&(id, at)) = waiting.front() else {
            tokio::time::sleep(Duration::from_micros(200)).await;
            continue;
        };
        let status = client
            .get(format!("{base}/users/{id}"))
            .send()
            .await
            .unwrap()
            .status();
        if status.is_success() {
            latencies.push(at.elapsed());
            waiting.pop_front();
        }
    }
    let queue = publishing.await.unwrap();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "steady: {total} events at {rate}/s, publish -> visible: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        pct(0.50),
        pct(0.99),
        latencies[latencies.len() - 1]
    );
    shutdown.cancel();
    service.await.unwrap().unwrap();
    delete_queues(&connection, &[&queue]).await;
}
