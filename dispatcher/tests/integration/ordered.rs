//! Ordered mode with two real `dispatcher` binaries: one is active, the other stands by;
//! after `kill -9` of the active one mid-stream the standby takes over, every event
//! reaches the target, and their first arrivals keep the source queue's order.

use std::time::{Duration, Instant};

use crate::spawned::{Dispatcher, WAIT};
use events::CloudEvent;
use events::amqp::{Publisher, declare_queue};
use events::testing::{broker, delete_queues, drain, eventually, message_count, queue_type};

const EVENTS: u64 = 3_000;

async fn role(dispatcher: &Dispatcher) -> Option<String> {
    let ready = dispatcher.ready().await?;
    ready["role"].as_str().map(str::to_owned)
}

async fn wait_role(dispatcher: &Dispatcher, wanted: &str) {
    eventually(WAIT, &format!("role {wanted}"), || async {
        (role(dispatcher).await.as_deref() == Some(wanted)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_standby_takes_over_after_a_kill_and_every_event_arrives_in_order() {
    let prefix = events::testing::unique("ordered");
    let (source, target) = (format!("{prefix}.source"), format!("{prefix}.target"));
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    std::fs::write(
        &routes,
        format!(
            "source = {source:?}\nunrouted = \"{prefix}.unrouted\"\n\
             dead_letter = \"{prefix}.dead\"\n\n\
             [[route]]\nname = \"all\"\nevent = \"order.*\"\nto = [{target:?}]\n"
        ),
    )
    .unwrap();
    let connection = broker().await;
    let publisher = Publisher::new(&connection).await.unwrap();
    declare_queue(publisher.channel(), &source, queue_type())
        .await
        .unwrap();

    let mut active = Dispatcher::start(&routes, &["--ordered"], &[]).await;
    wait_role(&active, "active").await;
    let standby = Dispatcher::start(&routes, &[], &[("DISPATCH_ORDERED", "true")]).await;
    wait_role(&standby, "standby").await;

    // One channel, so the source queue holds them in this order.
    let mut pending = Vec::new();
    for n in 0..EVENTS {
        let event = CloudEvent::new("test", "order.placed", serde_json::json!({ "n": n }));
        let sent = publisher
            .send("", &source, &event.to_json_vec(), event.amqp_properties())
            .await
            .unwrap();
        pending.push(sent.wait());
    }
    for confirmed in futures_util::future::join_all(pending).await {
        confirmed.unwrap();
    }

    eventually(
        WAIT,
        "some events forwarded by the active replica",
        || async {
            let forwarded = message_count(&connection, &target).await?;
            (forwarded >= 300).then_some(())
        },
    )
    .await;
    let forwarded_before = message_count(&connection, &target).await.unwrap_or(0);
    let killed = Instant::now();
    active.kill();
    wait_role(&standby, "active").await;
    let took_over = killed.elapsed();
    eventually(WAIT, "events flowing again", || async {
        let now = message_count(&connection, &target).await?;
        (now > forwarded_before).then_some(())
    })
    .await;
    let flowing = killed.elapsed();
    eprintln!(
        "ordered failover: standby active {took_over:?} after kill -9, events flowing again after {flowing:?} \
         ({forwarded_before} of {EVENTS} forwarded before)"
    );

    let channel = connection.create_channel().await.unwrap();
    let arrivals = std::cell::RefCell::new(Vec::<u64>::new());
    let firsts = eventually(
        Duration::from_secs(120),
        "every event at the target",
        || async {
            let taken = drain(&channel, &target).await;
            let mut arrivals = arrivals.borrow_mut();
            for message in taken {
                let event: serde_json::Value = serde_json::from_slice(&message.data).unwrap();
                arrivals.push(event["data"]["n"].as_u64().unwrap());
            }
            let mut seen = std::collections::HashSet::new();
            let firsts: Vec<u64> = arrivals
                .iter()
                .copied()
                .filter(|n| seen.insert(*n))
                .collect();
            (firsts.len() == usize::try_from(EVENTS).unwrap()).then_some(firsts)
        },
    )
    .await;
    let arrivals = arrivals.into_inner();
    let expected: Vec<u64> = (0..EVENTS).collect();
    let first_wrong = firsts
        .iter()
        .zip(&expected)
        .position(|(got, want)| got != want);
    assert_eq!(
        first_wrong, None,
        "first arrivals out of order around {first_wrong:?}"
    );
    eprintln!(
        "ordered failover: {} arrivals, {} duplicates",
        arrivals.len(),
        arrivals.len() - firsts.len()
    );
    drop(standby);
    let queues = ["source", "target", "unrouted", "dead"].map(|q| format!("{prefix}.{q}"));
    let names: Vec<&str> = queues.iter().map(String::as_str).collect();
    delete_queues(&connection, &names).await;
}
