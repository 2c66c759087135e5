//! `cargo xtask cluster`: `up` makes a three-node cluster whose quorum queues have a
//! member on every node, `status` sees it, `down` ends exactly those nodes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::{Cluster, NodeRecord};
use events::amqp::{connect_once, declare_queue};
use events::{Endpoints, QueueType};

fn xtask(dir: &Path, command: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["cluster", "--dir"])
        .arg(dir)
        .arg(command)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "cluster {command}: {text}");
    text
}

fn records(dir: &Path) -> Vec<NodeRecord> {
    let text = std::fs::read_to_string(dir.join("cluster.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Whether `pid` runs (an exited process that init has not reaped yet does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn up_makes_a_three_node_cluster_with_replicated_quorum_queues_and_down_removes_it() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("cluster");
    let up = xtask(&dir, "up");
    let url = up
        .lines()
        .find_map(|line| line.strip_prefix("AMQP_URL="))
        .expect("up prints AMQP_URL=")
        .to_owned();
    let urls: Vec<&str> = url.split(',').collect();
    assert_eq!(urls.len(), 3, "{url}");
    let cluster = Cluster::attach(records(&dir));
    let pids: Vec<u32> = cluster.nodes().iter().filter_map(|n| n.pid()).collect();
    assert_eq!(pids.len(), 3, "every node has a pid");

    let status = xtask(&dir, "status");
    assert!(
        status.contains("3 of 3 nodes running, 3 answering AMQP"),
        "{status}"
    );
    for url in &urls {
        let connection = connect_once(
            &Endpoints::from(*url),
            "cluster-test",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        connection.close(200, "ok".into()).await.unwrap();
    }
    let connection = connect_once(
        &Endpoints::from(url.as_str()),
        "cluster-test",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let channel = connection.create_channel().await.unwrap();
    declare_queue(&channel, "xtask-cluster-test", QueueType::Quorum)
        .await
        .unwrap();
    let members = cluster.quorum_status("xtask-cluster-test").unwrap();
    assert_eq!(members.len(), 3, "a member on every node: {members:?}");
    connection.close(200, "ok".into()).await.unwrap();

    let down = xtask(&dir, "down");
    assert!(down.contains("3 nodes stopped and removed"), "{down}");
    assert!(!dir.exists(), "the cluster's folder is gone");
    events::testing::eventually(
        Duration::from_secs(30),
        "every node process to end",
        || async { pids.iter().all(|pid| !alive(*pid)).then_some(()) },
    )
    .await;
    for url in &urls {
        let refused = connect_once(
            &Endpoints::from(*url),
            "cluster-test",
            Duration::from_secs(3),
        )
        .await;
        assert!(refused.is_err(), "{url} still answers");
    }
}
