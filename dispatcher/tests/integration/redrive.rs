//! Shaping, retry and redrive against the real broker: a templated exchange target
//! with route headers; a full target queue (`x-overflow = reject-publish`) refuses part
//! of a fan-out, the dead letters say which targets did get the events, and once the
//! queue is drained `dispatcher redrive` sends each event to exactly what it missed.

use std::collections::BTreeSet;

use dispatcher::redrive::{RedriveArgs, Summary, run};
use events::lapin::options::{
    BasicGetOptions, BasicNackOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use events::lapin::types::{AMQPValue, FieldTable};
use events::lapin::{Channel, ExchangeKind};
use events::testing::{drain, eventually, message_count, queue_type, take_one, wait_for_count};
use serde_json::json;

use crate::common::{Broker, Names, RoutesDir, Running, WAIT, header};

async fn exchange(channel: &Channel, name: &str) {
    channel
        .exchange_declare(
            name.into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
}

/// A queue that holds at most `max` messages and refuses publishes past that.
async fn full_queue(channel: &Channel, name: &str, max: i64) {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(queue_type().as_str().into()),
    );
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(max));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    channel
        .queue_declare(name.into(), QueueDeclareOptions::durable(), args)
        .await
        .unwrap();
}

fn args(routes: &RoutesDir, names: &Names) -> RedriveArgs {
    let amqp = events::AmqpSettings {
        url: events::testing::amqp_url(),
        queue_type: queue_type(),
        ..Default::default()
    };
    RedriveArgs {
        queue: Some(names.dead()),
        to_source: false,
        to: None,
        filters: Vec::new(),
        limit: None,
        dry_run: false,
        routes: routes.path.clone(),
        amqp,
    }
}

/// Waits until every one of the `dead` letters put back is ready in the queue again
/// (a requeue lands in the broker a moment after the nack).
async fn letters_back(broker: &Broker, names: &Names, dead: u32) {
    eventually(WAIT, "the letters to be back in the queue", || async {
        (message_count(&broker.connection, &names.dead()).await == Some(dead)).then_some(())
    })
    .await;
}

fn ids(messages: &[events::lapin::message::BasicGetMessage]) -> BTreeSet<String> {
    messages
        .iter()
        .filter_map(|m| {
            m.delivery
                .properties
                .message_id()
                .as_ref()
                .map(|i| i.to_string())
        })
        .collect()
}

#[tokio::test]
async fn a_templated_exchange_target_gets_its_rendered_key_and_the_route_headers() {
    let names = Names::new("template");
    let broker = Broker::new().await;
    let channel = broker.channel().await;
    let x = names.q("exchange");
    exchange(&channel, &x).await;
    broker.declare(&[&names.q("fr")]).await;
    bind(&channel, &names.q("fr"), &x, "audit.FR.user_created").await;
    let text = format!(
        "{}[[route]]\nname = \"audit\"\nevent = \"user_created\"\n\
         to = [{{ exchange = {x:?}, routing_key = \"audit.{{data.country}}.{{type}}\" }}]\n\
         headers = {{ \"x-route\" = \"audit\", \"x-subject\" = \"{{subject}}\" }}\n",
        names.header()
    );
    let routes = RoutesDir::new(&text);
    let running = Running::start(&routes.path, |_| {}).await;

    broker
        .publish_event(&names.source(), "user_created", json!({"country": "FR"}))
        .await;
    let got = take_one(&channel, &names.q("fr"), WAIT).await;
    let p = &got.delivery.properties;
    assert_eq!(got.delivery.routing_key.as_str(), "audit.FR.user_created");
    assert_eq!(header(p, "x-route").as_deref(), Some("audit"));
    assert_eq!(header(p, "x-subject").as_deref(), Some("1"));
    assert_eq!(header(p, "x-dispatch-routes").as_deref(), Some("audit"));

    // No `data.country` and no default: dead-lettered, saying why and which route.
    broker
        .publish_event(&names.source(), "user_created", json!({}))
        .await;
    let got = take_one(&channel, &names.dead(), WAIT).await;
    let p = &got.delivery.properties;
    let error = header(p, "x-dispatch-error").unwrap();
    assert!(
        error.starts_with("template_field_missing: route `audit`"),
        "{error}"
    );
    assert!(error.contains("`data.country`"), "{error}");
    assert_eq!(header(p, "x-dispatch-route").as_deref(), Some("audit"));

    running.stop().await;
    channel
        .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    broker.cleanup(&names.queues(&["fr"])).await;
}

