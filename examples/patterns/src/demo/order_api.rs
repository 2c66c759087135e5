//! The saga demo's order-service: the real binary, started on a free port over a fresh
//! SQLite file, consuming the demo's order queue and publishing to its dispatch queue;
//! and its HTTP API as the demo calls it (place an order, wait for its final status).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::fleet::Fleet;
use super::stage::Stage;

/// order-service's HTTP API.
#[derive(Debug)]
pub struct OrderApi {
    base: String,
    http: reqwest::Client,
}

impl OrderApi {
    /// Starts order-service on the demo's queues, with its database in `dir`, and waits
    /// until it consumes (`/readyz`).
    pub async fn start(stage: &mut Stage, dir: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let args = [
            ("--addr", format!("127.0.0.1:{port}")),
            ("--db", dir.join("orders.db").display().to_string()),
            ("--queue", stage.names.of("order")),
            ("--dispatch-queue", stage.plan.source.clone()),
        ];
        let args: Vec<String> = args
            .into_iter()
            .flat_map(|(k, v)| [k.to_owned(), v])
            .collect();
        let binary = stage.options.bin_dir.join("order-service");
        stage
            .fleet
            .spawn(&binary, "order-service", &args, &stage.options.amqp)?;
        let api = Self {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        };
        let timeout = stage.options.timeout;
        api.poll(
            "order-service did not become ready",
            timeout,
            &mut stage.fleet,
            async |api| {
                let ready = api.http.get(format!("{}/readyz", api.base)).send().await;
                Ok(ready.is_ok_and(|r| r.status().is_success()).then_some(()))
            },
        )
        .await?;
        Ok(api)
    }

    /// Waits until order-service knows user `id` (its snapshot arrived).
    pub async fn wait_for_user(&self, id: i64, stage: &mut Stage) -> anyhow::Result<()> {
        let what = format!("user {id} did not reach order-service");
        self.poll(
            &what,
            stage.options.timeout,
            &mut stage.fleet,
            async |api| {
                let found = api
                    .http
                    .get(format!("{}/users/{id}", api.base))
                    .send()
                    .await;
                Ok(found.is_ok_and(|r| r.status().is_success()).then_some(()))
            },
        )
        .await
    }

    /// `POST /orders`: one line for `total_cents` by `user_id`; the created order.
    pub async fn place(&self, user_id: i64, total_cents: i64) -> anyhow::Result<Value> {
        let body = json!({"user_id": user_id,
                          "items": [{"sku": "DEMO-1", "quantity": 1, "unit_price_cents": total_cents}]});
        let response = self
            .http
            .post(format!("{}/orders", self.base))
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let order: Value = response.json().await?;
        if status.as_u16() != 201 {
            bail!("POST /orders answered {status}: {order}");
        }
        Ok(order)
    }

    /// Waits until order `id` is no longer `pending`; the order as `GET /orders/{id}`
    /// shows it.
    pub async fn wait_final(&self, id: i64, stage: &mut Stage) -> anyhow::Result<Value> {
        let what = format!("order {id} stayed pending");
        self.poll(
            &what,
            stage.options.timeout,
            &mut stage.fleet,
            async |api| {
                let order: Value = api
                    .http
                    .get(format!("{}/orders/{id}", api.base))
                    .send()
                    .await?
                    .json()
                    .await?;
                Ok((order["status"] != "pending").then_some(order))
            },
        )
        .await
    }

    /// Calls `check` until it gives a value, a process dies, or `timeout` passes.
    async fn poll<T>(
        &self,
        what: &str,
        timeout: Duration,
        fleet: &mut Fleet,
        check: impl AsyncFn(&Self) -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            fleet.check().with_context(|| what.to_owned())?;
            if let Some(value) = check(self).await? {
                return Ok(value);
            }
            if Instant::now() > deadline {
                bail!("{what} within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
