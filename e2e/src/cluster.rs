//! A RabbitMQ cluster of private nodes on this machine, each on its own ports, joined
//! with `join_cluster`: for `cargo xtask cluster` and the tests and faults that need
//! several nodes. Quorum queues declared on it get a member on every node (RabbitMQ's
//! default initial group size is the number of cluster nodes, for up to 3 or more).

use std::time::Duration;

use anyhow::{Context, bail};
use events::Endpoints;
use tokio::task::JoinSet;

use crate::broker::{NodeRecord, PrivateBroker};
use crate::node_config::NodeOptions;

/// How long a node may take to come back after joining.
const JOIN_TIMEOUT: Duration = Duration::from_secs(90);

/// The nodes of one cluster; `Drop` ends them all unless detached.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<PrivateBroker>,
}

impl Cluster {
    /// Starts `size` nodes named `<label>-<i>-…` (at the same time), then joins every
    /// node to the first. On any failure the nodes started so far are removed.
    pub async fn start(label: &str, size: usize, options: NodeOptions) -> anyhow::Result<Self> {
        if size == 0 {
            bail!("a cluster needs at least one node");
        }
        let mut starting = JoinSet::new();
        for index in 1..=size {
            let (label, options) = (format!("{label}-{index}"), options.clone());
            starting.spawn(async move {
                let node = PrivateBroker::start_with(&label, options).await;
                (index, node)
            });
        }
        let mut started = Vec::new();
        let mut failure = None;
        while let Some(joined) = starting.join_next().await {
            match joined.context("a node's start task failed")? {
                (index, Ok(node)) => started.push((index, node)),
                (_, Err(error)) => failure = Some(error),
            }
        }
        if let Some(error) = failure {
            return Err(error.context("starting the cluster's nodes"));
        }
        started.sort_by_key(|(index, _)| *index);
        let cluster = Self {
            nodes: started.into_iter().map(|(_, node)| node).collect(),
        };
        cluster.join().await?;
        Ok(cluster)
    }

    async fn join(&self) -> anyhow::Result<()> {
        let Some((first, others)) = self.nodes.split_first() else {
            return Ok(());
        };
        for node in others {
            let Err(error) = join_one(node, first).await else {
                continue;
            };
            let with_log = |error: anyhow::Error| {
                error.context(format!(
                    "node {} could not join; the end of its log:\n{}",
                    node.node(),
                    node.log_tail(40)
                ))
            };
            if node.ctl(&["status"]).is_ok_and(|o| o.status.success()) {
                return Err(with_log(error));
            }
            // Its VM is gone (seen once, on a busy machine, between its start and its
            // join): boot it again, once, and join it; the log says why if that fails.
            eprintln!(
                "cluster: node {} was not running when it was to join ({error:#}); booting it again",
                node.node()
            );
            node.restart().await.map_err(with_log)?;
            join_one(node, first).await.map_err(with_log)?;
        }
        let running = self.running_nodes()?;
        if running.len() != self.nodes.len() {
            bail!(
                "the cluster runs {} of {} nodes after joining: {running:?}",
                running.len(),
                self.nodes.len()
            );
        }
        Ok(())
    }

    /// The nodes found again from their records (see [`Cluster::detach`]).
    pub fn attach(records: Vec<NodeRecord>) -> Self {
        Self {
            nodes: records.into_iter().map(PrivateBroker::attach).collect(),
        }
    }

    /// Leaves every node running when this value is dropped; returns their records.
    pub fn detach(self) -> Vec<NodeRecord> {
        let mut nodes = self.nodes;
        nodes.drain(..).map(PrivateBroker::detach).collect()
    }

    /// Ends every node (by `rabbitmqctl stop`, then by pid) and deletes its folder.
    pub fn remove(self) {
        let mut nodes = self.nodes;
        nodes.drain(..).for_each(PrivateBroker::remove);
    }

    /// The nodes, in start order.
    pub fn nodes(&self) -> &[PrivateBroker] {
        &self.nodes
    }

    /// The `AMQP_URL` that lists every node: `amqp://…:<port1>/%2f,amqp://…:<port2>/%2f,…`.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(PrivateBroker::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// An `AMQP_URL` listing the nodes in the given order (indices into
    /// [`Cluster::nodes`]): a client tries the first one first. Indices out of range are
    /// skipped.
    pub fn url_in(&self, order: &[usize]) -> String {
        order
            .iter()
            .filter_map(|&index| self.nodes.get(index))
            .map(PrivateBroker::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// [`Cluster::url`] as endpoints to connect with.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints::from(self.url())
    }

    /// The Erlang names of the nodes that the cluster reports running, asked of the
    /// first node that answers.
    pub fn running_nodes(&self) -> anyhow::Result<Vec<String>> {
        let mut last_error = None;
        for node in &self.nodes {
            match node.ctl_ok(&["cluster_status", "--formatter", "json"]) {
                Ok(text) => {
                    let status: serde_json::Value = serde_json::from_str(&text)
                        .with_context(|| format!("cluster_status is not JSON: {text}"))?;
                    let running = status["running_nodes"]
                        .as_array()
                        .context("cluster_status has no running_nodes")?;
                    return Ok(running
                        .iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect());
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("the cluster has no node")))
    }

    /// `rabbitmq-queues quorum_status` of `queue`: one JSON object per member, with its
    /// node name and Raft state (`leader`, `follower`…).
    pub fn quorum_status(&self, queue: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let first = self.nodes.first().context("the cluster has no node")?;
        let text = first.tool_ok(
            "rabbitmq-queues",
            &["quorum_status", queue, "--formatter", "json"],
        )?;
        serde_json::from_str(&text).with_context(|| format!("quorum_status is not JSON: {text}"))
    }
}

/// Makes `node` a member of `first`'s cluster, and waits until it is ready again.
async fn join_one(node: &PrivateBroker, first: &PrivateBroker) -> anyhow::Result<()> {
    node.ctl_ok(&["stop_app"])?;
    node.ctl_ok(&["reset"])?;
    node.ctl_ok(&["join_cluster", first.node()])?;
    node.ctl_ok(&["start_app"])?;
    node.wait_ready(JOIN_TIMEOUT).await
}
