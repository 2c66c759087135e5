//! Where things sit on the three-node cluster of the cluster scenarios, so that the node
//! a scenario loses holds exactly what the scenario names: the dispatch queue is declared
//! first through node 1, which makes node 1 its Raft leader (RabbitMQ places a new quorum
//! queue's leader on the declaring client's node); the dispatcher lists node 2 first, so
//! its consume connection (opened first) lands on node 2 and its publish connection on
//! node 3 (a connection tries the node after the one the previous connection reached);
//! user-service and order-service list node 3 first. [`Layout::observe`] reads what the
//! broker actually reports before the loss, and the row says it.

use std::time::Duration;

use anyhow::Context;
use events::QueueType;
use events::amqp::declare_queue;

use super::cluster::NodeLoss;
use super::inject::connection_name;
use crate::broker::PrivateBroker;
use crate::cluster::Cluster;

/// The node that is to lead the dispatch queue.
pub const LEADER: usize = 0;
/// The order in which the dispatcher lists the nodes.
pub const DISPATCHER_ORDER: [usize; 3] = [1, 2, 0];
/// The order in which user-service and order-service list the nodes.
pub const OTHERS_ORDER: [usize; 3] = [2, 1, 0];

/// Declares `queue` (and its dead-letter queue) through `node` alone, before any service
/// does, so that its leader is on that node.
pub async fn declare_through(
    node: &PrivateBroker,
    queue: &str,
    queue_type: QueueType,
) -> anyhow::Result<()> {
    let connection = events::amqp::connect_once(
        &node.endpoints(),
        "fault-placement",
        Duration::from_secs(10),
    )
    .await
    .context("connecting to the node that is to lead the dispatch queue")?;
    let channel = connection.create_channel().await?;
    declare_queue(&channel, queue, queue_type)
        .await
        .with_context(|| format!("declaring {queue} through {}", node.node()))?;
    let _ = connection.close(200, "ok".into()).await;
    Ok(())
}

/// Which node (an index into the cluster's nodes) holds what, as the broker reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The dispatcher's consume connection.
    pub consume: usize,
    /// The dispatcher's publish connection.
    pub publish: usize,
    /// The Raft leader of the dispatch queue.
    pub leader: usize,
}

impl Layout {
    /// Asks the cluster: `rabbitmqctl list_connections` and `rabbitmq-queues quorum_status`.
    pub fn observe(cluster: &Cluster, queue: &str) -> anyhow::Result<Self> {
        Ok(Self {
            consume: connection_node(cluster, "consume")?,
            publish: connection_node(cluster, "publish")?,
            leader: leader_node(cluster, queue)?,
        })
    }

    /// For the report, nodes counted from 1.
    pub fn describe(self) -> String {
        format!(
            "dispatcher's consume connection on node {}, its publish connection on node {}, \
             queue_dispatch's leader on node {}",
            self.consume + 1,
            self.publish + 1,
            self.leader + 1
        )
    }

    /// The node `loss` takes away.
    pub fn lost_node(self, loss: NodeLoss) -> usize {
        match loss {
            NodeLoss::LeaderDown => self.leader,
            NodeLoss::ConsumeNodeDown | NodeLoss::ConsumeNodeKill => self.consume,
        }
    }

    /// Why losing [`Layout::lost_node`] would not test what `loss` names, if it would not:
    /// the consume node must not lead the queue, and the leader's node must hold no
    /// dispatcher connection.
    pub fn problem(self, loss: NodeLoss) -> Option<String> {
        match loss {
            NodeLoss::ConsumeNodeDown | NodeLoss::LeaderDown if self.consume == self.leader => {
                Some(format!(
                    "the consume connection and the leader share node {}, so a lost connection \
                     cannot be told from a lost leader",
                    self.leader + 1
                ))
            }
            NodeLoss::LeaderDown if self.publish == self.leader => Some(format!(
                "the dispatcher's publish connection is on the leader's node {}",
                self.leader + 1
            )),
            _ => None,
        }
    }
}

/// The index of the node whose AMQP port the dispatcher's `role` connection (`consume`
/// or `publish`) uses, from `rabbitmqctl list_connections`.
fn connection_node(cluster: &Cluster, role: &str) -> anyhow::Result<usize> {
    let first = cluster.nodes().first().context("the cluster has no node")?;
    let listing = first.ctl_ok(&[
        "list_connections",
        "name",
        "client_properties",
        "--no-table-headers",
        "--quiet",
    ])?;
    let line = dispatcher_connection(&listing, role)
        .with_context(|| format!("no dispatcher {role} connection in {listing:?}"))?;
    let port = node_port(line).with_context(|| format!("no node port in {line:?}"))?;
    cluster
        .nodes()
        .iter()
        .position(|n| n.port() == port)
        .with_context(|| format!("no node listens on port {port} of {line:?}"))
}

