//! The `hostile-input` scenario: while a steady stream of users flows through the real
//! system, one message of each hostile class (see [`Class`]) goes straight into the
//! dispatcher's source queue. It reports lost good events (must be 0), how long good
//! events were held up, the dispatcher's reconnects (must be 0), whether `/readyz` stayed
//! ready, the dispatcher's peak memory, and where each hostile message ended.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use events::Endpoints;
use events::amqp::{Publisher, connect_once};
use events::lapin::Channel;
use serde_json::Value;

use super::hostile_messages::{Class, build};
use super::hostile_report::{class_notes, mib, readiness_note, seconds, sessions_note};
use super::hostile_watch::{
    Endings, Exits, LatencyWatch, ReadyPoller, held_up, memory_mib, sessions,
};
use super::{Row, Scale, inject::all_serving};
use crate::broker::PrivateBroker;
use crate::stream::{Producer, tally};
use crate::system::{Options, Queues, System};

/// The longest wait for anything: the hostile messages to end, good events to arrive.
const PATIENCE: Duration = Duration::from_secs(120);

/// The scenario's routing table: the usual user route plus a watch queue for latencies,
/// and hostile routes with several `#` per pattern.
fn routes(queues: &Queues, watch: &str, hostile: &str) -> String {
    format!(
        "source = \"{}\"\nunrouted = \"{}\"\ndead_letter = \"{}\"\n\n\
         [[route]]\nname = \"user-snapshots\"\n\
         event = [\"user_created\", \"user_updated\", \"user_deleted\"]\n\
         to = [\"{}\", \"{}\", \"{watch}\"]\n\n\
         [[route]]\nname = \"hostile-patterns\"\nevent = [\"#.x.#\", \"#.x.#.y.#\"]\n\
         to = [\"{hostile}\"]\n\n\
         [[route]]\nname = \"hostile\"\nevent = \"hostile.#\"\nto = [\"{hostile}\"]\n",
        queues.dispatch,
        queues.unrouted,
        queues.dead(),
        queues.order,
        queues.tap,
    )
}

/// Runs the scenario on `broker`.
pub async fn hostile_input(broker: &PrivateBroker, scale: Scale) -> anyhow::Result<Row> {
    let options = Options {
        amqp_url: broker.url(),
        rust_log: "info".to_owned(),
        with_orders: true,
        poll_interval: None,
        ..Options::default()
    };
    let mut system = System::start(options).await?;
    let watch = format!("{}.watch", system.queues.tap);
    let exits = Exits {
        forwarded: format!("{}.hostile", system.queues.tap),
        unrouted: system.queues.unrouted.clone(),
        dead: system.queues.dead(),
    };
    std::fs::write(
        &system.routes,
        routes(&system.queues, &watch, &exits.forwarded),
    )?;
    wait_for_generation(&system, 2).await?;
    let result = run(&mut system, broker, scale, &watch, &exits).await;
    let mut notes = Vec::new();
    let (mut row, left) = match result {
        Ok(row) => (row, true),
        Err(error) => (failed_row(format!("FAILED: {error:#}")), false),
    };
    if left {
        // What the dispatcher still holds goes back to its queue when it stops.
        if let Err(error) = system.dispatcher.stop().await {
            notes.push(format!("FAILED: dispatcher did not stop: {error:#}"));
        }
        notes.push(stuck_note(&system).await);
    }
    delete(&system.amqp_url, &[&watch, &exits.forwarded]).await;
    if let Err(error) = system.shutdown().await {
        notes.push(format!("FAILED: shutdown: {error:#}"));
    }
    for note in notes {
        row.notes.push_str("; ");
        row.notes.push_str(&note);
    }
    Ok(row)
}

