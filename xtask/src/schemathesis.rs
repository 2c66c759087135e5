//! The API fuzzing step of `cargo xtask test`: schemathesis (from PyPI, at the version
//! pinned in `xtask/schemathesis/requirements.txt`, in the virtualenv the bench uses)
//! against user-service and order-service, each started from its debug binary on a free
//! port over a fresh SQLite file, with its own queues on the broker. A bounded number of
//! examples per operation; the checks: no `5xx`, and every response conforms to the
//! document. A finding fails the step; schemathesis prints the curl that reproduces it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use events::amqp::{Publisher, connect_once};
use events::lapin::Connection;
use events::lapin::options::QueueDeleteOptions;
use events::{AmqpSettings, CloudEvent, Endpoints};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use crate::workspace::{cargo, root, target_dir};

/// The pinned schemathesis, relative to the repository root.
const REQUIREMENTS: &str = "xtask/schemathesis/requirements.txt";
/// Generated test cases per operation and phase (schemathesis `--max-examples`).
const MAX_EXAMPLES: u32 = 30;
/// What a response must pass.
const CHECKS: &str = "not_a_server_error,response_schema_conformance";
/// The users order-service knows before the run: the documents' examples use id 1.
const SEEDED_USERS: i64 = 3;
/// The longest one service's run may take before the step fails.
const RUN_LIMIT: Duration = Duration::from_secs(150);
/// How long a service may take to answer, or to apply the seeded users.
const START_LIMIT: Duration = Duration::from_secs(30);

/// `cargo xtask schemathesis`: the broker, the service binaries, then [`run`].
pub fn run_alone() -> anyhow::Result<()> {
    crate::broker::ensure()?;
    crate::workspace::run(
        "cargo build -p user-service -p order-service",
        cargo().args(["build", "-p", "user-service", "-p", "order-service"]),
    )?;
    run()
}

/// Runs schemathesis against both services (their debug binaries must be built); an
/// error on any finding.
pub fn run() -> anyhow::Result<()> {
    println!("\x1b[1m==> schemathesis against user-service and order-service\x1b[0m");
    let schemathesis = install()?;
    let work = target_dir().join(format!("schemathesis/{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let broker = runtime.block_on(Broker::connect())?;
    let tag = format!("xtask.schemathesis.{}", std::process::id());
    let result = fuzz_both(&schemathesis, &work, &tag, &runtime, &broker);
    runtime.block_on(broker.delete_queues(&tag));
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn fuzz_both(
    schemathesis: &Path,
    work: &Path,
    tag: &str,
    runtime: &tokio::runtime::Runtime,
    broker: &Broker,
) -> anyhow::Result<()> {
    let users = Service::start(
        "user-service",
        work,
        &[
            ("USER_SERVICE_ADDR", String::new()),
            ("USER_DB", work.join("users.db").display().to_string()),
            ("DISPATCH_QUEUE", format!("{tag}.users")),
        ],
    )?;
    runtime.block_on(users.wait_for("/healthz", START_LIMIT))?;
    fuzz(schemathesis, &users, work)?;
    users.stop();

    let order_queue = format!("{tag}.orders");
    let orders = Service::start(
        "order-service",
        work,
        &[
            ("ORDER_SERVICE_ADDR", String::new()),
            ("ORDER_DB", work.join("orders.db").display().to_string()),
            ("ORDER_QUEUE", order_queue.clone()),
            ("DISPATCH_QUEUE", format!("{tag}.placed")),
        ],
    )?;
    runtime.block_on(async {
        orders.wait_for("/readyz", START_LIMIT).await?;
        broker.seed_users(&order_queue).await?;
        orders
            .wait_for(&format!("/users/{SEEDED_USERS}"), START_LIMIT)
            .await
    })?;
    fuzz(schemathesis, &orders, work)?;
    orders.stop();
    Ok(())
}

/// The schemathesis program of the shared virtualenv, installed at the pinned version
/// when it is not there yet.
fn install() -> anyhow::Result<PathBuf> {
    let requirements = root().join(REQUIREMENTS);
    let pinned = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let version = pinned_version(&pinned, "schemathesis")
        .with_context(|| format!("{REQUIREMENTS} pins no `schemathesis==VERSION`"))?;
    // The bench's FastAPI peer lives in the same virtualenv (bench/src/api.rs).
    let venv = root().join("target/bench-venv");
    let program = venv.join("bin/schemathesis");
    if installed_version(&program).as_deref() == Some(version) {
        return Ok(program);
    }
    if !venv.join("bin/pip").is_file() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context("python3 is not available: install python3 and python3-venv")?;
        if !status.success() {
            bail!("python3 -m venv failed ({status}): install python3-venv");
        }
    }
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "-r"])
        .arg(&requirements)
        .status()
        .context("running pip")?;
    if !status.success() {
        bail!("pip could not install {REQUIREMENTS} ({status})");
    }
    match installed_version(&program) {
        Some(found) if found == version => Ok(program),
        found => bail!("pip installed schemathesis {found:?}, expected {version}"),
    }
}

/// The version `name==VERSION` pins in a requirements file.
fn pinned_version<'a>(requirements: &'a str, name: &str) -> Option<&'a str> {
    requirements.lines().find_map(|line| {
        let line = line.split('#').next()?.trim();
        let (package, version) = line.split_once("==")?;
        (package.trim() == name).then_some(version.trim())
    })
}

/// What `schemathesis --version` says (`schemathesis, version 4.32.5`), if it runs.
fn installed_version(program: &Path) -> Option<String> {
    let output = Command::new(program).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.trim().rsplit(' ').next()?;
    output.status.success().then(|| version.to_owned())
}

