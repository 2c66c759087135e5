//! `cargo xtask demo`: one user's journey, timed. Uses the running system (from
//! `cargo xtask up`) or starts one for the occasion; creates a user, shows which dispatcher
//! route forwarded the event and when the order-service snapshot appeared. Exits 0 only
//! if the snapshot arrived.
//!
//! `cargo xtask demo <pattern>` runs one of the patterns of `examples/` instead (see
//! `--list`): the dispatcher with the pattern's table and its services, on the pattern's
//! own queues, one journey hop by hop; non-zero naming the hop that failed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use events::AmqpSettings;
use patterns::demo::{Demo, Options};

use crate::broker;
use crate::up::{Fleet, Service, build, services, wait_all_ready};
use crate::workspace::{cargo, root, run as run_step, target_dir};

/// Options of `cargo xtask demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// A pattern to run (`--list` names them). Without one: a user's journey through the
    /// system.
    pattern: Option<String>,
    /// Name the patterns and exit.
    #[arg(long)]
    list: bool,
    /// Give up on the snapshot (or on one hop of a pattern) after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Show the logs of a pattern's services and dispatcher.
    #[arg(long)]
    verbose: bool,
}

/// Runs the demo, starting the system if it is not up.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    if args.list {
        list();
        return Ok(());
    }
    if let Some(name) = &args.pattern {
        return pattern(name, args);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let services = services();
    let up = runtime
        .block_on(wait_all_ready(&services, Duration::from_secs(2)))
        .is_ok();
    if up {
        println!("the system is up: using it");
        return runtime.block_on(journey(&services, Duration::from_secs(args.timeout)));
    }
    println!("the system is not up: starting it for the demo (`cargo xtask up` keeps it running)");
    broker::ensure()?;
    build(false)?;
    std::fs::create_dir_all(root().join("data")).context("cannot create data/")?;
    runtime.block_on(async {
        let mut fleet = Fleet::start(&services, false)?;
        let result = match wait_all_ready(&services, Duration::from_secs(90)).await {
            Ok(_) => journey(&services, Duration::from_secs(args.timeout)).await,
            Err(error) => Err(error),
        };
        fleet.stop().await;
        result
    })
}

fn list() {
    println!("cargo xtask demo             a user's journey through the system (the default)");
    for demo in Demo::listed() {
        println!("cargo xtask demo {:<11} {}", demo.name(), demo.about());
    }
}

/// Builds the dispatcher and the pattern services, then runs pattern `name`.
fn pattern(name: &str, args: &DemoArgs) -> anyhow::Result<()> {
    let demo = Demo::from_name(name).with_context(|| {
        format!("no pattern named {name:?}: `cargo xtask demo --list` names them")
    })?;
    broker::ensure()?;
    run_step(
        "cargo build (dispatcher, order-service, patterns)",
        cargo().args([
            "build",
            "--bins",
            "-p",
            "dispatcher",
            "-p",
            "order-service",
            "-p",
            "patterns",
        ]),
    )?;
    let options = Options {
        timeout: Duration::from_secs(args.timeout),
        verbose: args.verbose,
        ..Options::new(
            AmqpSettings::from_env()?,
            target_dir().join("debug"),
            root().join("examples/routes"),
        )
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime
        .block_on(patterns::demo::run(demo, &options))
        .with_context(|| format!("the {name} demo did not complete"))
}

fn base(services: &[Service], name: &str) -> String {
    services
        .iter()
        .find(|s| s.name == name)
        .map_or_else(String::new, |s| format!("http://{}", s.addr))
}

async fn journey(services: &[Service], timeout: Duration) -> anyhow::Result<()> {
    let (users, dispatcher, orders) = (
        base(services, "user-service"),
        base(services, "dispatcher"),
        base(services, "order-service"),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let routed_before = routed(&http, &dispatcher).await?;
    let stamp = chrono::Utc::now().format("%H%M%S%3f");
    let body =
        json!({"name": format!("Demo {stamp}"), "email": format!("demo.{stamp}@example.com")});
    println!("\n1. user-service   POST {users}/users {body}");
    let started = Instant::now();
    let response = http
        .post(format!("{users}/users"))
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    let traceparent = response
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let user: Value = response.json().await?;
    let responded = started.elapsed();
    if status.as_u16() != 201 {
        bail!("POST /users answered {status}: {user}");
    }
    let id = user["id"].as_i64().context("no id in the response")?;
    println!(
        "                  → {status} in {}, user {id}, traceparent {traceparent}",
        ms(responded)
    );
    println!(
        "                  the user row and its user_created event committed together (outbox)"
    );

    let deadline = started + timeout;
    let routes = loop {
        let now = routed(&http, &dispatcher).await?;
        let moved: Vec<String> = now
            .iter()
            .filter(|(route, n)| routed_before.get(*route).is_none_or(|b| b < *n))
            .map(|(route, _)| route.clone())
            .collect();
        if !moved.is_empty() {
            break moved;
        }
        if Instant::now() > deadline {
            bail!(
                "the dispatcher routed nothing within {timeout:?}: is a route matching user_created in routes.toml?"
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    println!(
        "2. dispatcher     routed by {} after {} (see {dispatcher}/routes)",
        routes.join(", "),
        ms(started.elapsed())
    );

    loop {
        let response = http.get(format!("{orders}/users/{id}")).send().await?;
        if response.status().is_success() {
            let snapshot: Value = response.json().await?;
            println!(
                "3. order-service  snapshot visible after {}: {snapshot}",
                ms(started.elapsed())
            );
            println!(
                "\nthe event travelled user-service → queue_dispatch → dispatcher → queue_order → order-service \
                 in {} after the POST's response",
                ms(started.elapsed().saturating_sub(responded))
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no snapshot of user {id} on order-service within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `dispatcher_events_routed_total` by route, from the dispatcher's metrics.
async fn routed(http: &reqwest::Client, dispatcher: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let text = http
        .get(format!("{dispatcher}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("dispatcher_events_routed_total{"))
        .filter_map(|l| {
            let route = l.split("route=\"").nth(1)?.split('"').next()?.to_owned();
            let count = l.rsplit(' ').next()?.parse::<f64>().ok()?;
            Some((route, count as u64))
        })
        .collect())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
