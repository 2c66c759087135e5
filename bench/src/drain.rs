//! Dispatcher drain throughput against RabbitMQ's own Shovel, same broker, same queues:
//! preload N events into a source queue, start the forwarder, time until the target
//! holds N. Contenders: the Shovel (broker-native, `ack-mode` `on-confirm`, no content
//! routing), the dispatcher with a one-route table, and the dispatcher with a
//! 10,000-route table and a `where` filter on the hot route. Then the one-route
//! dispatcher as 2 and 3 replicas competing for the source queue, and in ordered mode
//! (one replica active, one event in flight at a time) on a tenth of the events. And
//! the one-route dispatcher with an `[archive]` stream (every event also appended to
//! it), right after the same table without, followed by a replay of that stream to one
//! queue (see [`crate::replay`]). And the one-route dispatcher with a tap attached
//! (`GET /tap?body=true`, read by this process), to show what watching costs the
//! forwarding.
//! And the one-route dispatcher sending to an exchange with a templated routing key,
//! against the same with a plain queue target and with a plain routing key.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use e2e::{PrivateBroker, Service, Spec};
use events::amqp::{Publisher, connect_once, declare_queue};
use events::testing::{delete_queues, message_count, unique};
use events::{CloudEvent, QueueType};
use serde::Serialize;
use serde_json::json;

use crate::procstat;
use crate::replay::ReplayResult;

/// One contender's run.
#[derive(Debug, Clone, Serialize)]
pub struct DrainResult {
    /// `shovel`, `dispatcher`, `dispatcher-archive`, `dispatcher-tapped`,
    /// `dispatcher-10k-where`, `dispatcher-x2`, `dispatcher-x3`, `dispatcher-ordered`,
    /// `dispatcher-exchange`, `dispatcher-templated`.
    pub contender: String,
    /// `quorum` or `classic`.
    pub queue_type: String,
    /// Events forwarded.
    pub messages: u64,
    /// Steady-state seconds (first forwarded message to the last).
    pub seconds: f64,
    /// Messages per second.
    pub msgs_per_sec: f64,
    /// Forwarder processes' CPU per message (all replicas), microseconds (none for the
    /// Shovel: it is the broker).
    pub forwarder_cpu_us_per_msg: Option<f64>,
    /// Broker CPU per message during the run, microseconds.
    pub broker_cpu_us_per_msg: f64,
    /// Forwarder peak RSS in MiB (the largest replica).
    pub forwarder_peak_rss_mib: Option<f64>,
    /// Messages not in the target at the end (must be 0).
    pub lost: u64,
    /// With a tap attached: the events it showed, and those it dropped for falling
    /// behind (the two add up to about `messages`: the tap attaches just after start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tap: Option<TapSeen>,
}

/// What a tap attached during a drain saw.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TapSeen {
    pub events: u64,
    pub dropped: u64,
}

/// Which forwarder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    /// RabbitMQ's dynamic Shovel.
    Shovel,
    /// The dispatcher with one route.
    Dispatcher,
    /// The dispatcher with one route and an `[archive]` stream.
    DispatcherArchive,
    /// The dispatcher with one route, and a client following `GET /tap?body=true`.
    DispatcherTapped,
    /// The dispatcher with 10,000 routes and a `where` on the hot one.
    DispatcherLarge,
    /// Two one-route dispatchers consuming the same source queue.
    Dispatcher2,
    /// Three one-route dispatchers consuming the same source queue.
    Dispatcher3,
    /// Two one-route dispatchers in ordered mode (one active, one standby).
    DispatcherOrdered,
    /// The dispatcher with one route to an exchange whose routing key is a template
    /// (`bench.{data.country}.{type}`), bound to the target queue.
    DispatcherTemplated,
    /// The same exchange and binding with a plain routing key: what the exchange costs
    /// without the template.
    DispatcherExchange,
}

