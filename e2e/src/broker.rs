//! A private RabbitMQ node on its own ports, for tests that stop, restart or load a
//! broker: the shared one at 5672 is never touched. The node runs as the `rabbitmq` user
//! from the machine's installation, with its data, logs, config and plugins in a
//! temporary folder owned by that user, and is stopped and removed on drop (unless
//! detached, as `cargo xtask cluster` does). It may have a TLS listener too.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use events::Endpoints;
use events::amqp::connect_once;
use serde::{Deserialize, Serialize};

use crate::node_config::{NodeOptions, chown_tree, node_files, which_server};

/// What identifies a running node: enough to find it again from another process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Erlang node name.
    pub node: String,
    /// AMQP port.
    pub port: u16,
    /// AMQPS port, when it has a TLS listener.
    pub tls_port: Option<u16>,
    /// Erlang distribution port.
    pub dist_port: u16,
    /// The node's folder (data, logs, config, pid file).
    pub dir: PathBuf,
}

/// One private node. `Drop` stops it and deletes its folder, unless it was detached.
#[derive(Debug)]
pub struct PrivateBroker {
    record: NodeRecord,
    detached: bool,
    /// `taskset -c` cores and extra VM flags it boots with (see [`NodeOptions`]).
    cpus: Option<String>,
    erl_args: Option<String>,
}

impl PrivateBroker {
    /// Starts a node named `<label>-<pid>-<rand>@localhost` on free ports with `plugins`
    /// enabled (e.g. `rabbitmq_shovel`), and waits until AMQP accepts a connection.
    pub async fn start(label: &str, plugins: &[&str]) -> anyhow::Result<Self> {
        let plugins = plugins.iter().map(|p| (*p).to_owned()).collect();
        Self::start_with(
            label,
            NodeOptions {
                plugins,
                ..NodeOptions::default()
            },
        )
        .await
    }

    /// Starts a node as [`PrivateBroker::start`] does, with `options`.
    pub async fn start_with(label: &str, options: NodeOptions) -> anyhow::Result<Self> {
        which_server().context(
            "a private RabbitMQ node needs `rabbitmq-server` installed on this machine \
             (apt-get install rabbitmq-server); `cargo xtask broker` installs it when run as root",
        )?;
        if !nix::unistd::Uid::effective().is_root() {
            bail!(
                "starting a private RabbitMQ node needs root (it runs as the `rabbitmq` user \
                 from a folder that user owns); run the suite as root, e.g. in CI or the devcontainer"
            );
        }
        let suffix = format!("{}-{:04x}", std::process::id(), rand::random::<u16>());
        let parent = options.parent.clone().unwrap_or_else(std::env::temp_dir);
        let broker = Self {
            record: NodeRecord {
                node: format!("{label}-{suffix}@localhost"),
                port: free_port()?,
                tls_port: options.tls.as_ref().map(|_| free_port()).transpose()?,
                dist_port: free_port()?,
                dir: parent.join(format!("rmq-{label}-{suffix}")),
            },
            detached: false,
            cpus: options.cpus.clone(),
            erl_args: options.erl_args.clone(),
        };
        broker.prepare_dir(&options)?;
        broker.boot().await?;
        Ok(broker)
    }

    /// A node started earlier (by this or another process), found by its record. It is
    /// detached: dropping it leaves it running; [`PrivateBroker::remove`] ends it.
    pub fn attach(record: NodeRecord) -> Self {
        Self {
            record,
            detached: true,
            cpus: None,
            erl_args: None,
        }
    }

    /// Leaves the node running when this value is dropped; returns how to find it again.
    pub fn detach(mut self) -> NodeRecord {
        self.detached = true;
        self.record.clone()
    }

    /// Stops the node (by `rabbitmqctl stop`, then by its pid if it is still alive) and
    /// deletes its folder.
    pub fn remove(mut self) {
        self.detached = false;
    }