/// The `list_connections` line of the dispatcher connection named `dispatcher-… <role>`.
/// Matched on the `connection_name` property alone: the rest of the line holds the
/// client's capabilities, where `consumer_cancel_notify` would match `consume`.
fn dispatcher_connection<'a>(listing: &'a str, role: &str) -> Option<&'a str> {
    listing.lines().find(|line| {
        connection_name(line)
            .is_some_and(|name| name.starts_with("dispatcher") && name.ends_with(role))
    })
}

/// The node's port in a `list_connections` line whose first column is the connection's
/// name, `<peer host>:<peer port> -> <host>:<node port>`.
fn node_port(line: &str) -> Option<u16> {
    let name = line.split('\t').next()?;
    name.rsplit(':').next()?.trim().parse().ok()
}

/// The index of the node holding the Raft leader of `queue`.
fn leader_node(cluster: &Cluster, queue: &str) -> anyhow::Result<usize> {
    let members = cluster.quorum_status(queue)?;
    let node_name = leader_name(&members).with_context(|| format!("no leader in {members:?}"))?;
    cluster
        .nodes()
        .iter()
        .position(|n| n.node() == node_name)
        .with_context(|| format!("the leader {node_name} is not a node of the cluster"))
}

/// The node name of the member whose Raft state is `leader` in `quorum_status` JSON.
fn leader_name(members: &[serde_json::Value]) -> Option<&str> {
    let leader = members.iter().find(|m| {
        m.as_object()
            .is_some_and(|o| o.values().any(|v| v.as_str() == Some("leader")))
    })?;
    leader
        .as_object()?
        .iter()
        .find(|(k, _)| k.to_lowercase().contains("node"))
        .and_then(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLANNED: Layout = Layout {
        consume: 1,
        publish: 2,
        leader: 0,
    };

    #[test]
    fn the_planned_layout_suits_every_scenario_and_each_loses_a_different_node() {
        for loss in [
            NodeLoss::ConsumeNodeDown,
            NodeLoss::LeaderDown,
            NodeLoss::ConsumeNodeKill,
        ] {
            assert_eq!(PLANNED.problem(loss), None, "{loss:?}");
        }
        assert_eq!(PLANNED.lost_node(NodeLoss::ConsumeNodeDown), 1);
        assert_eq!(PLANNED.lost_node(NodeLoss::LeaderDown), 0);
        assert_eq!(
            PLANNED.describe(),
            "dispatcher's consume connection on node 2, its publish connection on node 3, \
             queue_dispatch's leader on node 1"
        );
    }

    #[test]
    fn a_consume_connection_on_the_leader_fails_the_node_down_and_leader_down_scenarios() {
        let shared = Layout {
            consume: 0,
            ..PLANNED
        };
        assert!(shared.problem(NodeLoss::ConsumeNodeDown).is_some());
        assert!(shared.problem(NodeLoss::LeaderDown).is_some());
        assert_eq!(shared.problem(NodeLoss::ConsumeNodeKill), None);
    }

    #[test]
    fn a_publish_connection_on_the_leader_fails_only_the_leader_down_scenario() {
        let layout = Layout {
            publish: 0,
            ..PLANNED
        };
        assert!(layout.problem(NodeLoss::LeaderDown).is_some());
        assert_eq!(layout.problem(NodeLoss::ConsumeNodeDown), None);
    }

    #[test]
    fn the_node_port_is_read_from_the_connection_name() {
        let line =
            "127.0.0.1:51234 -> 127.0.0.1:25673\t[{\"connection_name\",\"dispatcher-1 consume\"}]";
        assert_eq!(node_port(line), Some(25673));
        assert_eq!(node_port("garbage"), None);
    }

    #[test]
    fn a_connection_is_found_by_its_name_not_by_the_capabilities_beside_it() {
        let caps = "{\"capabilities\",[{\"consumer_cancel_notify\",true}]}";
        let listing = format!(
            "127.0.0.1:1 -> 127.0.0.1:25673\t[{caps},{{\"connection_name\",\"dispatcher-9-1 publish\"}}]\n\
             127.0.0.1:2 -> 127.0.0.1:25672\t[{caps},{{\"connection_name\",\"order-service q.order\"}}]\n\
             127.0.0.1:3 -> 127.0.0.1:25674\t[{caps},{{\"connection_name\",\"dispatcher-9-1 consume\"}}]\n"
        );
        let consume = dispatcher_connection(&listing, "consume").unwrap();
        let publish = dispatcher_connection(&listing, "publish").unwrap();
        assert_eq!(node_port(consume), Some(25674));
        assert_eq!(node_port(publish), Some(25673));
        assert_eq!(dispatcher_connection(&listing, "outbox"), None);
    }

    #[test]
    fn the_leader_is_the_member_in_state_leader() {
        let members: Vec<serde_json::Value> = serde_json::from_str(
            r#"[{"Node Name":"a@h","Raft State":"follower"},
                {"Node Name":"b@h","Raft State":"leader"}]"#,
        )
        .unwrap();
        assert_eq!(leader_name(&members), Some("b@h"));
        assert_eq!(leader_name(&members[..1]), None);
    }
}
