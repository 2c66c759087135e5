//! The faults themselves: what is done to the running system mid-stream.

use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::Signal;
use serde_json::Value;

use super::reload;
use crate::broker::PrivateBroker;
use crate::system::System;

/// One fault scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The broker closes the dispatcher's consume connection.
    CloseConsumeConnection,
    /// The broker closes the dispatcher's publish connection.
    ClosePublishConnection,
    /// The broker is stopped for this long, then started again.
    BrokerDown(Duration),
    /// `kill -9` of the dispatcher, then a restart.
    KillDispatcher,
    /// `kill -9` of order-service, then a restart.
    KillOrderService,
    /// `kill -9` of user-service while it commits and publishes, then a restart.
    KillUserService,
    /// 50 saves of routes.toml in 2 s.
    ReloadStorm,
    /// An invalid routes.toml saved mid-stream, fixed later.
    InvalidReload,
    /// routes.toml deleted, then recreated.
    DeleteAndRecreate,
    /// A Kubernetes-style `..data` symlink swap of the folder holding routes.toml.
    SymlinkSwap,
    /// order-service stalled (SIGSTOP) while events keep coming, then resumed.
    SlowConsumer,
    /// Random bytes and malformed events mixed with good ones into the dispatch queue.
    BadInput,
    /// Random, malformed and huge HTTP requests to user-service.
    HttpFuzz,
    /// One message of each hostile class into the dispatch queue under load.
    HostileInput,
    /// A replay of the archive stream killed with `kill -9` halfway, then run again.
    ReplayKilled,
    /// Three-node cluster: the node holding the consume connection stopped, then back.
    ClusterNodeDown,
    /// Three-node cluster: the node holding the dispatch queue's leader stopped, then back.
    ClusterLeaderDown,
    /// Three-node cluster: `kill -9` of the consume connection's node, then a restart.
    ClusterNodeKill,
    /// Three-node cluster, two competing dispatcher replicas: `kill -9` of one of them.
    ReplicaKilled,
    /// Three-node cluster, two replicas in ordered mode: `kill -9` of the active one.
    OrderedFailover,
}

impl Fault {
    /// The scenario's name in the report and on the command line.
    pub fn name(self) -> String {
        match self {
            Self::CloseConsumeConnection => "close-consume-connection".into(),
            Self::ClosePublishConnection => "close-publish-connection".into(),
            Self::BrokerDown(d) => format!("broker-down-{}s", d.as_secs()),
            Self::KillDispatcher => "kill-dispatcher".into(),
            Self::KillOrderService => "kill-order-service".into(),
            Self::KillUserService => "kill-user-service".into(),
            Self::ReloadStorm => "reload-storm".into(),
            Self::InvalidReload => "invalid-reload".into(),
            Self::DeleteAndRecreate => "delete-and-recreate".into(),
            Self::SymlinkSwap => "symlink-swap".into(),
            Self::SlowConsumer => "slow-consumer".into(),
            Self::BadInput => "bad-input".into(),
            Self::HttpFuzz => "http-fuzz".into(),
            Self::HostileInput => "hostile-input".into(),
            Self::ReplayKilled => "replay-killed".into(),
            Self::ClusterNodeDown => "cluster-node-down".into(),
            Self::ClusterLeaderDown => "cluster-leader-down".into(),
            Self::ClusterNodeKill => "cluster-node-kill".into(),
            Self::ReplicaKilled => "replica-killed".into(),
            Self::OrderedFailover => "ordered-failover".into(),
        }
    }
}

/// Injects `fault`; returns notes for the report.
pub async fn inject(
    system: &mut System,
    broker: &PrivateBroker,
    fault: Fault,
) -> anyhow::Result<String> {
    match fault {
        Fault::CloseConsumeConnection => close_dispatcher_connection(broker, "consum"),
        Fault::ClosePublishConnection => close_dispatcher_connection(broker, "publish"),
        Fault::BrokerDown(outage) => {
            broker.stop()?;
            tokio::time::sleep(outage).await;
            broker.restart().await?;
            Ok(format!(
                "broker stopped for {}s under load",
                outage.as_secs()
            ))
        }
        Fault::KillDispatcher => {
            system.dispatcher.kill9().await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            system.dispatcher.restart().await?;
            Ok("dispatcher killed -9 and restarted".into())
        }
        Fault::KillOrderService => {
            let orders = system
                .orders
                .as_mut()
                .context("order-service not running")?;
            orders.kill9().await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            orders.restart().await?;
            Ok("order-service killed -9 and restarted".into())
        }
        Fault::KillUserService => {
            let backlog = outbox_backlog(system).await;
            system.users.kill9().await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            system.users.restart().await?;
            Ok(format!(
                "user-service killed -9 (outbox backlog just before: {backlog}) and restarted"
            ))
        }
        Fault::ReloadStorm => reload::storm(system).await,
        Fault::InvalidReload => reload::invalid(system).await,
        Fault::DeleteAndRecreate => reload::delete_and_recreate(system).await,
        Fault::SymlinkSwap => reload::symlink_swap(system).await,
        Fault::SlowConsumer => slow_consumer(system, broker).await,
        Fault::BadInput
        | Fault::HttpFuzz
        | Fault::ReplayKilled
        | Fault::HostileInput
        | Fault::ClusterNodeDown
        | Fault::ClusterLeaderDown
        | Fault::ClusterNodeKill
        | Fault::ReplicaKilled
        | Fault::OrderedFailover => Ok(String::new()),
    }
}

