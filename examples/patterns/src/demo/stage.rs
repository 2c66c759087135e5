//! Setting a demo up and taking it down: its own names (`<prefix>.<demo>.<name>`), its
//! routing table (from `examples/routes/`, renamed to the prefix when it is not `demo`),
//! its services and the dispatcher, each waited for until it consumes; then, whatever
//! happened, everything stopped and every queue and exchange it declared deleted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use events::AmqpSettings;
use events::amqp::{Publisher, connect_once};
use lapin::Connection;

use super::catalog::Demo;
use super::fleet::Fleet;
use super::queues::{consumers, delete_all};

/// The prefix of the names in the tables of `examples/routes/`.
pub const TABLE_PREFIX: &str = "demo";

/// How a demo runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The broker, and the queue type of every queue declared.
    pub amqp: AmqpSettings,
    /// Where the `dispatcher` and example binaries are.
    pub bin_dir: PathBuf,
    /// `examples/routes/`.
    pub routes_dir: PathBuf,
    /// First word of every queue and exchange name (`demo`: the tables' own names).
    pub prefix: String,
    /// How long one hop (or the start of one process) may take.
    pub timeout: Duration,
    /// Echo the processes' logs.
    pub verbose: bool,
}

impl Options {
    /// Defaults: prefix `demo`, 30 s per hop, quiet.
    pub fn new(amqp: AmqpSettings, bin_dir: PathBuf, routes_dir: PathBuf) -> Self {
        Self {
            amqp,
            bin_dir,
            routes_dir,
            prefix: TABLE_PREFIX.to_owned(),
            timeout: Duration::from_secs(30),
            verbose: false,
        }
    }
}

/// The names of one demo's queues and exchanges.
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
    demo: &'static str,
}

impl Names {
    /// The names of `demo` under `prefix`.
    pub fn new(prefix: &str, demo: Demo) -> Self {
        Self {
            prefix: prefix.to_owned(),
            demo: demo.name(),
        }
    }

    /// `<prefix>.<demo>.<name>`.
    pub fn of(&self, name: &str) -> String {
        format!("{}.{}.{name}", self.prefix, self.demo)
    }
}

/// One example service of a demo.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Its binary.
    pub binary: &'static str,
    /// How it is shown.
    pub label: String,
    /// The queue it consumes: it is ready when that queue has a consumer.
    pub queue: String,
    /// Its arguments besides `--queue` and `--dispatch`.
    pub args: Vec<String>,
}

/// What a demo declares and starts.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The dispatcher's source queue.
    pub source: String,
    /// Every queue the demo, its services and its dispatcher declare (their `.dead`
    /// queues are deleted with them).
    pub queues: Vec<String>,
    /// Every exchange they declare.
    pub exchanges: Vec<String>,
    /// The example services.
    pub services: Vec<ServiceSpec>,
}

/// A started demo, handed to its journey.
#[derive(Debug)]
pub struct Stage {
    /// The driver's own connection.
    pub connection: Connection,
    /// A confirming publisher on it.
    pub publisher: Publisher,
    /// The demo's names.
    pub names: Names,
    /// The demo's plan.
    pub plan: Plan,
    /// How it runs.
    pub options: Options,
    /// Its processes.
    pub fleet: Fleet,
}

/// The table of `demo` with its names under `prefix`.
pub fn routing_table(text: &str, prefix: &str) -> String {
    if prefix == TABLE_PREFIX {
        return text.to_owned();
    }
    text.replace(&format!("\"{TABLE_PREFIX}."), &format!("\"{prefix}."))
}