impl Contender {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Shovel => "shovel",
            Self::Dispatcher => "dispatcher",
            Self::DispatcherArchive => "dispatcher-archive",
            Self::DispatcherTapped => "dispatcher-tapped",
            Self::DispatcherLarge => "dispatcher-10k-where",
            Self::Dispatcher2 => "dispatcher-x2",
            Self::Dispatcher3 => "dispatcher-x3",
            Self::DispatcherOrdered => "dispatcher-ordered",
            Self::DispatcherTemplated => "dispatcher-templated",
            Self::DispatcherExchange => "dispatcher-exchange",
        }
    }

    /// Every contender, in the report's order.
    pub const ALL: [Self; 10] = [
        Self::Shovel,
        Self::Dispatcher,
        Self::DispatcherArchive,
        Self::DispatcherTapped,
        Self::DispatcherExchange,
        Self::DispatcherTemplated,
        Self::DispatcherLarge,
        Self::Dispatcher2,
        Self::Dispatcher3,
        Self::DispatcherOrdered,
    ];

    /// How many dispatcher processes it starts.
    fn replicas(self) -> usize {
        match self {
            Self::Shovel => 0,
            Self::Dispatcher
            | Self::DispatcherArchive
            | Self::DispatcherTapped
            | Self::DispatcherLarge
            | Self::DispatcherTemplated
            | Self::DispatcherExchange => 1,
            Self::Dispatcher2 | Self::DispatcherOrdered => 2,
            Self::Dispatcher3 => 3,
        }
    }

    /// The events it drains out of `n`: ordered mode forwards one at a time, so a tenth.
    pub fn events(self, n: u64) -> u64 {
        match self {
            Self::DispatcherOrdered => (n / 10).max(1_000),
            _ => n,
        }
    }
}

/// A ~400-byte CloudEvent, numbered.
pub fn event_body(n: u64) -> (Vec<u8>, events::lapin::BasicProperties) {
    let event = CloudEvent::new(
        "user-service",
        "user_created",
        json!({
            "id": n,
            "name": format!("Bench User {n:08}"),
            "email": format!("bench.user.{n:08}@example.com"),
            "version": 1,
            "country": "FR",
            "updated_at": "2026-11-22T10:00:00.000000Z",
        }),
    )
    .with_subject(n.to_string());
    (event.to_json_vec(), event.amqp_properties())
}

/// Publishes `n` events to `queue`, pipelined in windows of 2,000 confirms.
pub async fn preload(url: &str, queue: &str, n: u64) -> anyhow::Result<()> {
    let connection = connect_once(&url.into(), "bench-preload", Duration::from_secs(10)).await?;
    let publisher = Publisher::new(&connection).await?;
    let mut sent = 0;
    while sent < n {
        let window = (n - sent).min(2_000);
        let mut pending = Vec::with_capacity(window as usize);
        for i in sent..sent + window {
            let (body, props) = event_body(i);
            pending.push(publisher.send("", queue, &body, props).await?);
        }
        for confirm in pending {
            confirm.wait().await?;
        }
        sent += window;
    }
    let _ = connection.close(200, "ok".into()).await;
    Ok(())
}

