//! The whole system for one test: the three real binaries on free ports, each with its
//! own temporary database, a temporary `routes.toml`, and queue names no other test uses,
//! against a broker (the shared one, or a [`crate::PrivateBroker`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use events::testing::unique;
use events::{AmqpSettings, Endpoints};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::certs::Identity;
use crate::process::{Service, Spec};

/// The queue names of one system under test.
#[derive(Debug, Clone)]
pub struct Queues {
    /// The dispatcher's source (user-service publishes here).
    pub dispatch: String,
    /// The order service's input.
    pub order: String,
    /// Where unrouted events go.
    pub unrouted: String,
    /// A second target of the user route: every forwarded event, for counting.
    pub tap: String,
}

impl Queues {
    /// Fresh unique names.
    pub fn unique() -> Self {
        let base = unique("e2e");
        Self {
            dispatch: format!("{base}.dispatch"),
            order: format!("{base}.order"),
            unrouted: format!("{base}.unrouted"),
            tap: format!("{base}.tap"),
        }
    }

    /// The dispatcher's dead-letter queue.
    pub fn dead(&self) -> String {
        format!("{}.dead", self.dispatch)
    }

    /// Every queue the system declares (for cleanup), `.dead` queues included.
    pub fn all(&self) -> Vec<String> {
        let mut all = Vec::new();
        for q in [&self.dispatch, &self.order, &self.unrouted, &self.tap] {
            all.push(q.clone());
            all.push(format!("{q}.dead"));
        }
        all
    }

    /// The default routing table on these queues (user events to order-service and to
    /// the tap), plus `extra` TOML appended.
    pub fn routes_toml(&self, extra: &str) -> String {
        format!(
            "source = \"{}\"\nunrouted = \"{}\"\ndead_letter = \"{}\"\n\n\
             [[route]]\nname = \"user-snapshots\"\n\
             event = [\"user_created\", \"user_updated\", \"user_deleted\"]\n\
             to = [\"{}\", \"{}\"]\n{extra}",
            self.dispatch,
            self.unrouted,
            self.dead(),
            self.order,
            self.tap
        )
    }
}

/// Options for [`System::start`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Broker URL.
    pub amqp_url: String,
    /// `RUST_LOG` for every service.
    pub rust_log: String,
    /// Start order-service too.
    pub with_orders: bool,
    /// Dispatcher routes poll interval (`ROUTES_POLL_INTERVAL`), if any.
    pub poll_interval: Option<String>,
    /// `AMQP_CA_FILE` for every service and test client (an `amqps://` broker).
    pub ca_file: Option<PathBuf>,
    /// `AMQP_CLIENT_CERT` and `AMQP_CLIENT_KEY` for every service and test client.
    pub client: Option<Identity>,
    /// The dispatcher's own `AMQP_URL`, when it differs from `amqp_url` (a cluster's
    /// nodes in another order, so that it connects to a chosen node first).
    pub dispatcher_amqp_url: Option<String>,
    /// `DISPATCH_ORDERED=true` for the dispatcher and every replica started later.
    pub ordered: bool,
    /// The queue names to use (default: fresh unique ones).
    pub queues: Option<Queues>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            amqp_url: events::testing::amqp_url(),
            rust_log: "info,dispatcher=debug".to_owned(),
            with_orders: true,
            poll_interval: None,
            ca_file: None,
            client: None,
            dispatcher_amqp_url: None,
            ordered: false,
            queues: None,
        }
    }
}

/// The three services of one test.
#[derive(Debug)]
pub struct System {
    /// Temporary folder: databases and routes file.
    pub dir: TempDir,
    /// Queue names.
    pub queues: Queues,
    /// The routes file the dispatcher watches.
    pub routes: PathBuf,
    /// The dispatcher.
    pub dispatcher: Service,
    /// user-service.
    pub users: Service,
    /// order-service (stopped when `with_orders` was false, until started).
    pub orders: Option<Service>,
    /// How order-service is started.
    pub orders_spec: Spec,
    /// An HTTP client.
    pub http: reqwest::Client,
    /// The broker the system uses.
    pub amqp_url: String,
    /// The broker the system uses, with its TLS files.
    pub amqp: AmqpSettings,
}

impl Options {
    /// The broker settings every service gets.
    pub fn amqp(&self) -> AmqpSettings {
        AmqpSettings {
            ca_file: self.ca_file.clone(),
            client_cert: self.client.as_ref().map(|c| c.cert.clone()),
            client_key: self.client.as_ref().map(|c| c.key.clone()),
            queue_type: events::testing::queue_type(),
            ..AmqpSettings::for_url(&self.amqp_url)
        }
    }
}

fn common(spec: Spec, options: &Options) -> Spec {
    let amqp = options.amqp();
    let mut spec = spec
        .env("AMQP_URL", &amqp.url)
        .env("QUEUE_TYPE", amqp.queue_type.as_str())
        .env("RUST_LOG", &options.rust_log)
        .env("LOG_FORMAT", "json");
    let files = [
        ("AMQP_CA_FILE", &amqp.ca_file),
        ("AMQP_CLIENT_CERT", &amqp.client_cert),
        ("AMQP_CLIENT_KEY", &amqp.client_key),
    ];
    for (name, file) in files {
        if let Some(file) = file {
            spec = spec.env(name, file.display().to_string());
        }
    }
    spec
}