/// Whether every running service answers `/readyz` with 2xx (waiting up to 60 s).
pub async fn all_serving(system: &System) -> bool {
    let mut urls = vec![
        system.dispatcher.url("/readyz"),
        system.users.url("/readyz"),
    ];
    if let Some(orders) = &system.orders {
        urls.push(orders.url("/readyz"));
    }
    for url in urls {
        if system.wait_ready(&url).await.is_err() {
            return false;
        }
    }
    true
}

fn close_dispatcher_connection(broker: &PrivateBroker, role: &str) -> anyhow::Result<String> {
    // Plain output: the first column is the Erlang pid (`<node.a.b.c>`) close_connection takes.
    let output = broker.ctl(&[
        "list_connections",
        "pid",
        "client_properties",
        "--no-table-headers",
        "--quiet",
    ])?;
    let listing = String::from_utf8_lossy(&output.stdout).into_owned();
    let found = listing.lines().find_map(|line| {
        let label = connection_name(line)?;
        (label.contains("dispatcher") && label.contains(role)).then(|| {
            (
                line.split('\t').next().unwrap_or_default().to_owned(),
                label,
            )
        })
    });
    let Some((pid, label)) = found else {
        return Ok(format!(
            "FAILED: no dispatcher connection named like *{role}* in {listing:?}"
        ));
    };
    let closed = broker.ctl(&["close_connection", &pid, "fault suite: closing mid-stream"])?;
    anyhow::ensure!(
        closed.status.success(),
        "close_connection: {}",
        String::from_utf8_lossy(&closed.stderr)
    );
    Ok(format!("broker closed connection {label:?} mid-stream"))
}

/// The `connection_name` client property in a `list_connections` line
/// (`{"connection_name","dispatcher consume …"}`).
pub(super) fn connection_name(line: &str) -> Option<String> {
    let key = "\"connection_name\",\"";
    let start = line.find(key)? + key.len();
    let rest = &line[start..];
    Some(rest[..rest.find('"')?].to_owned())
}

async fn outbox_backlog(system: &System) -> String {
    let Ok(response) = system.http.get(system.users.url("/readyz")).send().await else {
        return "unknown".into();
    };
    let body: Value = response.json().await.unwrap_or_default();
    body.get("outbox_backlog")
        .map_or_else(|| "unknown".into(), ToString::to_string)
}

/// Stalls order-service with SIGSTOP for a while; the dispatcher's memory must stay
/// bounded (prefetch) while the broker holds the backlog.
async fn slow_consumer(system: &mut System, broker: &PrivateBroker) -> anyhow::Result<String> {
    let pid = system.dispatcher.pid().context("dispatcher pid")?;
    let rss_before = rss_mib(pid);
    let orders = system
        .orders
        .as_ref()
        .context("order-service not running")?;
    orders.signal(Signal::SIGSTOP)?;
    let connection = events::amqp::connect_once(
        &broker.endpoints(),
        "fault-backlog",
        Duration::from_secs(10),
    )
    .await?;
    let mut backlog = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        backlog = backlog.max(
            events::testing::message_count(&connection, &system.queues.order)
                .await
                .unwrap_or(0),
        );
    }
    let rss_stalled = rss_mib(pid);
    orders.signal(Signal::SIGCONT)?;
    let _ = connection.close(200, "ok".into()).await;
    let grew = rss_stalled - rss_before;
    let verdict = if grew > 64.0 {
        "FAILED: dispatcher memory grew"
    } else {
        "dispatcher memory bounded"
    };
    Ok(format!(
        "order-service stalled 5s: broker held a backlog of {backlog}; dispatcher RSS {rss_before:.1} → {rss_stalled:.1} MiB ({verdict})"
    ))
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}