#[tokio::test]
async fn a_full_target_dead_letters_the_rest_and_redrive_sends_each_event_only_where_it_was_missing()
 {
    let names = Names::new("redrive");
    let broker = Broker::new().await;
    let channel = broker.channel().await;
    let x = names.q("exchange");
    let (all, full) = (names.q("all"), names.q("full"));
    exchange(&channel, &x).await;
    full_queue(&channel, &full, 3).await;
    bind(&channel, &full, &x, "redrive.full").await;
    let text = format!(
        "{}[[route]]\nname = \"fan\"\nevent = \"t\"\n\
         to = [{all:?}, {{ exchange = {x:?}, routing_key = \"redrive.{{data.kind}}\" }}]\n\
         retry = {{ attempts = 2, backoff = \"10ms\" }}\n",
        names.header()
    );
    let routes = RoutesDir::new(&text);
    let running = Running::start(&routes.path, |_| {}).await;

    let mut sent = BTreeSet::new();
    for n in 0..6 {
        let event = broker
            .publish_event(&names.source(), "t", json!({"kind": "full", "n": n}))
            .await;
        sent.insert(event.id);
    }
    wait_for_count(&broker.connection, &all, 6, WAIT).await;
    // The queue's limit is approximate for quorum queues (it may take one more): what
    // it refused is what is dead-lettered.
    let dead = eventually(
        WAIT,
        "every event in the full target or dead-lettered",
        || async {
            let held = message_count(&broker.connection, &full).await?;
            let dead = message_count(&broker.connection, &names.dead()).await?;
            (held + dead == 6 && dead > 0).then_some(dead)
        },
    )
    .await;
    running.stop().await;
    let moved = u64::from(dead);

    // The dead letters say why, where, how often, since when, and what did get them.
    let target = format!("{{ exchange = {x:?}, routing_key = \"redrive.full\" }}");
    let mut dead_ids = BTreeSet::new();
    for _ in 0..dead {
        let got = channel
            .basic_get(
                names.dead().as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await
            .unwrap()
            .expect("a dead letter");
        let p = &got.delivery.properties;
        let error = header(p, "x-dispatch-error").unwrap();
        assert!(
            error.starts_with("nacked: publishing to exchange"),
            "{error}"
        );
        assert!(error.contains("after 2 attempts"), "{error}");
        assert_eq!(header(p, "x-dispatch-route").as_deref(), Some("fan"));
        assert_eq!(header(p, "x-dispatch-target"), Some(target.clone()));
        assert_eq!(header(p, "x-dispatch-attempts").as_deref(), Some("2"));
        let at = header(p, "x-dispatch-first-failed-at").unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(&at).is_ok(), "{at}");
        let delivered = dispatcher::forward::letter::delivered_to(p);
        assert_eq!(
            delivered,
            [dispatcher::forward::letter::Destination::queue(&all)]
        );
        dead_ids.insert(p.message_id().as_ref().unwrap().to_string());
    }
    channel
        .basic_nack(
            0,
            BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        )
        .await
        .unwrap();
    assert!(dead_ids.is_subset(&sent));
    letters_back(&broker, &names, dead).await;

    // A filter that matches nothing and a dry run move nothing.
    let mut none = args(&routes, &names);
    none.filters = vec![("headers.x-dispatch-route".into(), "other".into())];
    let mut out = Vec::new();
    let summary = run(&none, false, &mut out).await.unwrap();
    letters_back(&broker, &names, dead).await;
    assert_eq!(
        summary,
        Summary {
            moved: 0,
            skipped: moved,
            failed: 0
        }
    );
    let mut dry = args(&routes, &names);
    dry.dry_run = true;
    dry.filters = vec![("headers.x-dispatch-route".into(), "fan".into())];
    let mut out = Vec::new();
    let summary = run(&dry, false, &mut out).await.unwrap();
    assert_eq!(
        summary,
        Summary {
            moved,
            skipped: 0,
            failed: 0
        }
    );
    let shown = String::from_utf8(out).unwrap();
    assert_eq!(
        shown.matches(&format!("-> {target}\n")).count(),
        dead as usize,
        "{shown}"
    );
    assert!(
        shown.ends_with(&format!(
            "would move {dead}, skipped 0, failed 0 (from {})\n",
            names.dead()
        )),
        "{shown}"
    );
    letters_back(&broker, &names, dead).await;

    // While the target is still full, redrive fails and keeps every letter.
    let summary = run(&args(&routes, &names), false, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(
        summary,
        Summary {
            moved: 0,
            skipped: 0,
            failed: moved
        }
    );
    letters_back(&broker, &names, dead).await;

    // Drained, the target takes them: each event reaches only the target it missed.
    let first = ids(&drain(&channel, &full).await);
    let summary = run(&args(&routes, &names), false, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(
        summary,
        Summary {
            moved,
            skipped: 0,
            failed: 0
        }
    );
    let redriven = drain(&channel, &full).await;
    assert_eq!(ids(&redriven), dead_ids);
    assert_eq!(redriven.len(), dead as usize);
    for m in &redriven {
        assert_eq!(m.delivery.routing_key.as_str(), "redrive.full");
        assert_eq!(header(&m.delivery.properties, "x-dispatch-error"), None);
        assert_eq!(
            header(&m.delivery.properties, "x-dispatch-delivered-to"),
            None
        );
    }
    let union: BTreeSet<String> = first.union(&dead_ids).cloned().collect();
    assert_eq!(
        union, sent,
        "every event reached the full target exactly once"
    );
    assert!(first.is_disjoint(&dead_ids));
    assert_eq!(
        message_count(&broker.connection, &all).await,
        Some(6),
        "no duplicate"
    );
    assert_eq!(
        message_count(&broker.connection, &names.dead()).await,
        Some(0)
    );

    channel
        .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    broker.cleanup(&names.queues(&["all", "full"])).await;
}

#[tokio::test]
async fn redrive_to_a_queue_moves_events_that_were_never_routed() {
    let names = Names::new("redrive-to");
    let broker = Broker::new().await;
    let routes = RoutesDir::new(&names.simple("r", "t", "out"));
    let running = Running::start(&routes.path, |_| {}).await;
    broker
        .publish_raw(
            &names.source(),
            b"not json",
            events::lapin::BasicProperties::default().with_message_id("bad-1".into()),
        )
        .await;
    wait_for_count(&broker.connection, &names.dead(), 1, WAIT).await;
    running.stop().await;

    // Not a refused publish: the default mode leaves it; `--to` moves it.
    let summary = run(&args(&routes, &names), false, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(
        summary,
        Summary {
            moved: 0,
            skipped: 1,
            failed: 0
        }
    );
    let mut to = args(&routes, &names);
    to.to = Some(names.q("parked"));
    to.limit = Some(5);
    let summary = run(&to, false, &mut Vec::new()).await.unwrap();
    assert_eq!(
        summary,
        Summary {
            moved: 1,
            skipped: 0,
            failed: 0
        }
    );
    let channel = broker.channel().await;
    let got = take_one(&channel, &names.q("parked"), WAIT).await;
    assert_eq!(got.delivery.data, b"not json");
    assert_eq!(header(&got.delivery.properties, "x-dispatch-error"), None);

    broker.cleanup(&names.queues(&["out", "parked"])).await;
}