/// Runs one contender over `n` preloaded events on `broker`; for the archive contender,
/// then replays its stream to one queue.
pub async fn run_one(
    broker: &PrivateBroker,
    contender: Contender,
    queue_type: QueueType,
    n: u64,
) -> anyhow::Result<(DrainResult, Option<ReplayResult>)> {
    let url = broker.url();
    let connection =
        connect_once(&broker.endpoints(), "bench-drain", Duration::from_secs(10)).await?;
    let base = unique("bench");
    let (source, target, other) = (
        format!("{base}.src"),
        format!("{base}.dst"),
        format!("{base}.other"),
    );
    let unrouted = format!("{base}.unrouted");
    let archive = (contender == Contender::DispatcherArchive).then(|| format!("{base}.archive"));
    let channel = connection.create_channel().await?;
    for q in [&source, &target] {
        declare_queue(&channel, q, queue_type).await?;
    }
    let exchange = format!("{base}.x");
    let to_exchange = matches!(
        contender,
        Contender::DispatcherTemplated | Contender::DispatcherExchange
    );
    if to_exchange {
        channel
            .exchange_declare(
                exchange.as_str().into(),
                events::lapin::ExchangeKind::Direct,
                events::lapin::options::ExchangeDeclareOptions::default(),
                events::lapin::types::FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                target.as_str().into(),
                exchange.as_str().into(),
                "bench.FR.user_created".into(),
                events::lapin::options::QueueBindOptions::default(),
                events::lapin::types::FieldTable::default(),
            )
            .await?;
    }
    preload(&url, &source, n).await?;
    ensure!(
        message_count(&connection, &source).await == Some(u32::try_from(n)?),
        "preload incomplete"
    );

    let dir = tempfile::tempdir()?;
    let routes = dir.path().join("routes.toml");
    let broker_pid = broker.pid().context("broker pid")?;
    let broker_cpu0 = procstat::cpu_seconds(broker_pid);
    let mut forwarders: Vec<Service> = Vec::new();
    let started = Instant::now();
    if contender == Contender::Shovel {
        start_shovel(broker, &base, &source, &target)?;
    } else {
        let large = contender == Contender::DispatcherLarge;
        let mut text = if to_exchange {
            let key = if contender == Contender::DispatcherTemplated {
                "bench.{data.country}.{type}"
            } else {
                "bench.FR.user_created"
            };
            exchange_table(&source, &exchange, key, &unrouted)
        } else {
            routes_table(&source, &target, &other, &unrouted, large)
        };
        if let Some(stream) = &archive {
            text.push_str(&archive_table(stream));
        }
        std::fs::write(&routes, text)?;
        let ordered = contender == Contender::DispatcherOrdered;
        for _ in 0..contender.replicas() {
            let spec = Spec::new("dispatcher")
                .env("AMQP_URL", &url)
                .env("QUEUE_TYPE", queue_type.as_str())
                .env("ROUTES_FILE", routes.display().to_string())
                .env("DISPATCHER_ADDR", "127.0.0.1:0")
                .env("DISPATCH_ORDERED", ordered.to_string())
                .env("RUST_LOG", "warn,dispatcher=info");
            forwarders.push(Service::start(spec).await?);
        }
    }
    let tap = match (contender, forwarders.first()) {
        (Contender::DispatcherTapped, Some(forwarder)) => {
            Some(tokio::spawn(follow_tap(forwarder.url("/tap?body=true"))))
        }
        _ => None,
    };
    let pids: Vec<u32> = forwarders.iter().filter_map(Service::pid).collect();
    let forwarder_cpu0: f64 = pids.iter().copied().map(procstat::cpu_seconds).sum();
    let timeout = Duration::from_secs(120 + n / 100);
    let (t0, c0, t1) = watch_until(&connection, &target, n, started, timeout).await?;
    let broker_cpu = procstat::cpu_seconds(broker_pid) - broker_cpu0;
    let (forwarder_cpu, rss) = if pids.is_empty() {
        (None, None)
    } else {
        let cpu: f64 = pids.iter().copied().map(procstat::cpu_seconds).sum();
        let rss = pids
            .iter()
            .copied()
            .map(procstat::peak_rss_mib)
            .fold(0.0, f64::max);
        (Some(cpu - forwarder_cpu0), Some(rss))
    };
    for mut service in forwarders {
        service.stop().await?;
    }
    // The dispatcher stopping ends the tap stream.
    let tap = match tap {
        Some(task) => Some(task.await.context("the tap reader")??),
        None => None,
    };
    if contender == Contender::Shovel {
        stop_shovel(broker, &base)?;
    }
    let delivered = u64::from(message_count(&connection, &target).await.unwrap_or(0));
    let left = u64::from(message_count(&connection, &source).await.unwrap_or(0));
    ensure!(
        left == 0,
        "{left} messages left in the source after {}",
        contender.name()
    );
    delete_queues(&connection, &[&source, &target, &other, &unrouted]).await;
    if to_exchange {
        let _ = channel
            .exchange_delete(
                exchange.as_str().into(),
                events::lapin::options::ExchangeDeleteOptions::default(),
            )
            .await;
    }
    let replay = match &archive {
        Some(stream) => {
            let replayed = format!("{base}.replayed");
            println!("  replay: {n} events from the archive stream to one queue");
            let result = crate::replay::measure(broker, &routes, &replayed, queue_type, n).await;
            delete_queues(&connection, &[stream, &replayed]).await;
            Some(result?)
        }
        None => None,
    };
    let _ = connection.close(200, "ok".into()).await;
    let seconds = (t1 - t0).as_secs_f64();
    let forwarded = (n - c0) as f64;
    let drained = DrainResult {
        contender: contender.name().to_owned(),
        queue_type: queue_type.as_str().to_owned(),
        messages: n,
        seconds,
        msgs_per_sec: forwarded / seconds.max(1e-9),
        forwarder_cpu_us_per_msg: forwarder_cpu.map(|c| c / n as f64 * 1e6),
        broker_cpu_us_per_msg: broker_cpu / n as f64 * 1e6,
        forwarder_peak_rss_mib: rss,
        lost: n.saturating_sub(delivered),
        tap,
    };
    Ok((drained, replay))
}