async fn run(
    system: &mut System,
    broker: &PrivateBroker,
    scale: Scale,
    watch: &str,
    exits: &Exits,
) -> anyhow::Result<Row> {
    let observer = connect_once(
        &broker.endpoints(),
        "fault-hostile-watch",
        Duration::from_secs(10),
    )
    .await?;
    let latency = LatencyWatch::start(observer.create_channel().await?, watch.to_owned());
    let drain = observer.create_channel().await?;
    let metrics_url = system.dispatcher.url("/metrics");
    let sessions_before = sessions(&system.http, &metrics_url).await;
    let rss_before = memory_mib(system.dispatcher.pid(), "VmRSS");
    let ready = ReadyPoller::start(system.dispatcher.url("/readyz"))?;
    let producer = Producer::start(system.http.clone(), system.users.url(""), scale.rate);
    tokio::time::sleep(scale.load).await;

    let hostile_from = SystemTime::now();
    // Any error stops the stream and the watchers first: none may outlive the scenario.
    let hostile = hostile_phase(broker, system, scale, &drain, exits).await;
    let hostile_to = SystemTime::now();
    tokio::time::sleep(scale.load).await;

    let acknowledged = producer.stop().await;
    let readiness = ready.stop().await;
    let hostile = match hostile {
        Ok(seen) => seen,
        Err(error) => {
            latency.stop().await;
            return Err(error);
        }
    };
    let (sent, mut notes, mut endings, took) = hostile;
    let sessions_after = sessions(&system.http, &metrics_url).await;
    let rss_peak = memory_mib(system.dispatcher.pid(), "VmHWM");
    let good = tally(system, &acknowledged.ids(), PATIENCE).await;
    // The watch ran until every good event arrived (or the tally gave up): late ones
    // count with their true latency.
    let samples = latency.stop().await;
    let good = good?;
    endings.drain(&drain, exits).await?;
    let _ = observer.close(200, "ok".into()).await;
    let serving = all_serving(system).await;

    notes.extend(class_notes(&sent, &endings, &took));
    for (queue, count) in &endings.strangers {
        notes.push(format!(
            "FAILED: {count} messages that are not hostile (good events) ended in {queue}"
        ));
    }
    let [before, during, after] = held_up(&samples, hostile_from, hostile_to);
    notes.push(format!(
        "good events' max latency: {} before, {} during the hostile sends ({:.1} s), {} after ({} samples)",
        seconds(before),
        seconds(during),
        hostile_to
            .duration_since(hostile_from)
            .unwrap_or_default()
            .as_secs_f64(),
        seconds(after),
        samples.len()
    ));
    let arrived: std::collections::BTreeSet<i64> = samples.iter().filter_map(|s| s.user).collect();
    let unseen = acknowledged.ids().difference(&arrived).count();
    if unseen > 0 {
        notes.push(format!(
            "{unseen} good events not yet arrived in the watch queue when it stopped (no latency for them)"
        ));
    }
    notes.push(sessions_note(sessions_before, sessions_after));
    notes.push(readiness_note(&readiness));
    notes.push(format!(
        "dispatcher RSS {} before, peak {}",
        mib(rss_before),
        mib(rss_peak)
    ));
    if !good.missing.is_empty() {
        notes.push(format!("missing ids {:?}", good.missing));
    }
    Ok(Row {
        scenario: "hostile-input".into(),
        sent: good.sent + sent.len(),
        lost: good.lost,
        duplicates: good.duplicates,
        serving,
        notes: notes.join("; "),
    })
}

/// What the hostile phase sent and saw: (id, class) of each message the broker
/// confirmed, notes, every ending, and how long each class took to end.
type HostileSeen = (
    Vec<(String, Class)>,
    Vec<String>,
    Endings,
    BTreeMap<Class, Duration>,
);

