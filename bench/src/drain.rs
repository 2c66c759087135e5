//! Dispatcher drain throughput against RabbitMQ's own Shovel, same broker, same queues:
//! preload N events into a source queue, start the forwarder, time until the target
//! holds N. Contenders: the Shovel (broker-native, `ack-mode` `on-confirm`, no content
//! routing), the dispatcher with a one-route table, and the dispatcher with a
//! 10,000-route table and a `where` filter on the hot route. Then the one-route
//! dispatcher as 2 and 3 replicas competing for the source queue, and in ordered mode
//! (one replica active, one event in flight at a time) on a tenth of the events. Peers:
//! a seed-style Python router (pika, no confirms), and two minimal relays with the
//! dispatcher's guarantees, one on lapin and one on amqprs (the AMQP client compared).
//! And the one-route dispatcher with an `[archive]` stream (every event also appended
//! to it), followed by a replay of that stream to one queue (see [`crate::replay`]);
//! with a tap attached (`GET /tap?body=true`, read by this process); and sending to an
//! exchange with a templated routing key, against the same exchange with a plain key.
//!
//! The rate is the steady one, between 10% and 90% of the events at the target
//! ([`crate::stats::STEADY`]), so that no forwarder's start counts. In the `separated`
//! mode the broker runs on core 0 with one scheduler and the forwarder on core 1.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use e2e::PrivateBroker;
use events::amqp::{Publisher, connect_once, declare_queue};
use events::testing::{delete_queues, message_count, unique};
use events::{CloudEvent, QueueType};
use serde::Serialize;
use serde_json::json;

use crate::forwarders::{FORWARDER_CORE, Forwarder, Queues, start, stop_shovel};
use crate::procstat;
use crate::replay::ReplayResult;
use crate::stats::{STEADY, steady_rate};

/// Where the broker and the forwarder run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Both on all cores, competing.
    Shared,
    /// The broker on core 0 with one scheduler, the forwarder on core 1.
    Separated,
}

impl Mode {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Separated => "separated",
        }
    }
}

/// One contender's run.
#[derive(Debug, Clone, Serialize)]
pub struct DrainResult {
    /// `shared` or `separated`.
    pub mode: String,
    /// Which of the repetitions (from 1).
    pub repetition: usize,
    /// The contender's name ([`Contender::name`]).
    pub contender: String,
    /// `quorum` or `classic`.
    pub queue_type: String,
    /// Events forwarded.
    pub messages: u64,
    /// Seconds of the steady part (10% to 90% of the events at the target).
    pub seconds: f64,
    /// Messages per second in the steady part.
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
    /// The dispatcher with one route that has a `where` condition.
    DispatcherWhere,
    /// The dispatcher with 10,000 routes and a `where` on the hot one.
    DispatcherLarge,
    /// Two one-route dispatchers consuming the same source queue.
    Dispatcher2,
    /// Three one-route dispatchers consuming the same source queue.
    Dispatcher3,
    /// Two one-route dispatchers in ordered mode (one active, one standby).
    DispatcherOrdered,
    /// A seed-style Python router: pika, the same `where`, no publisher confirms.
    PythonRouter,
    /// A minimal relay on lapin with the dispatcher's guarantees.
    RelayLapin,
    /// The same minimal relay on amqprs.
    RelayAmqprs,
    /// The dispatcher with one route and an `[archive]` stream.
    DispatcherArchive,
    /// The dispatcher with one route, and a client following `GET /tap?body=true`.
    DispatcherTapped,
    /// The same exchange and binding as `DispatcherTemplated` with a plain routing key:
    /// what the exchange costs without the template.
    DispatcherExchange,
    /// The dispatcher with one route to an exchange whose routing key is a template
    /// (`bench.{data.country}.{type}`), bound to the target queue.
    DispatcherTemplated,
}