    /// How to find this node again.
    pub fn record(&self) -> &NodeRecord {
        &self.record
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.record.port)
    }

    /// `amqps://guest:guest@localhost:<tls port>/%2f`, when it has a TLS listener.
    pub fn tls_url(&self) -> Option<String> {
        let port = self.record.tls_port?;
        Some(format!("amqps://guest:guest@localhost:{port}/%2f"))
    }

    /// [`PrivateBroker::url`] as endpoints to connect with.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints::from(self.url())
    }

    /// The AMQP port.
    pub fn port(&self) -> u16 {
        self.record.port
    }

    /// The AMQPS port, when it has a TLS listener.
    pub fn tls_port(&self) -> Option<u16> {
        self.record.tls_port
    }

    /// The pid of the node's Erlang VM (to measure its CPU), from its pid file.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.record.dir.join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The last `lines` lines of the node's own log files (for an error that says why
    /// a node went away); empty when there are none.
    pub fn log_tail(&self, lines: usize) -> String {
        let Ok(entries) = std::fs::read_dir(self.record.dir.join("log")) else {
            return String::new();
        };
        let mut text = String::new();
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The Erlang node name (for `rabbitmqctl -n`).
    pub fn node(&self) -> &str {
        &self.record.node
    }

    /// Stops the node (all connections drop; durable queues and persistent messages stay).
    pub fn stop(&self) -> anyhow::Result<()> {
        let output = self.ctl(&["stop"])?;
        if !output.status.success() {
            bail!(
                "rabbitmqctl stop failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Starts the node again after [`PrivateBroker::stop`] and waits until it is ready.
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.boot().await
    }

    /// Runs `rabbitmqctl -n <node> <args>`.
    pub fn ctl(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.tool("rabbitmqctl", args)
    }

    /// Runs `<tool> -n <node> <args>` (`rabbitmqctl`, `rabbitmq-queues`…).
    pub fn tool(&self, tool: &str, args: &[&str]) -> anyhow::Result<Output> {
        Command::new(tool)
            .arg("-n")
            .arg(&self.record.node)
            .args(args)
            .envs(self.env())
            .output()
            .with_context(|| format!("cannot run {tool}"))
    }

    /// Runs `rabbitmqctl -n <node> <args>` and fails with its output unless it succeeds.
    pub fn ctl_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        self.tool_ok("rabbitmqctl", args)
    }

    /// Runs `<tool> -n <node> <args>`; its standard output, or an error with all of it.
    pub fn tool_ok(&self, tool: &str, args: &[&str]) -> anyhow::Result<String> {
        let output = self.tool(tool, args)?;
        if !output.status.success() {
            bail!(
                "{tool} -n {} {} failed: {}{}",
                self.record.node,
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let dir = self.record.dir.display();
        vec![
            ("RABBITMQ_NODENAME", self.record.node.clone()),
            ("RABBITMQ_NODE_PORT", self.record.port.to_string()),
            ("RABBITMQ_DIST_PORT", self.record.dist_port.to_string()),
            ("RABBITMQ_MNESIA_BASE", format!("{dir}/mnesia")),
            ("RABBITMQ_LOG_BASE", format!("{dir}/log")),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                format!("{dir}/enabled_plugins"),
            ),
            ("RABBITMQ_CONFIG_FILE", format!("{dir}/rabbitmq")),
            ("RABBITMQ_PID_FILE", format!("{dir}/pid")),
        ]
    }

    fn prepare_dir(&self, options: &NodeOptions) -> anyhow::Result<()> {
        let dir = &self.record.dir;
        for sub in ["mnesia", "log", "tls"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let (conf, plugins) = node_files(options, &self.record, free_port()?)?;
        std::fs::write(dir.join("rabbitmq.conf"), conf)?;
        std::fs::write(dir.join("enabled_plugins"), plugins)?;
        chown_tree(dir, "rabbitmq")
    }

    async fn boot(&self) -> anyhow::Result<()> {
        let server = which_server().context("rabbitmq-server not found")?;
        // The VM started detached inherits the affinity of `taskset`.
        let mut command = match &self.cpus {
            Some(cpus) => {
                let mut taskset = Command::new("taskset");
                taskset.arg("-c").arg(cpus).arg(server);
                taskset
            }
            None => Command::new(server),
        };
        if let Some(flags) = &self.erl_args {
            command.env("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", flags);
        }
        let status = command
            .arg("-detached")
            .envs(self.env())
            .current_dir(std::env::temp_dir())
            .status()
            .context("cannot run rabbitmq-server")?;
        if !status.success() {
            bail!(
                "rabbitmq-server -detached failed ({status}) for node {}",
                self.record.node
            );
        }
        self.wait_ready(Duration::from_secs(90)).await
    }

    /// Waits until the node accepts an AMQP connection (after a start, or `start_app`).
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let endpoints = self.endpoints();
        while started.elapsed() < timeout {
            if let Ok(connection) =
                connect_once(&endpoints, "private-broker-check", Duration::from_secs(2)).await
            {
                let _ = connection.close(200, "ok".into()).await;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!(
            "private RabbitMQ node {} did not accept connections on port {} within {timeout:?}; \
             logs in {}",
            self.record.node,
            self.record.port,
            self.record.dir.join("log").display()
        )
    }

    fn end(&self) {
        let _ = self.ctl(&["stop"]);
        if let Some(pid) = self.pid().and_then(|p| i32::try_from(p).ok()) {
            let pid = nix::unistd::Pid::from_raw(pid);
            // `rabbitmqctl stop` waits for the VM to exit; this only ends one that hung.
            if nix::sys::signal::kill(pid, None).is_ok() {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        let _ = std::fs::remove_dir_all(&self.record.dir);
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if !self.detached {
            self.end();
        }
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