/// Follows a dispatcher's tap until the stream ends, counting events and drops.
async fn follow_tap(url: String) -> anyhow::Result<TapSeen> {
    let mut response = reqwest::get(&url)
        .await
        .with_context(|| format!("GET {url}"))?;
    ensure!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    let mut seen = TapSeen::default();
    let mut pending = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        let Some(end) = pending.rfind('\n') else {
            continue;
        };
        for line in pending[..end].lines() {
            if line == "event: tap" {
                seen.events += 1;
            } else if let Some(data) = line.strip_prefix("data: {\"dropped\":") {
                seen.dropped += data.trim_end_matches('}').parse::<u64>().unwrap_or(0);
            }
        }
        pending.drain(..=end);
    }
    Ok(seen)
}

/// Polls the target's depth every 10 ms; returns (first time it was > 0, the depth then,
/// the time it reached `n`).
async fn watch_until(
    connection: &events::lapin::Connection,
    queue: &str,
    n: u64,
    started: Instant,
    timeout: Duration,
) -> anyhow::Result<(Instant, u64, Instant)> {
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let count = u64::from(message_count(connection, queue).await.unwrap_or(0));
        let now = Instant::now();
        if count > 0 && first.is_none() {
            first = Some((now, count));
        }
        if count >= n {
            let (t0, c0) = first.unwrap_or((started, 0));
            // A first sighting that is already the whole batch says nothing about the rate.
            return Ok(if c0 >= n {
                (started, 0, now)
            } else {
                (t0, c0, now)
            });
        }
        if started.elapsed() > timeout {
            bail!("only {count} of {n} messages reached {queue} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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

fn stop_shovel(broker: &PrivateBroker, name: &str) -> anyhow::Result<()> {
    let output = broker.ctl(&["clear_parameter", "shovel", name])?;
    ensure!(
        output.status.success(),
        "clear_parameter shovel: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The `[archive]` table appended to the one-route table by the archive contender.
fn archive_table(stream: &str) -> String {
    format!("\n[archive]\nstream = \"{stream}\"\nmax_age = \"1h\"\n")
}

/// The routing table: one hot route to `target`; with `large`, 9,999 more routes (exact
/// types, topic patterns) sending to `other`, and a `where` filter on the hot route.
pub fn routes_table(
    source: &str,
    target: &str,
    other: &str,
    unrouted: &str,
    large: bool,
) -> String {
    let mut table = format!(
        "source = \"{source}\"\nunrouted = \"{unrouted}\"\ndead_letter = \"{source}.dead\"\n\n"
    );
    if large {
        for i in 0..9_999 {
            let event = if i % 2 == 0 {
                format!("type_{i}")
            } else {
                format!("ns{i}.*.created")
            };
            let _ = write!(
                table,
                "[[route]]\nname = \"r{i}\"\nevent = \"{event}\"\nto = [\"{other}\"]\n\n"
            );
        }
        let _ = write!(
            table,
            "[[route]]\nname = \"hot\"\nevent = \"user_created\"\n\
             where = {{ \"data.country\" = \"FR\", \"data.version\" = {{ gte = 1 }} }}\nto = [\"{target}\"]\n"
        );
    } else {
        let _ = write!(
            table,
            "[[route]]\nname = \"hot\"\nevent = \"user_created\"\nto = [\"{target}\"]\n"
        );
    }
    table
}

/// One route to `exchange` with routing key `key`: `bench.FR.user_created` (bound to
/// the target queue), or a template that renders to it from the event's `data.country`
/// and `type`.
pub fn exchange_table(source: &str, exchange: &str, key: &str, unrouted: &str) -> String {
    format!(
        "source = \"{source}\"\nunrouted = \"{unrouted}\"\ndead_letter = \"{source}.dead\"\n\n\
         [[route]]\nname = \"hot\"\nevent = \"user_created\"\n\
         to = [{{ exchange = \"{exchange}\", routing_key = \"{key}\" }}]\n"
    )
}
