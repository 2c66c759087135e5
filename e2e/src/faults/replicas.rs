//! Replica scenarios on a three-node cluster (`AMQP_URL` lists all three): two dispatchers
//! consume the same source queue and one is killed -9 under load.
//!
//! - `replica-killed`: competing consumers; what the dead replica held is redelivered to
//!   the survivor, which carries on alone.
//! - `ordered-failover`: ordered mode; the active replica is killed, the standby takes
//!   the lock and carries on, and the numbered events' first arrivals at the target must
//!   keep the source queue's order (repeats are redeliveries: counted, allowed).

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::time::Instant;

use super::flow::{published, role, role_reached, rose_above, shown};
use super::sequence::{OrderCheck, SequencedProducer};
use super::{Row, Scale, inject};
use crate::cluster::Cluster;
use crate::node_config::NodeOptions;
use crate::stream::{Producer, tally};
use crate::system::{Options, System};

/// How long a watcher waits for a role or for events to flow after the kill.
const WATCH: Duration = Duration::from_secs(60);
/// How long the tally waits for every event to arrive.
const TALLY: Duration = Duration::from_secs(120);

/// Which replica scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaLoss {
    /// Two competing replicas, one killed -9.
    Competing,
    /// Two replicas in ordered mode, the active one killed -9.
    Ordered,
}

/// Runs one replica scenario on a fresh three-node cluster.
pub async fn replica_loss(name: String, loss: ReplicaLoss, scale: Scale) -> anyhow::Result<Row> {
    let cluster = Cluster::start("faults-replicas", 3, NodeOptions::default())
        .await
        .context("starting the three-node cluster")?;
    let result = match loss {
        ReplicaLoss::Competing => competing(&cluster, name, scale).await,
        ReplicaLoss::Ordered => ordered(&cluster, name, scale).await,
    };
    cluster.remove();
    result
}

fn options(cluster: &Cluster, ordered: bool) -> Options {
    Options {
        amqp_url: cluster.url(),
        rust_log: "info".to_owned(),
        with_orders: true,
        poll_interval: None,
        ordered,
        ..Options::default()
    }
}

async fn competing(cluster: &Cluster, name: String, scale: Scale) -> anyhow::Result<Row> {
    let system = System::start(options(cluster, false)).await?;
    let mut second = system.start_dispatcher_replica().await?;
    let producer = Producer::start(system.http.clone(), system.users.url(""), scale.rate);
    tokio::time::sleep(scale.load).await;
    let http = &system.http;
    let first_before = published(http, &system.dispatcher).await;
    let second_before = published(http, &second).await;
    let killed_at = Instant::now();
    second.kill9().await?;
    let at_kill = published(http, &system.dispatcher).await;
    let flowing = rose_above(http, &system.dispatcher, at_kill, killed_at, WATCH).await;
    tokio::time::sleep(scale.load).await;
    let acknowledged = producer.stop().await;
    let result = tally(&system, &acknowledged.ids(), TALLY).await?;
    let survivor_total = published(http, &system.dispatcher).await;
    let mut notes = format!(
        "two replicas competing for queue_dispatch had made {first_before:.0} and \
         {second_before:.0} publishes (2 targets per event) when replica 2 was killed -9 \
         under load (not restarted); the survivor's count rose again {} and it made \
         {survivor_total:.0} publishes in all",
        shown(flowing, WATCH)
    );
    if first_before == 0.0 || second_before == 0.0 {
        notes.push_str("; FAILED: a replica had forwarded nothing before the kill");
    }
    if flowing.is_none() {
        notes.push_str("; FAILED: nothing flowed after the kill");
    }
    finish(system, name, result, acknowledged.failures(), notes).await
}

async fn ordered(cluster: &Cluster, name: String, scale: Scale) -> anyhow::Result<Row> {
    let mut system = System::start(options(cluster, true)).await?;
    let mut standby = system.start_dispatcher_replica().await?;
    let http = system.http.clone();
    let now = Instant::now();
    let roles = (
        role_reached(&http, &system.dispatcher, "active", now, WATCH).await,
        role_reached(&http, &standby, "standby", now, WATCH).await,
    );
    if roles.0.is_none() || roles.1.is_none() {
        bail!(
            "before the kill the replicas were {:?} and {:?}, not active and standby",
            role(&http, &system.dispatcher).await,
            role(&http, &standby).await
        );
    }
    let producer =
        SequencedProducer::start(&system.endpoints(), &system.queues.dispatch, scale.rate).await?;
    tokio::time::sleep(scale.load).await;
    let active_before = published(&http, &system.dispatcher).await;
    let standby_before = published(&http, &standby).await;
    let killed_at = Instant::now();
    system.dispatcher.kill9().await?;
    let took_over = role_reached(&http, &standby, "active", killed_at, WATCH).await;
    let flowing = rose_above(&http, &standby, standby_before, killed_at, WATCH).await;
    // The former standby is the system's dispatcher from now on (checked for serving).
    std::mem::swap(&mut system.dispatcher, &mut standby);
    drop(standby);
    tokio::time::sleep(scale.load).await;
    let sent = producer.stop().await?;
    let result = tally(&system, &sent.confirmed, TALLY).await?;
    let check = OrderCheck::of(result.arrivals.iter().copied());
    let mut notes = format!(
        "ordered mode, two replicas: the active one (which had made {active_before:.0} \
         publishes, 2 targets per event) killed -9 under load while numbered events went \
         straight into queue_dispatch; the standby became active {} and its events flowed \
         {}; at the tap {} distinct events arrived, {} of them more than once, {} out of order",
        shown(took_over, WATCH),
        shown(flowing, WATCH),
        check.distinct(),
        check.duplicates,
        check.out_of_order.len()
    );
    if standby_before > 0.0 {
        notes.push_str("; FAILED: the standby forwarded before the kill");
    }
    if took_over.is_none() || flowing.is_none() {
        notes.push_str("; FAILED: the standby did not take over");
    }
    if !check.in_order() {
        let first: Vec<_> = check.out_of_order.iter().take(5).collect();
        notes.push_str(&format!(
            "; FAILED: first arrivals out of order (id, after a higher id): {first:?}"
        ));
    }
    if sent.unconfirmed > 0 {
        notes.push_str(&format!(
            "; {} publishes not confirmed (not counted as sent)",
            sent.unconfirmed
        ));
    }
    finish(system, name, result, 0, notes).await
}

/// Checks that every process serves, adds the missing ids and refused POSTs to the
/// notes, and stops the system.
async fn finish(
    system: System,
    name: String,
    result: crate::stream::Tally,
    refused: u64,
    mut notes: String,
) -> anyhow::Result<Row> {
    let serving = inject::all_serving(&system).await;
    if !result.missing.is_empty() {
        notes.push_str(&format!("; missing ids {:?}", result.missing));
    }
    if refused > 0 {
        notes.push_str(&format!("; {refused} POSTs refused (not acknowledged)"));
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
