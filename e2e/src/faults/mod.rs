//! The fault suite: a numbered stream of users through the real system on a private
//! broker, one fault injected mid-stream per scenario, and the count at the end: lost
//! (must be 0), duplicates (allowed, counted), every process still serving.

mod bad_input;
mod cluster;
mod flow;
mod hostile;
mod hostile_messages;
mod hostile_report;
mod hostile_watch;
mod inject;
mod placement;
mod reload;
mod replay;
mod replicas;
mod sequence;

use std::time::Duration;

use serde::Serialize;

use crate::broker::PrivateBroker;
use crate::stream::{Producer, tally};
use crate::system::{Options, System};

use cluster::NodeLoss;
pub use inject::Fault;
use replicas::ReplicaLoss;

/// One scenario's row in the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// Events (or users) acknowledged to the producer.
    pub sent: usize,
    /// Acknowledged but never arrived.
    pub lost: usize,
    /// Arrived more than once.
    pub duplicates: usize,
    /// All processes answered `/readyz` at the end.
    pub serving: bool,
    /// What else was observed (reload counts, memory, dead letters…).
    pub notes: String,
}

impl Row {
    /// Whether the scenario passed: nothing lost, everything serving, and no failed check.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.serving && !self.notes.contains("FAILED")
    }
}

/// Sizes of a run.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Users per second from the producer.
    pub rate: u32,
    /// Seconds of load before and after the fault.
    pub load: Duration,
    /// Random byte strings for the bad-input scenario.
    pub bad_messages: usize,
    /// HTTP fuzzing requests.
    pub fuzz_requests: usize,
    /// Whether to run the long (30 s) broker outage.
    pub long_outage: bool,
    /// Messages of 20 MiB in the hostile-input scenario.
    pub hostile_large: usize,
    /// Whether to run every cluster and replica scenario (each starts a three-node
    /// cluster); without it, `ordered-failover` alone.
    pub cluster: bool,
}

impl Scale {
    /// CI-sized.
    pub fn quick() -> Self {
        Self {
            rate: 100,
            load: Duration::from_secs(2),
            bad_messages: 1_000,
            fuzz_requests: 1_000,
            long_outage: false,
            hostile_large: 40,
            cluster: false,
        }
    }

    /// The full suite.
    pub fn full() -> Self {
        Self {
            rate: 200,
            load: Duration::from_secs(5),
            bad_messages: 10_000,
            fuzz_requests: 10_000,
            long_outage: true,
            hostile_large: 40,
            cluster: true,
        }
    }
}

/// Every scenario name, in run order.
pub fn scenarios(scale: Scale) -> Vec<Fault> {
    let mut all = vec![
        Fault::CloseConsumeConnection,
        Fault::ClosePublishConnection,
        Fault::BrokerDown(Duration::from_secs(5)),
    ];
    if scale.long_outage {
        all.push(Fault::BrokerDown(Duration::from_secs(30)));
    }
    all.extend([
        Fault::KillDispatcher,
        Fault::KillOrderService,
        Fault::KillUserService,
        Fault::ReloadStorm,
        Fault::InvalidReload,
        Fault::DeleteAndRecreate,
        Fault::SymlinkSwap,
        Fault::SlowConsumer,
        Fault::BadInput,
        Fault::HostileInput,
        Fault::HttpFuzz,
        Fault::ReplayKilled,
    ]);
    if scale.cluster {
        all.extend([
            Fault::ClusterNodeDown,
            Fault::ClusterLeaderDown,
            Fault::ClusterNodeKill,
            Fault::ReplicaKilled,
        ]);
    }
    // In `--quick` too: one cluster scenario, the one that checks the most (a cluster,
    // two replicas, a kill -9, a failover and the order of arrivals) in under a minute
    // and a half even on a busy machine.
    all.push(Fault::OrderedFailover);
    all
}

/// Runs one scenario on `broker`.
pub async fn run(broker: &PrivateBroker, fault: Fault, scale: Scale) -> anyhow::Result<Row> {
    match fault {
        Fault::BadInput => return bad_input::dispatcher_bad_input(broker, scale).await,
        Fault::HttpFuzz => return bad_input::http_fuzz(broker, scale).await,
        Fault::HostileInput => return hostile::hostile_input(broker, scale).await,
        Fault::ReplayKilled => return replay::replay_killed(broker, scale).await,
        Fault::ClusterNodeDown => {
            return cluster::node_loss(fault.name(), NodeLoss::ConsumeNodeDown, scale).await;
        }
        Fault::ClusterLeaderDown => {
            return cluster::node_loss(fault.name(), NodeLoss::LeaderDown, scale).await;
        }
        Fault::ClusterNodeKill => {
            return cluster::node_loss(fault.name(), NodeLoss::ConsumeNodeKill, scale).await;
        }
        Fault::ReplicaKilled => {
            return replicas::replica_loss(fault.name(), ReplicaLoss::Competing, scale).await;
        }
        Fault::OrderedFailover => {
            return replicas::replica_loss(fault.name(), ReplicaLoss::Ordered, scale).await;
        }
        _ => {}
    }
    let options = Options {
        amqp_url: broker.url(),
        rust_log: "info".to_owned(),
        with_orders: true,
        poll_interval: None,
        ..Options::default()
    };
    let mut system = System::start(options).await?;
    let producer = Producer::start(system.http.clone(), system.users.url(""), scale.rate);
    tokio::time::sleep(scale.load).await;
    let notes = inject::inject(&mut system, broker, fault).await?;
    tokio::time::sleep(scale.load).await;
    let acknowledged = producer.stop().await;
    let ids = acknowledged.ids();
    let result = tally(&system, &ids, Duration::from_secs(120)).await?;
    let serving = inject::all_serving(&system).await;
    let mut notes = notes;
    if !result.missing.is_empty() {
        notes.push_str(&format!("; missing ids {:?}", result.missing));
    }
    if acknowledged.failures() > 0 {
        notes.push_str(&format!(
            "; {} POSTs refused while down (not acknowledged)",
            acknowledged.failures()
        ));
    }
    system.shutdown().await?;
    Ok(Row {
        scenario: fault.name(),
        sent: result.sent,
        lost: result.lost,
        duplicates: result.duplicates,
        serving,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: [&str; 5] = [
        "cluster-node-down",
        "cluster-leader-down",
        "cluster-node-kill",
        "replica-killed",
        "ordered-failover",
    ];

    fn cluster_names(scale: Scale) -> Vec<String> {
        scenarios(scale)
            .into_iter()
            .map(Fault::name)
            .filter(|name| CLUSTER.contains(&name.as_str()))
            .collect()
    }

    #[test]
    fn the_full_suite_runs_every_cluster_scenario_and_quick_runs_ordered_failover_alone() {
        assert_eq!(cluster_names(Scale::full()), CLUSTER);
        assert_eq!(cluster_names(Scale::quick()), ["ordered-failover"]);
    }

    #[test]
    fn scenario_names_are_unique() {
        let names: Vec<String> = scenarios(Scale::full())
            .into_iter()
            .map(Fault::name)
            .collect();
        let unique: std::collections::BTreeSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }
}