impl System {
    /// Starts dispatcher, user-service and (unless told not to) order-service.
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let queues = options.queues.clone().unwrap_or_else(Queues::unique);
        let routes = dir.path().join("routes.toml");
        std::fs::write(&routes, queues.routes_toml(""))?;
        let mut dispatcher_spec = common(Spec::new("dispatcher"), &options)
            .env("ROUTES_FILE", routes.display().to_string())
            .env("DISPATCHER_ADDR", local_addr()?)
            .env("DISPATCH_ORDERED", options.ordered.to_string());
        if let Some(url) = &options.dispatcher_amqp_url {
            // Later entries win when the process is spawned.
            dispatcher_spec = dispatcher_spec.env("AMQP_URL", url);
        }
        if let Some(interval) = &options.poll_interval {
            dispatcher_spec = dispatcher_spec.env("ROUTES_POLL_INTERVAL", interval);
        }
        let users_spec = common(Spec::new("user-service"), &options)
            .env("USER_SERVICE_ADDR", local_addr()?)
            .env("USER_DB", db(dir.path(), "users.db"))
            .env("DISPATCH_QUEUE", &queues.dispatch);
        let orders_spec = common(Spec::new("order-service"), &options)
            .env("ORDER_SERVICE_ADDR", local_addr()?)
            .env("ORDER_DB", db(dir.path(), "orders.db"))
            .env("ORDER_QUEUE", &queues.order)
            .env("DISPATCH_QUEUE", &queues.dispatch);
        let dispatcher = Service::start(dispatcher_spec)
            .await
            .context("starting the dispatcher")?;
        let users = Service::start(users_spec)
            .await
            .context("starting user-service")?;
        let mut system = Self {
            dir,
            queues,
            routes,
            dispatcher,
            users,
            orders: None,
            orders_spec,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            amqp_url: options.amqp_url.clone(),
            amqp: options.amqp(),
        };
        system.wait_ready(&system.dispatcher.url("/readyz")).await?;
        system.wait_ready(&system.users.url("/readyz")).await?;
        if options.with_orders {
            system.start_orders().await?;
        }
        Ok(system)
    }

    /// Starts order-service (again) and waits until it is ready.
    pub async fn start_orders(&mut self) -> anyhow::Result<()> {
        let orders = Service::start(self.orders_spec.clone())
            .await
            .context("starting order-service")?;
        self.wait_ready(&orders.url("/readyz")).await?;
        self.orders = Some(orders);
        Ok(())
    }

    /// Starts one more dispatcher with the first one's settings (same routes file, same
    /// broker URL, same mode) on a fresh address, and waits until it is ready: a replica
    /// competing for the source queue, or a standby in ordered mode.
    pub async fn start_dispatcher_replica(&self) -> anyhow::Result<Service> {
        let spec = self
            .dispatcher
            .spec()
            .clone()
            .env("DISPATCHER_ADDR", local_addr()?);
        let replica = Service::start(spec)
            .await
            .context("starting a dispatcher replica")?;
        self.wait_ready(&replica.url("/readyz")).await?;
        Ok(replica)
    }

    /// Endpoints for a test client of the system's broker (its TLS files included).
    pub fn endpoints(&self) -> Endpoints {
        Endpoints::from(&self.amqp)
    }

    /// The running order-service.
    pub fn orders(&self) -> anyhow::Result<&Service> {
        self.orders.as_ref().context("order-service is not running")
    }

    /// Polls `url` until it answers 2xx (60 s at most).
    pub async fn wait_ready(&self, url: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = self.http.get(url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("{url} not ready within 60s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `POST /users`; returns the created user (status must be 201).
    pub async fn create_user(&self, name: &str, email: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(self.users.url("/users"))
            .json(&json!({"name": name, "email": email}))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        anyhow::ensure!(
            status.as_u16() == 201,
            "POST /users answered {status}: {body}"
        );
        Ok(body)
    }

    /// `GET` on order-service; `None` on 404.
    pub async fn snapshot(&self, id: i64) -> anyhow::Result<Option<Value>> {
        let response = self
            .http
            .get(self.orders()?.url(&format!("/users/{id}")))
            .send()
            .await?;
        if response.status().as_u16() == 404 {
            return Ok(None);
        }
        anyhow::ensure!(
            response.status().is_success(),
            "GET snapshot answered {}",
            response.status()
        );
        Ok(Some(response.json().await?))
    }

    /// Stops every service (SIGTERM) and deletes the system's queues.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(orders) = self.orders.as_mut() {
            orders.stop().await?;
        }
        self.users.stop().await?;
        self.dispatcher.stop().await?;
        delete_queues(&self.endpoints(), &self.queues).await
    }
}

impl Drop for System {
    /// A test that fails before [`System::shutdown`] still removes its queues from the
    /// shared broker (the processes are killed on drop). `shutdown` already deleted them
    /// otherwise, and deleting a missing queue is harmless.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let (endpoints, queues) = (self.endpoints(), self.queues.clone());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(delete_queues(&endpoints, &queues))
        });
        let _ = cleanup.join();
    }
}

async fn delete_queues(endpoints: &Endpoints, queues: &Queues) -> anyhow::Result<()> {
    let connection =
        events::amqp::connect_once(endpoints, "e2e-cleanup", Duration::from_secs(10)).await?;
    let names = queues.all();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    events::testing::delete_queues(&connection, &refs).await;
    let _ = connection.close(200, "ok".into()).await;
    Ok(())
}

/// A free local address, chosen now so that a restarted service keeps its address.
fn local_addr() -> anyhow::Result<String> {
    Ok(format!("127.0.0.1:{}", crate::broker::free_port()?))
}

fn db(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}
