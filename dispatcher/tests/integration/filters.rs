//! `where` v2 against the real broker: a binary-mode event routed by a CloudEvents
//! extension header and an AMQP property, a structured one by `any` with `cidr` and
//! `matches`, and what matches nothing staying unrouted.

use crate::common::{Broker, Names, RoutesDir, Running, WAIT, header};
use events::lapin::BasicProperties;
use events::lapin::types::{AMQPValue, FieldTable};
use events::testing::take_one;

fn table(names: &Names) -> String {
    format!(
        r##"{}[[route]]
name = "acme"
event = "#"
where = {{ tenant = {{ eq_ignore_case = "ACME" }}, "properties.app_id" = {{ wildcard = "shop-*" }} }}
to = [{:?}]

[[route]]
name = "net"
event = "#"
where = {{ any = [{{ "data.ip" = {{ cidr = "10.0.0.0/8" }} }}, {{ "data.email" = {{ matches = '@example\.com$' }} }}] }}
to = [{:?}]

[[test]]
event = {{ type = "t", tenant = "acme", properties = {{ app_id = "shop-eu" }} }}
includes = [{:?}]
"##,
        names.header(),
        names.q("acme"),
        names.q("net"),
        names.q("acme"),
    )
}

#[tokio::test]
async fn events_are_routed_by_extensions_properties_and_any_branches() {
    let names = Names::new("filters");
    let routes = RoutesDir::new(&table(&names));
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |_| {}).await;

    // Binary mode: the tenant is the `ce-tenant` header, the data the body.
    let mut headers = FieldTable::default();
    headers.insert("ce-tenant".into(), AMQPValue::LongString("Acme".into()));
    let binary = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_type("order_placed".into())
        .with_app_id("shop-eu".into())
        .with_headers(headers);
    broker
        .publish_raw(&names.source(), br#"{"ip":"10.2.3.4"}"#, binary)
        .await;
    // Structured: the second branch of `any` holds.
    let structured = BasicProperties::default()
        .with_content_type("application/cloudevents+json".into())
        .with_app_id("shop-eu".into());
    broker
        .publish_raw(
            &names.source(),
            br#"{"specversion":"1.0","id":"2","source":"s","type":"user_created","tenant":"other","data":{"email":"x@example.com","ip":"192.168.0.1"}}"#,
            structured.clone(),
        )
        .await;
    // Neither route: unrouted.
    broker
        .publish_raw(
            &names.source(),
            br#"{"specversion":"1.0","id":"3","source":"s","type":"user_created","data":{"ip":"not an address"}}"#,
            structured,
        )
        .await;

    let channel = broker.channel().await;
    let acme = take_one(&channel, &names.q("acme"), WAIT).await;
    assert_eq!(acme.delivery.data, br#"{"ip":"10.2.3.4"}"#);
    assert_eq!(
        header(&acme.delivery.properties, "x-dispatch-routes").as_deref(),
        Some("acme,net")
    );
    // Events are forwarded side by side, so `net` may get them in either order.
    let mut net = Vec::new();
    for _ in 0..2 {
        let got = take_one(&channel, &names.q("net"), WAIT).await;
        let routes = header(&got.delivery.properties, "x-dispatch-routes");
        net.push((
            String::from_utf8_lossy(&got.delivery.data).into_owned(),
            routes,
        ));
    }
    net.sort();
    assert_eq!(net[0].0, r#"{"ip":"10.2.3.4"}"#);
    assert_eq!(net[0].1.as_deref(), Some("acme,net"));
    assert!(net[1].0.contains("x@example.com"), "{net:?}");
    assert_eq!(
        net[1].1.as_deref(),
        Some("net"),
        "by the second branch of `any`"
    );
    let unrouted = take_one(&channel, &names.unrouted(), WAIT).await;
    assert!(String::from_utf8_lossy(&unrouted.delivery.data).contains("not an address"));

    running.stop().await;
    broker.cleanup(&names.queues(&["acme", "net"])).await;
}