impl Contender {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Shovel => "shovel",
            Self::Dispatcher => "dispatcher",
            Self::DispatcherWhere => "dispatcher-where",
            Self::DispatcherLarge => "dispatcher-10k-where",
            Self::Dispatcher2 => "dispatcher-x2",
            Self::Dispatcher3 => "dispatcher-x3",
            Self::DispatcherOrdered => "dispatcher-ordered",
            Self::PythonRouter => "python-router",
            Self::RelayLapin => "relay-lapin",
            Self::RelayAmqprs => "relay-amqprs",
            Self::DispatcherArchive => "dispatcher-archive",
            Self::DispatcherTapped => "dispatcher-tapped",
            Self::DispatcherExchange => "dispatcher-exchange",
            Self::DispatcherTemplated => "dispatcher-templated",
        }
    }

    /// Every contender, in the report's order.
    pub const ALL: [Self; 14] = [
        Self::Shovel,
        Self::Dispatcher,
        Self::DispatcherWhere,
        Self::DispatcherLarge,
        Self::Dispatcher2,
        Self::Dispatcher3,
        Self::DispatcherOrdered,
        Self::PythonRouter,
        Self::RelayLapin,
        Self::RelayAmqprs,
        Self::DispatcherArchive,
        Self::DispatcherTapped,
        Self::DispatcherExchange,
        Self::DispatcherTemplated,
    ];

    /// How many dispatcher processes it starts.
    pub fn replicas(self) -> usize {
        match self {
            Self::Shovel | Self::PythonRouter | Self::RelayLapin | Self::RelayAmqprs => 0,
            Self::Dispatcher
            | Self::DispatcherWhere
            | Self::DispatcherLarge
            | Self::DispatcherArchive
            | Self::DispatcherTapped
            | Self::DispatcherExchange
            | Self::DispatcherTemplated => 1,
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
    mode: Mode,
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
    let exchange = format!("{base}.x");
    let channel = connection.create_channel().await?;
    for q in [&source, &target, &unrouted] {
        declare_queue(&channel, q, queue_type).await?;
    }
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
                EXCHANGE_KEY.into(),
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
    let broker_pid = broker.pid().context("broker pid")?;
    let broker_cpu0 = procstat::cpu_seconds(broker_pid);
    let started = Instant::now();
    let queues = Queues {
        source: &source,
        target: &target,
        other: &other,
        unrouted: &unrouted,
        exchange: to_exchange.then_some(exchange.as_str()),
        archive: archive.as_deref(),
    };
    let forwarders = start(broker, contender, queue_type, &queues, &base, dir.path()).await?;
    if mode == Mode::Separated {
        for forwarder in &forwarders {
            forwarder.pin(FORWARDER_CORE)?;
        }
    }
    let tap = match (
        contender,
        forwarders.first().and_then(|f| f.url("/tap?body=true")),
    ) {
        (Contender::DispatcherTapped, Some(url)) => Some(tokio::spawn(follow_tap(url))),
        _ => None,
    };
    let pids: Vec<u32> = forwarders.iter().filter_map(Forwarder::pid).collect();
    let forwarder_cpu0: f64 = pids.iter().copied().map(procstat::cpu_seconds).sum();
    let timeout = Duration::from_secs(120 + n / 100);
    let samples = watch_until(&connection, &target, n, started, timeout).await?;
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
    for forwarder in forwarders {
        forwarder.stop().await?;
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
            let routes = dir.path().join("routes.toml");
            println!("  replay: {n} events from the archive stream to one queue");
            let result = crate::replay::measure(broker, &routes, &replayed, queue_type, n).await;
            delete_queues(&connection, &[stream, &replayed]).await;
            Some(result?)
        }
        None => None,
    };
    let _ = connection.close(200, "ok".into()).await;
    // A drain too short to see both fractions: the whole of it, start included.
    let (rate, seconds) = steady_rate(&samples, n, STEADY).unwrap_or_else(|| {
        let all = samples.last().map_or(1e-9, |&(t, _)| t);
        (n as f64 / all, all)
    });
    let drained = DrainResult {
        mode: mode.name().to_owned(),
        repetition: 0,
        contender: contender.name().to_owned(),
        queue_type: queue_type.as_str().to_owned(),
        messages: n,
        seconds,
        msgs_per_sec: rate,
        forwarder_cpu_us_per_msg: forwarder_cpu.map(|c| c / n as f64 * 1e6),
        broker_cpu_us_per_msg: broker_cpu / n as f64 * 1e6,
        forwarder_peak_rss_mib: rss,
        lost: n.saturating_sub(delivered),
        tap,
    };
    Ok((drained, replay))
}

/// The routing key the exchange contenders' target queue is bound with (what the
/// template renders to for every bench event).
pub const EXCHANGE_KEY: &str = "bench.FR.user_created";

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

/// Polls the target's depth every 10 ms until it holds `n`; returns the samples
/// (seconds since `started`, depth).
async fn watch_until(
    connection: &events::lapin::Connection,
    queue: &str,
    n: u64,
    started: Instant,
    timeout: Duration,
) -> anyhow::Result<Vec<(f64, u64)>> {
    let mut samples = Vec::new();
    loop {
        let count = u64::from(message_count(connection, queue).await.unwrap_or(0));
        samples.push((started.elapsed().as_secs_f64(), count));
        if count >= n {
            return Ok(samples);
        }
        if started.elapsed() > timeout {
            bail!("only {count} of {n} messages reached {queue} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
