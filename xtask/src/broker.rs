//! `cargo xtask broker`: make sure a RabbitMQ broker accepts AMQP connections at
//! `AMQP_URL`, starting or installing one when it is local and absent.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use events::Endpoints;
use events::amqp::connect_once;
use events::settings::AmqpSettings;

use crate::workspace::{self, run, succeeds, which};

/// How long a freshly started broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Ensures the broker answers (at any node of `AMQP_URL`, with the TLS files of the
/// environment); returns its URL list.
pub fn ensure() -> anyhow::Result<String> {
    let settings = AmqpSettings::from_env()?;
    let endpoints = Endpoints::new(&settings)?;
    let url = settings.url;
    let shown = endpoints.shown();
    if reachable(&endpoints, Duration::from_secs(5))? {
        println!("broker: RabbitMQ answers at {shown}");
        return Ok(url);
    }
    println!("broker: nothing answers at {shown}");
    if !endpoints.nodes()?.iter().all(|node| is_local(node.shown())) {
        bail!(
            "the broker at {shown} is not reachable, and it is not on this machine, so it \
             cannot be started from here: start it, or unset AMQP_URL to use a local one"
        );
    }
    start_local()?;
    wait_until_reachable(&endpoints)?;
    println!("broker: RabbitMQ answers at {shown}");
    Ok(url)
}

fn start_local() -> anyhow::Result<()> {
    if let Some(server) = which("rabbitmq-server") {
        return start_installed(&server);
    }
    let compose = workspace::root().join("docker-compose.local.yml");
    if succeeds("docker", &["info"]) && compose.is_file() {
        return run(
            "docker compose -f docker-compose.local.yml up -d rabbitmq",
            Command::new("docker")
                .args(["compose", "-f"])
                .arg(&compose)
                .args(["up", "-d", "rabbitmq"]),
        );
    }
    if is_root() && Path::new("/etc/debian_version").is_file() && which("apt-get").is_some() {
        install_with_apt()?;
        let server = which("rabbitmq-server").context(
            "apt-get installed rabbitmq-server, but the rabbitmq-server command is not found",
        )?;
        return start_installed(&server);
    }
    bail!(
        "no RabbitMQ broker is reachable and none can be started from here.\n\
         Start one in any of these ways, then run this command again:\n  \
         - Debian/Ubuntu: sudo apt-get install -y rabbitmq-server && sudo rabbitmq-server -detached\n  \
         - macOS (Homebrew): brew install rabbitmq && brew services start rabbitmq\n  \
         - Docker: docker compose -f docker-compose.local.yml up -d rabbitmq\n  \
         - elsewhere: set AMQP_URL to a broker you can reach (amqp://user:pass@host:5672/%2f)"
    )
}

fn start_installed(server: &Path) -> anyhow::Result<()> {
    println!("broker: starting {} -detached", server.display());
    // `-detached` returns at once; a node that is already booting refuses a second start,
    // which is fine: we wait for the port either way.
    let status = Command::new(server)
        .arg("-detached")
        .status()
        .with_context(|| format!("cannot run {}", server.display()))?;
    if !status.success() {
        println!("broker: rabbitmq-server -detached said {status}; waiting for the node anyway");
    }
    Ok(())
}

fn install_with_apt() -> anyhow::Result<()> {
    println!("broker: installing rabbitmq-server with apt-get (running as root)");
    run(
        "apt-get update",
        Command::new("apt-get").args(["update", "-qq"]),
    )?;
    run(
        "apt-get install -y rabbitmq-server",
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "rabbitmq-server",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn wait_until_reachable(endpoints: &Endpoints) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if reachable(endpoints, Duration::from_secs(5))? {
            println!(
                "broker: ready after {:.1}s",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!(
        "RabbitMQ was started but does not accept connections at {} after {}s; \
         see its logs (/var/log/rabbitmq/ or `docker compose logs rabbitmq`)",
        endpoints.shown(),
        START_TIMEOUT.as_secs()
    )
}

/// Whether a full AMQP connection (handshake and login) succeeds at one of the nodes.
pub fn reachable(endpoints: &Endpoints, timeout: Duration) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(async {
        match connect_once(endpoints, "xtask-broker-check", timeout).await {
            Ok(connection) => {
                let _ = connection.close(200, "ok".into()).await;
                true
            }
            Err(_) => false,
        }
    }))
}

fn is_local(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host_port = after_scheme
        .rsplit_once('@')
        .map_or(after_scheme, |(_, h)| h);
    let host_port = host_port.split('/').next().unwrap_or_default();
    let host = if host_port.starts_with('[') {
        host_port
            .split(']')
            .next()
            .unwrap_or_default()
            .trim_start_matches('[')
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    matches!(host, "127.0.0.1" | "localhost" | "::1" | "" | "0.0.0.0")
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_urls_are_recognised() {
        assert!(is_local("amqp://guest:guest@127.0.0.1:5672/%2f"));
        assert!(is_local("amqp://localhost"));
        assert!(is_local("amqp://u:p@[::1]:5672/"));
        assert!(!is_local("amqp://guest:guest@rabbitmq:5672/%2f"));
        assert!(!is_local("amqps://broker.example.com"));
    }
}
