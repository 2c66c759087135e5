//! A quick drain measurement against the local broker (not a test): preload N events
//! into a fresh source queue, start the forwarder, time until the target holds N.
//!
//! ```sh
//! cargo run --release -p dispatcher --example drain -- [N] [PREFETCH] [ROUTES_FILE]
//! ```
//! With a ROUTES_FILE its `source` and targets are used as they are (its first route's
//! first queue target is timed); without one, unique queues and a one-route table.
//! `DRAIN_PRELOAD_ONLY=1` stops after preloading, to time a separately run binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use dispatcher::Settings;
use events::CloudEvent;
use events::amqp::{Publisher, declare_queue};
use events::testing::{broker, delete_queues, message_count, queue_type, unique};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count: u32 = args.first().map_or(Ok(20_000), |a| a.parse())?;
    let prefetch: u16 = args.get(1).map_or(Ok(500), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let (routes, source, target, owned) = match args.get(2) {
        Some(path) => {
            let text = std::fs::read_to_string(path)?;
            let table = dispatcher::routes::load(path, &text)?;
            let target = table.routes()[0]
                .targets
                .iter()
                .find_map(|&t| match table.target(t) {
                    dispatcher::routes::Target::Queue(q) => Some(q.clone()),
                    dispatcher::routes::Target::Exchange { .. } => None,
                })
                .expect("the first route has a queue target");
            (path.into(), table.source.clone(), target, false)
        }
        None => {
            let prefix = unique("drain");
            let (source, target) = (format!("{prefix}.source"), format!("{prefix}.out"));
            let path = dir.path().join("routes.toml");
            std::fs::write(
                &path,
                format!(
                    "source = {source:?}\nunrouted = \"{prefix}.unrouted\"\ndead_letter = \"{prefix}.dead\"\n\n[[route]]\nname = \"users\"\nevent = \"user_created\"\nto = [{target:?}]\n"
                ),
            )?;
            (path, source, target, true)
        }
    };

    let connection = broker().await;
    let publisher = Publisher::new(&connection).await?;
    declare_queue(publisher.channel(), &source, queue_type()).await?;
    let started = Instant::now();
    for chunk in 0..count.div_ceil(1000) {
        let mut pending = Vec::new();
        for n in chunk * 1000..((chunk + 1) * 1000).min(count) {
            let event = CloudEvent::new(
                "user-service",
                "user_created",
                json!({"id": n, "name": "Alice Example", "email": "alice@example.com", "version": 1, "updated_at": "2026-11-22T10:00:00Z"}),
            )
            .with_subject(n.to_string());
            pending.push(
                publisher
                    .send("", &source, &event.to_json_vec(), event.amqp_properties())
                    .await?
                    .wait(),
            );
        }
        for result in futures_util::future::join_all(pending).await {
            result?;
        }
    }
    println!(
        "preloaded {count} events into {source} in {:.2?}",
        started.elapsed()
    );
    if std::env::var_os("DRAIN_PRELOAD_ONLY").is_some() {
        // For timing a separately started dispatcher (e.g. to read its CPU time).
        return Ok(());
    }

    let mut settings = Settings::with_routes(routes);
    settings.prefetch = prefetch;
    settings.amqp.url = events::testing::amqp_url();
    settings.amqp.queue_type = queue_type();
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let before = message_count(&connection, &target).await.unwrap_or(0);
    let started = Instant::now();
    let task = tokio::spawn(dispatcher::serve(listener, settings, shutdown.clone()));
    loop {
        let now = message_count(&connection, &target).await.unwrap_or(0);
        if now >= before + count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    task.await??;
    println!(
        "drained {count} events to {target} in {elapsed:.2?}: {:.0} msgs/s (prefetch {prefetch}, {} queues)",
        f64::from(count) / elapsed.as_secs_f64(),
        queue_type()
    );
    if owned {
        delete_queues(&connection, &[&source, &target]).await;
        let prefix = source.trim_end_matches(".source");
        delete_queues(
            &connection,
            &[&format!("{prefix}.unrouted"), &format!("{prefix}.dead")],
        )
        .await;
    }
    Ok(())
}
