//! Cluster scenarios: the system runs on a three-node cluster with `AMQP_URL` listing
//! every node, and one node is lost under load (stopped, or its Erlang VM killed -9).
//! Counted like the other scenarios, plus the time until events flow again.

use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::time::Instant;

use super::{Row, Scale, inject};
use crate::broker::PrivateBroker;
use crate::cluster::Cluster;
use crate::node_config::NodeOptions;
use crate::stream::{Producer, tally};
use crate::system::{Options, System};

/// Which node is lost, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeLoss {
    /// `rabbitmqctl stop` of the node holding the dispatcher's consume connection.
    ConsumeNodeDown,
    /// `rabbitmqctl stop` of the node holding the leader of the dispatch queue.
    LeaderDown,
    /// `kill -9` of the Erlang VM of the node holding the consume connection.
    ConsumeNodeKill,
}

/// How long the lost node stays away before it is brought back.
const OUTAGE: Duration = Duration::from_secs(10);

/// Runs one node-loss scenario on a fresh three-node cluster.
pub async fn node_loss(name: String, loss: NodeLoss, scale: Scale) -> anyhow::Result<Row> {
    let cluster = Cluster::start("faults-cluster", 3, NodeOptions::default())
        .await
        .context("starting the three-node cluster")?;
    let result = run_on(&cluster, name, loss, scale).await;
    cluster.remove();
    result
}

async fn run_on(
    cluster: &Cluster,
    name: String,
    loss: NodeLoss,
    scale: Scale,
) -> anyhow::Result<Row> {
    let options = Options {
        amqp_url: cluster.url(),
        rust_log: "info".to_owned(),
        with_orders: true,
        poll_interval: None,
        ..Options::default()
    };
    let system = System::start(options).await?;
    let producer = Producer::start(system.http.clone(), system.users.url(""), scale.rate);
    tokio::time::sleep(scale.load).await;
    let (index, why) = match loss {
        NodeLoss::LeaderDown => (
            leader_node(cluster, &system.queues.dispatch)?,
            "the dispatch queue's leader",
        ),
        NodeLoss::ConsumeNodeDown | NodeLoss::ConsumeNodeKill => (
            consume_node(cluster)?,
            "the dispatcher's consume connection",
        ),
    };
    let node = &cluster.nodes()[index];
    let before = published(&system).await;
    let lost_at = Instant::now();
    let how = match loss {
        NodeLoss::ConsumeNodeKill => {
            let pid = node.pid().context("the node's pid")?;
            let pid = i32::try_from(pid).context("pid out of range")?;
            kill(Pid::from_raw(pid), Signal::SIGKILL)?;
            "killed -9"
        }
        NodeLoss::ConsumeNodeDown | NodeLoss::LeaderDown => {
            node.stop()?;
            "stopped"
        }
    };
    let flowing = flowing_again(&system, before, lost_at, OUTAGE).await;
    let remaining = OUTAGE.saturating_sub(lost_at.elapsed());
    tokio::time::sleep(remaining).await;
    node.restart().await.context("bringing the node back")?;
    tokio::time::sleep(scale.load).await;
    let acknowledged = producer.stop().await;
    let ids = acknowledged.ids();
    let result = tally(&system, &ids, Duration::from_secs(120)).await?;
    let serving = inject::all_serving(&system).await;
    let mut notes = format!(
        "node {} ({why}) {how} for {}s under load, then brought back; events flowed again {}",
        index + 1,
        OUTAGE.as_secs(),
        flowing.map_or_else(
            || format!("only after the node came back (> {}s)", OUTAGE.as_secs()),
            |d| format!("after {:.1}s", d.as_secs_f64())
        )
    );
    if !result.missing.is_empty() {
        notes.push_str(&format!("; missing ids {:?}", result.missing));
    }
    if acknowledged.failures() > 0 {
        notes.push_str(&format!(
            "; {} POSTs refused (not acknowledged)",
            acknowledged.failures()
        ));
    }
    system.shutdown().await?;
    Ok(Row {
        scenario: name,
        sent: result.sent,
        lost: result.lost,
        duplicates: result.duplicates,
        serving,
        notes,
    })
}

/// The index of the node whose AMQP port the dispatcher's consume connection uses
/// (a connection's name is `<peer host>:<peer port> -> <host>:<node port>`).
fn consume_node(cluster: &Cluster) -> anyhow::Result<usize> {
    let first = cluster.nodes().first().context("the cluster has no node")?;
    let listing = first.ctl_ok(&[
        "list_connections",
        "name",
        "client_properties",
        "--no-table-headers",
        "--quiet",
    ])?;
    let line = listing
        .lines()
        .find(|l| l.contains("dispatcher") && l.contains("consum"))
        .with_context(|| format!("no dispatcher consume connection in {listing:?}"))?;
    node_of_connection(cluster.nodes(), line)
        .with_context(|| format!("no node listens on the port of {line:?}"))
}

fn node_of_connection(nodes: &[PrivateBroker], line: &str) -> Option<usize> {
    let name = line.split('\t').next()?;
    let port: u16 = name.rsplit(':').next()?.trim().parse().ok()?;
    nodes.iter().position(|n| n.port() == port)
}

/// The index of the node holding the Raft leader of `queue`.
fn leader_node(cluster: &Cluster, queue: &str) -> anyhow::Result<usize> {
    let members = cluster.quorum_status(queue)?;
    let leader = members
        .iter()
        .find(|m| {
            m.as_object()
                .is_some_and(|o| o.values().any(|v| v.as_str() == Some("leader")))
        })
        .with_context(|| format!("no leader in {members:?}"))?;
    let node_name = leader
        .as_object()
        .and_then(|o| {
            o.iter()
                .find(|(k, _)| k.to_lowercase().contains("node"))
                .and_then(|(_, v)| v.as_str())
        })
        .with_context(|| format!("no node name in {leader:?}"))?;
    cluster
        .nodes()
        .iter()
        .position(|n| n.node() == node_name)
        .with_context(|| format!("the leader {node_name} is not a node of the cluster"))
}

/// The dispatcher's `dispatcher_events_published_total`, summed over targets (0 when
/// `/metrics` does not answer).
async fn published(system: &System) -> f64 {
    let Ok(response) = system
        .http
        .get(system.dispatcher.url("/metrics"))
        .send()
        .await
    else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("dispatcher_events_published_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// How long after `since` the published count first rose above `before` by more than
/// the in-flight events of one prefetch window, watched for `within`. A reported
/// figure: `None` when nothing flowed within the outage.
async fn flowing_again(
    system: &System,
    before: f64,
    since: Instant,
    within: Duration,
) -> Option<Duration> {
    // Events already delivered before the loss may still be forwarded; waiting for a
    // clear rise keeps them out of the figure.
    let mut baseline = before;
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        baseline = baseline.max(published(system).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while since.elapsed() < within {
        if published(system).await > baseline + 5.0 {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
