//! `cargo xtask up`: the whole system in one terminal. Ensures the broker, builds the
//! three services, runs them with their logs interleaved behind a coloured `[service]`
//! prefix, waits until each answers `/readyz`, prints where to go, and stops them all
//! cleanly on Ctrl-C. If one dies, it says which and why, and stops the others. With
//! `--cluster`, on the three-node cluster of `cargo xtask cluster`.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use events::defaults;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::workspace::{build_services, root, run as run_step, target_dir};
use crate::{broker, cluster};

/// Options of `cargo xtask up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Build and run optimised binaries.
    #[arg(long)]
    release: bool,
    /// How long to wait for every service to be ready, in seconds.
    #[arg(long, default_value_t = 90)]
    ready_timeout: u64,
    /// Run on the three-node cluster of `cargo xtask cluster` (started if it is not
    /// up), with AMQP_URL listing its nodes, instead of the broker at AMQP_URL.
    #[arg(long)]
    cluster: bool,
}

/// One service of the system.
#[derive(Debug, Clone)]
pub struct Service {
    /// Binary and log prefix.
    pub name: &'static str,
    /// ANSI colour of the prefix.
    colour: u8,
    /// Its HTTP address (from its env var, or the default in docs/architecture.md).
    pub addr: String,
}

/// The three services with the addresses they will listen on.
pub fn services() -> Vec<Service> {
    let addr = |var: &str, default: &str| std::env::var(var).unwrap_or_else(|_| default.to_owned());
    vec![
        Service {
            name: "dispatcher",
            colour: 35,
            addr: addr("DISPATCHER_ADDR", defaults::DISPATCHER_ADDR),
        },
        Service {
            name: "user-service",
            colour: 36,
            addr: addr("USER_SERVICE_ADDR", defaults::USER_SERVICE_ADDR),
        },
        Service {
            name: "order-service",
            colour: 33,
            addr: addr("ORDER_SERVICE_ADDR", defaults::ORDER_SERVICE_ADDR),
        },
    ]
}

/// Runs the system until Ctrl-C (exit 0) or until a service dies (exit 1).
pub fn run(args: &UpArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let mut env = Vec::new();
    if args.cluster {
        let url = runtime.block_on(cluster::up(&cluster::default_dir()))?;
        println!("cluster: the services use AMQP_URL={url}");
        env.push(("AMQP_URL", url));
    } else {
        broker::ensure()?;
    }
    build(args.release)?;
    std::fs::create_dir_all(root().join("data")).context("cannot create data/")?;
    runtime.block_on(supervise(
        services(),
        args.release,
        &env,
        Duration::from_secs(args.ready_timeout),
    ))
}

/// Builds the three binaries.
pub fn build(release: bool) -> anyhow::Result<()> {
    let mut command = build_services(&[]);
    command.arg("--bins");
    if release {
        command.arg("--release");
    }
    run_step(
        "cargo build (dispatcher, user-service, order-service)",
        &mut command,
    )
}

struct Running {
    service: Service,
    pid: Option<u32>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

/// The three services as child processes, their output prefixed and echoed.
pub struct Fleet {
    running: Vec<Running>,
    exited: mpsc::UnboundedReceiver<(usize, String)>,
}

impl Fleet {
    /// Spawns every service from the `release` or debug build.
    pub fn start(services: &[Service], release: bool) -> anyhow::Result<Self> {
        Self::start_with(services, release, &[])
    }

    /// [`Fleet::start`], with `env` set for every service.
    pub fn start_with(
        services: &[Service],
        release: bool,
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let bin_dir = target_dir().join(if release { "release" } else { "debug" });
        let (exits, exited) = mpsc::unbounded_channel::<(usize, String)>();
        let mut running = Vec::new();
        for (index, service) in services.iter().enumerate() {
            let child = spawn(&bin_dir, service, env)?;
            running.push(watch(index, service.clone(), child, exits.clone()));
        }
        Ok(Self { running, exited })
    }

    /// Resolves when a service exits on its own: its index and exit status.
    async fn next_exit(&mut self) -> Option<(usize, String)> {
        self.exited.recv().await
    }

