//! What the integration tests share: an in-process dispatcher on port 0 with its own
//! routes file (in a tempdir) and its own uniquely named queues on the real broker.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dispatcher::Settings;
use events::CloudEvent;
use events::amqp::{Publisher, declare_queue};
use events::lapin::{BasicProperties, Connection};
use events::testing::{broker, delete_queues, eventually, queue_type, unique};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Generous bound for anything the broker does.
pub const WAIT: Duration = Duration::from_secs(20);

/// Unique queue names for one test: `source`, `unrouted`, `dead`, and `q(name)`.
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(test: &str) -> Self {
        Self {
            prefix: unique(&format!("dispatcher.{test}")),
        }
    }
    pub fn source(&self) -> String {
        format!("{}.source", self.prefix)
    }
    pub fn unrouted(&self) -> String {
        format!("{}.unrouted", self.prefix)
    }
    pub fn dead(&self) -> String {
        format!("{}.dead", self.prefix)
    }
    /// A target queue of this test.
    pub fn q(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }
    /// Every queue a test with target queues `targets` declares: source, unrouted,
    /// dead letter and the targets (what [`Broker::cleanup`] deletes).
    pub fn queues(&self, targets: &[&str]) -> Vec<String> {
        let mut queues = vec![self.source(), self.unrouted(), self.dead()];
        queues.extend(targets.iter().map(|t| self.q(t)));
        queues
    }
    /// The header lines of a routes file using these names.
    pub fn header(&self) -> String {
        format!(
            "source = {:?}\nunrouted = {:?}\ndead_letter = {:?}\n\n",
            self.source(),
            self.unrouted(),
            self.dead()
        )
    }
    /// A routes file sending `event` to queue `q(target)` via route `name`.
    pub fn simple(&self, name: &str, event: &str, target: &str) -> String {
        format!(
            "{}[[route]]\nname = {name:?}\nevent = {event:?}\nto = [{:?}]\n",
            self.header(),
            self.q(target)
        )
    }
}

/// A dispatcher running in this process.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Starts a dispatcher on `routes` and waits until it consumes.
    pub async fn start(routes: &Path, tweak: impl FnOnce(&mut Settings)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut settings = Settings::with_routes(routes);
        settings.amqp.url = events::testing::amqp_url();
        settings.amqp.queue_type = queue_type();
        settings.retry_backoff = Duration::from_millis(20);
        tweak(&mut settings);
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info,dispatcher=debug")
                .with_test_writer()
                .try_init();
        }
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(dispatcher::serve(listener, settings, shutdown.clone()));
        let running = Self {
            addr,
            shutdown,
            task,
        };
        running.wait_ready().await;
        running
    }

    pub async fn wait_ready(&self) {
        eventually(WAIT, "the dispatcher to be ready", || async {
            let (status, _) = self.get("/readyz").await;
            (status == 200).then_some(())
        })
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let Ok(response) = reqwest::get(self.url(path)).await else {
            return (0, Value::Null);
        };
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let response = reqwest::get(self.url("/metrics")).await.unwrap();
        response.text().await.unwrap()
    }

    /// The value of the unlabelled metric `name` (e.g. `dispatcher_in_flight_bytes`).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics().await;
        let prefix = format!("{name} ");
        let value = text.lines().find_map(|l| l.strip_prefix(prefix.as_str()));
        let value = value.unwrap_or_else(|| panic!("no metric {name} in:\n{text}"));
        value.parse().unwrap()
    }

    pub async fn post(&self, path: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(self.url(path))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The running generation.
    pub async fn generation(&self) -> u64 {
        self.get("/routes").await.1["generation"].as_u64().unwrap()
    }

    /// Waits for generation `n`.
    pub async fn wait_generation(&self, n: u64) {
        eventually(WAIT, &format!("routing table generation {n}"), || async {
            (self.generation().await == n).then_some(())
        })
        .await;
    }

    /// Stops it and checks it stopped cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the dispatcher stops within the bound")
            .unwrap()
            .unwrap();
    }
}

/// A tempdir holding `routes.toml`.
pub struct RoutesDir {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl RoutesDir {
    pub fn new(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes.toml");
        std::fs::write(&path, text).unwrap();
        Self { dir, path }
    }

    /// Replaces the content in place (same inode).
    pub fn write(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap();
    }

    /// Saves like an editor: write a temporary file, rename it over.
    pub fn rename_save(&self, text: &str) {
        let tmp = self.dir.path().join(".routes.toml.swp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }
}

/// The test's broker connection and publisher.
pub struct Broker {
    pub connection: Connection,
    pub publisher: Publisher,
}

impl Broker {
    pub async fn new() -> Self {
        let connection = broker().await;
        let publisher = Publisher::new(&connection).await.unwrap();
        Self {
            connection,
            publisher,
        }
    }

    /// Declares queues (e.g. the source, before the dispatcher does).
    pub async fn declare(&self, queues: &[&str]) {
        for queue in queues {
            declare_queue(self.publisher.channel(), queue, queue_type())
                .await
                .unwrap();
        }
    }

    /// Publishes a user event to `queue`, confirmed.
    pub async fn publish_event(&self, queue: &str, ty: &str, data: Value) -> CloudEvent {
        let event = CloudEvent::new("user-service", ty, data).with_subject("1");
        self.publisher
            .publish_to_queue(queue, &event.to_json_vec(), event.amqp_properties())
            .await
            .unwrap();
        event
    }

    /// Publishes `count` events of type `ty` to `queue`, pipelined, all confirmed;
    /// returns their ids.
    pub async fn publish_many(&self, queue: &str, ty: &str, count: u32) -> Vec<String> {
        let mut ids = Vec::new();
        let mut pending = Vec::new();
        for n in 0..count {
            let event = CloudEvent::new("user-service", ty, serde_json::json!({ "n": n }));
            let confirm = self
                .publisher
                .send("", queue, &event.to_json_vec(), event.amqp_properties())
                .await
                .unwrap();
            pending.push(confirm.wait());
            ids.push(event.id);
        }
        for result in futures_util::future::join_all(pending).await {
            result.unwrap();
        }
        ids
    }

    pub async fn publish_raw(&self, queue: &str, body: &[u8], properties: BasicProperties) {
        self.publisher
            .publish_to_queue(queue, body, properties)
            .await
            .unwrap();
    }

    pub async fn channel(&self) -> events::lapin::Channel {
        self.connection.create_channel().await.unwrap()
    }

    pub async fn cleanup(&self, queues: &[String]) {
        let names: Vec<&str> = queues.iter().map(String::as_str).collect();
        delete_queues(&self.connection, &names).await;
    }
}

/// A header of a received message as text.
pub fn header(properties: &BasicProperties, name: &str) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        events::lapin::types::AMQPValue::LongString(s) => {
            Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
        }
        events::lapin::types::AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        events::lapin::types::AMQPValue::LongLongInt(n) => Some(n.to_string()),
        other => Some(format!("{other:?}")),
    }
}
