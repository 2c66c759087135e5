//! Starting the drain's forwarders (the Shovel in the broker; the dispatcher, the Python
//! router and the two minimal relays as processes, pinned to core 1 in the `separated`
//! mode), and stopping them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use e2e::{PrivateBroker, Service, Spec};
use events::QueueType;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::drain::Contender;
use crate::routes::{Table, archive_table, exchange_table, routes_table};

/// The core the forwarder runs on in the `separated` mode (the broker has core 0).
pub const FORWARDER_CORE: &str = "1";

/// How long a peer gets, once the target holds every event, before it is killed.
const PEER_GRACE: Duration = Duration::from_secs(2);

/// A running forwarder: a service of the workspace or a peer process.
pub enum Forwarder {
    Service(Service),
    Peer(Child),
}

impl Forwarder {
    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Self::Service(service) => service.pid(),
            Self::Peer(child) => child.id(),
        }
    }

    /// The URL of `path` on a dispatcher's admin address (none for a peer).
    pub fn url(&self, path: &str) -> Option<String> {
        match self {
            Self::Service(service) => Some(service.url(path)),
            Self::Peer(_) => None,
        }
    }

    /// Stops it (SIGTERM for a service, which drains; SIGKILL for a peer, after a grace).
    pub async fn stop(self) -> anyhow::Result<()> {
        match self {
            Self::Service(mut service) => service.stop().await.map(|_| ()),
            Self::Peer(mut child) => {
                // Its last acks follow the last confirms by a moment: let them land, so
                // that the kill requeues nothing (it would be redelivered, not lost).
                tokio::time::sleep(PEER_GRACE).await;
                Ok(child.kill().await?)
            }
        }
    }

    /// Pins every thread of it to `cores` (as `taskset -c` takes them).
    pub fn pin(&self, cores: &str) -> anyhow::Result<()> {
        let pid = self.pid().context("forwarder not running")?;
        pin(pid, cores)
    }
}

/// Pins every thread of `pid` to `cores`.
pub fn pin(pid: u32, cores: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cores, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .context("cannot run taskset (util-linux)")?;
    if !status.success() {
        bail!("taskset -a -p -c {cores} {pid} failed ({status})");
    }
    Ok(())
}

/// Starts the workspace's dispatcher with `spec`.
pub async fn dispatcher(spec: Spec) -> anyhow::Result<Forwarder> {
    Ok(Forwarder::Service(Service::start(spec).await?))
}

/// Starts a peer program with `env`, and waits until it prints `relaying`.
pub async fn peer(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> anyhow::Result<Forwarder> {
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let stdout = child.stdout.take().context("peer stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if line.contains("relaying") {
                return Ok(());
            }
        }
        bail!("{} exited before relaying", program.display())
    })
    .await
    .with_context(|| format!("{} did not start within 60s", program.display()))?;
    ready?;
    Ok(Forwarder::Peer(child))
}

/// A relay binary built next to this runner (`target/release/relay_lapin`…).
pub fn relay_binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = e2e::process::bin_dir().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        bail!(
            "{} not found: build it with `cargo build --release -p bench` (cargo xtask bench does)",
            path.display()
        )
    }
}

/// The Python router peer's script and a virtualenv with pika, made once under the
/// target folder.
pub async fn python_router() -> anyhow::Result<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("peers/python_router/router.py");
    let venv = root.join("../target/router-venv");
    let python = venv.join("bin/python");
    let has_pika = Command::new(&python)
        .args(["-c", "import pika"])
        .status()
        .await
        .is_ok_and(|s| s.success());
    if has_pika {
        return Ok((python, script));
    }
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .await
        .context("python3 is not available")?;
    if !status.success() {
        bail!("python3 -m venv failed ({status}); install python3-venv");
    }
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "-r"])
        .arg(root.join("peers/python_router/requirements.txt"))
        .status()
        .await?;
    if !status.success() {
        bail!("pip could not install pika ({status})");
    }
    Ok((python, script))
}

