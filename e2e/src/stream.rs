//! A numbered stream of users through the real system, and the count at the end: which
//! acknowledged users (HTTP 201) never reached the tap queue or order-service (lost), and
//! how many events arrived more than once (duplicates: allowed, but counted).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::lapin::options::{BasicAckOptions, BasicGetOptions};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::system::System;

/// Users the producer saw acknowledged (201), by id.
#[derive(Debug, Default, Clone)]
pub struct Acknowledged {
    inner: Arc<Mutex<BTreeSet<i64>>>,
    failures: Arc<Mutex<u64>>,
}

impl Acknowledged {
    /// The ids acknowledged so far.
    pub fn ids(&self) -> BTreeSet<i64> {
        self.inner.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Requests that did not get a 201 (refused connections while a service is down…).
    pub fn failures(&self) -> u64 {
        self.failures.lock().map(|f| *f).unwrap_or_default()
    }
}

/// Posts new users to `base_url` at `rate` per second until stopped.
#[derive(Debug)]
pub struct Producer {
    stop: CancellationToken,
    task: JoinHandle<()>,
    /// What was acknowledged.
    pub acknowledged: Acknowledged,
}

impl Producer {
    /// Starts producing; `base_url` is user-service's (`http://addr`).
    pub fn start(http: reqwest::Client, base_url: String, rate: u32) -> Self {
        let stop = CancellationToken::new();
        let acknowledged = Acknowledged::default();
        let (token, acked) = (stop.clone(), acknowledged.clone());
        let run = events::testing::unique("fault");
        let task = tokio::spawn(async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(64));
            let mut ticker =
                tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
            for n in 0u64.. {
                tokio::select! {
                    () = token.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let (http, url, acked, run) = (
                    http.clone(),
                    format!("{base_url}/users"),
                    acked.clone(),
                    run.clone(),
                );
                tokio::spawn(async move {
                    let body = json!({"name": format!("Fault {n}"), "email": format!("{run}.{n}@example.com")});
                    let id = post(&http, &url, &body).await;
                    match id {
                        Some(id) => {
                            if let Ok(mut set) = acked.inner.lock() {
                                set.insert(id);
                            }
                        }
                        None => {
                            if let Ok(mut f) = acked.failures.lock() {
                                *f += 1;
                            }
                        }
                    }
                    drop(permit);
                });
            }
            // Let in-flight requests finish.
            let _ = permits.acquire_many(64).await;
        });
        Self {
            stop,
            task,
            acknowledged,
        }
    }

    /// Stops and waits for in-flight requests; returns what was acknowledged.
    pub async fn stop(self) -> Acknowledged {
        self.stop.cancel();
        let _ = self.task.await;
        self.acknowledged
    }
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Option<i64> {
    let response = http.post(url).json(body).send().await.ok()?;
    if response.status().as_u16() != 201 {
        return None;
    }
    response.json::<Value>().await.ok()?["id"].as_i64()
}

/// What reached the end.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Acknowledged users.
    pub sent: usize,
    /// Acknowledged users missing from the tap or from order-service.
    pub lost: usize,
    /// Events seen more than once in the tap.
    pub duplicates: usize,
    /// The first missing ids, for the report.
    pub missing: Vec<i64>,
    /// Every id read from the tap, in the tap's order (repeats included).
    pub arrivals: Vec<i64>,
}

/// Drains the tap and checks snapshots until every id arrived or `timeout` passes.
pub async fn tally(
    system: &System,
    ids: &BTreeSet<i64>,
    timeout: Duration,
) -> anyhow::Result<Tally> {
    let connection =
        events::amqp::connect_once(&system.endpoints(), "fault-tally", Duration::from_secs(10))
            .await?;
    let channel = connection.create_channel().await?;
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    let mut arrivals = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut unconfirmed: BTreeSet<i64> = ids.clone();
    loop {
        while let Some(message) = channel
            .basic_get(
                system.queues.tap.as_str().into(),
                BasicGetOptions::default(),
            )
            .await?
        {
            message
                .delivery
                .acker
                .ack(BasicAckOptions::default())
                .await?;
            let event: Value = serde_json::from_slice(&message.delivery.data).unwrap_or_default();
            if let Some(id) = event["data"]["id"].as_i64() {
                *seen.entry(id).or_default() += 1;
                arrivals.push(id);
            }
        }
        let mut still = BTreeSet::new();
        for id in unconfirmed {
            let in_tap = seen.contains_key(&id);
            if !in_tap || system.snapshot(id).await.ok().flatten().is_none() {
                still.insert(id);
            }
        }
        unconfirmed = still;
        if unconfirmed.is_empty() || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = connection.close(200, "ok".into()).await;
    Ok(Tally {
        sent: ids.len(),
        lost: unconfirmed.len(),
        duplicates: seen.values().map(|n| n - 1).sum(),
        missing: unconfirmed.into_iter().take(10).collect(),
        arrivals,
    })
}
