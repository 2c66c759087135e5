//! A private RabbitMQ node on its own ports, for tests that stop, restart or load a
//! broker: the shared one at 5672 is never touched. The node runs as the `rabbitmq` user
//! from the machine's installation, with its data, logs, config and plugins in a
//! temporary folder owned by that user, and is stopped and removed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use events::amqp::connect_once;

/// One private node. `Drop` stops it and deletes its folder.
#[derive(Debug)]
pub struct PrivateBroker {
    node: String,
    port: u16,
    dist_port: u16,
    dir: PathBuf,
    plugins: Vec<String>,
}

impl PrivateBroker {
    /// Starts a node named `<label>-<pid>-<rand>@localhost` on free ports with `plugins`
    /// enabled (e.g. `rabbitmq_shovel`), and waits until AMQP accepts a connection.
    pub async fn start(label: &str, plugins: &[&str]) -> anyhow::Result<Self> {
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
        let node = format!("{label}-{suffix}@localhost");
        let dir = std::env::temp_dir().join(format!("rmq-{label}-{suffix}"));
        let broker = Self {
            node,
            port: free_port()?,
            dist_port: free_port()?,
            dir,
            plugins: plugins.iter().map(|p| (*p).to_owned()).collect(),
        };
        broker.prepare_dir()?;
        broker.boot().await?;
        Ok(broker)
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// The AMQP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The pid of the node's Erlang VM (to measure its CPU), from its pid file.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The Erlang node name (for `rabbitmqctl -n`).
    pub fn node(&self) -> &str {
        &self.node
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
        Command::new("rabbitmqctl")
            .arg("-n")
            .arg(&self.node)
            .args(args)
            .envs(self.env())
            .output()
            .context("cannot run rabbitmqctl")
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let dir = self.dir.display();
        vec![
            ("RABBITMQ_NODENAME", self.node.clone()),
            ("RABBITMQ_NODE_PORT", self.port.to_string()),
            ("RABBITMQ_DIST_PORT", self.dist_port.to_string()),
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

    fn prepare_dir(&self) -> anyhow::Result<()> {
        for sub in ["mnesia", "log"] {
            std::fs::create_dir_all(self.dir.join(sub))?;
        }
        // The machine's /etc/rabbitmq/rabbitmq.conf pins port 5672: this node gets its own.
        std::fs::write(
            self.dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.local = 127.0.0.1:{}\nmanagement.tcp.port = {}\n",
                self.port,
                free_port()?
            ),
        )?;
        std::fs::write(
            self.dir.join("enabled_plugins"),
            format!("[{}].\n", self.plugins.join(",")),
        )?;
        chown_tree(&self.dir, "rabbitmq")
    }

    async fn boot(&self) -> anyhow::Result<()> {
        let server = which_server().context("rabbitmq-server not found")?;
        let status = Command::new(server)
            .arg("-detached")
            .envs(self.env())
            .current_dir(std::env::temp_dir())
            .status()
            .context("cannot run rabbitmq-server")?;
        if !status.success() {
            bail!(
                "rabbitmq-server -detached failed ({status}) for node {}",
                self.node
            );
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(90) {
            if let Ok(connection) =
                connect_once(&self.url(), "private-broker-check", Duration::from_secs(2)).await
            {
                let _ = connection.close(200, "ok".into()).await;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!(
            "private RabbitMQ node {} did not accept connections on port {} within 90s; logs in {}",
            self.node,
            self.port,
            self.dir.join("log").display()
        )
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.ctl(&["stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn which_server() -> Option<PathBuf> {
    [
        "/usr/sbin/rabbitmq-server",
        "/usr/local/sbin/rabbitmq-server",
        "/usr/lib/rabbitmq/bin/rabbitmq-server",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// A port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn chown_tree(dir: &Path, user: &str) -> anyhow::Result<()> {
    let user = nix::unistd::User::from_name(user)?.with_context(|| {
        format!("no `{user}` user on this machine: is rabbitmq-server installed?")
    })?;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        std::os::unix::fs::chown(&path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))?;
        if path.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}
