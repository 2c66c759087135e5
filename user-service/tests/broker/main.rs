//! Integration tests against the real broker (`AMQP_URL`) and real SQLite files: events
//! arrive in the dispatch queue with the envelope of docs/architecture.md, survive a
//! broker outage in order, are republished after a crash before marking, and are pruned.
//! Each test uses its own queue and deletes it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crash;
mod events_out;
mod outage;
mod proxy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use events::AmqpSettings;
use lapin::message::BasicGetMessage;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use user_service::Settings;

/// Generous bound for anything that crosses the broker.
pub const WAIT: Duration = Duration::from_secs(30);

/// Settings for a test: port 0, the database in `dir`, a fast relay poll.
pub fn settings(dir: &Path, queue: &str, amqp_url: &str) -> Settings {
    Settings {
        addr: "127.0.0.1:0".to_owned(),
        dispatch_queue: queue.to_owned(),
        outbox_poll_interval: Duration::from_millis(100),
        amqp: AmqpSettings {
            url: amqp_url.to_owned(),
            queue_type: events::testing::queue_type(),
            ..AmqpSettings::default()
        },
        ..Settings::with_db(dir.join("users.db"))
    }
}

/// A service started in-process.
#[derive(Debug)]
pub struct Service {
    addr: SocketAddr,
    pub db: PathBuf,
    client: reqwest::Client,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Service {
    pub async fn start(settings: Settings) -> Self {
        events::telemetry::init("user-service-test").unwrap();
        let db = settings.db.clone();
        let listener = events::http::bind(&settings.addr, "user-service")
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(user_service::serve(listener, settings, shutdown.clone()));
        Self {
            addr,
            db,
            client: reqwest::Client::new(),
            shutdown,
            task,
        }
    }

    /// Stops gracefully and waits until everything (writer thread included) has ended.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends `method path` with an optional JSON body and headers; returns status and body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// Creates a user that must succeed; returns its JSON.
    pub async fn create(&self, name: &str, email: &str) -> Value {
        let body = json!({ "name": name, "email": email });
        let (status, user) = self
            .send(reqwest::Method::POST, "/users", Some(body), &[])
            .await;
        assert_eq!(status, 201, "{user}");
        user
    }

    pub async fn readyz(&self) -> Value {
        self.send(reqwest::Method::GET, "/readyz", None, &[])
            .await
            .1
    }
}

/// The message's body as JSON.
pub fn body(message: &BasicGetMessage) -> Value {
    serde_json::from_slice(&message.delivery.data).unwrap()
}

/// The broker URL tests use directly.
pub fn broker_url() -> String {
    events::testing::amqp_url()
}

/// A unique queue, declared the shared way before the service starts, so the test can
/// read it at once (the relay declares it too, identically).
pub async fn declared_queue(channel: &lapin::Channel, prefix: &str) -> String {
    let queue = events::testing::unique(prefix);
    events::amqp::declare_queue(channel, &queue, events::testing::queue_type())
        .await
        .unwrap();
    queue
}