    /// Stops every live service cleanly.
    pub async fn stop(&mut self) {
        stop_all(&self.running, &mut self.exited, None).await;
    }
}

async fn supervise(
    services: Vec<Service>,
    release: bool,
    env: &[(&str, String)],
    ready_timeout: Duration,
) -> anyhow::Result<()> {
    for service in &services {
        if service.addr.ends_with(":0") {
            bail!(
                "{} is set to port 0; `up` needs fixed ports to print its URLs",
                service.name
            );
        }
    }
    let mut fleet = Fleet::start_with(&services, release, env)?;
    let ready = wait_all_ready(&services, ready_timeout);
    tokio::pin!(ready);
    let mut announced = false;
    loop {
        tokio::select! {
            () = events::shutdown::wait_for_signal() => {
                println!("\nstopping all services…");
                fleet.stop().await;
                println!("all services stopped");
                return Ok(());
            }
            Some((index, status)) = fleet.next_exit() => {
                let dead = &fleet.running[index];
                let name = dead.service.name;
                eprintln!("\n\x1b[31m{name} exited ({status})\x1b[0m; its last lines:");
                for line in dead.tail.lock().map(|t| t.clone()).unwrap_or_default() {
                    eprintln!("  {line}");
                }
                eprintln!("stopping the others…");
                stop_all(&fleet.running, &mut fleet.exited, Some(index)).await;
                bail!("{name} died ({status}); see its last lines above");
            }
            result = &mut ready, if !announced => {
                announced = true;
                match result {
                    Ok(elapsed) => print_banner(&services, elapsed),
                    Err(error) => {
                        eprintln!("\x1b[31m{error:#}\x1b[0m");
                        fleet.stop().await;
                        return Err(error);
                    }
                }
            }
        }
    }
}

fn spawn(
    bin_dir: &std::path::Path,
    service: &Service,
    env: &[(&str, String)],
) -> anyhow::Result<Child> {
    let path = bin_dir.join(service.name);
    Command::new(&path)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", path.display()))
}

fn watch(
    index: usize,
    service: Service,
    mut child: Child,
    exits: mpsc::UnboundedSender<(usize, String)>,
) -> Running {
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let prefix = format!("\x1b[{}m[{}]\x1b[0m", service.colour, service.name);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(print_lines(out, prefix.clone(), tail.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(print_lines(err, prefix, tail.clone()));
    }
    let pid = child.id();
    tokio::spawn(async move {
        let status = match child.wait().await {
            Ok(status) => status.to_string(),
            Err(error) => format!("cannot wait for it: {error}"),
        };
        let _ = exits.send((index, status));
    });
    Running { service, pid, tail }
}

async fn print_lines(
    stream: impl AsyncRead + Unpin,
    prefix: String,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        println!("{prefix} {line}");
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == 20 {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}

/// SIGTERM to every live service, then wait (up to 15 s) before SIGKILL.
async fn stop_all(
    running: &[Running],
    exited: &mut mpsc::UnboundedReceiver<(usize, String)>,
    already_dead: Option<usize>,
) {
    let mut alive: Vec<usize> = (0..running.len())
        .filter(|i| Some(*i) != already_dead)
        .collect();
    for &i in &alive {
        signal(&running[i], Signal::SIGTERM);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !alive.is_empty() {
        match tokio::time::timeout_at(deadline, exited.recv()).await {
            Ok(Some((index, status))) => {
                println!("{} stopped ({status})", running[index].service.name);
                alive.retain(|i| *i != index);
            }
            Ok(None) => break,
            Err(_) => {
                for &i in &alive {
                    eprintln!(
                        "{} did not stop within 15s; killing it",
                        running[i].service.name
                    );
                    signal(&running[i], Signal::SIGKILL);
                }
                break;
            }
        }
    }
}

fn signal(running: &Running, signal: Signal) {
    if let Some(pid) = running.pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// Polls every service's `/readyz` until all say 200.
pub async fn wait_all_ready(services: &[Service], timeout: Duration) -> anyhow::Result<Duration> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let started = Instant::now();
    let mut pending: Vec<&Service> = services.iter().collect();
    while !pending.is_empty() {
        if started.elapsed() > timeout {
            let names: Vec<&str> = pending.iter().map(|s| s.name).collect();
            bail!(
                "not ready after {}s: {}",
                timeout.as_secs(),
                names.join(", ")
            );
        }
        let mut still = Vec::new();
        for service in pending {
            let url = format!("http://{}/readyz", service.addr);
            let ok = client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if !ok {
                still.push(service);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(started.elapsed())
}

fn print_banner(services: &[Service], elapsed: Duration) {
    let url = |name: &str| {
        services
            .iter()
            .find(|s| s.name == name)
            .map_or_else(String::new, |s| format!("http://{}", s.addr))
    };
    let (users, orders, dispatcher) =
        (url("user-service"), url("order-service"), url("dispatcher"));
    println!(
        "\n\x1b[1;32mthe system is up\x1b[0m ({:.1}s)\n\
         \n  user-service   {users}   POST /users, GET/PATCH/DELETE /users/{{id}}, /metrics\
         \n  order-service  {orders}   GET /users/{{id}} (snapshots), POST /orders, /metrics\
         \n  dispatcher     {dispatcher}   the dashboard (open it in a browser), GET /routes, POST /reload, /metrics\
         \n\ntry:\
         \n  curl -i -X POST {users}/users -H 'Content-Type: application/json' -d '{{\"name\":\"Alice\",\"email\":\"alice@example.com\"}}'\
         \n  curl -s {orders}/users/1\
         \n\nedit routes.toml and save: the dispatcher reloads it live (see {dispatcher}/).\
         \nfollow the events: cargo run -p dispatcher -- tap --addr {dispatcher}\
         \nCtrl-C stops everything.\n",
        elapsed.as_secs_f64()
    );
}