/// The queues of one run.
pub struct Queues<'a> {
    pub source: &'a str,
    pub target: &'a str,
    pub other: &'a str,
    pub unrouted: &'a str,
    /// The exchange of the exchange contenders (bound to `target`).
    pub exchange: Option<&'a str>,
    /// The archive stream of the archive contender.
    pub archive: Option<&'a str>,
}

/// Starts the contender's forwarders (none for the Shovel, which runs in the broker).
pub async fn start(
    broker: &PrivateBroker,
    contender: Contender,
    queue_type: QueueType,
    q: &Queues<'_>,
    name: &str,
    dir: &std::path::Path,
) -> anyhow::Result<Vec<Forwarder>> {
    let url = broker.url();
    let env = [
        ("AMQP_URL", url.as_str()),
        ("SOURCE", q.source),
        ("TARGET", q.target),
        ("UNROUTED", q.unrouted),
    ];
    let one = match contender {
        Contender::Shovel => {
            start_shovel(broker, name, q.source, q.target)?;
            return Ok(Vec::new());
        }
        Contender::PythonRouter => {
            let (python, script) = python_router().await?;
            let script = script.display().to_string();
            peer(&python, &[&script], &env).await?
        }
        Contender::RelayLapin | Contender::RelayAmqprs => {
            let bin = if contender == Contender::RelayLapin {
                "relay_lapin"
            } else {
                "relay_amqprs"
            };
            peer(&relay_binary(bin)?, &[], &env).await?
        }
        _ => return start_dispatchers(&url, contender, queue_type, q, dir).await,
    };
    Ok(vec![one])
}

async fn start_dispatchers(
    url: &str,
    contender: Contender,
    queue_type: QueueType,
    q: &Queues<'_>,
    dir: &std::path::Path,
) -> anyhow::Result<Vec<Forwarder>> {
    let routes = dir.join("routes.toml");
    let table = match contender {
        Contender::DispatcherLarge => Table::Large,
        Contender::DispatcherWhere => Table::Where,
        _ => Table::One,
    };
    let mut text = match q.exchange {
        Some(exchange) => {
            let key = if contender == Contender::DispatcherTemplated {
                "bench.{data.country}.{type}"
            } else {
                crate::drain::EXCHANGE_KEY
            };
            exchange_table(q.source, exchange, key, q.unrouted)
        }
        None => routes_table(q.source, q.target, q.other, q.unrouted, table),
    };
    if let Some(stream) = q.archive {
        text.push_str(&archive_table(stream));
    }
    std::fs::write(&routes, text)?;
    let ordered = contender == Contender::DispatcherOrdered;
    let mut started = Vec::new();
    for _ in 0..contender.replicas() {
        let spec = Spec::new("dispatcher")
            .env("AMQP_URL", url)
            .env("QUEUE_TYPE", queue_type.as_str())
            .env("ROUTES_FILE", routes.display().to_string())
            .env("DISPATCHER_ADDR", "127.0.0.1:0")
            .env("DISPATCH_ORDERED", ordered.to_string())
            .env("RUST_LOG", "warn,dispatcher=info");
        started.push(dispatcher(spec).await?);
    }
    Ok(started)
}

fn start_shovel(
    broker: &PrivateBroker,
    name: &str,
    source: &str,
    target: &str,
) -> anyhow::Result<()> {
    let definition = json!({
        "src-protocol": "amqp091",
        "src-uri": "amqp://",
        "src-queue": source,
        "src-prefetch-count": 1000,
        "dest-protocol": "amqp091",
        "dest-uri": "amqp://",
        "dest-exchange": "",
        "dest-exchange-key": target,
        "ack-mode": "on-confirm",
        "src-delete-after": "never",
    });
    let output = broker.ctl(&["set_parameter", "shovel", name, &definition.to_string()])?;
    ensure!(
        output.status.success(),
        "set_parameter shovel: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

pub fn stop_shovel(broker: &PrivateBroker, name: &str) -> anyhow::Result<()> {
    let output = broker.ctl(&["clear_parameter", "shovel", name])?;
    ensure!(
        output.status.success(),
        "clear_parameter shovel: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
