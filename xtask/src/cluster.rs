//! `cargo xtask cluster up|down|status`: a three-node RabbitMQ cluster on this machine,
//! made of private nodes on their own ports (`e2e::Cluster`). What `up` started is
//! recorded in `target/rabbitmq-cluster/cluster.json`, so that `down` and `status` find
//! those nodes again, and `down` ends only them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use e2e::{Cluster, NodeOptions, NodeRecord};
use events::amqp::connect_once;

use crate::workspace::target_dir;

/// Nodes in the cluster: the smallest size where a quorum survives one node's loss.
pub const SIZE: usize = 3;

/// Options of `cargo xtask cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Where the cluster's record and its nodes' folders are kept.
    #[arg(long, default_value_os_t = default_dir())]
    dir: PathBuf,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ClusterCommand {
    /// Start three joined nodes (or find them running) and print the AMQP_URL to use.
    Up,
    /// Stop the nodes `up` started and delete their folders.
    Down,
    /// Say which recorded nodes run and answer AMQP.
    Status,
}

/// `target/rabbitmq-cluster`.
pub fn default_dir() -> PathBuf {
    target_dir().join("rabbitmq-cluster")
}

/// Runs one `cluster` subcommand.
pub fn run(args: &ClusterArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    match args.command {
        ClusterCommand::Up => {
            let url = runtime.block_on(up(&args.dir))?;
            println!("\nuse it with:\n  export AMQP_URL='{url}'\nAMQP_URL={url}");
            println!("stop it with: cargo xtask cluster down");
            Ok(())
        }
        ClusterCommand::Down => down(&args.dir),
        ClusterCommand::Status => runtime.block_on(status(&args.dir)),
    }
}

/// Starts the cluster unless it runs already; returns its `AMQP_URL` (every node).
pub async fn up(dir: &Path) -> anyhow::Result<String> {
    if let Some(records) = load(dir)? {
        let cluster = Cluster::attach(records);
        let running = cluster.running_nodes().unwrap_or_default();
        if running.len() == cluster.nodes().len() {
            println!("cluster: already up ({} nodes)", running.len());
            return Ok(cluster.url());
        }
        bail!(
            "a cluster is recorded in {} but only {} of its {} nodes run: \
             `cargo xtask cluster down`, then `up` again",
            dir.display(),
            running.len(),
            cluster.nodes().len()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    println!("cluster: starting {SIZE} RabbitMQ nodes and joining them…");
    let options = NodeOptions {
        parent: Some(dir.to_path_buf()),
        ..NodeOptions::default()
    };
    let cluster = Cluster::start("cluster", SIZE, options).await?;
    let records: Vec<NodeRecord> = cluster.nodes().iter().map(|n| n.record().clone()).collect();
    // Recorded before detaching: if this fails, dropping the cluster ends the nodes.
    save(dir, &records)?;
    for record in &records {
        println!("cluster: {} on port {}", record.node, record.port);
    }
    let url = cluster.url();
    cluster.detach();
    Ok(url)
}

/// Ends the recorded nodes and deletes the record.
pub fn down(dir: &Path) -> anyhow::Result<()> {
    let Some(records) = load(dir)? else {
        println!("cluster: none recorded in {}", dir.display());
        return Ok(());
    };
    let count = records.len();
    Cluster::attach(records).remove();
    std::fs::remove_file(record_file(dir)).context("deleting the cluster record")?;
    // Only the now empty folder: anything else in it is not ours to delete.
    let _ = std::fs::remove_dir(dir);
    println!("cluster: {count} nodes stopped and removed");
    Ok(())
}

async fn status(dir: &Path) -> anyhow::Result<()> {
    let Some(records) = load(dir)? else {
        println!(
            "cluster: none recorded in {} (`cargo xtask cluster up`)",
            dir.display()
        );
        return Ok(());
    };
    let cluster = Cluster::attach(records);
    let mut answering = 0;
    for node in cluster.nodes() {
        let amqp = match connect_once(
            &node.endpoints(),
            "xtask-cluster-status",
            Duration::from_secs(3),
        )
        .await
        {
            Ok(connection) => {
                let _ = connection.close(200, "ok".into()).await;
                answering += 1;
                "answers AMQP"
            }
            Err(_) => "does not answer",
        };
        let pid = node.pid().map_or_else(|| "-".to_owned(), |p| p.to_string());
        println!("{}  port {}  pid {pid}  {amqp}", node.node(), node.port());
    }
    let running = cluster.running_nodes().map(|r| r.len()).unwrap_or(0);
    println!(
        "cluster: {running} of {} nodes running, {answering} answering AMQP\nAMQP_URL={}",
        cluster.nodes().len(),
        cluster.url()
    );
    cluster.detach();
    Ok(())
}

fn record_file(dir: &Path) -> PathBuf {
    dir.join("cluster.json")
}

fn load(dir: &Path) -> anyhow::Result<Option<Vec<NodeRecord>>> {
    let file = record_file(dir);
    match std::fs::read_to_string(&file) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not a cluster record", file.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", file.display())),
    }
}

fn save(dir: &Path, records: &[NodeRecord]) -> anyhow::Result<()> {
    let file = record_file(dir);
    std::fs::write(&file, serde_json::to_string_pretty(records)?)
        .with_context(|| format!("writing {}", file.display()))
}
