//! Integration tests against the real broker (`AMQP_URL`) and real SQLite files, one
//! binary with a module per area:
//!
//! - [`consume`]: events become snapshots, poison is dead-lettered, orders need a known
//!   user, state survives a restart and redeliveries are deduplicated;
//! - [`broker_loss`]: the service reconnects and resumes when the broker is lost;
//! - [`binary`]: the real binary's settings, logs and exit code;
//! - [`docs`]: `/openapi.json` and `/docs` against the router and the README;
//! - [`saga`]: orders emit `order_placed` through the outbox, payment events confirm or
//!   cancel them, refused ones are dead-lettered.
//!
//! The helpers below start the service in-process on port 0 over a real SQLite file and
//! a unique queue, and build and publish events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod binary;
mod broker_loss;
mod consume;
mod docs;
mod saga;

use std::path::Path;
use std::time::Duration;

use events::amqp::{Publisher, declare_queue};
use events::lapin::Connection;
use events::testing::{amqp_url, broker, eventually, queue_type, unique};
use events::{AmqpSettings, CloudEvent, TraceParent};
use order_service::Settings;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long to wait for anything asynchronous.
pub const WAIT: Duration = Duration::from_secs(20);

/// An HTTP client whose requests cannot hang a test.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A running service.
#[derive(Debug)]
pub struct Service {
    pub base: String,
    shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Service {
    /// Starts the service on `queue` over the database `db`, and waits until it consumes.
    pub async fn start(queue: &str, db: &Path) -> Self {
        let service = Self::start_unready(queue, db).await;
        service.wait_ready().await;
        service
    }

    /// Starts the service without waiting for it to consume.
    pub async fn start_unready(queue: &str, db: &Path) -> Self {
        Self::start_with(queue, db, |_| {}).await
    }

    /// Starts the service with settings changed by `tune`, without waiting.
    pub async fn start_with(queue: &str, db: &Path, tune: impl FnOnce(&mut Settings)) -> Self {
        let listener = events::http::bind("127.0.0.1:0", "order-service")
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let mut settings = Settings::defaults_with(AmqpSettings {
            url: amqp_url(),
            queue_type: queue_type(),
            ..AmqpSettings::default()
        });
        settings.addr = addr.to_string();
        settings.db = db.to_owned();
        settings.queue = queue.to_owned();
        settings.dispatch_queue = dispatch_queue(queue);
        tune(&mut settings);
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(order_service::serve(listener, settings, shutdown.clone()));
        Self {
            base: format!("http://{addr}"),
            shutdown,
            handle,
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        eventually(WAIT, "order-service ready", || async {
            let response = http().get(self.url("/readyz")).send().await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
    }

    /// Requests shutdown and waits for `run` to return.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.handle)
            .await
            .expect("the service stops in time")
            .expect("the service task does not panic")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path` as (status, JSON body).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = http().get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST path` with a JSON body, as (status, JSON body).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = http().post(self.url(path)).json(body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        http()
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of the sample line starting with `series`, 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits until the sample `series` reaches at least `value`.
    pub async fn wait_metric(&self, series: &str, value: f64) {
        eventually(WAIT, &format!("{series} >= {value}"), || async {
            (self.metric(series).await >= value).then_some(())
        })
        .await;
    }

    /// Waits until `GET /users/{id}` shows `version`, and returns the snapshot.
    pub async fn wait_user_version(&self, id: i64, version: u64) -> Value {
        eventually(WAIT, &format!("user {id} at version {version}"), || async {
            let (status, body) = self.get(&format!("/users/{id}")).await;
            (status == 200 && body["version"] == version).then_some(body)
        })
        .await
    }
}

/// A broker connection, a confirmed publisher and a fresh queue (declared like the
/// service declares it) with a fresh database path.
#[derive(Debug)]
pub struct Fixture {
    pub connection: Connection,
    pub publisher: Publisher,
    pub queue: String,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub async fn new(prefix: &str) -> Self {
        let connection = broker().await;
        let publisher = Publisher::new(&connection).await.unwrap();
        let queue = unique(prefix);
        declare_queue(publisher.channel(), &queue, queue_type())
            .await
            .unwrap();
        Self {
            connection,
            publisher,
            queue,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("data/orders.db")
    }

    /// Publishes `event` to the queue as user-service does (structured mode).
    pub async fn publish(&self, event: &CloudEvent) {
        self.publisher
            .publish_to_queue(&self.queue, &event.to_json_vec(), event.amqp_properties())
            .await
            .unwrap();
    }

    /// Publishes raw bytes with default properties.
    pub async fn publish_raw(&self, body: &[u8]) {
        self.publisher
            .publish_to_queue(&self.queue, body, Default::default())
            .await
            .unwrap();
    }

    pub async fn cleanup(self) {
        let dispatch = dispatch_queue(&self.queue);
        events::testing::delete_queues(&self.connection, &[&self.queue, &dispatch]).await;
    }
}

/// Where the service under test publishes `order_placed`: its own queue, never the
/// system's.
pub fn dispatch_queue(queue: &str) -> String {
    format!("{queue}.dispatch")
}

/// `user_created` (version 1) or `user_updated` (later versions).
pub fn upsert(id: i64, version: u64, name: &str) -> CloudEvent {
    let ty = if version == 1 {
        "user_created"
    } else {
        "user_updated"
    };
    CloudEvent::new(
        "user-service",
        ty,
        json!({"id": id, "name": name, "email": format!("{name}@example.com"),
               "version": version, "updated_at": "2026-11-22T10:00:00Z"}),
    )
    .with_subject(id.to_string())
    .with_traceparent(&TraceParent::new_root())
}

/// `user_deleted` at `version`.
pub fn deleted(id: i64, version: u64) -> CloudEvent {
    CloudEvent::new(
        "user-service",
        "user_deleted",
        json!({"id": id, "version": version}),
    )
    .with_subject(id.to_string())
}
