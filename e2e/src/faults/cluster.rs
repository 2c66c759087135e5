//! Cluster scenarios: the system runs on a three-node cluster with `AMQP_URL` listing
//! every node, and one node is lost under load (stopped, or its Erlang VM killed -9).
//! Counted like the other scenarios, plus the time until events flow again. Each
//! scenario places the dispatch queue's leader and the dispatcher's connections on known
//! nodes ([`super::placement`]), checks where they are before the loss, and reports it.

use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::time::Instant;

use super::flow::published;
use super::placement::{DISPATCHER_ORDER, LEADER, Layout, OTHERS_ORDER, declare_through};
use super::{Row, Scale, inject};
use crate::cluster::Cluster;
use crate::node_config::NodeOptions;
use crate::stream::{Producer, tally};
use crate::system::{Options, Queues, System};

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
    let queues = Queues::unique();
    let queue_type = events::testing::queue_type();
    declare_through(&cluster.nodes()[LEADER], &queues.dispatch, queue_type).await?;
    let options = Options {
        amqp_url: cluster.url_in(&OTHERS_ORDER),
        dispatcher_amqp_url: Some(cluster.url_in(&DISPATCHER_ORDER)),
        queues: Some(queues),
        rust_log: "info".to_owned(),
        with_orders: true,
        poll_interval: None,
        ..Options::default()
    };
    let system = System::start(options).await?;
    let producer = Producer::start(system.http.clone(), system.users.url(""), scale.rate);
    tokio::time::sleep(scale.load).await;
    let layout = Layout::observe(cluster, &system.queues.dispatch)?;
    let index = layout.lost_node(loss);
    let node = &cluster.nodes()[index];
    let before = published(&system.http, &system.dispatcher).await;
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
        "{}; node {} {how} for {}s under load, then brought back; events flowed again {}",
        layout.describe(),
        index + 1,
        OUTAGE.as_secs(),
        flowing.map_or_else(
            || format!("only after the node came back (> {}s)", OUTAGE.as_secs()),
            |d| format!("after {:.1}s", d.as_secs_f64())
        )
    );
    if let Some(problem) = layout.problem(loss) {
        notes.push_str(&format!("; FAILED: {problem}"));
    }
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
        baseline = baseline.max(published(&system.http, &system.dispatcher).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while since.elapsed() < within {
        if published(&system.http, &system.dispatcher).await > baseline + 5.0 {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