/// Sets `demo` up, runs `journey`, and takes it all down again, whatever happened.
pub async fn with_stage<T>(
    demo: Demo,
    plan: Plan,
    options: &Options,
    journey: impl AsyncFnOnce(&mut Stage) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let names = Names::new(&options.prefix, demo);
    let endpoints = events::Endpoints::new(&options.amqp).context("the broker settings")?;
    let connection = connect_once(
        &endpoints,
        &format!("demo {}", demo.name()),
        Duration::from_secs(10),
    )
    .await
    .context("the demo needs a running broker (`cargo xtask broker`)")?;
    // Leftovers of an interrupted run of this demo would hold stale events.
    delete_all(&connection, &plan.queues, &plan.exchanges).await?;
    let publisher = Publisher::new(&connection).await?;
    let dir = tempfile::tempdir()?;
    let mut stage = Stage {
        connection,
        publisher,
        names,
        plan,
        options: options.clone(),
        fleet: Fleet::new(options.verbose),
    };
    // Ctrl-C ends the journey, not the cleanup.
    let result = tokio::select! {
        result = async {
            start(&mut stage, demo, dir.path()).await?;
            journey(&mut stage).await
        } => result,
        () = events::shutdown::wait_for_signal() => Err(anyhow::anyhow!("interrupted")),
    };
    stage.fleet.stop().await;
    let cleaned = delete_all(&stage.connection, &stage.plan.queues, &stage.plan.exchanges).await;
    let _ = stage.connection.close(200, "demo done".into()).await;
    let value = result?;
    cleaned.context("deleting the demo's queues and exchanges")?;
    Ok(value)
}

async fn start(stage: &mut Stage, demo: Demo, dir: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let bin = stage.options.bin_dir.clone();
    let services = stage.plan.services.clone();
    for service in &services {
        let mut args = vec![
            "--queue".to_owned(),
            service.queue.clone(),
            "--dispatch".to_owned(),
            stage.plan.source.clone(),
        ];
        args.extend(service.args.iter().cloned());
        stage.fleet.spawn(
            &bin.join(service.binary),
            &service.label,
            &args,
            &stage.options.amqp,
        )?;
    }
    for service in &services {
        wait_for_consumer(stage, &service.queue, &service.label).await?;
    }
    let table_file = stage.options.routes_dir.join(demo.routes());
    let text = std::fs::read_to_string(&table_file)
        .with_context(|| format!("cannot read {}", table_file.display()))?;
    let routes = dir.join(demo.routes());
    std::fs::write(&routes, routing_table(&text, &stage.options.prefix))?;
    let args = [
        "--routes".to_owned(),
        routes.display().to_string(),
        "--addr".to_owned(),
        "127.0.0.1:0".to_owned(),
    ];
    stage.fleet.spawn(
        &bin.join("dispatcher"),
        "dispatcher",
        &args,
        &stage.options.amqp,
    )?;
    let source = stage.plan.source.clone();
    wait_for_consumer(stage, &source, "dispatcher").await?;
    let labels: Vec<&str> = services.iter().map(|s| s.label.as_str()).collect();
    println!(
        "started {} and the dispatcher (examples/routes/{}) in {}",
        labels.join(", "),
        demo.routes(),
        ms(started.elapsed())
    );
    Ok(())
}

/// Waits until `queue` has a consumer, failing early if a process exited.
async fn wait_for_consumer(stage: &mut Stage, queue: &str, who: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + stage.options.timeout.max(Duration::from_secs(30));
    loop {
        stage.fleet.check()?;
        if consumers(&stage.connection, queue).await? > 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{who} did not start consuming {queue} in time");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A duration as milliseconds, for people.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_own_prefix_leaves_the_table_as_it_is() {
        let text = "source = \"demo.chain.dispatch\"\n";
        assert_eq!(routing_table(text, "demo"), text);
    }

    #[test]
    fn another_prefix_renames_every_quoted_name_and_nothing_else() {
        let text = "source = \"demo.chain.dispatch\"\nto = [{ exchange = \"demo.chain.events\", routing_key = \"registration.completed\" }]\n# demo.chain.x\n";
        let renamed = routing_table(text, "e2e.t1.2.ab");
        assert!(
            renamed.contains("\"e2e.t1.2.ab.chain.dispatch\""),
            "{renamed}"
        );
        assert!(
            renamed.contains("\"e2e.t1.2.ab.chain.events\""),
            "{renamed}"
        );
        assert!(renamed.contains("\"registration.completed\""), "{renamed}");
        assert!(
            renamed.contains("# demo.chain.x"),
            "comments stay: {renamed}"
        );
    }

    #[test]
    fn names_are_prefix_demo_and_name() {
        assert_eq!(
            Names::new("demo", Demo::Chain).of("payment"),
            "demo.chain.payment"
        );
    }
}
