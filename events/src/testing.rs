//! Helpers for integration tests against the real broker (feature `testing`).
//!
//! A broker that cannot be reached is a test failure with instructions, never a skip.
//! Names are unique per test so tests run in parallel on one broker; waiting is on a
//! condition with a deadline, never a fixed sleep.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

pub mod openapi;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};

use crate::amqp::{connect_once, dead_letter_queue};
use crate::defaults;
use crate::endpoints::Endpoints;
use crate::settings::{QueueType, redact_urls};

/// `AMQP_URL`, or the default local broker.
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| defaults::AMQP_URL.to_owned())
}

/// `QUEUE_TYPE`, or quorum.
pub fn queue_type() -> QueueType {
    std::env::var("QUEUE_TYPE")
        .ok()
        .and_then(|q| q.parse().ok())
        .unwrap_or_default()
}

/// A connection to the test broker (`AMQP_URL` and the TLS files of the environment),
/// or a panic that says how to start one.
pub async fn broker() -> Connection {
    let url = amqp_url();
    let endpoints = Endpoints::from_env()
        .unwrap_or_else(|error| panic!("the broker settings of the environment: {error}"));
    match connect_once(&endpoints, "integration-test", Duration::from_secs(10)).await {
        Ok(connection) => connection,
        Err(error) => panic!(
            "RabbitMQ is not reachable at {} ({error}).\n\
             These tests need a real broker. Start one with `cargo xtask broker` \
             (or `rabbitmq-server -detached`, or \
             `docker compose -f docker-compose.local.yml up -d rabbitmq`), \
             or point AMQP_URL at one.",
            redact_urls(&url)
        ),
    }
}

/// A name no other test (or earlier run) uses: `<prefix>.<pid>.<counter>.<random>`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{prefix}.t{}.{n}.{:06x}",
        std::process::id(),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// Polls `check` until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// Messages ready in `queue` (passive declare on a throw-away channel), `None` if the
/// queue does not exist.
pub async fn message_count(connection: &Connection, queue: &str) -> Option<u32> {
    let channel = connection.create_channel().await.expect("open a channel");
    let result = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::durable().passive(),
            FieldTable::default(),
        )
        .await;
    let _ = channel.close(200, "ok".into()).await;
    result.ok().map(|q| q.message_count())
}

/// Waits until `queue` holds at least `count` ready messages.
pub async fn wait_for_count(
    connection: &Connection,
    queue: &str,
    count: u32,
    timeout: Duration,
) -> u32 {
    eventually(timeout, &format!("{count} messages in {queue}"), || async {
        message_count(connection, queue)
            .await
            .filter(|n| *n >= count)
    })
    .await
}

/// Takes one message from `queue` (acking it), waiting up to `timeout` for one to arrive.
pub async fn take_one(channel: &Channel, queue: &str, timeout: Duration) -> BasicGetMessage {
    eventually(timeout, &format!("a message in {queue}"), || async {
        let message = channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .expect("basic.get")?;
        message
            .delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
        Some(message)
    })
    .await
}

/// Takes every message currently in `queue` (acking them).
pub async fn drain(channel: &Channel, queue: &str) -> Vec<BasicGetMessage> {
    let mut messages = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions::default())
        .await
        .expect("basic.get")
    {
        message
            .delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
        messages.push(message);
    }
    messages
}

/// Deletes `queues` and their `.dead` queues, ignoring the ones that do not exist.
pub async fn delete_queues(connection: &Connection, queues: &[&str]) {
    for queue in queues {
        for name in [(*queue).to_owned(), dead_letter_queue(queue)] {
            let Ok(channel) = connection.create_channel().await else {
                return;
            };
            let _ = channel
                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await;
            let _ = channel.close(200, "ok".into()).await;
        }
    }
}