/// `schemathesis run` against `service`; an error on a finding or past [`RUN_LIMIT`].
fn fuzz(schemathesis: &Path, service: &Service, work: &Path) -> anyhow::Result<()> {
    println!("schemathesis: {} at {}", service.name, service.base);
    let mut child = Command::new(schemathesis)
        .args(run_args(&service.base))
        // Hypothesis keeps its example database in the working folder.
        .current_dir(work)
        .spawn()
        .context("starting schemathesis")?;
    let status = wait_bounded(&mut child, RUN_LIMIT)?;
    match status {
        Some(status) if status.success() => Ok(()),
        Some(status) => bail!(
            "schemathesis found problems in {} ({status}): each is printed above with the \
             curl that reproduces it; the service's log is {}",
            service.name,
            service.log.display()
        ),
        None => bail!(
            "schemathesis against {} did not finish within {}s",
            service.name,
            RUN_LIMIT.as_secs()
        ),
    }
}

/// The arguments of `schemathesis run` against the service at `base`.
fn run_args(base: &str) -> Vec<String> {
    [
        "run",
        &format!("{base}/openapi.json"),
        "--checks",
        CHECKS,
        "--max-examples",
        &MAX_EXAMPLES.to_string(),
        "--request-timeout",
        "10",
        // Print the reproducing curl exactly (the `Idempotency-Key` would be hidden).
        "--output-sanitize",
        "false",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Waits for `child` until `limit`; `None` (and the child killed) when it runs longer.
fn wait_bounded(
    child: &mut Child,
    limit: Duration,
) -> anyhow::Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(None)
}

/// A service binary running on a free port, its log in a file.
struct Service {
    name: &'static str,
    base: String,
    log: PathBuf,
    child: Child,
}

impl Service {
    /// Starts `target/debug/<name>` with `env`; an empty `*_ADDR` gets a free port.
    fn start(name: &'static str, work: &Path, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let port = e2e::broker::free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let log = work.join(format!("{name}.log"));
        let mut command = Command::new(target_dir().join("debug").join(name));
        for (key, value) in env {
            let value = if value.is_empty() { &addr } else { value };
            command.env(key, value);
        }
        let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = command
            .env("RUST_LOG", "warn")
            .stdout(file.try_clone()?)
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting target/debug/{name} (built by `cargo build`)"))?;
        Ok(Self {
            name,
            base: format!("http://{addr}"),
            log,
            child,
        })
    }

    /// Waits until `GET path` answers `200`.
    async fn wait_for(&self, path: &str, limit: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let response = client.get(format!("{}{path}", self.base)).send().await;
            if response.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "{} did not answer 200 on {path} within {}s; its log: {}",
            self.name,
            limit.as_secs(),
            self.log.display()
        )
    }

    /// SIGTERM, then waits for the exit (the services stop in well under a second).
    fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        if wait_bounded(&mut self.child, Duration::from_secs(15)).is_err() {
            let _ = self.child.kill();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // After `stop` this finds the child gone; on an error path it ends it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection to the broker of `AMQP_URL`.
struct Broker {
    connection: Connection,
}

impl Broker {
    async fn connect() -> anyhow::Result<Self> {
        let endpoints = Endpoints::new(&AmqpSettings::from_env()?)?;
        let connection = connect_once(&endpoints, "xtask-schemathesis", START_LIMIT)
            .await
            .context("connecting to the broker")?;
        Ok(Self { connection })
    }

    /// Publishes `user_created` for users 1 to [`SEEDED_USERS`] to `queue`.
    async fn seed_users(&self, queue: &str) -> anyhow::Result<()> {
        let publisher = Publisher::new(&self.connection).await?;
        for id in 1..=SEEDED_USERS {
            let event = CloudEvent::new(
                "user-service",
                "user_created",
                json!({"id": id, "name": format!("user {id}"),
                       "email": format!("user{id}@example.com"), "version": 1}),
            )
            .with_subject(id.to_string());
            publisher
                .publish_to_queue(queue, &event.to_json_vec(), event.amqp_properties())
                .await
                .with_context(|| format!("publishing user {id} to {queue}"))?;
        }
        Ok(())
    }

    /// Deletes the queues the run declared (all named `tag.*`, and their `.dead`).
    async fn delete_queues(&self, tag: &str) {
        let Ok(channel) = self.connection.create_channel().await else {
            return;
        };
        for name in ["users", "orders", "placed"] {
            for queue in [format!("{tag}.{name}"), format!("{tag}.{name}.dead")] {
                let _ = channel
                    .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
        }
        let _ = self.connection.close(200, "done".into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_version_is_read_from_the_requirements() {
        let text = "# the API fuzzer\nhypothesis>=6\nschemathesis == 4.32.5  # pinned\n";
        assert_eq!(pinned_version(text, "schemathesis"), Some("4.32.5"));
        assert_eq!(pinned_version(text, "hypothesis"), None);
        assert_eq!(pinned_version("", "schemathesis"), None);
    }

    #[test]
    fn the_repository_pins_schemathesis() {
        let text = std::fs::read_to_string(root().join(REQUIREMENTS)).unwrap_or_default();
        assert!(pinned_version(&text, "schemathesis").is_some(), "{text}");
    }

    #[test]
    fn the_run_checks_the_document_with_bounded_examples() {
        let args = run_args("http://127.0.0.1:9");
        let joined = args.join(" ");
        assert!(
            joined.starts_with("run http://127.0.0.1:9/openapi.json "),
            "{joined}"
        );
        assert!(
            joined.contains("--checks not_a_server_error,response_schema_conformance"),
            "{joined}"
        );
        assert!(joined.contains("--max-examples 30"), "{joined}");
    }
}