/// Sends the hostile classes one after another, on a connection of its own, each once
/// the previous one ended (so that a stall is laid at the right class's door), all
/// within [`PATIENCE`]; a class sent after that is reported as not ended.
async fn hostile_phase(
    broker: &PrivateBroker,
    system: &System,
    scale: Scale,
    drain: &Channel,
    exits: &Exits,
) -> anyhow::Result<HostileSeen> {
    let connection = connect_once(
        &broker.endpoints(),
        "fault-hostile",
        Duration::from_secs(10),
    )
    .await?;
    let frame_max = usize::try_from(connection.configuration().frame_max())?;
    let publisher = Publisher::new(&connection).await?;
    let (mut sent, mut notes) = (Vec::new(), Vec::new());
    let (mut endings, mut took) = (Endings::default(), BTreeMap::new());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    for class in Class::ALL {
        let started = tokio::time::Instant::now();
        // A class's messages go out back to back, confirms awaited after the last one,
        // so that the large ones pile up in the queue as a burst from a producer would.
        let mut pending = Vec::new();
        for n in 0..class.count(scale.hostile_large) {
            let id = format!("hostile-{class:?}-{n}");
            let (properties, body) = build(class, n, &id, frame_max);
            let queue = &system.queues.dispatch;
            pending.push((id, publisher.send("", queue, &body, properties).await));
        }
        let mut ids = Vec::new();
        for (id, sent) in pending {
            let confirmed = match sent {
                Ok(confirm) => confirm.wait().await.map_err(anyhow::Error::from),
                Err(error) => Err(error.into()),
            };
            match confirmed {
                Ok(()) => ids.push(id),
                Err(error) => notes.push(format!("FAILED: could not send {id}: {error:#}")),
            }
        }
        let ended = |endings: &Endings| ids.iter().all(|id| endings.by_id.contains_key(id));
        while !ended(&endings) && tokio::time::Instant::now() < deadline {
            endings.drain(drain, exits).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if ended(&endings) {
            took.insert(class, started.elapsed());
        }
        sent.extend(ids.into_iter().map(|id| (id, class)));
    }
    let _ = connection.close(200, "ok".into()).await;
    if endings.by_id.len() < sent.len() {
        notes.push(format!(
            "FAILED: {} of {} hostile messages had not ended after {} s",
            sent.len() - endings.by_id.len(),
            sent.len(),
            PATIENCE.as_secs()
        ));
    }
    Ok((sent, notes, endings, took))
}

fn failed_row(notes: String) -> Row {
    Row {
        scenario: "hostile-input".into(),
        sent: 0,
        lost: 0,
        duplicates: 0,
        serving: false,
        notes,
    }
}

/// How many messages are left in the source queue once the dispatcher stopped.
async fn stuck_note(system: &System) -> String {
    let Ok(connection) = connect_once(
        &system.endpoints(),
        "fault-hostile-count",
        Duration::from_secs(10),
    )
    .await
    else {
        return "FAILED: could not count the source queue".into();
    };
    let count = events::testing::message_count(&connection, &system.queues.dispatch).await;
    let _ = connection.close(200, "ok".into()).await;
    match count {
        Some(0) => "source queue empty at the end".into(),
        Some(n) => format!("FAILED: {n} messages left in the source queue"),
        None => "FAILED: could not count the source queue".into(),
    }
}

/// Polls `GET /routes` until the table's generation reaches `generation` (30 s at most).
async fn wait_for_generation(system: &System, generation: u64) -> anyhow::Result<()> {
    let url = system.dispatcher.url("/routes");
    let mut last = Value::Null;
    for _ in 0..300 {
        if let Ok(response) = system.http.get(&url).send().await {
            last = response.json().await.unwrap_or_default();
            if last["generation"].as_u64() >= Some(generation) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(anyhow::anyhow!(
        "the scenario's routing table did not load: {}",
        last["last_reload_error"]
    ))
    .context("hostile-input set-up")
}

async fn delete(url: &str, queues: &[&str]) {
    if let Ok(connection) = connect_once(
        &Endpoints::from(url),
        "fault-hostile-cleanup",
        Duration::from_secs(10),
    )
    .await
    {
        events::testing::delete_queues(&connection, queues).await;
        let _ = connection.close(200, "ok".into()).await;
    }
}
